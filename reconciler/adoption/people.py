"""From an existing directory to declared people, and the decisions left for a person: a pure
function of what was read, the mapping and the declared entitlements.

Each account either becomes a person of a unit (with `adopt:` naming it, its names kept as
written) or a row of the reconciliation report saying what someone must decide; a few become
both (a stale account is imported, and reported).  Nothing is dropped silently: service and
built-in accounts, accounts without an employee key, duplicates and accounts in no mapped OU
are reported and not imported; groups that grant no declared entitlement are reported and
noted on each person who is in them.
"""
from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from dataclasses import dataclass, field

from reconciler import dn as dnlib
from reconciler.adoption.mapping import ImportMapping
from reconciler.i18n import lazy
from reconciler.providers.found import DirectoryRead, Found

KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
EXPLICIT_SAM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,19}$")  # what account.sam accepts
EXTENSION = re.compile(r"^[0-9]{1,8}$")
ADDRESS = re.compile(r"^[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?@[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
                     r"(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+$")
# Words that open a compound surname (De la Cruz, Del Valle, San Martín): they go with the next.
PARTICLES = frozenset({"de", "del", "la", "las", "los", "y", "san", "santa", "van", "von", "da", "di", "mc", "mac"})

# Problems, in the order the report lists them.
SERVICE, NO_KEY, DUPLICATE, OUTSIDE, DISABLED, STALE = (
    "service", "no_employee_key", "duplicate_key", "outside_managed_ous", "disabled", "stale")
DISABLED_RECENTLY, MARKED = "disabled_recently", "marked_elsewhere"
INCOMPLETE = "incomplete"
FIREWALL_DRAFT, FIREWALL_UNREADABLE = "firewall_rule", "firewall_rule_unreadable"
COMPUTER_DRAFT, COMPUTER_OUTSIDE = "computer", "computer_outside_managed_ous"
MAILBOX_ORPHAN, EXTENSION_ORPHAN, UNMAPPED_GROUP = "mailbox_without_owner", "extension_without_owner", "unmapped_group"
MAILBOX_SHARED, EXTENSION_SHARED = "mailbox_on_several_accounts", "extension_on_several_accounts"
PROBLEMS = (SERVICE, MARKED, NO_KEY, DUPLICATE, OUTSIDE, DISABLED, DISABLED_RECENTLY, STALE, INCOMPLETE,
            MAILBOX_ORPHAN, MAILBOX_SHARED, EXTENSION_ORPHAN, EXTENSION_SHARED, UNMAPPED_GROUP, COMPUTER_DRAFT,
            COMPUTER_OUTSIDE, FIREWALL_DRAFT, FIREWALL_UNREADABLE)
# What a person's declaration needs that a directory often lacks (the people schema's words).
REQUIRED = (("given_names", "givenName"), ("first_surname", "sn"), ("title", "title"), ("direction", "company"),
            ("phone", "telephoneNumber"))
PHONE = re.compile(r"^\+?[0-9][0-9 ()-]{6,24}$")


@dataclass(frozen=True)
class Row:
    """One line of the reconciliation report."""

    problem: str
    object: str  # DN, address or extension
    account: str = ""  # sAMAccountName
    key: str = ""  # employeeID
    detail: str = ""
    decision: str = ""


@dataclass
class Draft:
    """A person to declare, as the YAML will hold them, with notes for the reviewer."""

    unit: str
    data: dict
    notes: list[str] = field(default_factory=list)


@dataclass
class Imported:
    people: dict[str, list[Draft]]  # unit -> people, by employee key
    rows: list[Row]
    lines: list[dict] = field(default_factory=list)  # extensions of the registrars, for assets/lines.yaml
    rules: dict[str, list[tuple[str, dict]]] = field(default_factory=dict)  # device -> (where, draft rule)
    equipment: list[dict] = field(default_factory=list)  # computers, for assets/equipment.yaml (drafts)

    def count(self, problem: str) -> int:
        return sum(1 for r in self.rows if r.problem == problem)


def split_surnames(sn: str) -> tuple[str, str | None]:
    """'Pérez López' -> ('Pérez', 'López'); 'De la Cruz Martínez' -> ('De la Cruz', 'Martínez');
    one word -> (it, None).  A person checks the result in the pull request."""
    words, pending = [], []
    for token in sn.split():
        pending.append(token)
        if token.casefold() not in PARTICLES:
            words.append(" ".join(pending))
            pending = []
    if pending:
        words.append(" ".join(pending))
    if not words:
        return sn, None
    return words[0], " ".join(words[1:]) or None


def _closure(groups: tuple[str, ...], directory: DirectoryRead) -> set[tuple]:
    """Every group an account is in, directly or through nesting (cycles are harmless)."""
    seen: set[tuple] = set()
    todo = [dnlib.key(g) for g in groups]
    while todo:
        k = todo.pop()
        if k in seen:
            continue
        seen.add(k)
        todo += [dnlib.key(p) for p in directory.group_parents.get(k, ())]
    return seen


def _entitlements(found: Found, directory: DirectoryRead, by_group: dict[str, str],
                  groups_ou: tuple) -> tuple[list[str], list[str]]:
    """(entitlement keys its groups grant, names of its direct groups that lead to none).  Only
    the groups in the target's groups OU grant entitlements: a namesake elsewhere grants none."""
    def granted(keys: set[tuple]) -> set[str]:
        return {by_group[n.casefold()] for k in keys if k[1:] == groups_ou
                and (n := directory.group_names.get(k) or k[0][1]) and n.casefold() in by_group}

    everything = granted(_closure(found.groups, directory))
    unmapped = sorted({dnlib.first_value(g) for g in found.groups if not granted(_closure((g,), directory))},
                      key=str.casefold)
    return sorted(everything), unmapped


def _older(when: dt.datetime | None, days: int, now: dt.datetime) -> bool:
    return when is not None and (now - when).days > days


def _day(when: dt.datetime | None) -> str:
    return when.date().isoformat() if when else lazy("never")


def _person(found: Found, unit: str, entitlements: list[str], mailboxes: dict, mapping: ImportMapping,
            today: str) -> dict:
    # Blank or space-padded values as a directory often holds them: blank is missing (a field to
    # fill in, reported), padding is not part of a name.
    a = {k: (v.strip() or None) if isinstance(v, str) else v for k, v in found.attributes.items()}
    first, second = split_surnames(a.get("sn") or "")
    data = {"employee_key": found.key, "given_names": a.get("givenName"), "first_surname": first if a.get("sn") else None,
            "second_surname": second, "title": a.get("title"), "direction": a.get("company"),
            "subdirection": a.get("division"), "department": a.get("department"), "phone": a.get("telephoneNumber"),
            "extension": a.get("ipPhone") if EXTENSION.match(a.get("ipPhone") or "") else None,
            "status": "activo" if found.enabled else "baja", "entitlements": entitlements}
    data = {k: v for k, v in data.items() if v is not None or k == "second_surname"}
    if not a.get("sn"):
        data.pop("second_surname")
    account = {"sam": found.sam} if EXPLICIT_SAM.match(found.sam) else {}
    cn = dnlib.first_value(found.dn)
    if cn and cn.strip() == cn and len(cn) <= 256:
        account["cn"] = cn
    if account:
        data["account"] = account
    data["adopt"] = found.sam
    if mailbox := mailboxes.get((a.get("mail") or "").casefold()):
        data["mailbox"] = mailbox
    sol = mapping.solicitud
    data["solicitud"] = {"folio": sol["folio"], "date": sol.get("date") or today,
                         "justification": sol["justification"], "requested_by": sol["requested_by"]}
    return data


def import_people(directory: DirectoryRead, mapping: ImportMapping, by_group: dict[str, str],
                  mailboxes: dict[str, dict], now: dt.datetime, groups_ou: str = "",
                  managed_ous: tuple[str, ...] = ()) -> Imported:
    """`by_group`: casefolded AD group name -> entitlement key (entitlements.yaml reversed), for
    the groups directly in `groups_ou`; `mailboxes`: casefolded address -> the `mailbox:` block
    to declare for it; `managed_ous`: the target's people and bajas OUs."""
    rows: list[Row] = []
    candidates: list[Found] = []
    groups_key = dnlib.key(groups_ou) if groups_ou else ()
    for f in directory.accounts:
        if f.managed:
            if not any(dnlib.under(f.dn, ou) for ou in managed_ous):  # moved by hand, or a marker typed in
                rows.append(Row(MARKED, f.dn, f.sam, f.key or "", lazy("carries the reconciler's marker outside "
                                                                       "the managed OUs"),
                                lazy("find out who moved it or wrote the marker; move it back or clear the marker")))
            continue  # already the reconciler's: declared or about to be given baja, not imported again
        if f.protected or mapping.excluded(f.sam):
            rows.append(Row(SERVICE, f.dn, f.sam, f.key or "", lazy("service or built-in account"),
                            lazy("kept by hand, outside the reconciler; confirm it is still needed and who owns it")))
        elif not f.key or not KEY.match(f.key):
            rows.append(Row(NO_KEY, f.dn, f.sam, f.key or "", lazy("no employeeID"),
                            lazy("find whose account it is: declare that person with adopt: {sam}, or disable it",
                                 sam=f.sam)))
        else:
            candidates.append(f)
    by_key: dict[str, list[Found]] = defaultdict(list)
    for f in candidates:
        by_key[f.key.casefold()].append(f)
    people: dict[str, list[Draft]] = defaultdict(list)
    unmapped_members: dict[str, int] = defaultdict(int)
    today = now.date().isoformat()
    for f in candidates:
        twins = by_key[f.key.casefold()]
        if len(twins) > 1:
            others = ", ".join(t.sam for t in twins if t is not f)
            rows.append(Row(DUPLICATE, f.dn, f.sam, f.key, lazy("the same employeeID as {others}", others=others),
                            lazy("choose the person's one account and declare them with adopt: <its name>; disable "
                                 "or correct the others")))
            continue
        unit = mapping.unit_for(f.dn, f.attributes)
        if unit is None:
            rows.append(Row(OUTSIDE, f.dn, f.sam, f.key, lazy("in no OU or attribute of the mapping"),
                            lazy("add its OU or its department to the mapping, or declare the person by hand")))
            continue
        if not f.enabled and _older(f.last_logon or f.created, mapping.disabled_days, now):
            # AD keeps no "disabled since": the last logon (replicated within days) stands for it
            rows.append(Row(DISABLED, f.dn, f.sam, f.key, lazy("disabled; last logon {date}", date=_day(f.last_logon)),
                            lazy("imported as a baja: confirm it, or delete the account once its retention ends")))
        elif not f.enabled:
            rows.append(Row(DISABLED_RECENTLY, f.dn, f.sam, f.key, lazy("disabled; last logon {date}",
                                                                        date=_day(f.last_logon)),
                            lazy("imported as a baja: confirm it; a leave or a suspension is no baja (then "
                                 "declare the person active)")))
        elif f.enabled and _older(f.last_logon or f.created, mapping.stale_days, now):
            rows.append(Row(STALE, f.dn, f.sam, f.key, lazy("last logon {date}", date=_day(f.last_logon)),
                            lazy("imported as active: confirm the person still works here, or declare their baja")))
        entitlements, unmapped = _entitlements(f, directory, by_group, groups_key)
        draft = Draft(unit, _person(f, unit, entitlements, mailboxes, mapping, today))
        missing = [field for field, _attribute in REQUIRED if not draft.data.get(field)]
        if "second_surname" not in draft.data:  # no sn at all: whether there is a second one is a person's to say
            missing.insert(missing.index("first_surname") + 1, "second_surname")
        if draft.data.get("phone") and not PHONE.match(draft.data["phone"]):
            missing.append("phone")
        if missing:
            rows.append(Row(INCOMPLETE, f.dn, f.sam, f.key, lazy("the directory lacks: {fields}",
                                                                 fields=", ".join(missing)),
                            lazy("fill them in in {unit}'s file before the pull request is approved (validate names "
                                 "each)", unit=unit)))
        if unmapped:
            draft.notes.append(lazy("also in groups that grant no declared entitlement (left as they are): {groups}",
                                    groups=", ".join(unmapped)))
            for g in unmapped:
                unmapped_members[g] += 1
        people[unit].append(draft)
    for g in sorted(unmapped_members, key=str.casefold):
        rows.append(Row(UNMAPPED_GROUP, g, detail=lazy("{n} imported people are in it", n=unmapped_members[g]),
                        decision=lazy("declare an entitlement for it in entitlements.yaml, or keep it by hand")))
    for unit in people:
        people[unit].sort(key=lambda d: d.data["employee_key"])
        _distinct_names(people[unit])
    rows += _one_mailbox_each(people)
    return Imported(dict(people), rows)


def _one_mailbox_each(people: dict[str, list[Draft]]) -> list[Row]:
    """A hand-made mailbox whose address two or more imported accounts carry in `mail` is
    declared for none of them (an address is one mailbox's): a row asks whose it is."""
    holders: dict[str, list[Draft]] = defaultdict(list)
    for drafts in people.values():
        for d in drafts:
            if box := d.data.get("mailbox"):
                holders[box["address"].casefold()].append(d)
    rows = []
    for address, drafts in sorted(holders.items()):
        if len(drafts) < 2:
            continue
        for d in drafts:
            d.data.pop("mailbox")
            d.notes.append(lazy("the mailbox {address} is left undeclared: other accounts carry it too", address=address))
        rows.append(Row(MAILBOX_SHARED, address, ", ".join(d.data["adopt"] for d in drafts),
                        ", ".join(d.data["employee_key"] for d in drafts),
                        lazy("in the mail attribute of {n} accounts", n=len(drafts)),
                        lazy("declare it in its one owner's mailbox:, or as a shared mailbox with them as members")))
    return rows


def _distinct_names(drafts: list[Draft]) -> None:
    """Accounts of several OUs mapped to one unit land in one OU, where two may not share a CN:
    the later ones (by employee key) get their account name after it, a rename the adoption
    shows, and a note."""
    seen: set[str] = set()
    for d in drafts:
        account = d.data.get("account") or {}
        cn = account.get("cn")
        if cn is None:
            continue
        if cn.casefold() in seen:
            account["cn"] = f"{cn} ({d.data['adopt']})"[:256]
            d.notes.append(lazy("its name {cn} is also another person's in this unit: renamed {new}", cn=cn,
                                new=account["cn"]))
        seen.add(account["cn"].casefold())


def owners_missing(addresses: dict[str, str], extensions: dict[str, str], imported: Imported,
                   directory: DirectoryRead) -> list[Row]:
    """Mailboxes and extensions that belong to no account: `addresses` and `extensions` map each
    hand-made mailbox address and registrar extension to a description of where it was found."""
    mails = {(f.attributes.get("mail") or "").strip().casefold() for f in directory.accounts}  # as _person reads them
    phones = {(f.attributes.get("ipPhone") or "").strip() for f in directory.accounts}
    rows = [Row(MAILBOX_ORPHAN, address, detail=where,
                decision=lazy("find its owner and declare it in their mailbox:, or close it"))
            for address, where in sorted(addresses.items()) if address.casefold() not in mails]
    rows += [Row(EXTENSION_ORPHAN, number, detail=where,
                 decision=lazy("find who uses it and declare the line, or remove it from the registrar"))
             for number, where in sorted(extensions.items()) if number not in phones]
    return rows


LINE_NUMBER = re.compile(r"^[0-9]{3,15}$")


def import_lines(extensions: dict[str, str], imported: Imported, solicitud: dict, today: str) -> list[dict]:
    """The registrars' extensions that an imported active person's ipPhone names, as lines of
    that person (adopted as they are, their secrets kept); the others stay as they are (those
    nobody's ipPhone names are report rows)."""
    holders: dict[str, list[Draft]] = defaultdict(list)
    for ds in imported.people.values():
        for d in ds:
            if d.data.get("status") == "activo" and d.data.get("extension"):
                holders[d.data["extension"]].append(d)
    lines = []
    for number in sorted(extensions, key=lambda n: (len(n), n)):
        drafts = holders.get(number, [])
        if len(drafts) > 1:  # a line has one holder: which one is a person's decision
            imported.rows.append(Row(EXTENSION_SHARED, number, ", ".join(d.data["adopt"] for d in drafts),
                                     ", ".join(d.data["employee_key"] for d in drafts),
                                     lazy("in the ipPhone of {n} active accounts", n=len(drafts)),
                                     lazy("declare the line for its one holder, or for the unit without a person")))
            continue
        draft = drafts[0] if drafts else None
        if draft is None or not LINE_NUMBER.match(number):
            continue
        lines.append({"number": number, "kind": "extension", "unit": draft.unit,
                      "person": draft.data["employee_key"], "status": "activa",
                      "solicitud": {"folio": solicitud["folio"], "date": solicitud.get("date") or today,
                                    "justification": solicitud["justification"],
                                    "requested_by": solicitud["requested_by"]}})
    return lines


HOSTNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,14}$")


def import_computers(directory: DirectoryRead, mapping: ImportMapping, imported: Imported,
                     today: str) -> list[dict]:
    """The computers made by hand, as equipment drafts: hostname, unit (by the mapping's OUs),
    holder (managedBy, when it names an imported person), location.  The directory holds no
    inventory number, serial, brand or model: `validate` asks a person for them (the resguardo
    has them), and once written the plan adopts each computer by its hostname."""
    holders = {(f.dn or "").casefold(): f.key for f in directory.accounts if f.key}
    imported_keys = {d.data["employee_key"] for ds in imported.people.values() for d in ds}
    sol, out = mapping.solicitud, []
    for c in directory.computers:
        if c.managed or c.critical:
            continue  # the reconciler's own, or the domain's (a domain controller)
        unit = next((r.unit for r in mapping.rules if r.attribute is None and r.ou and dnlib.under(c.dn, r.ou)), None)
        if unit is None or not HOSTNAME.match(c.hostname):
            imported.rows.append(Row(COMPUTER_OUTSIDE, c.dn, c.hostname, detail=lazy("in no OU of the mapping"),
                                     decision=lazy("add its OU to the mapping, or declare it by hand")))
            continue
        holder = holders.get((c.managed_by or "").casefold())
        item = {"hostname": c.hostname, "type": "desktop", "unit": unit}
        if holder in imported_keys:
            item["person"] = holder
        if c.location:
            item["location"] = c.location
        item["status"] = "en_uso" if c.enabled else "en_almacen"
        item["solicitud"] = {"folio": sol["folio"], "date": sol.get("date") or today,
                             "justification": sol["justification"], "requested_by": sol["requested_by"]}
        out.append(item)
        imported.rows.append(Row(COMPUTER_DRAFT, c.dn, c.hostname, detail=lazy("no inventory number, serial, brand "
                                                                               "or model in the directory"),
                                 decision=lazy("write them from its resguardo (and its type, if not a desktop), or "
                                               "delete the entry")))
    return out
