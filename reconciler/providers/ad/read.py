"""Reading the actual state of an AD target in bulk.

A full read is one paged search per managed account OU (people and bajas), one for the
groups and one per parent of the OUs the plan needs: never one query per person.  Only names
that new or renamed accounts want are looked up across the whole domain, in batches, so that
an unmanaged account elsewhere holding the same sAMAccountName is a conflict in the plan
instead of a failed add at apply time.
"""
from __future__ import annotations

from typing import Iterable, Iterator

from ldap3 import BASE, LEVEL, SUBTREE, Connection
from ldap3.utils.conv import escape_filter_chars

from ...errors import ReconcilerError
from ...inventory import ADTarget
from . import dn as dnlib
from .diff import ActualDirectory, ForeignObject
from .records import MANAGED_ATTRIBUTES, MARKER, Account, DesiredDirectory

PAGE_SIZE = 1000  # Samba's MaxPageSize
ACCOUNT_ATTRIBUTES = list(MANAGED_ATTRIBUTES) + ["cn", "adminDescription", "userAccountControl", "memberOf",
                                                 "pwdLastSet"]
UF_ACCOUNTDISABLE = 0x2
_LOOKUP_BATCH = 100
NO_SUCH_OBJECT = 32


def paged_search(conn: Connection, base: str, query: str, attributes: list[str],
                 scope=SUBTREE) -> Iterator[dict]:
    cookie = None
    while True:
        conn.search(base, query, scope, attributes=attributes, paged_size=PAGE_SIZE, paged_cookie=cookie)
        if conn.result["result"] == NO_SUCH_OBJECT:
            return
        if conn.result["result"] != 0:
            raise ReconcilerError(f"search under {base} failed: {conn.result['description']} "
                                  f"{conn.result.get('message', '')}".strip())
        for entry in conn.response:
            if entry.get("type") == "searchResEntry":
                yield entry
        control = (conn.result.get("controls") or {}).get("1.2.840.113556.1.4.319")
        cookie = control["value"]["cookie"] if control else None
        if not cookie:
            return


def _one(attrs: dict, name: str) -> str | None:
    value = attrs.get(name)
    if isinstance(value, list):
        value = value[0] if value else None
    return value if value not in ("", None) else None


def _account(entry: dict, groups_ou_key: tuple) -> Account:
    attrs = entry["attributes"]
    uac = int(_one(attrs, "userAccountControl") or 0)
    marker = _one(attrs, "adminDescription") or ""
    applied = marker.split("applied=", 1)[1] if "applied=" in marker else None
    groups = frozenset(dnlib.first_value(g) for g in attrs.get("memberOf") or ()
                       if dnlib.key(dnlib.parent(g)) == groups_ou_key)
    return Account(
        key=_one(attrs, "employeeID") or "", cn=_one(attrs, "cn") or dnlib.first_value(entry["dn"]),
        parent=dnlib.parent(entry["dn"]), attributes={n: _one(attrs, n) for n in MANAGED_ATTRIBUTES},
        enabled=not uac & UF_ACCOUNTDISABLE, groups=groups, dn=entry["dn"], applied_hash=applied,
        must_change_password=_one(attrs, "pwdLastSet") == "0", uac=uac,
    )


def _is_managed(entry: dict) -> bool:
    return (_one(entry["attributes"], "adminDescription") or "").startswith(MARKER)


def read_accounts(conn: Connection, target: ADTarget) -> tuple[dict[str, Account], list[ForeignObject], list[str]]:
    managed: dict[str, Account] = {}
    foreign: list[ForeignObject] = []
    warnings: list[str] = []
    groups_key = dnlib.key(target.groups_ou)
    for base in _distinct_roots([target.people_ou, target.bajas_ou]):
        for entry in paged_search(conn, base, "(&(objectCategory=person)(objectClass=user))", ACCOUNT_ATTRIBUTES):
            account = _account(entry, groups_key)
            if not _is_managed(entry) or not account.key:
                foreign.append(ForeignObject(entry["dn"], account.sam, account.attributes.get("userPrincipalName"),
                                             account.key or None))
            elif account.key in managed:
                warnings.append(f"two managed accounts carry employeeID {account.key}: "
                                f"{managed[account.key].dn} and {entry['dn']}; the second is left alone")
                foreign.append(ForeignObject(entry["dn"], account.sam, None, None))
            else:
                managed[account.key] = account
    return managed, foreign, warnings


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
            a = e["attributes"]
            found[e["dn"]] = ForeignObject(e["dn"], _one(a, "sAMAccountName"), _one(a, "userPrincipalName"),
                                           _one(a, "employeeID"))
    return list(found.values())


def read_directory(conn: Connection, target: ADTarget, desired: DesiredDirectory) -> ActualDirectory:
    accounts, foreign, warnings = read_accounts(conn, target)
    needing_names = [want for key, want in desired.accounts.items()
                     if want.enabled and (key not in accounts or accounts[key].sam.casefold() != want.sam.casefold())]
    # A marked account outside the managed OUs (moved there by hand) still holds its names.
    known = {f.dn for f in foreign} | {a.dn for a in accounts.values()}
    groups = read_groups(conn, target)
    new_groups = [name for name in desired.groups if name.casefold() not in groups]
    foreign += [f for f in lookup_names(conn, target, needing_names, new_groups) if f.dn not in known]
    return ActualDirectory(accounts=accounts, foreign=tuple(foreign), ous=read_ous(conn, desired.ous),
                           groups=groups, warnings=tuple(warnings))
