"""`reconciler validate` on hostile repositories (issue 13, a fuzz suite): whatever the files
hold, it exits 0 or 1 within a time bound, never with an internal error; every problem is one
line beginning `file:line:` (or `file:` for a file that cannot be read at all); nothing linked
from outside the repository is printed, and no value is echoed for more than 60 characters.

The cases and the property are in fuzz_strategies.py (shared with bench/fuzz_validate.py, the
long run).  Here a few hundred cases, derandomised and without an example database so every CI
run checks the same ones, most in-process (the CLI's entry point with --debug: an internal
error raises here with its traceback), a few as the command itself.  Then one example of each
failure the fuzzing found, with the message each now gets.
"""
from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

import fuzz_strategies as fs
import pytest
from conftest import run_cli
from hypothesis import HealthCheck, given, settings
from test_network_rules import NETWORKS, SOL
from test_validate import PERSON, make_repo, people

SETTINGS = {"derandomize": True, "database": None, "print_blob": False,
            "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large,
                                      HealthCheck.large_base_example, HealthCheck.filter_too_much]}


@pytest.fixture(scope="module", autouse=True)
def _schemas_compiled():
    """The first validation compiles the schemas (or reads them from the user's cache) and
    imports jsonschema: not the time of a case."""
    fs.check(fs.base_case())


def _assert_holds(case: fs.Case, subprocess_: bool = False) -> None:
    run, failures = fs.check(case, subprocess_=subprocess_)
    assert not failures, "\n\n".join(f"{f.kind}: {f.signature}\n{f.detail}" for f in failures) + (
        f"\n\nthe case:\n{fs.describe(case)}\n\nstderr:\n{run.err[-2000:]}")


def test_the_example_repository_is_valid():
    run, failures = fs.check(fs.base_case())
    assert run.code == 0 and failures == [], run.err
    assert "3 people (2 activo, 1 baja) in 2 units" in run.out and "2 rules, 1 probe" in run.out


@settings(max_examples=500, deadline=timedelta(seconds=fs.TIME_BOUND), **SETTINGS)
@given(case=fs.cases())
def test_validate_keeps_its_word_on_hostile_repositories(case):
    _assert_holds(case)


@settings(max_examples=4, deadline=None, **SETTINGS)
@given(case=fs.cases(max_mutations=2))
def test_the_command_keeps_it_too(case):
    """As a person runs it: its own process, output decoded strictly as UTF-8."""
    _assert_holds(case, subprocess_=True)


def test_a_secret_linked_from_everywhere_is_never_read():
    specials = tuple((rel, "link:secret") for rel in fs.BASE) + (("desired_state/users", "link:secret-dir"),)
    case = fs.Case(tuple(fs.BASE.items()), specials)
    run, failures = fs.check(case)
    assert run.code == 1 and failures == [], failures
    assert "desired_state/units.yaml: cannot read: a symbolic link" in run.err


# -- each failure the fuzzing found, and the message it gets now --------------------------

def _validate(root, inventory: str = "/nonexistent.yaml") -> list[str]:
    code, _, err = run_cli("--repo", str(root), "validate", "--inventory", str(inventory))
    assert code == 1 and "Internal error" not in err and "Traceback" not in err, err
    lines = err.splitlines()
    assert lines[-1] == f"Invalid: {len(lines) - 1} problem{'s' if len(lines) != 2 else ''} found."
    return lines[:-1]


def _repo(tmp_path, person: str = "", files: dict | None = None, users: str | None = None):
    root = make_repo(tmp_path, {"hg.yaml": users if users is not None else people(
        "HG-CUERNAVACA", PERSON.format(key="SSM-1", given="Ana") + person)})
    for rel, text in (files or {}).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text) if isinstance(text, bytes) else path.write_text(text, encoding="utf-8")
    return root


def test_a_number_too_long_to_print_is_refused_with_its_line(tmp_path):
    """Was an internal error: Python refuses to convert an int of more than 4300 digits (PyYAML
    reading one, or a message showing one written in hex)."""
    root = _repo(tmp_path, files={"inventory/approvers.yaml": "required_approvals: " + "9" * 5000 + "\n"})
    assert _validate(root) == [
        "inventory/approvers.yaml:1: a number written with 5000 characters: no field takes one (put it in quotes if "
        "it is text)"]
    root = _repo(tmp_path / "hex", files={"inventory/approvers.yaml": "privileged_approvals: 0x" + "f" * 4800 + "\n"})
    assert _validate(root) == [
        "inventory/approvers.yaml:1: a number written with 4802 characters: no field takes one (put it in quotes if "
        "it is text)"]


@pytest.mark.parametrize("token, message", [
    ("!!int x", "'x' is not a whole number, as its tag !!int says"),
    ("!!int ''", "'' is not a whole number, as its tag !!int says"),
    ("!!float x", "'x' is not a number, as its tag !!float says"),
    ("!!bool maybe", "'maybe' is not true or false, as its tag !!bool says"),
])
def test_a_tag_its_value_does_not_fit_is_refused(tmp_path, token, message):
    """Was an internal error (ValueError, IndexError, KeyError in PyYAML's constructors)."""
    root = _repo(tmp_path, users=people("HG-CUERNAVACA", PERSON.format(key="SSM-1", given="Ana").replace(
        "status: activo", f"status: {token}")))
    assert _validate(root) == [f"desired_state/users/hg.yaml:10: {message}"]


def test_a_policy_that_is_not_utf8_is_a_problem_with_its_line(tmp_path):
    """Was an internal error (UnicodeDecodeError reading inventory/approvers.yaml)."""
    root = _repo(tmp_path, files={"inventory/approvers.yaml": b"approvers:\n- name: Ra\xfal\n"})
    assert _validate(root) == ["inventory/approvers.yaml:2: not UTF-8 text (invalid start byte at byte 21)"]
    root = _repo(tmp_path / "ds", files={"desired_state/users/oc.yaml": b"unit: OC-DGPE\npeople: []\n# Pe\xf1a\n"})
    assert _validate(root) == ["desired_state/users/oc.yaml:3: not UTF-8 text (invalid continuation byte at byte 29)"]


def test_a_lone_carriage_return_in_the_inventory_or_the_policy_is_refused_like_anywhere(tmp_path):
    """They were read with universal newlines, which made each lone \\r a line break: such a
    policy passed validate (its commit's blob is refused), and lines were not Git's."""
    inventory = "targets:\r  b:\r    kind: active_directory\r    max_bajas: c\r"
    root = _repo(tmp_path, files={"inventory/lab.yaml": inventory.encode(),
                                  "inventory/approvers.yaml": fs.BASE[fs.POLICY_FILE].replace("\n", "\r").encode()})
    path = root / "inventory" / "lab.yaml"
    assert _validate(root, path) == [
        f"{path}:1: a line break Git does not count (U+000D): save the file with plain line breaks",
        "inventory/approvers.yaml:1: a line break Git does not count (U+000D): save the file with plain line breaks"]


@pytest.mark.parametrize("character, code", [("\x00", "0000"), ("\x1b", "001B"), ("\ufffe", "FFFE")])
def test_a_character_yaml_refuses_is_one_problem_on_one_line(tmp_path, character, code):
    """Was a message of two lines without a line number (PyYAML's ReaderError)."""
    root = _repo(tmp_path, users=people("HG-CUERNAVACA", PERSON.format(key="SSM-1", given="Ana").replace(
        "Médico General", f"Médico{character}General")))
    assert _validate(root) == [f"desired_state/users/hg.yaml:7: a character YAML does not accept (U+{code}): remove "
                               "it, or write it as an escape in double quotes"]


def test_a_long_tag_is_cut_in_the_syntax_error(tmp_path):
    """PyYAML's message quotes the tag whole: cut like any long message (200 characters)."""
    root = _repo(tmp_path, users="unit: !<tag:" + "a" * 5000 + "> x\npeople: []\n")
    what = "could not determine a constructor for the tag 'tag:" + "a" * 5000
    assert _validate(root) == [f"desired_state/users/hg.yaml:1: YAML syntax error: {what[:199]}…"]


@pytest.mark.parametrize("depth", [65, 600, 999])
@pytest.mark.parametrize("alias", [False, True])
def test_values_nested_deeper_than_any_file_needs_are_refused_with_their_line(tmp_path, depth, alias):
    """Was "YAML error: nesting too deep (a recursive alias?)" with no line (Python's recursion
    limit, in the build or the alias walk), or an internal error in a later walk."""
    extra = "extra: " + "[" * depth + "x" + "]" * depth + "\n" + ("otra: &a [x]\ny: *a\n" if alias else "")
    root = _repo(tmp_path, users="unit: HG-CUERNAVACA\npeople: []\n" + extra)
    assert _validate(root) == ["desired_state/users/hg.yaml:3: mappings and lists nested more than 64 levels deep: "
                               "no file needs that many"]


def test_keys_that_are_not_text_are_refused_where_names_are_keys(tmp_path):
    """Units, networks and the inventory's targets and probe points are named by their keys:
    a key of null was an internal error (jsonschema leaves it out of the error's path, so the
    entry was kept), and a key of 1 or `on` (YAML 1.1's true) was accepted."""
    root = _repo(tmp_path, files={"desired_state/units.yaml": "units:\n  ~: ~\n  on: {name: Sí, kind: jurisdiccion}\n",
                                  "desired_state/security_rules/networks.yaml": "networks: {~: ~}\n"})
    assert _validate(root) == [
        "desired_state/security_rules/networks.yaml:1: networks: expected a mapping, found None",
        "desired_state/security_rules/networks.yaml:1: networks.None: None is not a valid key (letters, digits, '-', "
        "'_' or '.')",
        "desired_state/units.yaml:1: units: expected a mapping, found None",
        "desired_state/units.yaml:1: units.None: None is not a valid key (letters, digits, '-', '_' or '.')",
        "desired_state/units.yaml:1: units[True]: True is not a valid key (letters, digits, '-', '_' or '.')"]
    inventory = fs.BASE[fs.INVENTORY].replace("clientes-hgc: {netns: rc-client}", "~: {netns: rc-client}").replace(
        "  phone-lab:", "  1:")
    root = _repo(tmp_path / "inventory", files={"inventory/lab.yaml": inventory})
    path = root / "inventory" / "lab.yaml"
    lines = inventory.splitlines()
    target = lines.index("  1:") + 1
    point = next(i for i, line in enumerate(lines, 1) if "probe_points:" in line)  # the mapping that holds it
    assert _validate(root, path) == [
        f"{path}:{target}: targets[1]: 1 is not a valid key (letters, digits, '-', '_' or '.')",
        f"{path}:{point}: targets.fw-1.probe_points.None: None is not a valid key (letters, digits, '-', '_' or '.')"]


def test_shared_mailboxes_written_as_a_mapping_are_a_problem(tmp_path):
    """Was an internal error: a mapping (or a !!set) where the list belongs was walked as one."""
    root = _repo(tmp_path, users="unit: HG-CUERNAVACA\npeople: []\nshared_mailboxes: !!set {recepcion}\n")
    assert _validate(root) == ["desired_state/users/hg.yaml:3: shared_mailboxes: expected a list, found "
                               "{'recepcion': None}"]


def test_a_cost_too_large_for_a_float_is_not_an_amount(tmp_path):
    """Was an internal error: math.isfinite of a whole number past a float's range (OverflowError)."""
    cost = "0x" + "f" * 300
    root = _repo(tmp_path, files={"desired_state/assets/lines.yaml": (
        f"lines:\n- {{number: '7773112210', kind: carrier, carrier: Telmex, master_account: MA-1, monthly_cost: {cost}, "
        f"unit: HG-CUERNAVACA, status: activa, solicitud: {SOL}}}\n")})
    assert _validate(root) == [f"desired_state/assets/lines.yaml:2: lines[0].monthly_cost: {repr(int(cost, 16))[:59]}… "
                               "is not an amount: write the cost in pesos, like 299.00"]


SECRET = fs.secret_value(300)
DIGITS = fs.secret_value(250, numeric=True)  # a secret that YAML reads as a number: 0.DIGITS


def test_long_values_are_never_echoed_whole(tmp_path):
    """Each message below echoed its value whole: a rule's endpoint, device and probe, a CURP
    (no length in the schema), a number read as text ("YAML reads ... as ..."), and a value
    refused by jsonschema's own message ("'...' is too long", cut at 200)."""
    cut = repr(SECRET)[:59] + "…"
    rule = (f"rules:\n- {{name: r, source: {SECRET}, destination: expediente, action: allow, devices: [{SECRET}], "
            f"unit: HG-CUERNAVACA, justification: x, solicitud: {SOL}, probes: [{{from: {SECRET}, "
            f"to: '{SECRET}:80', expect: allow}}]}}\n")
    inventory = fs.BASE[fs.INVENTORY]
    root = _repo(tmp_path, f"    curp: {SECRET}\n", files={
        "desired_state/security_rules/networks.yaml": NETWORKS, "desired_state/security_rules/hg.yaml": rule,
        "desired_state/assets/lines.yaml": f"lines:\n- {{number: 0.{DIGITS}, kind: extension, unit: HG-CUERNAVACA, "
                                           f"status: activa, solicitud: {SOL}}}\n",
        "desired_state/units.yaml": fs.BASE["desired_state/units.yaml"].replace("Oficinas Centrales", SECRET),
        "inventory/lab.yaml": inventory})
    problems = _validate(root, root / "inventory" / "lab.yaml")
    assert problems == [
        f"desired_state/assets/lines.yaml:2: lines[0].number: expected text (put it in quotes), found "
        f"{float('0.' + DIGITS)!r}",
        f"desired_state/security_rules/hg.yaml:2: rules[0].devices[0]: no firewall or router {cut} in the inventory "
        "(it has fw-1)",
        f"desired_state/security_rules/hg.yaml:2: rules[0].probes[0].from: unknown network or host {cut}",
        f"desired_state/security_rules/hg.yaml:2: rules[0].probes[0].to: unknown host {cut}: a host name or an address",
        f"desired_state/security_rules/hg.yaml:2: rules[0].source: unknown network or host {cut} (declared in "
        "desired_state/security_rules/networks.yaml)",
        f"desired_state/units.yaml:7: units.OC-DGPE.name: {cut} is too long",
        f"desired_state/users/hg.yaml:13: people[0].curp: {cut} is not a CURP (18 characters: 4 letters, birth date, "
        "sex H/M/X, state, 3 consonants, 2 characters)",
    ]
    for secret in (SECRET, DIGITS):
        assert all(secret[i:i + 61] not in "\n".join(problems) for i in range(len(secret) - 60))


def test_a_file_name_in_a_message_is_escaped_like_the_problems_own(tmp_path):
    """The second file's name, with a terminal escape, was printed raw inside the first's message."""
    name = "\x1b[31mcopia.yaml"
    text = people("HG-CUERNAVACA", PERSON.format(key="SSM-1", given="Ana"))
    root = make_repo(tmp_path, {name: text, "hg.yaml": text})
    problems = _validate(root)
    assert problems == ["desired_state/users/hg.yaml:3: people[0].employee_key: employee key 'SSM-1' is already "
                        "declared at desired_state/users/\\x1b[31mcopia.yaml:3"]


def test_a_fifo_and_a_directory_where_files_belong_never_hang(tmp_path):
    root = _repo(tmp_path)
    os.mkfifo(root / "desired_state" / "users" / "fifo.yaml")
    os.unlink(root / "desired_state" / "units.yaml")
    os.mkfifo(root / "desired_state" / "units.yaml")
    (root / "inventory").mkdir()
    os.mkfifo(root / "inventory" / "approvers.yaml")
    os.mkfifo(tmp_path / "inventory.yaml")
    proc = subprocess.run([sys.executable, "-m", "reconciler.cli", "--no-color", "--repo", str(root), "validate",
                           "--inventory", str(tmp_path / "inventory.yaml")], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "desired_state/units.yaml: missing: declare the units here" in proc.stderr
