"""Load and validate desired_state/: every problem in every file, with file, line and field.

Layout:
    desired_state/units.yaml          units (hospitals, centros de salud, oficinas centrales)
    desired_state/entitlements.yaml   entitlements: the AD group and/or the system with no API each grants
    desired_state/work_orders.yaml    confirmations of the work orders for those systems (work_orders.py)
    desired_state/users/*.yaml        one file per unit: `unit: KEY`, its `people:` (each with
                                      an optional mailbox and password resets) and its
                                      `shared_mailboxes:`
    desired_state/assets/*.yaml       phone lines and equipment (see assets.py)
"""
from __future__ import annotations

import gc
from pathlib import Path

from reconciler.desired import parsecache
from reconciler.desired.assets import read_assets
from reconciler.desired.checks import FileCheck, open_file
from reconciler.desired.curp import curp_problem
from reconciler.desired.entries import Outline, know, outline, split_entries
from reconciler.desired.files import DesiredFiles, DirectoryFiles
from reconciler.desired.model import (
    Acuse,
    DesiredState,
    Entitlement,
    Mailbox,
    MailRules,
    Person,
    Request,
    SharedMailbox,
    Source,
    Unit,
    solicitud_of,
)
from reconciler.desired.naming import assign_account_names, common_name
from reconciler.desired.quotas import quota_megabytes
from reconciler.desired.security import read_security
from reconciler.desired.work_orders import read_confirmations
from reconciler.errors import Problem, ValidationFailed
from reconciler.i18n import _


def _read_catalog(files: DesiredFiles, name: str, checks: list[FileCheck]) -> tuple[dict[str, dict], str]:
    check, data, usable = open_file(files, f"{name}.yaml", checks)
    if not check.found:
        check.add((), _("missing: declare the units here") if name == "units" else
                  _("missing: declare the entitlements here"))
        return {}, check.display
    if not usable:
        return {}, check.display
    if not isinstance(data, dict) or name not in data:
        check.add((), _("expected a mapping with a top-level '{name}:' key", name=name))
        return {}, check.display
    bad = check.validate(data, "units")
    entries = data.get(name) or {}
    if not isinstance(entries, dict):
        return {}, check.display
    for key, entry in entries.items():
        if name == "entitlements" and (name, key) not in bad and not entry.get("group") and not entry.get("system"):
            check.add((name, key), _("grants nothing: name the AD group it grants (group:), the system with no API "
                                     "whose operator receives a work order (system:), or both"))
            bad.add((name, key))
    return {k: v for k, v in entries.items() if (name, k) not in bad}, check.display


def _request(raw: dict) -> Request:
    return Request(raw["folio"], raw["date"], raw.get("requested_by"))


def _mailbox(raw: dict | None) -> Mailbox | None:
    if raw is None:
        return None
    purge = raw.get("purge")
    return Mailbox(raw["address"], tuple(raw.get("aliases") or ()), raw.get("quota"),
                   _request(purge) if purge else None)


def _shared_mailbox(item: dict, unit: str, source: Source) -> SharedMailbox:
    return SharedMailbox(item["address"], item["name"], unit, tuple(item["members"]), solicitud_of(item["solicitud"]),
                         source, tuple(item.get("aliases") or ()), item.get("quota"))


def _person(item: dict, unit: str, source: Source) -> Person:
    account = item.get("account") or {}
    sol = item["solicitud"]
    return Person(
        employee_key=item["employee_key"], given_names=item["given_names"],
        first_surname=item["first_surname"], second_surname=item["second_surname"], unit=unit,
        title=item["title"], direction=item["direction"], phone=item["phone"], status=item["status"],
        entitlements=tuple(item["entitlements"]),
        solicitud=solicitud_of(sol),
        source=source, curp=item.get("curp"), subdirection=item.get("subdirection"),
        department=item.get("department"), extension=item.get("extension"),
        explicit_sam=account.get("sam"), explicit_cn=account.get("cn"),
        adopt=item.get("adopt"),
        mailbox=_mailbox(item.get("mailbox")),
        password_resets=tuple(_request(r) for r in item.get("password_resets") or ()),
        acuse=Acuse(item["acuse"]["folio"], item["acuse"]["date"], item["acuse"]["sha256"]) if item.get("acuse") else None,
    )


USER_SUFFIXES = (".yaml", ".yml")


Shared = tuple[SharedMailbox, FileCheck, int]


def _read_people(files: DesiredFiles, names: list[str], units: dict, entitlements: dict,
                 checks: list[FileCheck], only: dict[str, frozenset] | None = None,
                 shared: list[Shared] | None = None, used: list[str] | None = None
                 ) -> list[tuple[Person, FileCheck, int]]:
    """The people of the unit files (and their shared mailboxes, into `shared`); `used` gets
    the parse cache's entry of each file, read or written, in order (None: the file has none)."""
    people: list[tuple[Person, FileCheck, int]] = []
    used = [] if used is None else used
    for rel in names:
        keep = only.get(rel) if only else None
        if only is None:
            text, entry = _cached_text(files, rel, units, entitlements)
            kept = parsecache.get(entry) if entry is not None else None
        else:  # some people: theirs alone, from a reading of the whole file kept before
            identity = files.identity(rel)
            text, entry, kept = None, _entry(files, rel, identity, units, entitlements), None
            if entry is not None and keep is not None and (some := parsecache.get_some(entry, keep)) is not None:
                kept, outline = some
                if outline is not None:  # provenance finds their lines without the file
                    know(identity, outline)
        if kept is not None:  # read before by this program, with no problem of its own: built again
            used.append(entry)
            check = FileCheck(f"{files.label}/{rel}", text=text or "",
                              text_source=None if text is not None else (lambda rel=rel: files.read_text(rel) or ""))
            checks.append(check)
            people += [(_person(item, kept["unit"], Source(check.display, None, ("people", index))), check, index)
                       for index, item in kept["people"]]
            if shared is not None:
                shared += [(_shared_mailbox(item, kept["unit"], Source(check.display, None,
                                                                       ("shared_mailboxes", index))), check, index)
                           for index, item in kept["shared"]]
            continue
        check, unit, mine, boxes = _read_unit_file(files, rel, units, entitlements, checks, keep, text)
        people += [(_person(item, unit, Source(check.display, None, check.original(("people", index)))), check, index)
                   for index, item in mine]
        if shared is not None:
            shared += [(_shared_mailbox(item, unit, Source(check.display, None, ("shared_mailboxes", index))),
                        check, index) for index, item in boxes]
        if only is None and entry is not None and check.found and not check.problems and unit is not None:
            # The outline serves plans of some people of a committed file (get_some), only.
            outline = _outline_of(check.text, mine) if files.identity(rel) is not None else None
            parsecache.put(entry, unit, mine, boxes, outline)
            used.append(entry)
        else:
            used.append(None)  # not kept: what crosses files is never kept either
    return people


def _entry(files: DesiredFiles, rel: str, identity: str | None, units: dict, entitlements: dict) -> str | None:
    """The parse cache's entry of a file, by what names its content: a committed file's blob
    id, or its text's digest (None: nothing names it)."""
    return parsecache.key(rel, f"{files.label}/{rel}", identity, units, entitlements) if identity is not None else None


def _outline_of(text: str, people: list[tuple[int, dict]]) -> Outline | None:
    """The file's outline, when its text splits into exactly the people it declares (the
    scanner reads the common layout; anything else, provenance reads from the file)."""
    split = split_entries.__wrapped__(text) if text else None  # not kept: the file is not asked again
    if not split or [(e.index, e.key) for e in split] != [(i, item["employee_key"]) for i, item in people]:
        return None
    return outline(text, split)


def _cached_text(files: DesiredFiles, rel: str, units: dict, entitlements: dict) -> tuple[str | None, str | None]:
    """The file's text (None: not read) and its cache entry (None: it cannot be read here;
    reading it again reports why).  A committed file is known by its blob id, unread: reading
    the blobs of 100,000 people out of Git took longer than the rest of a warm load."""
    if (entry := _entry(files, rel, files.identity(rel), units, entitlements)) is not None:
        return None, entry
    try:
        text = files.read_text(rel)
    except (OSError, UnicodeDecodeError):
        return None, None
    if text is None:
        return None, None
    return text, _entry(files, rel, parsecache.text_identity(text), units, entitlements)


def _read_unit_file(files: DesiredFiles, rel: str, units: dict, entitlements: dict, checks: list[FileCheck],
                    keep: frozenset | None, text: str | None) -> tuple[FileCheck, str | None, list, list]:
    """One unit's file: its check, its unit, and the validated entries of its people and shared
    mailboxes, each with its index (what the parse cache keeps)."""
    check, data, usable = open_file(files, rel, checks, keep, text)
    people: list[tuple[int, dict]] = []
    boxes: list[tuple[int, dict]] = []
    if not usable or data is None:
        return check, None, people, boxes  # an empty (or vanished) file declares nobody
    bad = check.validate(data, "users")
    if not isinstance(data, dict) or "unit" not in data or ("unit",) in bad \
            or not isinstance(data.get("people"), list):
        return check, None, people, boxes
    unit = data["unit"]
    if units and unit not in units:
        check.add(("unit",), _("unknown unit {unit!r} (declared units are in desired_state/units.yaml)", unit=unit))
    for index, item in enumerate(data["people"]):
        if ("people", index) in bad:
            continue
        where = ("people", index)
        for e_index, ent in enumerate(item.get("entitlements") or ()):
            if entitlements and ent not in entitlements:
                check.add(where + ("entitlements", e_index),
                          _("unknown entitlement {entitlement!r} (declared in desired_state/entitlements.yaml)",
                            entitlement=ent))
        if item.get("curp") and (message := curp_problem(item["curp"])):
            check.add(where + ("curp",), message)
        people.append((index, item))
    listed = data.get("shared_mailboxes")
    for index, item in enumerate(listed if isinstance(listed, list) else ()):  # else the schema said so
        if ("shared_mailboxes", index) not in bad:
            boxes.append((index, item))
    return check, unit, people, boxes


def _located(check: FileCheck, index: int) -> str:
    return f"{check.display}:{check.line(('people', index))}"


def _checked_across(people: list[tuple[Person, FileCheck, int]], checks: list[FileCheck],
                    used: list[str | None], partial: bool) -> tuple[list[Person], dict[str, str]]:
    """_cross_checks, or its result kept from a run that read the very same files (every one
    from the parse cache, in the same order) and found no problem: the checks and the account
    names are a function of those files alone.  Keeps the parse cache's entries in use."""
    whole = parsecache.whole_key(used) if used and None not in used and not partial else None
    names = parsecache.get_names(whole) if whole is not None else None
    if names is not None and len(names) == len(people) and all(p.employee_key in names for p, _, _ in people):
        kept = [p for p, _, _ in people]
    else:
        kept, names = _cross_checks(people)
        if whole is not None and not any(c.problems for c in checks):
            parsecache.put_names(whole, names)
    if not partial:
        parsecache.trim({u for u in used if u} | ({whole} if whole else set()))
    return kept, names


def _cross_checks(people: list[tuple[Person, FileCheck, int]]) -> tuple[list[Person], dict[str, str]]:
    """Duplicate keys and CURPs, clashing account names and CNs.  Returns the people kept and
    their account names."""
    first_by_key: dict[str, tuple[FileCheck, int]] = {}
    first_by_curp: dict[str, tuple[FileCheck, int]] = {}
    kept: list[Person] = []
    where_of: dict[str, tuple[FileCheck, int]] = {}
    for person, check, index in people:
        key = person.employee_key
        if key in first_by_key:
            check.add(("people", index, "employee_key"),
                      _("employee key {key!r} is already declared at {where}", key=key,
                        where=_located(*first_by_key[key])))
            continue
        first_by_key[key] = (check, index)
        if person.curp:
            if person.curp in first_by_curp:
                check.add(("people", index, "curp"),
                          _("CURP {curp} is already declared at {where}", curp=person.curp,
                            where=_located(*first_by_curp[person.curp])))
            first_by_curp.setdefault(person.curp, (check, index))
        kept.append(person)
        where_of[key] = (check, index)
    names, clashes = assign_account_names(kept)
    for sam, group in clashes:
        for person in group[1:]:
            check, index = where_of[person.employee_key]
            others = ", ".join(_located(*where_of[p.employee_key]) for p in group if p is not person)
            check.add(("people", index, "account"),
                      _("account name {sam!r} is also derived for {others}; set account.sam for one of them",
                        sam=sam, others=others))
    adopted: dict[str, Person] = {}
    for person in kept:  # one hand-made account becomes one person's, never two
        if person.adopt and person.adopt.casefold() in adopted:
            check, index = where_of[person.employee_key]
            check.add(("people", index, "adopt"),
                      _("the account {name} is also adopted at {where}", name=person.adopt,
                        where=_located(*where_of[adopted[person.adopt.casefold()].employee_key])))
        elif person.adopt:
            adopted[person.adopt.casefold()] = person
    by_cn: dict[tuple[str, str], Person] = {}
    for person in kept:
        cn_key = (person.unit, common_name(person).casefold())
        if cn_key in by_cn and by_cn[cn_key].active and person.active:
            check, index = where_of[person.employee_key]
            check.add(("people", index, "account"),
                      _("same name as {where} in the same unit; set account.cn for one of them",
                        where=_located(*where_of[by_cn[cn_key].employee_key])))
        by_cn.setdefault(cn_key, person)
    return kept, names


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
            check.add(path, _("{address} is not in a managed mail domain ({domains})", address=value,
                              domains=", ".join(sorted(rules.domains))))
        if value in owner:
            check.add(path, _("{address} is already used at {where}", address=value, where=at(owner[value])))
        owner.setdefault(value, (check, path))

    def quota(check: FileCheck, path: tuple, value: str | None) -> None:
        if value and rules is not None and rules.max_quota and quota_megabytes(value) > quota_megabytes(rules.max_quota):
            check.add(path, _("quota {quota} is over the limit of {limit}", quota=value, limit=rules.max_quota))

    for person, check, index in people:
        if person.employee_key not in kept_keys or by_key[person.employee_key] is not person:
            continue
        where = ("people", index)
        for r_index, reset in enumerate(person.password_resets):
            path = where + ("password_resets", r_index, "folio")
            if not person.active:
                check.add(path, _("a password reset for a person who is a baja: their account is disabled"))
            if reset.folio in folios:
                check.add(path, _("folio {folio} is already used at {where}", folio=reset.folio,
                                  where=at(folios[reset.folio])))
            elif reset.folio == person.solicitud.folio:  # a request of its own: never the alta's envelope
                check.add(path, _("folio {folio} is the person's solicitud; a password reset needs a folio of "
                                  "its own", folio=reset.folio))
            folios.setdefault(reset.folio, (check, path))
        if (box := person.mailbox) is None:
            continue
        address(check, where + ("mailbox", "address"), box.address)
        for a_index, alias in enumerate(box.aliases):
            address(check, where + ("mailbox", "aliases", a_index), alias)
        quota(check, where + ("mailbox", "quota"), box.quota)
        if box.purge is not None and person.active:
            check.add(where + ("mailbox", "purge"), _("only the mailbox of a baja can be purged"))
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
                check.add(where + ("members", m_index), _("no person with employee key {key!r} is declared", key=key))
            elif member.mailbox is None:
                check.add(where + ("members", m_index), _("{key} ({name}) has no mailbox", key=key,
                                                          name=member.display_name))


def load_desired_state(source: Path | DesiredFiles, only: dict[str, frozenset] | None = None,
                       mail: MailRules | None = None, devices: frozenset[str] | None = None) -> DesiredState:
    """Read desired_state/ (a directory, or the files of a commit); raise ValidationFailed with
    every problem.  `only` restricts people to some files (relative to desired_state/, e.g.
    users/hg-cuernavaca.yaml) and, in each, to some employee keys: an incremental plan loads
    only the entries that changed."""
    # Parsing creates millions of short-lived objects and no reference cycles: the cyclic
    # collector would rescan the growing heap again and again (half the time of 100,000 people;
    # the time grew faster than the people).  Refcounting still frees everything.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _load(source, only, mail, devices)
    finally:
        if collecting:
            gc.enable()


def _load(source: Path | DesiredFiles, only: dict[str, frozenset] | None, mail: MailRules | None,
          devices: frozenset[str] | None) -> DesiredState:
    files = DirectoryFiles(source) if isinstance(source, (str, Path)) else source
    if not files.exists():
        raise ValidationFailed([Problem(files.label, None, "", _("desired state directory not found"))])
    checks: list[FileCheck] = []
    raw_units, units_file = _read_catalog(files, "units", checks)
    raw_ents, ents_file = _read_catalog(files, "entitlements", checks)
    units = {k: Unit(k, v["name"], v["kind"], v.get("clues"), v.get("ou", k), Source(units_file, None, ("units", k)))
             for k, v in raw_units.items()}
    entitlements = {k: Entitlement(k, v["description"], v.get("group"), v.get("privileged", False),
                                   Source(ents_file, None, ("entitlements", k)), v.get("system"))
                    for k, v in raw_ents.items()}
    listed = files.listing("users", USER_SUFFIXES)
    if only is not None:
        listed = [n for n in listed if n in only]
    shared: list[Shared] = []
    used: list[str | None] = []
    people = _read_people(files, listed, units, entitlements, checks, only, shared, used)
    kept, names = _checked_across(people, checks, used, partial=only is not None)
    _mail_checks(people, shared, kept, mail, partial=only is not None)
    lines, equipment, security = [], [], None
    if only is None:  # assets and rules are not people: a partial load leaves them out
        lines, equipment = read_assets(files, checks, units, kept)
        security = read_security(files, checks, devices, units)
    confirmations = read_confirmations(files, checks)  # small, and every plan of a manual target needs it
    problems = [p for check in checks for p in check.problems]
    if problems:
        raise ValidationFailed(problems)
    return DesiredState.build(units, entitlements, kept, names, [s for s, _, _ in shared], lines, equipment,
                              assets_loaded=only is None, security=security, confirmations=confirmations)
