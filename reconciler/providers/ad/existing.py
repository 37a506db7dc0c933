"""Reading an existing directory for import (Capability.IMPORT), in bulk and read-only: one paged
search per search base for the people and the computers, one for every group of the domain
(nesting is followed in memory)."""
from __future__ import annotations

import datetime as dt

from ldap3 import Connection

from reconciler import dn as dnlib
from reconciler.providers.ad.read import _canonical, _one, _protected, paged_search
from reconciler.providers.ad.records import MARKER
from reconciler.providers.ad.target import ADTarget
from reconciler.providers.found import DirectoryRead, Found, FoundComputer

PERSON_ATTRIBUTES = ("sAMAccountName", "userPrincipalName", "givenName", "sn", "displayName", "employeeID", "title",
                     "company", "division", "department", "physicalDeliveryOfficeName", "telephoneNumber",
                     "ipPhone", "mail")
READ = [*PERSON_ATTRIBUTES, "userAccountControl", "memberOf", "lastLogonTimestamp", "whenChanged", "whenCreated",
        "adminDescription", "isCriticalSystemObject", "adminCount"]
COMPUTER_READ = ["sAMAccountName", "location", "managedBy", "userAccountControl", "adminDescription",
                 "isCriticalSystemObject"]
UF_ACCOUNTDISABLE = 0x2
_FILETIME_EPOCH = dt.datetime(1601, 1, 1, tzinfo=dt.timezone.utc)


def filetime(value) -> dt.datetime | None:
    """lastLogonTimestamp (100 ns since 1601, as text or a datetime) as an aware time; None for never."""
    if isinstance(value, dt.datetime):
        return value if value.year > 1601 else None
    try:
        ticks = int(value)
    except (TypeError, ValueError):
        return None
    return _FILETIME_EPOCH + dt.timedelta(microseconds=ticks // 10) if ticks > 0 else None


def generalized_time(value) -> dt.datetime | None:
    """whenChanged ("20261202142501.0Z", or a datetime) as an aware time."""
    if isinstance(value, dt.datetime):
        return value
    try:
        return dt.datetime.strptime(str(value)[:14], "%Y%m%d%H%M%S").replace(tzinfo=dt.timezone.utc)
    except ValueError:
        return None


def _found(entry: dict) -> Found:
    a = _canonical(entry["attributes"])
    uac = int(_one(a, "userAccountControl") or 0)
    return Found(
        dn=entry["dn"], attributes={n: _one(a, n) for n in PERSON_ATTRIBUTES}, enabled=not uac & UF_ACCOUNTDISABLE,
        groups=tuple(a.get("memberOf") or ()), last_logon=filetime(_one(a, "lastLogonTimestamp")),
        changed=generalized_time(_one(a, "whenChanged")), created=generalized_time(_one(a, "whenCreated")),
        protected=_protected(a), managed=(_one(a, "adminDescription") or "").startswith(MARKER))


def read_existing(conn: Connection, target: ADTarget, bases: tuple[str, ...]) -> DirectoryRead:
    """Every user account and computer under `bases` (default: the whole domain), and every
    group's nesting."""
    accounts: dict[str, Found] = {}
    for base in bases or (target.base_dn,):
        for entry in paged_search(conn, base, "(&(objectCategory=person)(objectClass=user))", READ):
            accounts.setdefault(entry["dn"], _found(entry))
    computers: dict[str, FoundComputer] = {}
    for base in bases or (target.base_dn,):
        for entry in paged_search(conn, base, "(objectCategory=computer)", COMPUTER_READ):
            a = _canonical(entry["attributes"])
            uac = int(_one(a, "userAccountControl") or 0)
            computers.setdefault(entry["dn"], FoundComputer(
                entry["dn"], (_one(a, "sAMAccountName") or "").rstrip("$") or dnlib.first_value(entry["dn"]),
                _one(a, "location"), _one(a, "managedBy"), not uac & UF_ACCOUNTDISABLE,
                str(_one(a, "isCriticalSystemObject") or "").upper() == "TRUE",
                (_one(a, "adminDescription") or "").startswith(MARKER)))
    parents, names = {}, {}
    for entry in paged_search(conn, target.base_dn, "(objectClass=group)", ["memberOf"]):
        k = dnlib.key(entry["dn"])
        names[k] = dnlib.first_value(entry["dn"])
        parents[k] = tuple(_canonical(entry["attributes"]).get("memberOf") or ())
    return DirectoryRead(tuple(sorted(accounts.values(), key=lambda f: f.dn)), parents, names,
                         tuple(sorted(computers.values(), key=lambda c: c.dn)), target.groups_ou,
                         (target.people_ou, target.bajas_ou))
