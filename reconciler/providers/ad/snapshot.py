"""The last read of an AD target's accounts, kept so that the next read asks only what changed.

A snapshot holds what a full read found under the managed OUs (each account's DN and the
attributes the reconciler reads, by objectGUID), the groups directly in the groups OU, and the
watermark it was read at: the domain controller (its dsServiceName and invocationId) and that
DC's highestCommittedUSN, read before the searches began.  delta.py brings it forward.

It is never a source of truth.  It is used only when it is this program's, for this target's
settings and bind account (the key), from the same DC with the same invocationId, no newer
than the DC itself, and younger than the target's `delta_read_hours` since the full read it
descends from; anything else, or a file that is missing, damaged, someone else's or reachable
through a folder others may write (the rules of the parse cache, schemacache.read_trusted),
means a full read.  It holds directory data (names, employee keys), never a secret: it lives
in the user's own cache directory, 0600 in folders only the user may open.  Written atomically:
concurrent runs each read a whole snapshot, and the last one written wins.
"""
from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from reconciler.desired.schemacache import cache_dir, cached_time, json_pieces, read_trusted, require_cached, \
    write_private
from reconciler.providers.ad.target import ADTarget

FORMAT = 1


@dataclass(frozen=True)
class Watermark:
    """Where a read stands: one DC's own update sequence numbers mean nothing on another DC,
    nor on the same DC restored from a backup (it then gets a new invocationId)."""

    server: str  # dsServiceName: the DC's NTDS Settings object
    invocation: str  # that object's invocationId, hex
    usn: int  # highestCommittedUSN before the read

    def continues(self, earlier: "Watermark") -> bool:
        """Whether changes since `earlier` can be asked of the DC this watermark was read from."""
        return (self.server.casefold(), self.invocation) == (earlier.server.casefold(), earlier.invocation) \
            and self.usn >= earlier.usn


@dataclass
class Snapshot:
    key: str
    watermark: Watermark
    full_read_at: float  # when the full read it descends from began (epoch seconds)
    entries: dict[str, tuple[str, dict]] = field(default_factory=dict)  # objectGUID -> (dn, attributes)
    groups: dict[str, str] = field(default_factory=dict)  # objectGUID -> dn, groups directly in the groups OU


@cache
def _code_digest() -> str:
    """A snapshot is read back only by the code that wrote it (its reading and delta rules)."""
    here = Path(__file__).resolve().parent
    digest = hashlib.sha256(f"{FORMAT}\0{sys.version}".encode())
    for name in ("read.py", "delta.py", "snapshot.py", "connection.py", "records.py"):
        digest.update(name.encode() + b"\0" + (here / name).read_bytes())
    return digest.hexdigest()


def key_of(target: ADTarget) -> str:
    """What a snapshot is a read of: the directory, the OUs and the account that read it (another
    bind may see other objects)."""
    parts = [_code_digest(), target.name, target.host, str(target.port), target.base_dn, target.people_ou,
             target.groups_ou, target.bajas_ou, target.login[0]]
    return hashlib.sha256("\0".join(p.casefold() for p in parts).encode("utf-8", "surrogatepass")).hexdigest()


def _target_id(target: ADTarget) -> str:
    """The target whatever the code or bind: its snapshots of older releases are found and removed."""
    parts = [target.name, target.host, str(target.port), target.base_dn]
    return hashlib.sha256("\0".join(p.casefold() for p in parts).encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _directory() -> Path | None:
    base = cache_dir()
    return base.parent / "directory" if base is not None else None


def path(key: str, target: ADTarget) -> Path | None:
    directory = _directory()
    return directory / f"{_target_id(target)}-{key}.json" if directory is not None else None


def load(key: str, target: ADTarget) -> Snapshot | None:
    where = path(key, target)
    data = read_trusted(where) if where is not None else None
    if data is None:
        return None
    try:
        raw = json.loads(data)
        require_cached(raw["format"] == FORMAT and raw["key"] == key)
        mark = Watermark(str(raw["server"]), str(raw["invocation"]), int(raw["usn"]))
        entries = {str(guid): (str(dn), attrs) for guid, dn, attrs in raw["entries"]}
        require_cached(all(isinstance(a, dict) and all(isinstance(v, list) for v in a.values())
                           for _, a in entries.values()))
        groups = {str(g): str(dn) for g, dn in raw["groups"].items()}
        return Snapshot(key, mark, cached_time(raw["full_read_at"]), entries, groups)
    except Exception:  # noqa: BLE001 - a damaged snapshot means a full read, never a crash
        return None


def save(snapshot: Snapshot, target: ADTarget) -> None:
    """Atomically, 0600, or not at all (a snapshot that cannot be kept only makes the next read
    full); the target's other snapshots (another release's, another bind's) are removed."""
    where = path(snapshot.key, target)
    if where is None:
        return
    mark = snapshot.watermark
    # In pieces (json.dump would stream through the pure-Python encoder, 20 times slower).
    head = {"format": FORMAT, "key": snapshot.key, "server": mark.server, "invocation": mark.invocation,
            "usn": mark.usn, "full_read_at": snapshot.full_read_at, "groups": snapshot.groups}
    if write_private(where, json_pieces(head, "entries", ([g, dn, a] for g, (dn, a) in snapshot.entries.items()))):
        forget(target, but=where)


def forget(target: ADTarget, but: Path | None = None) -> None:
    """Remove the target's snapshots (all but one, and the settled plan beside it, settled.py):
    personal data is not kept past its use."""
    directory = _directory()
    if directory is None or not directory.is_dir():
        return
    kept = {but, but.with_name(but.stem + ".settled.json"), but.with_name(but.stem + ".detail.settled.json")} \
        if but is not None else set()
    try:
        for found in directory.glob(f"{_target_id(target)}-*.json"):
            if found not in kept:
                found.unlink(missing_ok=True)
    except OSError:
        pass
