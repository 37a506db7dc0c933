"""Hostile desired-state repositories for fuzzing `reconciler validate` (issue 13), and the
property every one of them must keep.

Shared by tests/test_fuzz_validate.py (a short, derandomised run in CI) and
bench/fuzz_validate.py (the long run, which also minimises what it finds).  It lives beside
the tests because it builds on their helpers: the valid repository is made from
test_validate's PERSON, people, UNITS and ENTITLEMENTS (written by make_repo), the rules from
test_network_rules' NETWORKS and SOL, the approval policy from conftest's POLICY, and it is run
in-process through conftest's run_cli.  The bench puts tests/ on sys.path to import it.

A case is the valid repository (BASE) after one to four mutations drawn by `cases()`: values
of the wrong type or hostile text put at any path of any file (control characters, trailing
newlines, very long values, LDAP DN specials, nft and shell metacharacters, CSV formula
prefixes, accents, RTL overrides and zero-width characters, huge numbers, .nan, impossible
dates, ports 0 and 99999, CIDRs of /0, mixed key types); raw YAML tokens (tags, anchors and
aliases, merge keys, flow damage); duplicated keys; deep nesting; bytes that are not UTF-8,
foreign line breaks and NULs; files removed, emptied, added under odd names, or replaced by a
symbolic link (to a secret outside the repository, a loop, nowhere), a directory or a FIFO.
Optionally a long secret is planted as a value.

`judge()` states the property: validate exits 0 or 1 within the time bound, never with an
internal error; when it exits 1, stderr is one problem per line, each beginning with the name
of a file of the case and (unless the problem is the whole file's) `:line:`, a line the file
has, then "Invalid: N problems found." with N the number of problem lines; nothing printed
holds a control character; nothing printed holds any part of the secret the repository links
to; a planted value is never echoed for more than ECHO_CAP characters.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml
from conftest import CURP, POLICY, run_cli
from hypothesis import strategies as st
from test_network_rules import NETWORKS, SOL
from test_validate import ENTITLEMENTS, PERSON, UNITS, make_repo, people

from reconciler.errors import plain  # how a message shows a file's name

ROOT = Path(__file__).resolve().parent.parent
TIME_BOUND = 5.0  # seconds one validation may take, in-process; twice that and it is stopped
ECHO_CAP = 60  # the most of a value a message may echo (reconciler.desired.checks.shown cuts at 60)
SECRET_TOKEN = "fz0" + hashlib.sha256(b"the runner's private key").hexdigest()[:37]  # 40 characters
# The file outside the repository that links point at: had it been read, each line would be
# echoed (an unknown unit, a list where a mapping belongs), and it holds a key like a runner's.
SECRET_FILE = (f"unit: {SECRET_TOKEN}\npeople: [{SECRET_TOKEN}]\ntargets: {SECRET_TOKEN}\n"
               f"# -----BEGIN OPENSSH PRIVATE KEY-----\n# {SECRET_TOKEN}\n")
INVENTORY = "inventory/lab.yaml"  # the case's inventory, passed with --inventory
POLICY_FILE = "inventory/approvers.yaml"


class _Dumper(yaml.SafeDumper):
    """Every value spelt out: desired state refuses anchors and aliases (see conftest)."""

    def ignore_aliases(self, data):  # noqa: ANN001 - PyYAML signature
        return True


def _dump(data, **style) -> str:
    return yaml.dump(data, Dumper=_Dumper, **{"allow_unicode": True, "sort_keys": False, **style})


# -- the valid repository --------------------------------------------------------------

_JOSE = PERSON.format(key="SSM-1", given="José") + (
    f"    curp: {CURP}\n    extension: '4401'\n    account: {{sam: jnunez, cn: 'Núñez, José'}}\n"
    "    mailbox: {address: jose.nunez@salud.lab, aliases: [urgencias@salud.lab], quota: 2G}\n")
_ANA = PERSON.format(key="SSM-2", given="Ana María").replace("status: activo", "status: baja") + (
    "    mailbox: {address: ana.nunez@salud.lab, purge: {folio: P-1, date: 2026-11-02}}\n")
_INES = PERSON.format(key="SSM-3", given="Inés").replace("second_surname: O'Brien", "second_surname: null") + (
    "    password_resets: [{folio: R-1, date: 2026-11-21, requested_by: Mesa de ayuda}]\n")
_SHARED = f"""\
shared_mailboxes:
- address: recepcion@salud.lab
  name: Recepción
  members: [SSM-1]
  quota: 500M
  solicitud: {SOL}
"""
_LINES = f"""\
lines:
- {{number: '4401', kind: extension, unit: HG-CUERNAVACA, person: SSM-1, status: activa, solicitud: {SOL}}}
- number: '7773112210'
  kind: carrier
  carrier: Telmex
  master_account: MA-100
  plan: Básico
  monthly_cost: 299.5
  services: [datos, voz]
  unit: OC-DGPE
  status: activa
  solicitud: {SOL}
"""
_EQUIPMENT = f"""\
equipment:
- {{inventory_number: INV-001, serial: SN-1, type: desktop, brand: HP, model: ProDesk 400, hostname: HGC-PC01,
   unit: HG-CUERNAVACA, person: SSM-1, location: Urgencias, status: en_uso, solicitud: {SOL}}}
- inventory_number: INV-002
  serial: SN-2
  type: printer
  brand: HP
  model: LaserJet
  unit: OC-DGPE
  status: baja
  decommission: {{reason: obsolescencia, date: 2026-10-20, dictamen: DT-1, reusable_parts: [tóner]}}
"""
_RULES = f"""\
rules:
- name: web-expediente
  source: clientes
  destination: expediente
  action: allow
  protocol: tcp
  ports: [443, '8080-8090']
  devices: [fw-1]
  unit: HG-CUERNAVACA
  justification: Acceso al expediente
  solicitud: {SOL}
  probes: [{{from: clientes, to: 'expediente:443', expect: allow}}]
- name: web-servidores
  source: clientes
  destination: servidores
  action: deny
  service: web
  devices: [fw-1]
  unit: HG-CUERNAVACA
  justification: Sin acceso
  expires: '2030-01-01'
  solicitud: {SOL}
"""


def _inventory() -> str:
    """The lab's inventory as shipped, pointed away from the lab's files (a test not marked
    lab may not touch them), its firewall named as the rules name it."""
    text = (ROOT / "inventory" / "lab.yaml").read_text(encoding="utf-8")
    return text.replace("/var/lib/reconciler-lab", "/srv/reconciler-fuzz").replace("fw-lab", "fw-1")


BASE: dict[str, str] = {
    "desired_state/units.yaml": UNITS,
    "desired_state/entitlements.yaml": ENTITLEMENTS,
    "desired_state/users/hg.yaml": people("HG-CUERNAVACA", _JOSE, _ANA) + _SHARED,
    "desired_state/users/oc.yaml": people("OC-DGPE", _INES),
    "desired_state/assets/lines.yaml": _LINES,
    "desired_state/assets/equipment.yaml": _EQUIPMENT,
    "desired_state/security_rules/networks.yaml": NETWORKS,
    "desired_state/security_rules/hg.yaml": _RULES,
    POLICY_FILE: _dump(POLICY),
    INVENTORY: _inventory(),
}
DIRECTORIES = ("desired_state", "desired_state/users", "desired_state/assets", "desired_state/security_rules",
               "inventory")


@dataclass(frozen=True)
class Case:
    """A repository: each file's text (bytes that are not UTF-8 kept as surrogate escapes;
    None: removed), paths that are something else than a file, and the planted secret."""

    files: tuple[tuple[str, str | None], ...]
    specials: tuple[tuple[str, str], ...] = ()  # path -> link:secret, link:secret-dir, link:inside,
    #                                             link:dangling, link:loop, dir, fifo
    secret: str | None = None
    steps: tuple[str, ...] = ()

    @property
    def file_map(self) -> dict[str, str | None]:
        return dict(self.files)

    def changed(self) -> dict[str, str | None]:
        """The files that differ from BASE."""
        return {rel: text for rel, text in self.files if BASE.get(rel) != text}


def base_case() -> Case:
    return Case(tuple(BASE.items()))


# -- hostile values ----------------------------------------------------------------------

CONTROL = [chr(c) for c in range(32)] + ["\x7f", "\x85", "\x9b", "\u2028", "\u2029"]
INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u202e", "\u202d", "\u2066", "\u2069", "\u00ad",
             "\u034f", "\u061c"]
LETTERS = ["Ñ", "ñ", "á", "é", "ü", "Ü", "’", "'", "ß", "İ", "ﬁ", "Ａ", "٣", "а", "😀", "e\u0301", "Ω", "ç"]
SPECIAL = list(",+\"\\<>;=#") + list(";|&$()`{}*?!~[]'/%:") + [" ", "\t", "-", "@", "."]
INJECTIONS = [
    "CN=Núñez\\, José,OU=Personal,DC=salud,DC=lab", "a,b+c=d", "\\2C", "#hash", " lead", "trail ", "x\n",
    "; rm -rf /", "$(id)", "`id`", "| nc 10.0.0.1 4444", "&& true", "' OR '1'='1", "*)(uid=*))(|(uid=*",
    "{__class__}", "%s%n%x", "[bold red]rojo[/]", "[link=file:///etc/passwd]x[/link]", "\x1b[31mrojo\x1b[0m",
    "../../etc/passwd", "nombre\u202eexe.txt", "=cmd|' /C calc'!A0", "+SUM(1)", "-2+3", "@SUM(A1)",
    "=HYPERLINK(\"http://x\")", "10.0.0.1/0", "0.0.0.0/0", "::/0", "256.1.1.1/24", "10.0.0.1/33", "10.10.1.0/24",
    "2026-02-30", "2026-13-01", "2026-02-29", "2028-02-29", "0000-00-00", "9999-12-31", "1e5", "0x1F", "yes",
    "null", "~", ".nan", "-.inf", "004512", "+52 (777) 311-2210", "expediente:0", "expediente:99999",
    "expediente:443", "a:b:c", "80-", "99999-1", "0-0", "1-65536", "activo", "baja", "HG-CUERNAVACA",
    "SSM-1", "internet", "fw-1", "clientes", "any", "tcp", "allow", "web", "2G", "0G", "999999G",
    "jose.nunez@salud.lab", "JOSE@SALUD.LAB", "a@b", "@", "", " ", "\t", "\n",
]
RAW_TOKENS = [  # written as they are, in place of a value
    ".nan", ".NaN", ".inf", "-.Inf", "+.inf", "2026-02-30", "2026-02-29", "2028-02-29", "2026-13-01",
    "2026-10-05T25:61:00Z", "2001-12-14t21:59:43.10-05:00", "0x1F", "0o777", "0b1011", "0777", "1_000",
    "1:30", "190:20:30", "1e400", "-1e400", "1.0e+3", "6.8523015e+5", "~", "null", "Null", "true", "yes",
    "No", "on", "off", "y", "004512", "0", "-0", "+1", "99999", "65536", "-1", "80.0", "'0'", "!!str 80",
    "!!int '80'", "!!int 'x'", "!!float '1'", "!!float nan", "!!bool 'maybe'", "!!null x", "!!binary aGVsbG8=",
    "!!binary '!!!'", "!!set {a, b}", "!!omap [a: 1, b: 2]", "!!omap [a, b]", "!!pairs [a: 1]",
    "!!timestamp 2026-01-01", "!!timestamp 2026-02-30", "!!python/object/apply:os.system ['id']",
    "!!python/name:os.system", "!<tag:yaml.org,2002:str> x", "!<%1b%5b31m> x", "!local x", "! x",
    "&a x", "*a", "*undefined", "[", "]", "{", "}", "{a: 1", "[a, [b, [c]]]", "{? [a]: b}", "{[a]: b}",
    "{a: 1, a: 2}", "{1: a, '1': b}", "{null: x, ~: y}", "? x", "'unterminated", "\"unterminated",
    "'it''s'", "\"\\e[31mrojo\"", "\"\\x00\"", "\"\\x9b\"", "\"\\u202e\"", "\"\\ud800\"", "\"\\udfff\\ud800\"",
    "\"\\U0010FFFF\"", "\"\\U00110000\"", "\"a\\nb\"", "\"trailing\\n\"", "\"\\t\"", "\"\\L\"", "\"\\N\"",
    "|\n  bloque\n  de texto", ">-\n  plegado\n  texto", "|+\n\n", "|2-\n   x", "- a\n- b", "a: b", "a: b: c",
    "'a': 'b'", "@reservado", "`reservado", "%directiva", "# solo un comentario", "\"\"", "''", "x #comentario",
    "x# no es comentario", "CN=x,OU=y", "=cmd|' /C calc'!A0", "10.0.0.1/0", "0.0.0.0/0", "'expediente:0'",
    "'expediente:99999'", "'99999-1'", "0-0", "'1-65536'", "[0]", "[99999]", "[80.5]", "[true]", "[-1]",
    "['443-80']", "[.nan]", "{}", "[]", "[[]]", "[{}]", "- - -", "?", ":", "-", "--- x", "... x",
]
WHOLE_FILES = ["", " ", "\n", "# nada\n", "~\n", "null\n", "[]\n", "{}\n", "42\n", "\"texto\"\n", "---\n",
               "---\n---\n", "...\n", "--- !!set {}\n", "!!binary aGVsbG8=\n", "- a\n- b\n", "units:\n",
               "people:\n", "unit: HG-CUERNAVACA\n", "%YAML 1.2\n---\nunit: x\n", "\ufeff", "units: !!omap [a: 1]\n",
               "targets:\n", "targets: {}\n", "approvers: []\n", "rules:\n", "networks: [a]\n", "lines: {}\n",
               "unit: HG-CUERNAVACA\npeople: []\n", "%TAG ! tag:x,2002:\n--- !a\n", "? a\n", "&a a: *a\n"]
FILE_NAMES = ["copia.yaml", "dup.yml", "Ñandú.yaml", "a b.yaml", "línea\n.yaml", "\x1b[31mrojo.yaml", "-rf.yaml",
              ".oculto.yaml", "x" * 200 + ".yaml", "networks.yaml", "a:3: b.yaml", "%s.yaml", "..yaml",
              "\u202eataf.yaml", "ok.yaml.yaml", "MAYUS.YAML", "\udcff\udcfe.yaml", "units.yaml", "lines.yaml"]
INVALID_BYTES = [b"\xff", b"\xfe", b"\xc3\x28", b"\xed\xa0\x80", b"\xc0\xaf", b"\xe2\x82", b"\xf4\x90\x80\x80",
                 b"\x80", b"\xf8\x88\x80\x80\x80"]
ODD_CHARACTERS = ["\x00", "\x1b", "\x7f", "\x85", "\u2028", "\u2029", "\r", "\ufeff", "\ufffe", "\uffff", "\t",
                  "\x0b", "\x0c", "\ue000", "\U0001F600", "\u202e", "\u200b"]
YAML_CHARACTERS = list(":-[]{}&*!|>'\"%@`#,?\\ \t\n") + ["- ", ": ", "? ", "---", "..."]


def _esc(text: str) -> str:
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "surrogateescape")


def secret_value(length: int, numeric: bool = False) -> str:
    """A long value no window of which occurs by chance: hex (or digits) of a hash chain."""
    out, block = [], b"planted"
    while sum(map(len, out)) < length:
        block = hashlib.sha256(block).digest()
        out.append(block.hex() if not numeric else str(int.from_bytes(block, "big")))
    return "".join(out)[:length]


def texts() -> st.SearchStrategy[str]:
    alphabet = st.sampled_from(CONTROL + INVISIBLE + LETTERS + SPECIAL + list("aZ09"))
    junk = st.lists(alphabet, min_size=1, max_size=12).map("".join)
    spliced = st.tuples(st.sampled_from(INJECTIONS), junk, st.integers(0, 40)).map(
        lambda t: t[0][:t[2]] + t[1] + t[0][t[2]:])
    long = st.tuples(st.integers(65, 20000), st.sampled_from(["x", "Ñ", "a ", ",", "\u200b", "9"])).map(
        lambda t: (t[1] * t[0])[:t[0]])
    return st.one_of(st.sampled_from(INJECTIONS), junk, spliced, long, st.text(max_size=20))


def scalars() -> st.SearchStrategy:
    numbers = st.sampled_from([0, -1, 1, 22, 65535, 65536, 99999, 2 ** 31, 2 ** 63, 2 ** 64, -2 ** 63, 10 ** 40,
                               True, False, None, float("nan"), float("inf"), float("-inf"), 80.0, -0.0, 1e308,
                               0.1, 5e-324])
    return st.one_of(texts(), numbers, st.integers(), st.floats(), st.dates(dt.date(1, 1, 1), dt.date(9999, 12, 31)),
                     st.binary(max_size=8))


def keys() -> st.SearchStrategy:
    """Mapping keys of mixed types (YAML allows them; JSON Schema does not expect them)."""
    return st.one_of(st.sampled_from(["employee_key", "status", "titel", "unit", "people", "rules", "targets",
                                      "kind", "1", "", " ", "a:b", "<<"]),
                     texts().filter(lambda t: len(t) < 300), st.integers(-2, 2 ** 64), st.booleans(), st.none(),
                     st.floats(allow_nan=False), st.dates(dt.date(2000, 1, 1), dt.date(2030, 12, 31)))


def values() -> st.SearchStrategy:
    def extend(children):
        return st.one_of(st.lists(children, max_size=3), st.dictionaries(keys(), children, max_size=3),
                         st.sets(st.sampled_from(["a", 1, None]), max_size=2))
    return st.recursive(scalars(), extend, max_leaves=8)


# -- mutations ---------------------------------------------------------------------------
#
# Each takes `draw` and the case's files (and special paths) and changes them, returning a
# description.  Texts hold bytes that are not UTF-8 as surrogate escapes, so later mutations
# keep them.

def _yaml_files(files: dict) -> list[str]:
    return sorted(rel for rel, text in files.items() if text is not None)


def _parse(text: str):
    """The file's data, if it is plain enough to edit as data (no aliases: never expanded)."""
    if "*" in text or "&" in text or len(text) > 200_000:
        return None
    try:
        data = yaml.load(text, Loader=yaml.CSafeLoader)
    except Exception:  # noqa: BLE001 - damaged beyond editing as data: a text mutation then
        return None
    return data if isinstance(data, (dict, list)) else None


def _walk(draw, data) -> list:
    """A path into `data` (keys and indices), drawn one step at a time."""
    path, node = [], data
    while isinstance(node, (dict, list)) and node and draw(st.integers(0, 3)) > 0:
        keys_ = list(node) if isinstance(node, dict) else list(range(len(node)))
        step = keys_[draw(st.integers(0, len(keys_) - 1))]
        path.append(step)
        node = node[step]
    return path


def _set(data, path: list, value, how: str):
    """`data` with `value` put at `path`: in place of the value, of the key, beside it."""
    if not path:
        return value if how == "replace" else [data, value] if how == "wrap" else {value if _hashable(value) else
                                                                                     "x": data}
    parent = data
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if how == "replace":
        parent[last] = value
    elif how == "wrap":
        parent[last] = [parent[last]] if isinstance(value, list) else {"x": parent[last]}
    elif how == "delete":
        del parent[last]
    elif how == "rekey" and isinstance(parent, dict) and _hashable(value):
        items = [(value if k == last else k, v) for k, v in parent.items()]
        parent.clear()
        parent.update(items)
    elif how == "add" and isinstance(parent, dict) and _hashable(value):
        parent[value] = parent[last]
    elif isinstance(parent, list):
        parent.insert(last, value)
    return data


def _hashable(value) -> bool:
    try:
        hash(value)
        return True
    except TypeError:
        return False


def _style(draw) -> dict:
    return {"default_flow_style": draw(st.sampled_from([False, None, True])),
            "width": draw(st.sampled_from([80, 10 ** 6])), "explicit_start": draw(st.booleans()),
            "allow_unicode": draw(st.booleans())}


def mutate_value(draw, files: dict, specials: dict) -> str:
    """A hostile value (or key) at a path of a file, the file written again by PyYAML."""
    candidates = [rel for rel in _yaml_files(files) if _parse(files[rel]) is not None]
    if not candidates:
        return mutate_token(draw, files, specials)
    rel = draw(st.sampled_from(candidates))
    data = _parse(files[rel])
    path = _walk(draw, data)
    how = draw(st.sampled_from(["replace", "replace", "replace", "rekey", "add", "delete", "wrap", "insert"]))
    value = draw(keys() if how in ("rekey", "add") else values())
    try:
        data = _set(data, path, value, how)
        files[rel] = _dump(data, **_style(draw))
    except Exception:  # noqa: BLE001 - a value PyYAML cannot write (a key of an odd type)
        return mutate_token(draw, files, specials)
    return f"{how} {rel} {path!r} with {value!r:.80}"


_BLOCK_VALUE = re.compile(r"^([ \t]*(?:- )?[^\s:#\-][^:#\n]*:[ \t]+)([^\n]+)$", re.MULTILINE)
_FLOW_VALUE = re.compile(r"(?<=[{,] )([\w.-]+: )([^,}\n\[{]+)")


def _generated_token(draw) -> str:
    kind = draw(st.sampled_from(["digits", "hex", "float", "exponent", "plain", "quoted", "nest", "words"]))
    n = draw(st.sampled_from([1, 60, 299, 1000, 1001, 4299, 4300, 4301, 5000, 20000]))
    return {"digits": "9" * n, "hex": "0x" + "f" * n, "float": "1" * n + ".5", "exponent": "1e" + "9" * min(n, 400),
            "plain": "x" * n, "quoted": "'" + "y" * n + "'", "nest": "[" * min(n, 1500) + "]" * min(n, 1500),
            "words": " ".join(["palabra"] * min(n, 3000))}[kind]


def mutate_token(draw, files: dict, specials: dict) -> str:
    """A raw YAML token in place of a value, as written in the file."""
    rel = draw(st.sampled_from(_yaml_files(files)))
    text = files[rel]
    spots = [(m.start(2), m.end(2)) for m in _BLOCK_VALUE.finditer(text)] + \
            [(m.start(2), m.end(2)) for m in _FLOW_VALUE.finditer(text)]
    token = _generated_token(draw) if draw(st.integers(0, 4)) == 0 else draw(st.sampled_from(RAW_TOKENS))
    if not spots:
        files[rel] = text + token
        return f"append {token!r:.80} to {rel}"
    start, end = spots[draw(st.integers(0, len(spots) - 1))]
    files[rel] = text[:start] + token + text[end:]
    return f"{rel}: value {text[start:end]!r:.40} -> {token!r:.80}"


def mutate_syntax(draw, files: dict, specials: dict) -> str:
    """Damage: a span deleted, characters inserted, a line repeated, moved or re-indented."""
    rel = draw(st.sampled_from(_yaml_files(files)))
    text = files[rel]
    lines = text.split("\n")
    op = draw(st.sampled_from(["delete", "insert", "duplicate", "indent", "dedent", "swap", "truncate"]))
    at = draw(st.integers(0, max(len(text) - 1, 0)))
    row = draw(st.integers(0, max(len(lines) - 1, 0)))
    if op == "delete":
        text = text[:at] + text[at + draw(st.integers(1, 40)):]
    elif op == "insert":
        text = text[:at] + draw(st.sampled_from(YAML_CHARACTERS)) + text[at:]
    elif op == "truncate":
        text = text[:at]
    else:
        if op == "duplicate":
            lines.insert(row, lines[row])
        elif op == "indent":
            lines[row] = draw(st.sampled_from([" ", "  ", "    ", "\t"])) + lines[row]
        elif op == "dedent":
            lines[row] = lines[row][draw(st.integers(1, 4)):]
        elif op == "swap" and row + 1 < len(lines):
            lines[row], lines[row + 1] = lines[row + 1], lines[row]
        text = "\n".join(lines)
    files[rel] = text
    return f"{op} in {rel} at {at}/{row}"


def mutate_encoding(draw, files: dict, specials: dict) -> str:
    """Bytes that are not UTF-8, NULs, foreign line breaks, a BOM; or the whole file in another
    encoding."""
    rel = draw(st.sampled_from(_yaml_files(files)))
    text = files[rel]
    at = draw(st.integers(0, len(text)))
    op = draw(st.sampled_from(["bytes", "character", "crlf", "bom", "reencode"]))
    if op == "bytes":
        junk = draw(st.sampled_from(INVALID_BYTES)).decode("utf-8", "surrogateescape")
        files[rel] = text[:at] + junk + text[at:]
    elif op == "character":
        junk = draw(st.sampled_from(ODD_CHARACTERS))
        files[rel] = text[:at] + junk + text[at:]
    elif op == "crlf":
        files[rel] = text.replace("\n", "\r\n")
    elif op == "bom":
        files[rel] = "\ufeff" + text
    else:
        codec = draw(st.sampled_from(["utf-16", "utf-32", "latin-1", "cp1252", "utf-8-sig"]))
        files[rel] = _esc(text).encode(codec, "replace").decode("utf-8", "surrogateescape")
        return f"{rel} written in {codec}"
    return f"{op} at {at} of {rel}"


def mutate_keys(draw, files: dict, specials: dict) -> str:
    """A key written twice: its line repeated, or a sibling renamed to it."""
    rel = draw(st.sampled_from(_yaml_files(files)))
    text = files[rel]
    spots = list(_BLOCK_VALUE.finditer(text))
    if not spots:
        return mutate_token(draw, files, specials)
    m = spots[draw(st.integers(0, len(spots) - 1))]
    line = m.group(0)
    if draw(st.booleans()):
        replacement = line + "\n" + m.group(1) + draw(st.sampled_from(["otra", "~", "[]", "1", m.group(2)]))
    else:
        key = m.group(1).strip().removeprefix("- ").rstrip(":").strip()
        replacement = line + "\n" + re.sub(r"\S.*", "", line.replace("- ", "  ", 1)) + f"'{key}': 2"
    files[rel] = text[:m.start()] + replacement + text[m.end():]
    return f"key repeated in {rel}: {line!r:.60}"


def mutate_aliases(draw, files: dict, specials: dict) -> str:
    """Anchors and aliases: one value standing for another, merge keys, a bomb, a cycle."""
    rel = draw(st.sampled_from(_yaml_files(files)))
    text = files[rel]
    spots = [(m.start(2), m.end(2)) for m in _BLOCK_VALUE.finditer(text)]
    op = draw(st.sampled_from(["alias", "merge", "bomb", "cycle"]))
    if op == "alias" and len(spots) >= 2:
        i, j = sorted(draw(st.lists(st.integers(0, len(spots) - 1), min_size=2, max_size=2, unique=True)))
        (a0, a1), (b0, b1) = spots[i], spots[j]
        files[rel] = text[:a0] + "&ancla " + text[a0:a1] + text[a1:b0] + "*ancla" + text[b1:]
    elif op == "merge" and spots:
        a0, a1 = spots[draw(st.integers(0, len(spots) - 1))]
        files[rel] = text[:a0] + "{<<: {a: 1}, b: 2}" + text[a1:]
    elif op == "bomb":
        bomb = ["a: &a [x, x, x, x, x, x, x, x, x]"] + [
            f"{n}: &{n} [" + ", ".join([f"*{p}"] * 9) + "]" for p, n in zip("abcdefgh", "bcdefghi")]
        files[rel] = "\n".join(bomb) + "\n" + text
    else:
        files[rel] = text + "\nciclo: &c [*c]\n"
    return f"{op} in {rel}"


def mutate_nesting(draw, files: dict, specials: dict) -> str:
    """A value nested deeper than any file needs: flow lists or mappings, or block lists."""
    rel = draw(st.sampled_from(_yaml_files(files)))
    text = files[rel]
    depth = draw(st.sampled_from([20, 99, 100, 101, 150, 300, 500, 900, 999, 1000, 1001, 5000, 50000]))
    token = draw(st.sampled_from(["[" * depth + "]" * depth, "{a: " * depth + "x" + "}" * depth,
                                  "\n" + "".join(" " * (2 * i) + "-\n" for i in range(min(depth, 2000)))]))
    spots = [(m.start(2), m.end(2)) for m in _BLOCK_VALUE.finditer(text)]
    if spots:
        start, end = spots[draw(st.integers(0, len(spots) - 1))]
        files[rel] = text[:start] + token + text[end:]
    else:
        files[rel] = "x: " + token + "\n" + text
    return f"nesting {depth} deep in {rel}"


def mutate_file(draw, files: dict, specials: dict) -> str:
    """A file removed, emptied or replaced whole, or added under an odd name (a copy of a
    people file: the same keys twice)."""
    op = draw(st.sampled_from(["remove", "replace", "add", "add"]))
    if op == "add":
        folder = draw(st.sampled_from(["desired_state/users", "desired_state/users", "desired_state/security_rules",
                                       "desired_state/assets", "desired_state"]))
        name = draw(st.sampled_from(FILE_NAMES))
        source = draw(st.sampled_from(["desired_state/users/hg.yaml", "desired_state/security_rules/hg.yaml",
                                       "desired_state/users/oc.yaml"]))
        files[f"{folder}/{name}"] = files.get(source) or BASE[source]
        return f"add {folder}/{name!r} as a copy of {source}"
    rel = draw(st.sampled_from(sorted(files)))
    if op == "remove":
        files[rel] = None
        return f"remove {rel}"
    files[rel] = draw(st.sampled_from(WHOLE_FILES))
    return f"{rel} is {files[rel]!r}"


def mutate_special(draw, files: dict, specials: dict) -> str:
    """A file or folder that is a link (to the secret outside, a folder holding it, a file
    inside, nowhere, itself), a directory or a FIFO."""
    rel = draw(st.sampled_from(sorted(files) + list(DIRECTORIES)))
    kind = draw(st.sampled_from(["link:secret", "link:secret", "link:secret-dir", "link:inside", "link:dangling",
                                 "link:loop", "dir", "fifo"]))
    if rel in DIRECTORIES and kind in ("link:secret", "fifo"):
        kind = "link:secret-dir"
    specials[rel] = kind
    return f"{rel} is {kind}"


MUTATIONS = (mutate_value, mutate_value, mutate_token, mutate_token, mutate_syntax, mutate_encoding, mutate_keys,
             mutate_aliases, mutate_nesting, mutate_file, mutate_special)


def plant_secret(draw, files: dict) -> str | None:
    """A long secret as a value somewhere (most places refuse it: a wrong type, a pattern, an
    unknown name), possibly wrapped so that it is refused."""
    numeric = draw(st.integers(0, 5)) == 0
    secret = secret_value(draw(st.sampled_from([200, 257, 1000, 5000])), numeric=numeric)
    value = draw(st.sampled_from(["{}", " {}", "{}\n", "ñ{}", "{0} {0}", "x{}", "{}\x1b"])).format(secret) \
        if not numeric else "0." + secret
    candidates = [rel for rel in _yaml_files(files) if _parse(files[rel]) is not None]
    if numeric or not candidates or draw(st.integers(0, 3)) == 0:  # as written: a plain scalar
        rel = draw(st.sampled_from(_yaml_files(files)))
        text = files[rel]
        spots = [(m.start(2), m.end(2)) for m in _BLOCK_VALUE.finditer(text)] + \
                [(m.start(2), m.end(2)) for m in _FLOW_VALUE.finditer(text)]
        if not spots:
            return None
        start, end = spots[draw(st.integers(0, len(spots) - 1))]
        token = value if numeric else '"' + value.encode("unicode_escape").decode("ascii") + '"'
        files[rel] = text[:start] + token + text[end:]
        return secret
    rel = draw(st.sampled_from(candidates))
    data = _parse(files[rel])
    path = _walk(draw, data)
    try:
        files[rel] = _dump(_set(data, path, value, "replace"), **_style(draw))
    except Exception:  # noqa: BLE001 - data PyYAML cannot write back (nested past its recursion limit)
        return None
    return secret


@st.composite
def cases(draw, max_mutations: int = 4, secrets: bool = True) -> Case:
    """The valid repository after one to `max_mutations` mutations, maybe with a planted secret."""
    files: dict[str, str | None] = dict(BASE)
    specials: dict[str, str] = {}
    steps = []
    for _ in range(draw(st.integers(1, max_mutations))):
        mutation = draw(st.sampled_from(MUTATIONS))
        if not _yaml_files(files) and mutation is not mutate_special:
            mutation = mutate_file
        steps.append(mutation(draw, files, specials))
    secret = plant_secret(draw, files) if secrets and draw(st.integers(0, 2)) == 0 else None
    if secret is not None:
        steps.append(f"secret of {len(secret)} characters planted")
    return Case(tuple(files.items()), tuple(specials.items()), secret, tuple(steps))


# -- writing a case and running validate -------------------------------------------------

def materialise(case: Case, where: Path) -> tuple[Path, Path]:
    """Write the case under `where`: the repository (made by test_validate's make_repo, then
    every file of the case) and, outside it, the secret its links point at.  Returns (the
    repository, its inventory)."""
    outside = where / "outside"
    outside.mkdir(parents=True)
    (outside / "id_ed25519").write_text(SECRET_FILE, encoding="utf-8")
    root = make_repo(where / "repo", {})
    for rel, text in case.files:
        path = root / rel
        if text is None:
            path.unlink(missing_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_esc(text).encode("utf-8", "surrogateescape"))
    # Files first, then folders (a folder replaced takes what was made inside it along).
    for n, (rel, kind) in enumerate(sorted(case.specials, key=lambda s: s[0] in DIRECTORIES)):
        try:
            _special(root / rel, kind, root / f"moved-{n}", outside, where)
        except OSError:  # its folder is itself a link or a file now: nothing to put there
            continue
    return root, root / INVENTORY


def _special(path: Path, kind: str, moved: Path, outside: Path, where: Path) -> None:
    if path.exists() and not path.is_symlink():
        path.rename(moved)  # kept, for a link inside the repository to point at
    elif path.is_symlink():
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "link:secret":
        os.symlink(outside / "id_ed25519", path)
    elif kind == "link:secret-dir":
        os.symlink(outside, path)
    elif kind == "link:inside":
        os.symlink(moved if moved.exists() else where / "repo" / "desired_state" / "units.yaml", path)
    elif kind == "link:dangling":
        os.symlink(where / "nowhere", path)
    elif kind == "link:loop":
        os.symlink(path, path)
    elif kind == "dir":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)


class CaseTimeout(Exception):
    """The validation ran past the hard bound (raised by SIGALRM inside it)."""


@contextmanager
def _alarm(seconds: float):
    if seconds <= 0 or not hasattr(signal, "setitimer"):
        yield
        return

    def stop(signum, frame):  # noqa: ANN001 - signal handler
        raise CaseTimeout(f"still running after {seconds:.1f} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclass
class Run:
    code: int | None
    out: str
    err: str
    seconds: float
    crash: str | None = None  # "Type at reconciler/file.py:function: message"
    trace: str = ""
    timed_out: bool = False


def _crash_site(exc: BaseException) -> str:
    """The innermost frame in the reconciler's own code (or the last one), for the signature."""
    frames = traceback.extract_tb(exc.__traceback__)
    own = [f for f in frames if "/reconciler/" in f.filename and "/site-packages/" not in f.filename]
    frame = (own or frames or [None])[-1]
    if frame is None:
        return type(exc).__name__
    where = frame.filename.split("/reconciler/", 1)[-1] if own else Path(frame.filename).name
    return f"{type(exc).__name__} at {where}:{frame.name}"


def run_inprocess(root: Path, inventory: Path, bound: float = TIME_BOUND) -> Run:
    """validate through the CLI's own entry point, in this process: with --debug, an internal
    error raises here (with its traceback) instead of being printed."""
    started = time.perf_counter()
    try:
        with _alarm(2 * bound):
            code, out, err = run_cli("--debug", "--repo", str(root), "validate", "--inventory", str(inventory))
    except CaseTimeout:
        return Run(None, "", "", time.perf_counter() - started, timed_out=True)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - what we are looking for
        return Run(None, "", "", time.perf_counter() - started, crash=f"{_crash_site(exc)}: {exc!s:.200}",
                   trace="".join(traceback.format_exception(exc, limit=-8)))
    return Run(code, out, err, time.perf_counter() - started)


def run_subprocess(root: Path, inventory: Path, bound: float = TIME_BOUND) -> Run:
    """validate as a user runs it: `python -m reconciler.cli`, its bytes decoded strictly."""
    started = time.perf_counter()
    argv = [sys.executable, "-m", "reconciler.cli", "--no-color", "--repo", str(root), "validate",
            "--inventory", str(inventory)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=2 * bound + 10, env=env, cwd=root)
    except subprocess.TimeoutExpired:
        return Run(None, "", "", time.perf_counter() - started, timed_out=True)
    seconds = time.perf_counter() - started
    try:
        out, err = proc.stdout.decode("utf-8"), proc.stderr.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Run(proc.returncode, "", "", seconds, crash=f"output is not UTF-8: {exc}")
    return Run(proc.returncode, out, err, seconds)


# -- the property ------------------------------------------------------------------------

@dataclass(frozen=True)
class Failure:
    kind: str  # crash, timeout, leak, format, exit
    signature: str  # what makes two failures the same bug
    detail: str


# Problems of a whole file, which has no line to name: it cannot be read, is not there, or is
# empty (an empty document has no node to point at).
WHOLE_FILE = ("cannot read:", "missing:", "inventory file not found", "desired state directory not found",
              "expected a mapping with a top-level", "expected a mapping, found None")
_INVALID = re.compile(r"Invalid: (\d+) problems? found\.")


def _shape(message: str) -> str:
    """A message with its particulars (quoted values, numbers, the field) taken out: what two
    problems of the same bug have in common."""
    message = re.sub(r"^[^\s:]+: ", "", message)  # the field, where there is one
    message = re.sub(r"'[^']*'|\"[^\"]*\"", "Q", message)
    return re.sub(r"\d+", "N", message)[:90]


def _displays(case: Case, root: Path) -> dict[str, str | None]:
    """How each file of the case is named in messages -> its text."""
    shown = {plain(rel): text for rel, text in case.files if rel != INVENTORY}
    shown[plain(str(root / INVENTORY))] = case.file_map.get(INVENTORY)
    shown["desired_state"] = None
    return shown


def _split(problem: str, displays: dict) -> tuple[str | None, int | None, str]:
    """(the file it names, its line or None, the rest) of one problem line."""
    name = max((d for d in displays if problem.startswith(d + ":")), key=len, default=None)
    if name is None:
        return None, None, problem
    rest = problem[len(name) + 1:]
    numbered = re.match(r"(\d+): ", rest)
    if numbered is None:
        return name, None, rest
    return name, int(numbered.group(1)), rest[numbered.end():]


def judge(case: Case, root: Path, run: Run, bound: float = TIME_BOUND) -> list[Failure]:
    """Everything wrong with one run of validate on `case` (none: the property holds)."""
    if run.crash is not None:
        return [Failure("crash", run.crash.split(": ")[0], run.crash + "\n" + run.trace)]
    if run.timed_out:
        return [Failure("timeout", "timeout", f"stopped after {run.seconds:.1f} s")]
    failures = []
    if run.seconds > bound:
        failures.append(Failure("timeout", "slow", f"took {run.seconds:.1f} s"))
    text = run.out + run.err
    if run.code not in (0, 1):
        failures.append(Failure("exit", f"exit {run.code}", run.err[-500:]))
    if "Traceback" in text or "Internal error" in text:
        line = next((ln for ln in text.splitlines() if "Internal error" in ln), "Traceback")
        failures.append(Failure("crash", "internal error: " + _shape(line), line))
    displays = _displays(case, root)
    failures += _leaks(case, text, displays)
    bad = sorted({c for c in text if not c.isprintable() and c != "\n"})
    if bad:
        failures.append(Failure("format", "unprintable character in output", repr("".join(bad))))
    failures += _format(run, displays)
    return failures


def _leaks(case: Case, text: str, displays: dict) -> list[Failure]:
    out = []
    if any(SECRET_TOKEN[i:i + 12] in text for i in range(len(SECRET_TOKEN) - 11)):
        out.append(Failure("leak", "the secret outside the repository", "a part of the linked secret was printed"))
    secret = case.secret
    if secret is not None:
        window = ECHO_CAP + 1
        hit = next((i for i in range(max(len(secret) - window + 1, 0)) if secret[i:i + window] in text), None)
        if hit is not None:
            line = next(ln for ln in text.splitlines() if secret[hit:hit + window] in ln)
            message = _split(line, displays)[2].replace(secret[hit:hit + window], "S")
            out.append(Failure("leak", "a value echoed whole: " + _shape(message), line[:400]))
    return out


def _lines(text: str) -> int:
    """The file's lines as Git counts them (a last line without its newline counts)."""
    return text.count("\n") + (1 if text and not text.endswith("\n") else 0)


def _format(run: Run, displays: dict) -> list[Failure]:
    lines = run.err.splitlines()
    if run.code == 0:
        if run.err.strip() or "desired_state is valid" not in run.out:
            return [Failure("format", "exit 0 with problems", run.err[:500])]
        return []
    if run.code != 1:
        return []
    if not lines:
        return [Failure("format", "exit 1 without a word", "")]
    counted = _INVALID.fullmatch(lines[-1])
    if counted is None:
        return [Failure("format", "not ended by Invalid: N problems found: " + _shape(lines[-1]), run.err[-500:])]
    problems = lines[:-1]
    failures = []
    if int(counted.group(1)) != len(problems):
        failures.append(Failure("format", "a problem spread over several lines",
                                f"{counted.group(0)} but {len(problems)} lines:\n" + "\n".join(problems)[:800]))
    for problem in problems:
        name, number, rest = _split(problem, displays)
        if name is None:
            failures.append(Failure("format", "not a file of the case: " + _shape(problem), problem[:400]))
        elif number is None:
            if not rest.startswith(" ") or not rest.lstrip().startswith(WHOLE_FILE):
                failures.append(Failure("format", "no line: " + _shape(rest.lstrip()), problem[:400]))
        elif (content := displays[name]) is not None and not 1 <= number <= _lines(content) + 1:
            # (one past the last line is where YAML's end is, as test_validate expects: "file ended")
            failures.append(Failure("format", "a line the file does not have: " + _shape(rest),
                                    f"line {number} of {_lines(content)}: {problem[:300]}"))
    return failures


def check(case: Case, subprocess_: bool = False, bound: float = TIME_BOUND) -> tuple[Run, list[Failure]]:
    """Write the case in a temporary directory, validate it, judge the run."""
    with tempfile.TemporaryDirectory(prefix="fuzz-validate-") as tmp:
        root, inventory = materialise(case, Path(tmp))
        run = (run_subprocess if subprocess_ else run_inprocess)(root, inventory, bound)
        return run, judge(case, root, run, bound)


def describe(case: Case, limit: int = 600) -> str:
    """The case as a person reads it: the steps, then each file that differs from BASE."""
    out = ["steps: " + "; ".join(case.steps)] if case.steps else []
    for rel, kind in case.specials:
        out.append(f"{rel}: {kind}")
    for rel, text in case.changed().items():
        if text is None:
            out.append(f"{rel}: removed")
            continue
        shown = text if len(text) <= limit else text[:limit] + f"… ({len(text)} characters)"
        out.append(f"--- {rel!r}\n{shown!r}" if any(not c.isprintable() for c in shown.replace("\n", ""))
                   else f"--- {rel!r}\n{shown}")
    if case.secret is not None:
        out.append(f"secret planted: {case.secret[:20]}… ({len(case.secret)} characters)")
    return "\n".join(out)
