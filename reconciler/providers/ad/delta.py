"""Reading only what changed in an AD target since the last read (`delta_read_hours`).

Every write in AD or Samba stamps the object with the DC's next update sequence number
(uSNChanged), and the root DSE tells the highest one committed.  Microsoft's documented way to
follow a directory without reading it all ("polling for changes using uSNChanged") is what
this module does, from the snapshot of the last read (snapshot.py):

  1. the watermark: the DC (dsServiceName, invocationId) and its highestCommittedUSN, read
     first.  Another DC, a new invocationId (a restore), a USN behind the snapshot's, or a
     snapshot older than `delta_read_hours` since its full read: a full read.  The same USN:
     nothing was written anywhere in the domain, the snapshot is the directory.
  2. a search of every object written since then (a few writes number by number, many as
     the range: written_since), deleted ones included (the Show Deleted
     and Show Recycled controls: a tombstone keeps its objectGUID).  Seeing deletions needs
     the bind account to list CN=Deleted Objects (AD lets only administrators by default; see
     the README); when it sees no tombstone at all there, the delta cannot be trusted and the
     read is full, with a warning.  Of what it returns: any organizational unit or container
     (created, renamed, moved, deleted) means a full read, since they decide which accounts
     are in scope and moving one moves the accounts below it without writing them; a deleted
     object leaves the snapshot; a user object that is a person in scope is taken as it is
     now, one moved out of scope (or no longer a person) is dropped.
  3. every group changed since then (the same search returns them): adding or removing a
     member writes the group, not the account (memberOf is computed from the groups' member
     lists).  For each group in the
     groups OU, its whole member list is read (ldap3 asks for every range) and every
     account's memberOf is set from it.  A managed group renamed, moved or deleted, or one
     whose members cannot be read or vanished all at once: a full read.

The result is the snapshot as a full read would find it now; tests/test_delta_read_lab.py
drives random hand edits and compares the two.  Changes made while the searches run carry
USNs above the watermark: searched number by number, they are searched too, up to a watermark
read after them (written_since); asked as the range, they are found by it.  Either way they
are read again next time, never lost.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum

from ldap3 import BASE, LEVEL, SUBTREE, Connection

from reconciler import dn as dnlib
from reconciler.errors import ReconcilerError
from reconciler.i18n import lazy
from reconciler.providers.ad import snapshot
from reconciler.providers.ad.read import KEPT_ATTRIBUTES, _canonical, _distinct_roots, paged_search, \
    read_account_entries
from reconciler.providers.ad.snapshot import Snapshot, Watermark
from reconciler.providers.ad.target import ADTarget

SHOW_DELETED = ("1.2.840.113556.1.4.417", True, None)
SHOW_RECYCLED = ("1.2.840.113556.1.4.2064", True, None)  # with AD's Recycle Bin, a deleted object deleted again
DELETED_OBJECTS = "<WKGUID=18e2ea80684f11d2b9aa00c04f79f805,{base}>"  # the well-known container, by its GUID
# Groups as well as groupOfNames: either one's members carry it in memberOf.
GROUPS = "(|(objectClass=group)(objectClass=groupOfNames))"
_KEPT = frozenset(a.casefold() for a in KEPT_ATTRIBUTES)
_CLASSIFIED_BY = ["objectCategory", "objectClass", "isDeleted"]


class FullReadNeeded(Exception):
    """Why the snapshot cannot be brought forward (a Message); `warn`: a person must act (a
    missing permission), not a routine reason (the weekly full read)."""

    def __init__(self, why: str, warn: bool = False):
        super().__init__(why)
        self.why, self.warn = why, warn


def read_entries(conn: Connection, target: ADTarget, more: list[Connection], full: bool = False
                 ) -> tuple[list[dict], str | None, Snapshot | None]:
    """The search entries of every account under the managed OUs, as a full read finds them
    (attribute names canonical):
    from the snapshot brought forward when it can be, else by a full read (kept as the next
    snapshot).  With a warning when a person must act for the delta read to work, and the
    snapshot the entries are (None when there is none: a settled plan, settled.py, needs one)."""
    key = snapshot.key_of(target)
    now = watermark(conn)
    if now is None:
        entries = read_account_entries(conn, target, more, KEPT_ATTRIBUTES)
        for e in entries:
            e["attributes"] = _canonical(e["attributes"])
        return entries, lazy(
            "target {target}: the directory does not tell its update sequence numbers: every read is full",
            target=target.name), None
    kept = None if full else snapshot.load(key, target)
    warning = None
    if kept is not None:
        try:
            fresh = bring_forward(conn, target, kept, now, _distinct_roots([target.people_ou, target.bajas_ou]),
                                  target.delta_read_hours)
            if fresh.watermark != kept.watermark:
                snapshot.save(fresh, target)
            return [{"dn": dn, "attributes": attrs} for dn, attrs in fresh.entries.values()], None, fresh
        except FullReadNeeded as exc:
            warning = lazy("target {target}: a full read: {why}", target=target.name, why=exc.why) if exc.warn else None
        except ReconcilerError as exc:  # a search refused: the full read says so if it is refused too
            warning = lazy("target {target}: a full read: {why}", target=target.name, why=str(exc))
    started = time.time()
    entries = read_account_entries(conn, target, more, KEPT_ATTRIBUTES)
    for e in entries:
        e["attributes"] = _canonical(e["attributes"])
    groups = {_guid(e): e["dn"] for e in paged_search(conn, target.groups_ou, GROUPS, ["objectGUID"], LEVEL)}
    # Readers that reached another DC (a name that balances over several) read at other USNs.
    read = None
    if all((mark := watermark(c)) is not None and mark.continues(now) for c in more):
        read = Snapshot(key, now, started, {_guid(e): (e["dn"], e["attributes"]) for e in entries}, groups)
        snapshot.save(read, target)
    return entries, warning, read


def watermark(conn: Connection) -> Watermark | None:
    """The DC's identity and highest committed USN, or None when it does not tell (not AD)."""
    conn.search("", "(objectClass=*)", BASE, attributes=["dsServiceName", "highestCommittedUSN"])
    root = _only(conn)
    server, usn = _first(root, "dsServiceName"), _first(root, "highestCommittedUSN")
    if not server or not usn:
        return None
    conn.search(server, "(objectClass=*)", BASE, attributes=["invocationId"])
    invocation = _first(_only(conn), "invocationId")
    return Watermark(server, invocation, int(usn)) if invocation else None


def _only(conn: Connection) -> dict:
    entries = [e for e in conn.response or () if e.get("type") == "searchResEntry"]
    return {k.lower(): v for k, v in entries[0]["attributes"].items()} if entries else {}


def _first(attrs: dict, name: str) -> str | None:
    value = attrs.get(name.lower())
    if isinstance(value, list):
        value = value[0] if value else None
    return str(value) if value not in (None, "") else None


def in_scope(dn: str, roots: list[str]) -> bool:
    """Whether a full read (read._subtrees) would find an account at `dn`: directly in a root,
    or anywhere under an OU directly in a root."""
    k = dnlib.key(dn)
    for root in roots:
        r = dnlib.key(root)
        if len(k) > len(r) and k[len(k) - len(r):] == r:
            return len(k) == len(r) + 1 or k[len(k) - len(r) - 1][0] == "ou"
    return False


def bring_forward(conn: Connection, target: ADTarget, snap: Snapshot, now: Watermark, roots: list[str],
                  max_age_hours: float) -> Snapshot:
    """`snap` updated to what the directory holds at `now`; raises FullReadNeeded."""
    if not now.continues(snap.watermark):
        raise FullReadNeeded(lazy("the directory answered from another domain controller, or one restored "
                                  "since the last read"))
    age = time.time() - snap.full_read_at
    if age > max_age_hours * 3600 or age < -300:  # a clock set back must not keep a snapshot forever
        raise FullReadNeeded(lazy("the last full read is older than delta_read_hours ({hours})",
                                  hours=max_age_hours))
    if now.usn == snap.watermark.usn:
        return Snapshot(snap.key, now, snap.full_read_at, snap.entries, snap.groups)
    entries, groups = dict(snap.entries), dict(snap.groups)
    sees_deletions(conn, target)
    written_groups = []
    written, now = written_since(conn, target, snap.watermark, now, KEPT_ATTRIBUTES)
    for w in written:
        if w.holder:  # created, renamed, moved or deleted
            raise FullReadNeeded(lazy("an organizational unit or container changed since the last read"))
        if w.kind is Kind.GROUP:
            written_groups.append((w.guid, w.dn))
        elif w.kind is Kind.DELETED:
            if w.guid in groups:
                raise FullReadNeeded(lazy("the managed group {group} was deleted",
                                          group=dnlib.first_value(groups[w.guid])))
            entries.pop(w.guid, None)
        elif w.kind is Kind.PERSON and in_scope(w.dn, roots):
            entries[w.guid] = (w.dn, w.only(_KEPT))
        elif w.kind in (Kind.PERSON, Kind.COMPUTER, Kind.OTHER_USER):  # out of scope, or no longer a person
            entries.pop(w.guid, None)
    _memberships(conn, target, written_groups, entries, groups)
    return Snapshot(snap.key, now, snap.full_read_at, entries, groups)


class Kind(Enum):
    DELETED = "deleted"  # a tombstone (Show Deleted, Show Recycled): it keeps its objectGUID
    HOLDER = "holder"  # an organizational unit or container, created, renamed or moved
    GROUP = "group"
    PERSON = "person"  # objectClass user, objectCategory person: what a full read finds
    COMPUTER = "computer"  # objectClass user, objectCategory computer
    OTHER_USER = "other-user"  # objectClass user of another category (changed by hand?)
    OTHER = "other"


@dataclass(frozen=True)
class Written:
    """One object written since a watermark, as the one search returned it."""
    guid: str
    dn: str
    attributes: dict  # canonical names (read._canonical)
    kind: Kind
    holder: bool  # an OU or a container (also when deleted)

    def only(self, names: frozenset[str]) -> dict:
        """The attributes among `names` (casefolded): what a read of that kind asks for."""
        return {k: v for k, v in self.attributes.items() if k.casefold() in names}


# Samba indexes uSNChanged for equality only: `(uSNChanged>=N)` walks every object of the
# domain (0.6 s at 100,000 people, however little was written), while `(uSNChanged=N)` is an
# index lookup.  So a short range of USNs is asked as ORs of equalities, CHUNK to a search (a
# longer OR costs Samba more than its parts: 300 USNs took 0.06 s in chunks of 100, 3,000 in
# one OR 1.9 s), and a range longer than EQUALITIES as the range.  AD indexes both alike.
CHUNK = 100
EQUALITIES = 1000
ROUNDS = 3


def _equalities(first: int, last: int) -> list[str]:
    return ["(|" + "".join(f"(uSNChanged={u})" for u in range(lo, min(lo + CHUNK, last + 1))) + ")"
            for lo in range(first, last + 1, CHUNK)]


def written_since(conn: Connection, target: ADTarget, since: Watermark, now: Watermark,
                  attributes: list[str]) -> tuple[list[Written], Watermark]:
    """Every object written after `since`, deleted ones included, with `attributes`,
    classified (the latest state of each); and the watermark they are complete up to (`now`,
    or a later one).

    A short range is searched USN by USN, up to `now`.  An object written again meanwhile has
    left the USN it would have been found by for one above `now`, so the watermark is read
    again, and the USNs up to it are searched too, until no write came in between: then every
    object's last write up to that watermark was committed before its USN was searched.  After
    ROUNDS, or for a long range, the open range `(uSNChanged>=…)`, which sees everything
    written up to its search, with `now`.

    The category is judged here, as a full read's search does (objectCategory=person): an
    account whose category was changed by hand is no longer a person.  One search for all
    kinds: on Samba, a filter that adds a class to the USN range walks that class's whole index."""
    asked = sorted({*attributes, *_CLASSIFIED_BY}, key=str.casefold)
    first, last, found = since.usn + 1, now.usn, {}
    for _ in range(ROUNDS):
        if last - first + 1 > EQUALITIES:
            break
        found.update((w.guid, w) for f in _equalities(first, last) for w in _written(conn, target, f, asked))
        again = watermark(conn)
        if again is None or not again.continues(now):
            raise FullReadNeeded(lazy("the directory answered from another domain controller during the read"))
        if again.usn == last:
            return list(found.values()), again
        first, last = last + 1, again.usn
    return list(_written(conn, target, f"(uSNChanged>={since.usn + 1})", asked)), now


def _written(conn: Connection, target: ADTarget, usns: str, asked: list[str]) -> Iterator[Written]:
    for e in paged_search(conn, target.base_dn, usns, asked, SUBTREE, [SHOW_DELETED, SHOW_RECYCLED]):
        attrs = _canonical(e["attributes"])
        classes = {str(c).casefold() for c in _values(attrs, "objectClass")}
        holder = bool(classes & {"organizationalunit", "container"})
        if any(str(v).upper() == "TRUE" for v in _values(attrs, "isDeleted")):
            kind = Kind.DELETED
        elif holder:
            kind = Kind.HOLDER
        elif classes & {"group", "groupofnames"}:
            kind = Kind.GROUP
        elif "user" in classes:
            category = _values(attrs, "objectCategory")
            name = dnlib.first_value(str(category[0])).casefold() if category else ""
            kind = {"person": Kind.PERSON, "computer": Kind.COMPUTER}.get(name, Kind.OTHER_USER)
        else:
            kind = Kind.OTHER
        yield Written(_guid(e), e["dn"], attrs, kind, holder)


def _values(attrs: dict, name: str) -> list:
    return next((v for k, v in attrs.items() if k.casefold() == name.casefold()), None) or []


def _guid(entry: dict) -> str:
    for name, value in entry["attributes"].items():
        if name.lower() == "objectguid" and value:
            return value[0]
    raise ReconcilerError(lazy("the directory returned {dn} without its objectGUID", dn=entry["dn"]))


def sees_deletions(conn, target: ADTarget) -> None:
    """Raises FullReadNeeded unless the bind account sees a tombstone: one that sees none
    cannot tell an empty CN=Deleted Objects from one it may not list."""
    container = DELETED_OBJECTS.format(base=target.base_dn)
    conn.search(container, "(isDeleted=TRUE)", LEVEL, attributes=["1.1"], controls=[SHOW_DELETED], size_limit=1)
    if not any(e.get("type") == "searchResEntry" for e in conn.response or ()):
        raise FullReadNeeded(lazy("the account {account} sees no deleted object in the directory (it needs List "
                                  "Contents and Read Property on CN=Deleted Objects to find deletions)",
                                  account=target.login[0]), warn=True)


def _memberships(conn, target: ADTarget, written: list[tuple[str, str]], entries: dict, groups: dict) -> None:
    """Every account's memberOf, for each group in the groups OU that changed (`written`:
    objectGUID and DN of the groups written since), from its members."""
    changed: dict[tuple, set] = {}
    for guid, dn in written:
        if guid in groups and not dnlib.same(groups[guid], dn):
            raise FullReadNeeded(lazy("the managed group {group} was renamed or moved", group=groups[guid]))
        if dnlib.same(dnlib.parent(dn), target.groups_ou):
            groups[guid] = dn
            changed[dnlib.key(dn)] = (dn, {dnlib.key(m) for m in members(conn, dn)})
    if not changed:
        return
    # A group that shows no member while accounts held it: emptied by hand, or its member list
    # hidden from this account (memberOf, which a full read sees, is the accounts' own).
    held = {dnlib.key(m) for _, attrs in entries.values() for m in attrs.get("memberOf", ())}
    for key, (dn, found) in changed.items():
        if not found and key in held:
            raise FullReadNeeded(lazy("the group {group} shows no member where accounts held it", group=dn))
    for guid, (dn, attrs) in list(entries.items()):
        member_of = [m for m in attrs.get("memberOf", []) if dnlib.key(m) not in changed]
        member_of += [group_dn for group_dn, members_ in changed.values() if dnlib.key(dn) in members_]
        if member_of != attrs.get("memberOf", []):
            entries[guid] = (dn, {**attrs, "memberOf": member_of})


def members(conn: Connection, dn: str) -> list[str]:
    """A group's whole member list (past MaxValRange values, ldap3 asks for the other ranges)."""
    conn.search(dn, "(objectClass=*)", BASE, attributes=["member"])
    if conn.result["result"] != 0 or not any(e.get("type") == "searchResEntry" for e in conn.response or ()):
        raise FullReadNeeded(lazy("the members of the group {group} could not be read", group=dn))
    return [m for name, values in _only(conn).items() if name.split(";")[0] == "member" for m in values]
