"""Where a target remembers a plan that found nothing to do, for kinds that prove it still holds
by fetching again what the plan read and comparing digests (mail/settled.py, sip/settled.py;
AD proves it from the directory's update sequence numbers, ad/settled.py).

One file per target and view of it (`key`: which target, how it is reached), in the runner's
cache (`<cache>/<kind>/<key>.settled.json`), JSON with the inputs first (`remembered` looks
for them in the first bytes), written atomically and 0600, and read only when it is the
runner's own (read_trusted).  A memory that is absent, damaged, another target's, of other
inputs or of another format reads as none: a normal plan, never a crash.  It is a cache the
next full plan rebuilds, never a source of truth.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from reconciler.desired.schemacache import cache_dir, cached_time, read_trusted, require_cached, write_private

_HEAD = ("inputs", "format", "key", "planned_at")


@dataclass(frozen=True)
class Memory:
    planned_at: float  # when the remembered plan was made (seconds since the epoch)
    digests: dict  # the kind's own: what the plan read, as JSON values


def _path(kind: str, key: str) -> Path | None:
    base = cache_dir()
    return base.parent / kind / f"{key}.settled.json" if base is not None else None


def record(kind: str, key: str, inputs: str, form: int, digests: dict) -> None:
    """Remember that the plan of `inputs` found nothing to do over what it read (`digests`).
    Atomically, 0600, or not at all (a memory that cannot be written is only slower)."""
    path = _path(kind, key)
    if path is None:
        return
    head = {"inputs": inputs, "format": form, "key": key, "planned_at": time.time()}
    text = json.dumps({**head, **digests}, ensure_ascii=False, separators=(",", ":"))
    write_private(path, text.encode("utf-8", "surrogatepass"))


def load(kind: str, key: str, inputs: str, form: int) -> Memory | None:
    """The memory of the plan of `inputs`, or None."""
    path = _path(kind, key)
    data = read_trusted(path) if path is not None else None
    if data is None:
        return None
    try:
        raw = json.loads(data)
        require_cached(isinstance(raw, dict))
        require_cached(raw["format"] == form and raw["key"] == key and raw["inputs"] == inputs)
        return Memory(cached_time(raw["planned_at"]), {k: v for k, v in raw.items() if k not in _HEAD})
    except Exception:  # noqa: BLE001 - damaged, nested past any depth it writes, or not this one's
        return None


def remembered(kind: str, key: str, inputs: str) -> bool:
    """Whether a memory of `inputs` may exist, from its first bytes: a hint, the kind's proof decides."""
    path = _path(kind, key)
    start = read_trusted(path, limit=256) if path is not None else None
    return start is not None and f'{{"inputs":"{inputs}"'.encode() in start


def forget(kind: str, key: str) -> None:
    path = _path(kind, key)
    try:
        if path is not None:
            path.unlink(missing_ok=True)
    except OSError:  # not ours to remove: it fails the trust rules when read anyway
        pass
