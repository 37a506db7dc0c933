"""A settled plan: proof that nothing the plan reads has changed since a plan that found
nothing to do.

A drift check that runs every hour (or every few minutes, as Argo CD does) on a directory of
100,000 people mostly finds nothing, yet a full plan reads and compares everyone.  When a full
plan of a target finds no change, no conflict and no warning, the engine asks the provider to
remember it (`settle`): the inputs the engine vouches for (the commit, the inventory, the
code, the day, engine.settled_inputs) and, from the very read the plan used, one digest per
account (the snapshot's entries, snapshot.py), per computer, and the groups of the groups OU,
with the watermark of that read.  The next plan with the same inputs asks (`holds`) whether
anything it would read differs, from the DC's update sequence numbers, as delta.py does:

  - the same highestCommittedUSN on the same DC: nothing was written in the domain;
  - otherwise, since the remembered USN: no organizational unit or container changed; no
    remembered object was deleted (tombstones, Show Deleted and Show Recycled); every account
    written since (a logon time stamp, a password change) reads exactly as remembered, in scope
    as before, and none is new in scope; no group of the groups OU (nor one remembered) was
    written; every computer written since under the people and bajas OUs reads as remembered;
    no account under adopt_from now carries the key or `adopt:` name of a declared person
    without an account; and the plan's OUs and entitlement groups are all still listed (an
    object hidden from the read account by its security descriptor is written, not found).

If so, the plan is the empty plan it was, and the engine neither loads the desired state nor
builds anyone's account: seconds whatever the size.

When the only difference is that some remembered accounts now read otherwise (a title or a
disabled flag changed by hand) or some groups' member lists changed, while each account keeps
its employee key, `holds` names those keys (`Standing.written`): everyone else is proved
unchanged, so the engine plans just them, as an incremental plan does.  For that the memory
keeps, in a second file read only then (`.detail.settled.json`), each account's key and DN and
each group's members in scope, as the plan read them (the accounts' memberOf).  Anything else, or any doubt (a search
that fails, the read account seeing no tombstone, a memory older than `delta_read_hours` since
its full read, a file that is not the runner's own), means a normal plan.  The memory is kept
beside the snapshot, under the same rules (read_trusted, write_private), and removed with it.
"""
from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections import Counter
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

from ldap3 import Connection

from reconciler import dn as dnlib
from reconciler.desired.schemacache import cached_time, json_pieces, read_trusted, require_cached, write_private
from reconciler.errors import ReconcilerError
from reconciler.providers.ad import delta, snapshot
from reconciler.providers.ad.delta import Kind, Written
from reconciler.providers.ad.read import KEPT_ATTRIBUTES, _distinct_roots, _is_managed, _one, read_groups, \
    read_ous
from reconciler.providers.ad.snapshot import Snapshot, Watermark
from reconciler.providers.ad.computers import READ as COMPUTER_READ
from reconciler.providers.ad.target import ADTarget
from reconciler.providers.contract import Standing

FORMAT = 4
_PERSON = frozenset(a.casefold() for a in KEPT_ATTRIBUTES)  # what a snapshot entry holds
_COMPUTER = frozenset(a.casefold() for a in [*COMPUTER_READ, "objectGUID"])  # computers.computer_entries
_READ = [*KEPT_ATTRIBUTES, *COMPUTER_READ]


def entry_digest(dn: str, attributes: dict) -> str:
    """What a plan reads of one object, as a short digest: its DN and attributes (names
    casefolded; memberOf in any order, the plan treats it as a set; of pwdLastSet only whether
    it is 0, "must change at next logon": a password changed at logon is no change to plan)."""
    canonical = {}
    for name, values in attributes.items():
        name = name.casefold()
        if name == "memberof":
            values = sorted(values)
        elif name == "pwdlastset":
            values = [str(v) == "0" for v in values]
        if name != "objectcategory" and values:  # requested but absent: as if not asked
            canonical[name] = values
    text = json.dumps([dn, canonical], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()


@dataclass(frozen=True)
class Settled:
    key: str  # the snapshot's key: code, target settings, bind account
    inputs: str  # what the engine vouches for (engine.settled_inputs)
    watermark: Watermark
    full_read_at: float  # of the read it comes from: it expires with it (delta_read_hours)
    planned_at: float  # when the plan that found nothing to do was made
    accounts: dict[str, str]  # objectGUID -> entry_digest, every account in scope
    computers: dict[str, str]  # objectGUID -> entry_digest, every computer under the people and bajas OUs
    groups: frozenset[str]  # objectGUIDs of the groups of the groups OU
    # What the plan looked for by name and found, listed again whenever the USN moved (an
    # object hidden from the read account by its security descriptor is written, but not
    # found by a search of changes): its OUs, and the group names of the entitlements.
    ous: tuple[str, ...] = ()
    group_names: tuple[str, ...] = ()
    # Casefolded employee keys and `adopt:` names of declared people without an account: an
    # account under adopt_from that takes one of them would be adopted (read.adoptable_accounts).
    adopting: frozenset[str] = frozenset()
    nonce: str = ""  # names the detail file made with it (a detail of another memory is not used)


@dataclass(frozen=True)
class Detail:
    """What `holds` needs to name the keys of what changed (read only then), as parallel lists
    over the accounts in scope: JSON of lists of strings reads several times faster than of
    100,000 small lists, and a plan of a hundred people looks up a hundred of them."""
    guids: list[str]  # each account's objectGUID
    keys: list[str]  # its employee key ("" without one)
    dns: list[str]  # its DN as the plan read it, casefolded
    marked: str  # "1" where it carries the marker, else "0"
    shared: frozenset[str]  # keys more than one account in scope carries
    groups: dict[str, tuple[str, list[int]]]  # objectGUID -> (DN, its members in scope: positions in the lists)

    @cached_property
    def position(self) -> dict[str, int]:
        return dict(zip(self.guids, range(len(self.guids))))

    def members(self, group: str) -> frozenset[str] | None:
        """The objectGUIDs of a group's remembered members in scope (empty: none, or not a
        remembered group); None when its positions are not positions of the lists (damage)."""
        found = self.groups.get(group)
        if found is None:
            return frozenset()
        count, positions = len(self.guids), found[1]
        if set(map(type, positions)) - {int} or (positions and not 0 <= min(positions) <= max(positions) < count):
            return None
        return frozenset(map(self.guids.__getitem__, positions))


def path_of(target: ADTarget, key: str, suffix: str = ".settled.json") -> Path | None:
    base = snapshot.path(key, target)
    return base.with_name(base.stem + suffix) if base is not None else None


DETAIL = ".detail.settled.json"


def record(target: ADTarget, read: Snapshot, computers: dict[str, str], inputs: str, ous=(), group_names=(),
           adopting=frozenset()) -> None:
    """Remember that the plan of `inputs` over `read` (and `computers`, read by the same plan)
    found nothing to do.  Atomically, 0600, or not at all."""
    path = path_of(target, read.key)
    if path is None:
        return
    accounts = {guid: entry_digest(dn, attrs) for guid, (dn, attrs) in read.entries.items()}
    nonce = secrets.token_hex(12)
    if not _write_detail(path_of(target, read.key, DETAIL), nonce, read):
        return
    _write(path, Settled(read.key, inputs, read.watermark, read.full_read_at, time.time(), accounts, computers,
                         frozenset(read.groups), tuple(ous), tuple(group_names), frozenset(adopting), nonce))


def _write_detail(path: Path, nonce: str, read: Snapshot) -> bool:
    """Each account's key, DN and marker, and each group's members in scope (from their memberOf)."""
    group_of = {dnlib.key(dn): guid for guid, dn in read.groups.items()}
    by_text: dict[str, str | None] = {}  # a memberOf value, as written, -> the group's GUID (or None)
    members: dict[str, list[int]] = {guid: [] for guid in read.groups}
    keys, dns, marked = [], [], []
    for position, (dn, attrs) in enumerate(read.entries.values()):
        keys.append(str(_one(attrs, "employeeID") or ""))
        dns.append(dn.casefold())
        marked.append("1" if _marked(attrs) else "0")
        for value in attrs.get("memberOf", ()):
            if value not in by_text:
                by_text[value] = group_of.get(dnlib.key(value))
            if (group := by_text[value]) is not None:
                members[group].append(position)
    head = {"format": FORMAT, "nonce": nonce, "marked": "".join(marked),
            "groups": {guid: [read.groups[guid], found] for guid, found in members.items()},
            "guids": list(read.entries), "keys": keys}
    return write_private(path, json_pieces(head, "dns", dns))  # in pieces: written beside the whole plan


def load_detail(target: ADTarget, settled: Settled) -> Detail | None:
    path = path_of(target, settled.key, DETAIL)
    data = read_trusted(path) if path is not None and settled.nonce else None
    if data is None:
        return None
    try:
        raw = json.loads(data)
        require_cached(raw["format"] == FORMAT and raw["nonce"] == settled.nonce)
        guids, keys, dns, marked, groups = (raw[k] for k in ("guids", "keys", "dns", "marked", "groups"))
        # Checked in C (a loop in Python over 100,000 accounts cost what the rest does).
        require_cached(all(isinstance(v, list) and not set(map(type, v)) - {str} for v in (guids, keys, dns)))
        require_cached(isinstance(marked, str) and not set(marked) - {"0", "1"})
        # DNs the directory holds apart may casefold alike (Strauß, Strauss): members are
        # matched by their casefolded DN, so such a memory cannot tell them apart.
        require_cached(len(guids) == len(keys) == len(dns) == len(marked) == len(set(guids)) == len(set(dns)))
        require_cached(isinstance(groups, dict) and all(isinstance(v, list) and len(v) == 2 and isinstance(v[0], str)
                                                        and isinstance(v[1], list) for v in groups.values()))
        shared = frozenset(k for k, n in Counter(keys).items() if n > 1)  # from the keys, never kept apart
        return Detail(guids, keys, dns, marked, shared,
                      {str(g): (dn, positions) for g, (dn, positions) in groups.items()})
    except Exception:  # noqa: BLE001 - a damaged detail means a normal plan, never a crash
        return None


def _write(path: Path, settled: Settled) -> None:
    mark = settled.watermark
    text = json.dumps({"format": FORMAT, "key": settled.key, "inputs": settled.inputs, "server": mark.server,
                       "invocation": mark.invocation, "usn": mark.usn, "full_read_at": settled.full_read_at,
                       "planned_at": settled.planned_at, "accounts": settled.accounts,
                       "computers": settled.computers, "groups": sorted(settled.groups), "ous": list(settled.ous),
                       "group_names": list(settled.group_names), "adopting": sorted(settled.adopting),
                       "nonce": settled.nonce},
                      ensure_ascii=False, separators=(",", ":"))
    write_private(path, text.encode("utf-8", "surrogatepass"))


def load(target: ADTarget, key: str, inputs: str) -> Settled | None:
    path = path_of(target, key)
    data = read_trusted(path) if path is not None else None
    if data is None:
        return None
    try:
        raw = json.loads(data)
        require_cached(raw["format"] == FORMAT and raw["key"] == key and raw["inputs"] == inputs)
        accounts, computers = raw["accounts"], raw["computers"]
        require_cached(all(isinstance(v, str) for d in (accounts, computers) for v in d.values()))
        return Settled(key, inputs, Watermark(str(raw["server"]), str(raw["invocation"]), int(raw["usn"])),
                       cached_time(raw["full_read_at"]), cached_time(raw["planned_at"]), accounts, computers,
                       frozenset(map(str, raw["groups"])), tuple(map(str, raw["ous"])),
                       tuple(map(str, raw["group_names"])), frozenset(map(str, raw["adopting"])),
                       str(raw["nonce"]))
    except Exception:  # noqa: BLE001 - a damaged memory means a normal plan, never a crash
        return None


def remembered(target: ADTarget, inputs: str) -> bool:
    """Whether a memory of `inputs` may exist, from the first bytes of its file (the inputs are
    written near the start): a hint that a plan should ask `holds` before reading."""
    path = path_of(target, snapshot.key_of(target))
    start = read_trusted(path, limit=1024) if path is not None else None
    return start is not None and f'"inputs":"{inputs}"'.encode() in start


def forget(target: ADTarget) -> None:
    """Remove the memory and its detail (the snapshot stays)."""
    for suffix in (".settled.json", DETAIL):
        path = path_of(target, snapshot.key_of(target), suffix)
        try:
            if path is not None:
                path.unlink(missing_ok=True)
        except OSError:  # not ours to remove: it fails the trust rules when read anyway
            pass


def holds(conn: Connection, target: ADTarget, inputs: str) -> Standing | None:
    """When the plan that found nothing to do was made, and the keys of the accounts that read
    otherwise now (none: the memory is then brought forward to now), if nothing else it read
    has changed since; None otherwise."""
    key = snapshot.key_of(target)
    settled = load(target, key, inputs)
    if settled is None or target.delta_read_hours is None:
        return None
    age = time.time() - settled.full_read_at
    if age > target.delta_read_hours * 3600 or age < -300:
        return None
    try:
        now = delta.watermark(conn)
        if now is None or not now.continues(settled.watermark):
            return None
        if now.usn == settled.watermark.usn:
            return Standing(settled.planned_at)
        found = _written_keys(conn, target, settled, now)
        if found is None:
            return None
        written, now = found
        path = path_of(target, key)
        if not written and path is not None:
            _write(path, replace(settled, watermark=now))
        return Standing(settled.planned_at, written)
    except (ReconcilerError, delta.FullReadNeeded):
        return None


def _written_keys(conn: Connection, target: ADTarget, settled: Settled, now: Watermark
                  ) -> tuple[frozenset[str], Watermark] | None:
    """The employee keys of the remembered accounts that read otherwise than remembered, when
    nothing else written since (delta.written_since) changes what the plan reads, and the
    watermark that holds up to; else None."""
    delta.sees_deletions(conn, target)
    written, now = delta.written_since(conn, target, settled.watermark, now, _READ)
    # Listed after the searches: the watermark they return is read after them, and what hides
    # an OU or group from the read account is a write no search of changes returns.
    found = read_ous(conn, settled.ous)
    if not all(dnlib.key(ou) in found for ou in settled.ous):
        return None
    listed = read_groups(conn, target)
    if not all(name.casefold() in listed for name in settled.group_names):
        return None
    remembered = settled.accounts.keys() | settled.computers.keys() | settled.groups
    roots = _distinct_roots([target.people_ou, target.bajas_ou])
    moved, seen = set(), set()
    accounts: dict[str, Written] = {}  # remembered accounts that read otherwise
    groups: dict[str, str] = {}  # remembered groups written: objectGUID -> DN
    for w in written:
        if w.kind is Kind.DELETED:
            # A remembered object deleted, or an OU or container (a unit's OU the plan would
            # create again, or the holder of accounts).
            if w.guid in remembered or w.holder:
                return None
        elif w.kind is Kind.HOLDER:
            return None  # created, renamed or moved: which accounts are in scope may have changed
        elif w.kind is Kind.GROUP:
            if w.guid in settled.groups:
                groups[w.guid] = w.dn
            elif dnlib.same(dnlib.parent(w.dn), target.groups_ou):
                return None  # a new group where the plan's groups are
        elif w.kind is Kind.PERSON and delta.in_scope(w.dn, roots):
            if w.guid not in settled.accounts or _adoptable(w.dn, w.attributes, target, settled.adopting):
                return None  # new in scope, or now named as someone the plan would adopt
            if settled.accounts[w.guid] != entry_digest(w.dn, w.only(_PERSON)):
                accounts[w.guid] = w
        elif w.guid in settled.accounts:  # moved out of scope, or no longer a person
            return None
        elif w.kind is Kind.PERSON:
            if _adoptable(w.dn, w.attributes, target, settled.adopting):
                return None
        elif w.kind is Kind.COMPUTER and any(dnlib.under(w.dn, base) for base in (target.people_ou, target.bajas_ou)):
            seen.add(w.guid)
            if settled.computers.get(w.guid) != entry_digest(w.dn, w.only(_COMPUTER)):
                return None
        elif w.guid in settled.computers:
            moved.add(w.guid)
    if moved - seen:  # a remembered computer moved out of the people and bajas OUs
        return None
    if not accounts and not groups:
        return frozenset(), now
    detail = load_detail(target, settled)
    keys = _keys_of(conn, target, detail, accounts, groups) if detail is not None else None
    return (keys, now) if keys is not None else None


def _keys_of(conn: Connection, target: ADTarget, detail: Detail, accounts: dict[str, Written],
             groups: dict[str, str]) -> frozenset[str] | None:
    """The employee keys of the accounts written, and of those that joined or left a group
    written; None when a full plan must judge: one of them has no key, another key than
    remembered, the marker gained or lost, or a key another account in scope carries too (a
    plan of some keys reads their own accounts, not every holder of their key); a group was
    renamed or moved, shows no member where it had some, or lists an account in scope that
    cannot be told."""
    changed = set(accounts)
    if groups:
        members = _Members(detail, accounts, _distinct_roots([target.people_ou, target.bajas_ou]))
        for guid, dn in groups.items():
            remembered_dn, before = detail.groups.get(guid, ("", ()))[0], detail.members(guid)
            if before is None or not dnlib.same(remembered_dn, dn):
                return None
            now = members.of(conn, dn)
            if now is None or (before and not now):
                return None  # an unknown account in scope; emptied by hand, or its list hidden from this account
            changed |= before ^ now
    keys = set()
    for guid in changed:
        position = detail.position.get(guid)
        if position is None:
            return None  # not remembered: the groups' members are, so this is damage
        key, marked = detail.keys[position], detail.marked[position] == "1"
        written = accounts.get(guid)
        now = _one(written.attributes, "employeeID") if written is not None else key  # not written: as it was
        if not key or str(now) != key or key in detail.shared or (written is not None
                                                                  and _marked(written.attributes) != marked):
            return None
        keys.add(key)
    return frozenset(keys)


class _Members:
    """A group's members in scope, as objectGUIDs of remembered accounts (their DNs now)."""

    def __init__(self, detail: Detail, accounts: dict[str, Written], roots: list[str]):
        self.detail, self.roots = detail, roots
        # Each remembered DN (casefolded) -> its account, but for the accounts written since,
        # known by their DN now.
        self.by_text = dict(zip(detail.dns, detail.guids))
        for guid in accounts.keys() & detail.position.keys():
            self.by_text.pop(detail.dns[detail.position[guid]], None)
        now = {w.dn.casefold(): guid for guid, w in accounts.items()}
        # An account written since whose DN now casefolds like another's: not told apart.
        self.ambiguous = len(now) < len(accounts) or not now.keys().isdisjoint(self.by_text)
        self.by_text.update(now)
        self.by_key: dict | None = None  # built only when a member is spelled otherwise

    def of(self, conn: Connection, group: str) -> frozenset[str] | None:
        if self.ambiguous:
            return None
        found = set()
        for member in delta.members(conn, group):
            guid = self.by_text.get(member.casefold())
            if guid is None and delta.in_scope(member, self.roots):
                if self.by_key is None:
                    self.by_key = {dnlib.key(dn): g for dn, g in self.by_text.items()}
                guid = self.by_key.get(dnlib.key(member))
                if guid is None:
                    return None  # an account in scope the memory does not hold
            if guid is not None:
                found.add(guid)
        return frozenset(found)


def _adoptable(dn: str, attrs: dict, target: ADTarget, adopting: frozenset[str]) -> bool:
    """An account under adopt_from that now carries the key or `adopt:` name of a declared
    person without an account: the plan would adopt it (also in scope, where adopt_from
    covers the people OU)."""
    if not adopting or not any(dnlib.under(dn, base) for base in target.adopt_from or ()):
        return False
    names = {str(v).casefold() for k, vs in attrs.items() if k.lower() in ("employeeid", "samaccountname")
             for v in (vs if isinstance(vs, list) else [vs])}
    return bool(names & adopting)


def _marked(attrs: dict) -> bool:
    return _is_managed({"attributes": attrs})
