"""Reading the actual state of an AD target in bulk.

A full read is one paged search (1,000 entries a page) per unit OU and for the bajas OU, spread
over parallel connections; one search for the groups and one per parent of the OUs the plan
needs: never one query per person.  Only names that new or renamed accounts want are looked up
across the whole domain, in OR-batches, so that an unmanaged account elsewhere holding the same
sAMAccountName is a conflict in the plan instead of a failed add at apply time.
"""
from __future__ import annotations

import queue
import threading
from dataclasses import replace
from functools import lru_cache
from typing import Iterable, Iterator

from ldap3 import LEVEL, SUBTREE, Connection
from ldap3.utils.conv import escape_filter_chars

from reconciler.errors import ReconcilerError
from reconciler.i18n import _, lazy
from reconciler import dn as dnlib
from reconciler.providers.ad.diff import ActualDirectory, ForeignObject
from reconciler.providers.ad.records import MANAGED_ATTRIBUTES, MARKER, MULTI_VALUED, Account, DesiredDirectory
from reconciler.providers.ad.target import ADTarget

PAGE_SIZE = 1000  # Samba's MaxPageSize
# Every value read costs ldap3 a decode: the CN comes from the DN, and pwdLastSet is only read
# when verifying new accounts.
ACCOUNT_ATTRIBUTES = list(MANAGED_ATTRIBUTES) + ["adminDescription", "userAccountControl", "memberOf"]
VERIFY_ATTRIBUTES = ACCOUNT_ATTRIBUTES + ["pwdLastSet"]
KEPT_ATTRIBUTES = VERIFY_ATTRIBUTES + ["objectGUID"]  # a snapshot's (delta.py): the objects' identity too
UF_ACCOUNTDISABLE = 0x2
_ADOPTION_ATTRIBUTES = ["objectClass", "isCriticalSystemObject", "adminCount", "primaryGroupID"]
# The primary groups an ordinary account has: Domain Users, Guests, Computers.  Any other (Domain
# Admins 512, controllers 516/521...) is a membership `member` never shows: never adopted.
ORDINARY_PRIMARY_GROUPS = frozenset({"513", "514", "515"})
_LOOKUP_BATCH = 100
NO_SUCH_OBJECT = 32


def paged_search(conn: Connection, base: str, query: str, attributes: list[str],
                 scope=SUBTREE, controls: list | None = None) -> Iterator[dict]:
    cookie = None
    while True:
        conn.search(base, query, scope, attributes=attributes, paged_size=PAGE_SIZE, paged_cookie=cookie,
                    controls=controls)
        if conn.result["result"] == NO_SUCH_OBJECT:
            return
        if conn.result["result"] != 0:
            detail = f"{conn.result['description']} {conn.result.get('message', '')}".strip()
            raise ReconcilerError(_("search under {base} failed: {error}", base=base, error=detail))
        for entry in conn.response:
            if entry.get("type") == "searchResEntry":
                yield entry
        control = (conn.result.get("controls") or {}).get("1.2.840.113556.1.4.319")
        cookie = control["value"]["cookie"] if control else None
        if not cookie:
            return


_CANONICAL = {name.lower(): name for name in KEPT_ATTRIBUTES + _ADOPTION_ATTRIBUTES + [
    "employeeID", "sAMAccountName", "userPrincipalName", "adminDescription"]}


def _canonical(attrs: dict) -> dict:
    """Attribute names as the reconciler spells them, whatever case the server answers in."""
    return {_CANONICAL.get(k.lower(), k): v for k, v in attrs.items()}


@lru_cache(maxsize=4096)
def _group_name(member_of: str, groups_ou_key: tuple) -> str | None:
    """'CN=GG-Internet,OU=Grupos,...' -> 'GG-Internet' when the group is a managed one (cached:
    thousands of accounts share a handful of groups)."""
    return dnlib.first_value(member_of) if dnlib.key(dnlib.parent(member_of)) == groups_ou_key else None


def _one(attrs: dict, name: str) -> str | None:
    value = attrs.get(name)
    if isinstance(value, list):
        value = value[0] if value else None
    return value if value not in ("", None) else None


def _value(attrs: dict, name: str):
    """A managed attribute's value: a sorted tuple for a multi-valued one (None when empty)."""
    if name in MULTI_VALUED:
        return tuple(sorted(attrs.get(name) or ())) or None
    return _one(attrs, name)


def _account(entry: dict, groups_ou_key: tuple, canonical: bool = False) -> Account:
    attrs = entry["attributes"] if canonical else _canonical(entry["attributes"])
    entry["attributes"] = attrs
    uac = int(_one(attrs, "userAccountControl") or 0)
    marker = _one(attrs, "adminDescription") or ""
    applied = marker.split("applied=", 1)[1] if "applied=" in marker else None
    groups = frozenset(g for g in (_group_name(m, groups_ou_key) for m in attrs.get("memberOf") or ()) if g)
    return Account(
        key=_one(attrs, "employeeID") or "", cn=dnlib.first_value(entry["dn"]),
        parent=dnlib.parent(entry["dn"]), attributes={n: _value(attrs, n) for n in MANAGED_ATTRIBUTES},
        enabled=not uac & UF_ACCOUNTDISABLE, groups=groups, dn=entry["dn"], applied_hash=applied,
        must_change_password=_one(attrs, "pwdLastSet") == "0", uac=uac, marker=marker or None,
        protected=_protected(attrs),
    )


def _protected(attrs: dict) -> bool:
    """A built-in or privileged account: critical to the system, or guarded by AdminSDHolder
    (adminCount=1: a member, now or once, of a privileged group)."""
    critical = str(_one(attrs, "isCriticalSystemObject") or "").upper() == "TRUE"
    return critical or str(_one(attrs, "adminCount") or "0") not in ("0", "")


def _is_managed(entry: dict) -> bool:
    """Carries the reconciler's marker (for entries already passed through _account)."""
    return (_one(entry["attributes"], "adminDescription") or "").startswith(MARKER)


def _subtrees(conn: Connection, target: ADTarget) -> list[tuple[str, object]]:
    """The managed account OUs split into independent searches: each unit OU as a subtree,
    accounts sitting directly in the people OU, and the bajas OU."""
    parts: list[tuple[str, object]] = []
    for base in _distinct_roots([target.people_ou, target.bajas_ou]):
        children = [e["dn"] for e in paged_search(conn, base, "(objectClass=organizationalUnit)", ["ou"], scope=LEVEL)]
        parts += [(child, SUBTREE) for child in children] + [(base, LEVEL)]
    return parts


def _search_accounts(conn: Connection, parts: "queue.Queue", out: list, attributes: list[str]) -> None:
    while True:
        try:
            base, scope = parts.get_nowait()
        except queue.Empty:
            return
        out.extend(paged_search(conn, base, "(&(objectCategory=person)(objectClass=user))", attributes, scope))


def read_accounts(conn: Connection, target: ADTarget, more: Iterable[Connection] = (), verify: bool = False
                  ) -> tuple[dict[str, Account], list[ForeignObject], list[str]]:
    """Every account under the managed OUs, split into managed (marked) and foreign."""
    entries = read_account_entries(conn, target, more, VERIFY_ATTRIBUTES if verify else ACCOUNT_ATTRIBUTES)
    return accounts_of(entries, target)


def accounts_of(entries: Iterable[dict], target: ADTarget, canonical: bool = False
                ) -> tuple[dict[str, Account], list[ForeignObject], list[str]]:
    """Search entries split into managed accounts and foreign ones (`canonical`: their attribute
    names are already the reconciler's spelling, as a snapshot's are)."""
    groups_key = dnlib.key(target.groups_ou)
    return _split_managed((e, _account(e, groups_key, canonical)) for e in entries)


def read_account_entries(conn: Connection, target: ADTarget, more: Iterable[Connection], attributes: list[str]
                         ) -> list[dict]:
    """The search entries of every account under the managed OUs.

    With extra connections the unit OUs are searched in parallel threads: while Python decodes
    one connection's page, the server is already producing another's, which halves a large
    read on a small machine.  Each OU is still one paged search."""
    parts: queue.Queue = queue.Queue()
    for part in _subtrees(conn, target):
        parts.put(part)
    results: list[list] = [[] for _ in range(1 + len(list(more)))]
    errors: list[BaseException] = []

    def worker(c: Connection, out: list) -> None:
        try:
            _search_accounts(c, parts, out, attributes)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(c, out), daemon=True)
               for c, out in zip(list(more), results[1:])]
    for t in threads:
        t.start()
    worker(conn, results[0])
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return [e for out in results for e in out]


def _split_managed(pairs: Iterable[tuple[dict, Account]]) -> tuple[dict[str, Account], list[ForeignObject], list[str]]:
    managed: dict[str, Account] = {}
    foreign: list[ForeignObject] = []
    warnings: list[str] = []
    for entry, account in sorted(pairs, key=lambda pair: pair[0]["dn"]):
        if not _is_managed(entry) or not account.key:
            foreign.append(ForeignObject(entry["dn"], account.sam, account.attributes.get("userPrincipalName"),
                                         account.key or None))
        elif account.key in managed:
            warnings.append(lazy("two managed accounts carry employeeID {key}: {first} and {second}; the second "
                                 "is left alone", key=account.key, first=managed[account.key].dn, second=entry["dn"]))
            foreign.append(ForeignObject(entry["dn"], account.sam, None, None))
        else:
            managed[account.key] = account
    return managed, foreign, warnings


def _search_keys(conn: Connection, base: str, keys: list[str], attributes: list[str],
                 groups_key: tuple) -> list[tuple[dict, Account]]:
    pairs = []
    for i in range(0, len(keys), _LOOKUP_BATCH):
        terms = "".join(f"(employeeID={escape_filter_chars(k)})" for k in keys[i:i + _LOOKUP_BATCH])
        query = f"(&(objectCategory=person)(objectClass=user)(|{terms}))"
        pairs += [(e, _account(e, groups_key)) for e in paged_search(conn, base, query, attributes)]
    return pairs


def read_accounts_by_key(conn: Connection, target: ADTarget, keys: Iterable[str], verify: bool = False,
                         hints: dict[str, str] | None = None
                         ) -> tuple[dict[str, Account], list[ForeignObject], list[str]]:
    """Only the accounts carrying these employeeIDs under the managed OUs (an incremental plan).

    employeeID is not indexed in AD, so a search on it alone scans its whole subtree (about
    120 ms for 10,000 accounts on Samba).  sAMAccountName is indexed: each key is first looked
    for together with the account name the desired state gives it (`hints`: key -> sam, a
    couple of milliseconds); only the keys not found that way (altas, renames, removals) are
    searched by employeeID alone.  OR-batches of keys, one paged search per batch and base."""
    groups_key = dnlib.key(target.groups_ou)
    attributes = VERIFY_ATTRIBUTES if verify else ACCOUNT_ATTRIBUTES
    keys = sorted(set(keys))
    roots = _distinct_roots([target.people_ou, target.bajas_ou])
    pairs: list[tuple[dict, Account]] = []
    named = [(k, hints[k]) for k in keys if hints and hints.get(k)]
    for i in range(0, len(named), _LOOKUP_BATCH):
        terms = "".join(f"(&(sAMAccountName={escape_filter_chars(sam)})(employeeID={escape_filter_chars(k)}))"
                        for k, sam in named[i:i + _LOOKUP_BATCH])
        for base in roots:
            pairs += [(e, _account(e, groups_key)) for e in paged_search(
                conn, base, f"(&(objectCategory=person)(objectClass=user)(|{terms}))", attributes)]
    found = {account.key for _, account in pairs}
    if rest := [k for k in keys if k not in found]:
        for base in roots:
            pairs += _search_keys(conn, base, rest, attributes, groups_key)
    # The directory matches employeeID caselessly, and any value of a multi-valued one: an
    # account whose key is not one asked for is someone else's, never a baja of this plan.
    wanted = set(keys)
    managed, foreign, warnings = _split_managed([(e, a) for e, a in pairs if a.key in wanted])
    foreign += [ForeignObject(e["dn"], a.sam, a.attributes.get("userPrincipalName"), a.key or None)
                for e, a in pairs if a.key not in wanted]
    return managed, foreign, warnings


def near_names(conn: Connection, target: ADTarget, prefixes: Iterable[str]) -> list[ForeignObject]:
    """Every object in the domain whose sAMAccountName starts with one of the prefixes."""
    terms = [f"(sAMAccountName={escape_filter_chars(p)}*)" for p in sorted(set(prefixes)) if p]
    found = []
    for i in range(0, len(terms), _LOOKUP_BATCH):
        for e in paged_search(conn, target.base_dn, f"(|{''.join(terms[i:i + _LOOKUP_BATCH])})",
                              ["sAMAccountName", "employeeID"]):
            a = _canonical(e["attributes"])
            found.append(ForeignObject(e["dn"], _one(a, "sAMAccountName"), None, _one(a, "employeeID")))
    return found


def _distinct_roots(dns: list[str]) -> list[str]:
    """Drop DNs that lie under another one in the list, so no subtree is searched twice."""
    return [d for d in dns if not any(o is not d and not dnlib.same(o, d) and dnlib.under(d, o) for o in dns)]


def read_groups(conn: Connection, target: ADTarget) -> dict[str, str]:
    return {dnlib.first_value(e["dn"]).casefold(): e["dn"]
            for e in paged_search(conn, target.groups_ou, "(objectClass=group)", ["cn"], scope=LEVEL)}


def read_ous(conn: Connection, wanted: Iterable[str]) -> frozenset:
    """Which of the wanted OUs exist: one one-level search per distinct parent."""
    parents: dict[tuple, str] = {}
    for ou in wanted:
        parents.setdefault(dnlib.key(dnlib.parent(ou)), dnlib.parent(ou))
    found = set()
    for parent in parents.values():
        for e in paged_search(conn, parent, "(objectClass=organizationalUnit)", ["ou"], scope=LEVEL):
            found.add(dnlib.key(e["dn"]))
    return frozenset(found)


def lookup_names(conn: Connection, target: ADTarget, accounts: Iterable[Account],
                 groups: Iterable[str] = ()) -> list[ForeignObject]:
    """Objects anywhere in the domain holding a sAMAccountName, UPN or employeeID we want.

    Terms are OR-ed in batches: a plan with 10,000 altas costs a few hundred searches, a plan
    with none costs nothing."""
    terms = []
    for account in accounts:
        terms.append(f"(sAMAccountName={escape_filter_chars(account.sam)})")
        if upn := account.attributes.get("userPrincipalName"):
            terms.append(f"(userPrincipalName={escape_filter_chars(upn)})")
        terms.append(f"(employeeID={escape_filter_chars(account.key)})")
    terms += [f"(sAMAccountName={escape_filter_chars(name)})" for name in groups]
    found: dict[str, ForeignObject] = {}
    for i in range(0, len(terms), _LOOKUP_BATCH):
        query = f"(|{''.join(terms[i:i + _LOOKUP_BATCH])})"
        for e in paged_search(conn, target.base_dn, query, ["sAMAccountName", "userPrincipalName", "employeeID",
                                                            "adminDescription"]):
            a = _canonical(e["attributes"])
            found[e["dn"]] = ForeignObject(e["dn"], _one(a, "sAMAccountName"), _one(a, "userPrincipalName"),
                                           _one(a, "employeeID"))
    return list(found.values())


def read_directory(conn: Connection, target: ADTarget, desired: DesiredDirectory,
                   more: Iterable[Connection] = (), accounts: tuple | None = None,
                   verify: bool = False) -> ActualDirectory:
    """The actual state; `accounts` is read_accounts' result when it was prefetched."""
    accounts, foreign, warnings = accounts if accounts is not None else read_accounts(conn, target, more, verify)
    foreign = list(foreign)
    adopting = [want for key, want in desired.accounts.items() if key not in accounts]
    candidates = adoptable_accounts(conn, target, adopting)
    # People whose hand-made account was found need no domain-wide search for their key (an
    # unindexed one); only a name of theirs that changes is looked for, as a rename's would be.
    claimed = {k.casefold() for a in candidates for k in (a.key, a.sam) if k}
    found_for = {w.key for w in adopting if w.key.casefold() in claimed or (w.adopt or "").casefold() in claimed}
    needing_names = [want for key, want in desired.accounts.items() if want.enabled and key not in found_for and
                     (key not in accounts or accounts[key].sam.casefold() != want.sam.casefold())]
    # A marked account outside the managed OUs (moved there by hand) still holds its names.
    known = {f.dn for f in foreign} | {a.dn for a in accounts.values()}
    groups = read_groups(conn, target)
    new_groups = [name for name in desired.groups if name.casefold() not in groups]
    renamed = _renamed(candidates, [w for w in adopting if w.key in found_for])
    foreign += [f for f in lookup_names(conn, target, needing_names + renamed, new_groups) if f.dn not in known]
    known |= {f.dn for f in foreign} | _chosen(candidates, [w for w in adopting if w.key in found_for])
    foreign += key_holders(conn, target, {k.casefold() for k in found_for}, known)
    return ActualDirectory(accounts=accounts, foreign=tuple(foreign), ous=read_ous(conn, desired.ous),
                           groups=groups, warnings=tuple(warnings), adoptable=tuple(candidates))


def adoptable_accounts(conn: Connection, target: ADTarget, adopting: list[Account]) -> list[Account]:
    """The user accounts under the target's adopt_from OUs that carry the employeeID of a person
    without a managed account, or that a person's `adopt:` names: one paged search per OU (an
    indexed read of the subtree, not a domain-wide search per key), the domain's own marked."""
    if not target.adopt_from or not adopting:
        return []
    wanted = {w.key.casefold() for w in adopting} | {w.adopt.casefold() for w in adopting if w.adopt}
    groups_key = dnlib.key(target.groups_ou)
    found: dict[str, Account] = {}
    for base in _distinct_roots(list(target.adopt_from)):
        for e in paged_search(conn, base, "(&(objectCategory=person)(objectClass=user))",
                              ACCOUNT_ATTRIBUTES + _ADOPTION_ATTRIBUTES):
            a = _account(e, groups_key)  # leaves the entry's attributes in the reconciler's spelling
            attrs = e["attributes"]
            odd = "computer" in {c.casefold() for c in attrs.get("objectClass") or ()} or \
                str(_one(attrs, "primaryGroupID") or "513") not in ORDINARY_PRIMARY_GROUPS
            if a.key.casefold() in wanted or a.sam.casefold() in wanted:
                found.setdefault(e["dn"], replace(a, protected=True) if odd else a)
    return guarded(conn, target, list(found.values()))


def _chosen(candidates: list[Account], adopting: list[Account]) -> set[str]:
    """DNs of the hand-made accounts the adopting people take: the one `adopt:` names, else those
    carrying the person's key.  Any other account carrying the key is a second one (key_holders)."""
    by_sam = {a.sam.casefold(): a for a in candidates}
    out: set[str] = set()
    for want in adopting:
        named = by_sam.get((want.adopt or "").casefold())
        out |= {named.dn} if named is not None else {a.dn for a in candidates if a.key.casefold() == want.key.casefold()}
    return out


def key_holders(conn: Connection, target: ADTarget, keys: set[str], known: set[str]) -> list[ForeignObject]:
    """Objects anywhere in the domain, other than `known`, that carry one of `keys` (casefolded
    employeeIDs of people whose hand-made account is being adopted): a second account of the
    same person, outside adopt_from, would stay enabled after their baja.  employeeID is not
    indexed, so one paged search of every object that has one, matched in memory, instead of a
    domain-wide scan per batch of keys."""
    if not keys:
        return []
    found = []
    for e in paged_search(conn, target.base_dn, "(employeeID=*)", ["sAMAccountName", "userPrincipalName",
                                                                     "employeeID"]):
        a = _canonical(e["attributes"])
        key = _one(a, "employeeID") or ""
        if key.casefold() in keys and e["dn"] not in known:
            found.append(ForeignObject(e["dn"], _one(a, "sAMAccountName"), _one(a, "userPrincipalName"), key))
    return found


def _renamed(candidates: list[Account], adopting: list[Account]) -> list[Account]:
    """The adopting people whose sAMAccountName or UPN is not their hand-made account's: those
    names are looked for across the domain (indexed), the key is not."""
    by_key = {a.key: a for a in candidates if a.key}
    by_sam = {a.sam.casefold(): a for a in candidates}
    out = []
    for want in adopting:
        have = by_sam.get((want.adopt or "").casefold()) or by_key.get(want.key)
        if have is None or want.sam.casefold() != have.sam.casefold() or \
                (want.attributes.get("userPrincipalName") or "").casefold() != \
                (have.attributes.get("userPrincipalName") or "").casefold():
            out.append(want)
    return out


# Well-known privileged groups, by SID (their names differ between languages of Windows):
# Administrators, Account, Server, Print and Backup Operators (builtin), then Domain Admins,
# Schema Admins, Enterprise Admins and Group Policy Creator Owners (relative to the domain).
_BUILTIN_PRIVILEGED = ("S-1-5-32-544", "S-1-5-32-548", "S-1-5-32-549", "S-1-5-32-550", "S-1-5-32-551")
_DOMAIN_PRIVILEGED = (512, 518, 519, 520)
PRIVILEGED_NAMES = ("Domain Admins", "Enterprise Admins", "Schema Admins",  # not for people: directory names
                    "Group Policy Creator Owners", "Key Admins", "Enterprise Key Admins",  # not for people
                    "Cert Publishers", "DnsAdmins")  # not for people
ESSENTIAL_PRIVILEGED = frozenset({"administrators", "domain admins"})  # not for people


def sid_text(value) -> str | None:
    """A SID as the directory sends it (binary, without the schema) in its S-1-5-21-… form."""
    if isinstance(value, str):
        return value if value.startswith("S-") else None
    if not isinstance(value, (bytes, bytearray)) or len(value) < 8:
        return None
    count = value[1]
    authority = int.from_bytes(value[2:8], "big")
    subs = [int.from_bytes(value[8 + 4 * i:12 + 4 * i], "little") for i in range(count)]
    return "-".join(["S", str(value[0]), str(authority), *map(str, subs)])


def _privileged_groups(conn: Connection, target: ADTarget) -> list[str]:
    conn.search(target.base_dn, "(objectClass=*)", "BASE", attributes=["objectSid"])
    entries = [e for e in conn.response or () if e.get("type") == "searchResEntry"]
    sid = sid_text(_one(entries[0]["attributes"], "objectSid")) if entries else None
    sids = list(_BUILTIN_PRIVILEGED) + ([f"{sid}-{rid}" for rid in _DOMAIN_PRIVILEGED] if sid else [])
    # Without the schema the domain's SID may arrive mangled: the domain groups are then found by
    # their English names too (Domain and Enterprise Admins are also inside Administrators).
    names = PRIVILEGED_NAMES
    query = "(|" + "".join(f"(objectSid={s})" for s in sids) + "".join(f"(cn={n})" for n in names) + ")"
    found = [e["dn"] for e in paged_search(conn, target.base_dn, f"(&(objectClass=group){query})", ["cn"])]
    names_found = {dnlib.first_value(g).casefold() for g in found}
    if not ESSENTIAL_PRIVILEGED <= names_found:  # fail closed: never adopt blind
        raise ReconcilerError(_("cannot find the domain's privileged groups (Administrators, Domain Admins) to keep "
                                "their members from being adopted; nothing is adopted. Can {bind} read them?",
                                bind=target.login[0]))
    return found


def _bind_account(target: ADTarget, account: Account) -> bool:
    return any(_binds_as(bind, account) for bind in target.bind_accounts)


def _binds_as(bind_dn: str, account: Account) -> bool:
    bind = bind_dn.casefold()
    if "=" in bind and account.dn and dnlib.same(bind_dn, account.dn):
        return True
    return bind in {(account.dn or "").casefold(), account.sam.casefold(),
                    (account.attributes.get("userPrincipalName") or "").casefold()} or \
        bind.split("@")[0].split("\\")[-1] == account.sam.casefold()


def _privileged_members(conn: Connection, groups: list[str]) -> set[str]:
    """Every object inside the privileged groups, through nesting: their `member` lists read
    group by group (they hold a handful; asking the directory for every account's in-chain
    membership instead costs Samba a minute for 10,000 accounts)."""
    seen, members, todo = set(), set(), list(groups)
    while todo:
        group = todo.pop()
        if group.casefold() in seen:
            continue
        seen.add(group.casefold())
        if not conn.search(group, "(objectClass=*)", "BASE", attributes=["member"]) and \
                conn.result.get("result") not in (0, NO_SUCH_OBJECT):  # fail closed
            raise ReconcilerError(_("cannot read the members of {group} to keep them from being adopted: {error}",
                                    group=group, error=conn.result.get("description")))
        for e in (e for e in conn.response or () if e.get("type") == "searchResEntry"):
            for member in _canonical(e["attributes"]).get("member") or ():
                members.add(member.casefold())
                todo.append(member)  # a member that is no group answers with no members
    return members


def guarded(conn: Connection, target: ADTarget, candidates: list[Account]) -> list[Account]:
    """The candidates for adoption, those the reconciler must never take marked protected:
    trust and machine accounts (a name ending in $), the account it binds as, and members of
    a privileged group, directly or through nesting."""
    if not candidates:
        return []
    privileged = _privileged_members(conn, _privileged_groups(conn, target))
    return [replace(c, protected=True) if c.protected or c.sam.endswith("$") or _bind_account(target, c)
            or (c.dn or "").casefold() in privileged else c for c in candidates]
