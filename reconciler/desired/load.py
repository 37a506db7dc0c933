"""Load and validate desired_state/: every problem in every file, with file, line and field.

Layout:
    desired_state/units.yaml          units (hospitals, centros de salud, oficinas centrales)
    desired_state/entitlements.yaml   entitlements and the AD group each one grants
    desired_state/users/*.yaml        one file per unit: `unit: KEY`, its `people:` (each with
                                      an optional mailbox and password resets) and its
                                      `shared_mailboxes:`
    desired_state/assets/*.yaml       phone lines and equipment (see assets.py)
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

import fastjsonschema

from ..errors import Problem, ValidationFailed
from .curp import curp_problem
from .entries import keep_only, split_entries
from .files import DesiredFiles, DirectoryFiles
from .model import (DesiredState, Entitlement, Mailbox, MailRules, Person, Request, SharedMailbox, Solicitud,
                    Source, Unit, quota_megabytes)
from .naming import assign_account_names, common_name
from .yamlfile import LineIndex, not_utf8, parse_yaml

# What a field should look like, said the way a person filling in the form would say it.
_HINTS = {
    "employee_key": "an employee key: letters, digits, '-', '_' or '.' (quote keys like '004512')",
    "given_names": "a name: letters, with spaces, apostrophes, hyphens or periods between words",
    "first_surname": "a surname: letters, with spaces, apostrophes, hyphens or periods between words",
    "second_surname": "a surname, or null for a person with a single surname",
    "phone": "a phone number: digits, spaces, '+', '(', ')' or '-', 7 to 25 characters",
    "extension": "an extension: 1 to 8 digits, in quotes",
    "date": "a date written YYYY-MM-DD",
    "sam": "an account name: at most 20 letters, digits, '.', '_' or '-'",
    "clues": "a CLUES: 2-letter state, 3 letters and 6 digits, e.g. MSSSA000011",
    "group": "a group name: letters, digits, spaces, '.', '_' or '-'",
    "unit": "a unit key from desired_state/units.yaml",
    "address": "a mail address in lower case, like nombre.apellido@salud.gob.mx",
    "quota": "a size in megabytes or gigabytes, like 500M or 2G",
}


@cache
def _schema_document(name: str) -> dict:
    text = resources.files("reconciler.desired").joinpath(f"schemas/{name}.schema.json").read_text("utf-8")
    return json.loads(text)


@cache
def schema(name: str):
    """The reference validator: slow, but it reports every error with its path.  Imported only
    when some file fails the compiled check: importing it costs a plan 45 ms."""
    import jsonschema

    return jsonschema.Draft7Validator(_schema_document(name))


@cache
def _fast_check(name: str):
    """The same schema compiled to Python: about 20x faster, but it stops at the first error."""
    return fastjsonschema.compile(_schema_document(name))


def schema_valid(data: Any, name: str) -> bool:
    try:
        _fast_check(name)(data)
        return True
    except fastjsonschema.JsonSchemaException:
        return False


def field_path(path: Iterable[Any]) -> str:
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else str(step))
    return out


def _describe(error) -> tuple[tuple[Any, ...], str]:
    """A jsonschema.ValidationError as (path of the offending field, plain message)."""
    path = tuple(error.absolute_path)
    last = path[-1] if path and not isinstance(path[-1], int) else None
    if error.validator == "required":
        missing = error.message.split("'")[1]
        return path + (missing,), "required field is missing"
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return path + (extra[0],) if extra else path, (
            f"unknown field (allowed: {', '.join(sorted(error.schema.get('properties', {})))})")
    if error.validator == "type":
        expected = {"string": "text", "array": "a list", "object": "a mapping", "integer": "a whole number",
                    "boolean": "true or false"}.get(str(error.validator_value), str(error.validator_value))
        hint = " (put it in quotes)" if error.validator_value == "string" else ""
        return path, f"expected {expected}{hint}, found {error.instance!r}"
    if error.validator == "enum":
        return path, f"{error.instance!r} is not one of {', '.join(map(repr, error.validator_value))}"
    if error.validator == "uniqueItems":
        return path, "lists the same item twice"
    if "propertyNames" in error.relative_schema_path:
        return path + (error.instance,), f"{error.instance!r} is not a valid key (letters, digits, '-', '_' or '.')"
    hint = _HINTS.get(str(last)) if last is not None else None
    if hint:
        return path, f"{error.instance!r} is not valid: expected {hint}"
    if error.validator in ("minLength", "pattern") and isinstance(error.instance, str):
        if not error.instance.strip():
            return path, "must not be empty"
        return path, f"{error.instance!r} is not valid (no leading or trailing spaces; see the schema)"
    return path, error.message


@dataclass
class FileCheck:
    """Problems of one file, with line numbers looked up only if there are any."""

    display: str
    text: str = ""
    found: bool = True
    index_map: list[int] | None = None  # people[i] parsed -> its index in the file (partial loads)
    problems: list[Problem] = field(default_factory=list)
    _lines: LineIndex | None = None

    def _index(self) -> LineIndex:
        if self._lines is None:
            self._lines = LineIndex(self.text)
        return self._lines

    def line(self, path: tuple[Any, ...]) -> int | None:
        return self._index().line(path)

    def original(self, path: tuple[Any, ...]) -> tuple[Any, ...]:
        """`path` with the people index the file has, when only some entries were parsed."""
        if self.index_map is not None and len(path) > 1 and path[0] == "people" and isinstance(path[1], int):
            return ("people", self.index_map[path[1]]) + tuple(path[2:])
        return path

    def add(self, path: tuple[Any, ...], message: str) -> None:
        self.problems.append(Problem(self.display, self.line(path), field_path(self.original(path)), message))

    def validate(self, data: Any, schema_name: str) -> set[tuple[Any, ...]]:
        """Schema-check `data`; returns the paths of the top two levels that had errors.

        Valid data (the common case) is checked by the compiled schema only; jsonschema runs
        just for data that failed, to find every error in it."""
        bad: set[tuple[Any, ...]] = set()
        if schema_valid(data, schema_name):
            return bad
        for error in schema(schema_name).iter_errors(data):
            path, message = _describe(error)
            if error.validator == "type" and error.validator_value == "string" and not isinstance(error.instance, str):
                written = self._index().scalar(path)
                if written is not None and written != str(error.instance):
                    message = f"expected text; YAML reads {written} as {error.instance!r}: write it in quotes, '{written}'"
            self.add(path, message)
            bad.add(tuple(error.absolute_path)[:2])
        return bad


def _open(files: DesiredFiles, rel: str, checks: list[FileCheck],
          keep: frozenset | None = None) -> tuple[FileCheck, Any, bool]:
    """Read and parse one file: (its check, data, usable).  A missing file is (check, None, False)
    with no problem recorded: whether that is a problem is the caller's business.  With `keep`,
    only those people's entries are parsed; the others' lines are blanked, so line numbers and
    (through check.index_map) list indices in messages stay those of the file."""
    check = FileCheck(f"{files.label}/{rel}")
    checks.append(check)
    try:
        text = files.read_text(rel)
    except UnicodeDecodeError as exc:
        check.problems.append(not_utf8(check.display, exc))
        return check, None, False
    except OSError as exc:
        check.add((), f"cannot read: {exc.strerror}")
        return check, None, False
    if text is None:
        check.found = False
        return check, None, False
    if keep is not None and (entries := split_entries(text)) is not None:
        text, check.index_map = keep_only(text, entries, set(keep))
    check.text = text
    data, problems = parse_yaml(text, check.display)
    check.problems += problems
    return check, data, not problems


def _read_catalog(files: DesiredFiles, name: str, checks: list[FileCheck]) -> tuple[dict[str, dict], str]:
    check, data, usable = _open(files, f"{name}.yaml", checks)
    if not check.found:
        check.add((), f"missing: declare the {name} here")
        return {}, check.display
    if not usable:
        return {}, check.display
    if not isinstance(data, dict) or name not in data:
        check.add((), f"expected a mapping with a top-level '{name}:' key")
        return {}, check.display
    bad = check.validate(data, "units")
    entries = data.get(name) or {}
    if not isinstance(entries, dict):
        return {}, check.display
    return {k: v for k, v in entries.items() if (name, k) not in bad}, check.display


def _request(raw: dict) -> Request:
    return Request(raw["folio"], raw["date"], raw.get("requested_by"))


def _mailbox(raw: dict | None) -> Mailbox | None:
    if raw is None:
        return None
    purge = raw.get("purge")
    return Mailbox(raw["address"], tuple(raw.get("aliases") or ()), raw.get("quota"),
                   _request(purge) if purge else None)


def _solicitud(sol: dict) -> Solicitud:
    return Solicitud(sol["folio"], sol["date"], sol["justification"], sol["requested_by"])


def _shared_mailbox(item: dict, unit: str, source: Source) -> SharedMailbox:
    return SharedMailbox(item["address"], item["name"], unit, tuple(item["members"]), _solicitud(item["solicitud"]),
                         source, tuple(item.get("aliases") or ()), item.get("quota"))


def _person(item: dict, unit: str, source: Source) -> Person:
    account = item.get("account") or {}
    sol = item["solicitud"]
    return Person(
        employee_key=item["employee_key"], given_names=item["given_names"],
        first_surname=item["first_surname"], second_surname=item["second_surname"], unit=unit,
        title=item["title"], direction=item["direction"], phone=item["phone"], status=item["status"],
        entitlements=tuple(item["entitlements"]),
        solicitud=Solicitud(sol["folio"], sol["date"], sol["justification"], sol["requested_by"]),
        source=source, curp=item.get("curp"), subdirection=item.get("subdirection"),
        department=item.get("department"), extension=item.get("extension"),
        explicit_sam=account.get("sam"), explicit_cn=account.get("cn"),
        mailbox=_mailbox(item.get("mailbox")),
        password_resets=tuple(_request(r) for r in item.get("password_resets") or ()),
    )


USER_SUFFIXES = (".yaml", ".yml")


Shared = tuple[SharedMailbox, FileCheck, int]


def _read_people(files: DesiredFiles, names: list[str], units: dict, entitlements: dict,
                 checks: list[FileCheck], only: dict[str, frozenset] | None = None,
                 shared: list[Shared] | None = None) -> list[tuple[Person, FileCheck, int]]:
    people = []
    for rel in names:
        check, data, usable = _open(files, rel, checks, only.get(rel) if only else None)
        if not usable or data is None:
            continue  # an empty (or vanished) file declares nobody
        bad = check.validate(data, "users")
        if not isinstance(data, dict) or ("unit",) in bad or not isinstance(data.get("people"), list):
            continue
        unit = data["unit"]
        if units and unit not in units:
            check.add(("unit",), f"unknown unit {unit!r} (declared units are in desired_state/units.yaml)")
        for index, item in enumerate(data["people"]):
            if ("people", index) in bad:
                continue
            where = ("people", index)
            person = _person(item, unit, Source(check.display, None, check.original(where)))
            for e_index, ent in enumerate(person.entitlements):
                if entitlements and ent not in entitlements:
                    check.add(where + ("entitlements", e_index),
                              f"unknown entitlement {ent!r} (declared in desired_state/entitlements.yaml)")
            if person.curp and (message := curp_problem(person.curp)):
                check.add(where + ("curp",), message)
            people.append((person, check, index))
        for index, item in enumerate(data.get("shared_mailboxes") or ()):
            if shared is not None and ("shared_mailboxes", index) not in bad:
                where = ("shared_mailboxes", index)
                shared.append((_shared_mailbox(item, unit, Source(check.display, None, where)), check, index))
    return people


def _located(check: FileCheck, index: int) -> str:
    return f"{check.display}:{check.line(('people', index))}"


def _cross_checks(people: list[tuple[Person, FileCheck, int]]) -> list[Person]:
    """Duplicate keys and CURPs, clashing account names and CNs.  Returns the people kept."""
    first_by_key: dict[str, tuple[FileCheck, int]] = {}
    first_by_curp: dict[str, tuple[FileCheck, int]] = {}
    kept: list[Person] = []
    where_of: dict[str, tuple[FileCheck, int]] = {}
    for person, check, index in people:
        key = person.employee_key
        if key in first_by_key:
            check.add(("people", index, "employee_key"),
                      f"employee key {key!r} is already declared at {_located(*first_by_key[key])}")
            continue
        first_by_key[key] = (check, index)
        if person.curp:
            if person.curp in first_by_curp:
                check.add(("people", index, "curp"),
                          f"CURP {person.curp} is already declared at {_located(*first_by_curp[person.curp])}")
            first_by_curp.setdefault(person.curp, (check, index))
        kept.append(person)
        where_of[key] = (check, index)
    names, clashes = assign_account_names(kept)
    for sam, group in clashes:
        for person in group[1:]:
            check, index = where_of[person.employee_key]
            others = ", ".join(_located(*where_of[p.employee_key]) for p in group if p is not person)
            check.add(("people", index, "account"),
                      f"account name {sam!r} is also derived for {others}; set account.sam for one of them")
    by_cn: dict[tuple[str, str], Person] = {}
    for person in kept:
        cn_key = (person.unit, common_name(person).casefold())
        if cn_key in by_cn and by_cn[cn_key].active and person.active:
            check, index = where_of[person.employee_key]
            check.add(("people", index, "account"),
                      f"same name as {_located(*where_of[by_cn[cn_key].employee_key])} in the same unit; "
                      "set account.cn for one of them")
        by_cn.setdefault(cn_key, person)
    return kept


def _mail_checks(people: list[tuple[Person, FileCheck, int]], shared: list[Shared], kept: list[Person],
                 rules: MailRules | None, partial: bool = False) -> None:
    """Addresses in the managed domains, none used twice, quotas within the limit, members who
    exist and have a mailbox, requests that make sense for the person's status."""
    # Where each address and folio is first declared; lines are looked up only for a problem
    # (finding a line costs a YAML compose of the file).
    owner: dict[str, tuple[FileCheck, tuple]] = {}
    kept_keys = {p.employee_key for p in kept}
    by_key = {p.employee_key: p for p in kept}
    folios: dict[str, tuple[FileCheck, tuple]] = {}

    def at(first: tuple[FileCheck, tuple]) -> str:
        return f"{first[0].display}:{first[0].line(first[1])}"

    def address(check: FileCheck, path: tuple, value: str) -> None:
        if rules is not None and rules.domains and value.rsplit("@", 1)[1] not in rules.domains:
            check.add(path, f"{value} is not in a managed mail domain ({', '.join(sorted(rules.domains))})")
        if value in owner:
            check.add(path, f"{value} is already used at {at(owner[value])}")
        owner.setdefault(value, (check, path))

    def quota(check: FileCheck, path: tuple, value: str | None) -> None:
        if value and rules is not None and rules.max_quota and quota_megabytes(value) > quota_megabytes(rules.max_quota):
            check.add(path, f"quota {value} is over the limit of {rules.max_quota}")

    for person, check, index in people:
        if person.employee_key not in kept_keys or by_key[person.employee_key] is not person:
            continue
        where = ("people", index)
        for r_index, reset in enumerate(person.password_resets):
            path = where + ("password_resets", r_index, "folio")
            if not person.active:
                check.add(path, "a password reset for a person who is a baja: their account is disabled")
            if reset.folio in folios:
                check.add(path, f"folio {reset.folio} is already used at {at(folios[reset.folio])}")
            folios.setdefault(reset.folio, (check, path))
        if (box := person.mailbox) is None:
            continue
        address(check, where + ("mailbox", "address"), box.address)
        for a_index, alias in enumerate(box.aliases):
            address(check, where + ("mailbox", "aliases", a_index), alias)
        quota(check, where + ("mailbox", "quota"), box.quota)
        if box.purge is not None and person.active:
            check.add(where + ("mailbox", "purge"), "only the mailbox of a baja can be purged")
    for box, check, index in shared:
        where = ("shared_mailboxes", index)
        address(check, where + ("address",), box.address)
        for a_index, alias in enumerate(box.aliases):
            address(check, where + ("aliases", a_index), alias)
        quota(check, where + ("quota",), box.quota)
        for m_index, key in enumerate(box.members):
            member = by_key.get(key)
            if member is None and partial:
                continue  # a partial load has only the changed people; the full validation saw them all
            if member is None:
                check.add(where + ("members", m_index), f"no person with employee key {key!r} is declared")
            elif member.mailbox is None:
                check.add(where + ("members", m_index), f"{key} ({member.display_name}) has no mailbox")


def load_desired_state(source: Path | DesiredFiles, only: dict[str, frozenset] | None = None,
                       mail: MailRules | None = None, devices: frozenset[str] | None = None) -> DesiredState:
    """Read desired_state/ (a directory, or the files of a commit); raise ValidationFailed with
    every problem.  `only` restricts people to some files (relative to desired_state/, e.g.
    users/hg-cuernavaca.yaml) and, in each, to some employee keys: an incremental plan loads
    only the entries that changed."""
    files = DirectoryFiles(source) if isinstance(source, (str, Path)) else source
    if not files.exists():
        raise ValidationFailed([Problem(files.label, None, "", "desired state directory not found")])
    checks: list[FileCheck] = []
    raw_units, units_file = _read_catalog(files, "units", checks)
    raw_ents, ents_file = _read_catalog(files, "entitlements", checks)
    units = {k: Unit(k, v["name"], v["kind"], v.get("clues"), v.get("ou", k), Source(units_file, None, ("units", k)))
             for k, v in raw_units.items()}
    entitlements = {k: Entitlement(k, v["description"], v["group"], v.get("privileged", False),
                                   Source(ents_file, None, ("entitlements", k)))
                    for k, v in raw_ents.items()}
    names = files.listing("users", USER_SUFFIXES)
    if only is not None:
        names = [n for n in names if n in only]
    shared: list[Shared] = []
    people = _read_people(files, names, units, entitlements, checks, only, shared)
    kept = _cross_checks(people)
    _mail_checks(people, shared, kept, mail, partial=only is not None)
    lines, equipment, security = [], [], None
    if only is None:  # assets and rules are not people: a partial load leaves them out
        from .assets import read_assets
        from .security import read_security
        lines, equipment = read_assets(files, checks, units, kept)
        security = read_security(files, checks, devices)
    problems = [p for check in checks for p in check.problems]
    if problems:
        raise ValidationFailed(problems)
    names, _ = assign_account_names(kept)
    return DesiredState.build(units, entitlements, kept, names, [s for s, _, _ in shared], lines, equipment,
                              assets_loaded=only is None, security=security)
