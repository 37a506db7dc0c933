"""A settled registrar plan: proof that nothing the registrar's plan reads has changed since a
plan of the same inputs that found nothing to do (run/settled.py is the engine's side).

The registrar's plan reads one thing from the target: the subscriber table with the
reconciler's record of each line, and the registrations still to drop (store.read).
At 100,000 extensions that read takes about 0.6 s, and the diff another second; but the diff
needs the desired state, and in a plan of every target, one target that cannot stand on its
memory makes the run load and validate everyone (seconds at that size) while the directory and
the mail server stand on theirs.  So the proof reads the table again and compares it, as one
digest, with what the remembered plan read (`lines_digest`: every field the diff looks at, the
ha1 only as the same "changed by hand" flag the plan derives from it).  With the inputs the
engine vouches for (the commit, the inventory, the code, the day), that is everything the plan
is a pure function of, so no time bound is needed.  A plan that warned (an SQLite file others
may read) is never remembered, and a check that would warn does not stand.  Any difference,
any failure to read, or a memory that is not the runner's own means a normal plan.
"""
from __future__ import annotations

import hashlib
import json

from reconciler.providers import settled_memory as memory
from reconciler.providers.contract import Standing
from reconciler.providers.sip.diff import ActualLines

FORMAT = 1


def lines_digest(actual: ActualLines) -> str:
    """One digest of what a read found: equal exactly when the plan would read the same."""
    # As repr: a registrar's table may hold what is not text (SQLite keeps a BLOB username as
    # bytes), which would neither sort among strings nor go into JSON; repr tells them apart.
    rows = sorted(tuple(map(repr, (s.number, s.managed, s.holder, s.unit, s.secret_drift)))
                  for s in actual.subscribers.values())
    owed = sorted((repr(k), repr(v)) for k, v in actual.unregister.items())
    text = json.dumps([rows, owed], ensure_ascii=False, separators=(",", ":"))
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=20).hexdigest()


def key_of(target) -> str:
    """Which target and which view of it: its name, domain and database (a read-only role's
    view is its own)."""
    parts = [target.name, target.domain, target.database.describe()]
    return hashlib.sha256("\0".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def record(target, inputs: str, digest: str) -> None:
    memory.record("sip", key_of(target), inputs, FORMAT, {"lines": digest})


def remembered(target, inputs: str) -> bool:
    return memory.remembered("sip", key_of(target), inputs)


def forget(target) -> None:
    memory.forget("sip", key_of(target))


def holds(target, inputs: str, read) -> Standing | None:
    """When the remembered plan of `inputs` was made, if the table reads the same now (`read()`:
    store.read's answer; it raises on any failure); None otherwise."""
    found = memory.load("sip", key_of(target), inputs, FORMAT)
    if found is None or lines_digest(read()) != found.digests.get("lines"):
        return None
    return Standing(found.planned_at)
