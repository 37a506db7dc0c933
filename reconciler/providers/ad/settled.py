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
builds anyone's account: seconds whatever the size.  Anything else, or any doubt (a search
that fails, the read account seeing no tombstone, a memory older than `delta_read_hours` since
its full read, a file that is not the runner's own), means a normal plan.  The memory is kept
beside the snapshot, under the same rules (read_trusted, write_private), and removed with it.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

from ldap3 import Connection

from reconciler import dn as dnlib
from reconciler.desired.schemacache import read_trusted, write_private
from reconciler.errors import ReconcilerError
from reconciler.providers.ad import delta, snapshot
from reconciler.providers.ad.delta import Kind
from reconciler.providers.ad.read import KEPT_ATTRIBUTES, _distinct_roots, read_groups, read_ous
from reconciler.providers.ad.snapshot import Snapshot, Watermark
from reconciler.providers.ad.computers import READ as COMPUTER_READ
from reconciler.providers.ad.target import ADTarget

FORMAT = 1
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


def path_of(target: ADTarget, key: str) -> Path | None:
    base = snapshot.path(key, target)
    return base.with_name(base.stem + ".settled.json") if base is not None else None


def record(target: ADTarget, read: Snapshot, computers: dict[str, str], inputs: str, ous=(), group_names=(),
           adopting=frozenset()) -> None:
    """Remember that the plan of `inputs` over `read` (and `computers`, read by the same plan)
    found nothing to do.  Atomically, 0600, or not at all."""
    path = path_of(target, read.key)
    if path is None:
        return
    accounts = {guid: entry_digest(dn, attrs) for guid, (dn, attrs) in read.entries.items()}
    _write(path, Settled(read.key, inputs, read.watermark, read.full_read_at, time.time(), accounts, computers,
                         frozenset(read.groups), tuple(ous), tuple(group_names), frozenset(adopting)))


def _write(path: Path, settled: Settled) -> None:
    mark = settled.watermark
    text = json.dumps({"format": FORMAT, "key": settled.key, "inputs": settled.inputs, "server": mark.server,
                       "invocation": mark.invocation, "usn": mark.usn, "full_read_at": settled.full_read_at,
                       "planned_at": settled.planned_at, "accounts": settled.accounts,
                       "computers": settled.computers, "groups": sorted(settled.groups), "ous": list(settled.ous),
                       "group_names": list(settled.group_names), "adopting": sorted(settled.adopting)},
                      ensure_ascii=False, separators=(",", ":"))
    write_private(path, text.encode("utf-8", "surrogatepass"))


def load(target: ADTarget, key: str, inputs: str) -> Settled | None:
    path = path_of(target, key)
    data = read_trusted(path) if path is not None else None
    if data is None:
        return None
    try:
        raw = json.loads(data)
        assert raw["format"] == FORMAT and raw["key"] == key and raw["inputs"] == inputs
        accounts, computers = raw["accounts"], raw["computers"]
        assert all(isinstance(v, str) for d in (accounts, computers) for v in d.values())
        return Settled(key, inputs, Watermark(str(raw["server"]), str(raw["invocation"]), int(raw["usn"])),
                       float(raw["full_read_at"]), float(raw["planned_at"]), accounts, computers,
                       frozenset(map(str, raw["groups"])), tuple(map(str, raw["ous"])),
                       tuple(map(str, raw["group_names"])), frozenset(map(str, raw["adopting"])))
    except Exception:  # noqa: BLE001 - a damaged memory means a normal plan, never a crash
        return None


def holds(conn: Connection, target: ADTarget, inputs: str) -> float | None:
    """When the plan that found nothing to do was made, if nothing it read has changed since
    (the memory is then brought forward to now); None otherwise."""
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
        if now.usn != settled.watermark.usn:
            if not _unchanged(conn, target, settled, f"(uSNChanged>={settled.watermark.usn + 1})"):
                return None
            path = path_of(target, key)
            if path is not None:
                _write(path, replace(settled, watermark=now))
    except (ReconcilerError, delta.FullReadNeeded):
        return None
    return settled.planned_at


def _unchanged(conn: Connection, target: ADTarget, settled: Settled, since: str) -> bool:
    """Whether everything written since the memory reads as remembered (delta.written_since)."""
    delta.sees_deletions(conn, target)
    found = read_ous(conn, settled.ous)
    if not all(dnlib.key(ou) in found for ou in settled.ous):
        return False
    listed = read_groups(conn, target)
    if not all(name.casefold() in listed for name in settled.group_names):
        return False
    remembered = settled.accounts.keys() | settled.computers.keys() | settled.groups
    roots = _distinct_roots([target.people_ou, target.bajas_ou])
    moved, seen = set(), set()
    for w in delta.written_since(conn, target, since, _READ):
        if w.kind is Kind.DELETED:
            # A remembered object deleted, or an OU or container (a unit's OU the plan would
            # create again, or the holder of accounts).
            if w.guid in remembered or w.holder:
                return False
        elif w.kind is Kind.HOLDER:
            return False  # created, renamed or moved: which accounts are in scope may have changed
        elif w.kind is Kind.GROUP:
            if w.guid in settled.groups or dnlib.same(dnlib.parent(w.dn), target.groups_ou):
                return False
        elif w.kind is Kind.PERSON and delta.in_scope(w.dn, roots):
            if settled.accounts.get(w.guid) != entry_digest(w.dn, w.only(_PERSON)):
                return False
        elif w.guid in settled.accounts:  # moved out of scope, or no longer a person
            return False
        elif w.kind is Kind.PERSON:
            if _adoptable(w.dn, w.attributes, target, settled.adopting):
                return False
        elif w.kind is Kind.COMPUTER and any(dnlib.under(w.dn, base) for base in (target.people_ou, target.bajas_ou)):
            seen.add(w.guid)
            if settled.computers.get(w.guid) != entry_digest(w.dn, w.only(_COMPUTER)):
                return False
        elif w.guid in settled.computers:
            moved.add(w.guid)
    return not moved - seen  # a remembered computer moved out of the people and bajas OUs


def _adoptable(dn: str, attrs: dict, target: ADTarget, adopting: frozenset[str]) -> bool:
    """An account under adopt_from that now carries the key or `adopt:` name of a declared
    person without an account: the plan would adopt it."""
    if not adopting or not any(dnlib.under(dn, base) for base in target.adopt_from or ()):
        return False
    names = {str(v).casefold() for k, vs in attrs.items() if k.lower() in ("employeeid", "samaccountname")
             for v in vs}
    return bool(names & adopting)
