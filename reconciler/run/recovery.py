"""Runs that were stopped before their end: recognised and closed by the next apply.

Before its first operation an apply writes `run-start` and one `planned` record per change
(the whole change, as its `change` record will be); each step's results follow as `result`
records, and `run-end` closes the run.  A run killed on the way (SIGKILL, a lost runner, a
power cut) leaves a `run-start` with no `run-end` at the tail of its target's trail.  The next
run on that target, under the same lock, reads that tail and:

- does not call the objects the stopped run was changing "changed outside the reconciler":
  they differ from their marker because the run stopped halfway, not because of a hand edit;
- closes the stopped run in the trail: for each of its changes, what became of it (its result
  record if it wrote one; else what the target shows now: done, begun, or not done), then a
  `run-end` with result "interrupted", so `history` shows a killed run's altas like any other;
- announces the stopped run's credentials file, saying how many of its passwords belong to
  objects that exist now (in use: to be delivered) and how many were never set.  The file is
  left where it is: a copy would be one more secret on disk, and removing it before this
  run has ended could lose a password in use if this run were killed too.  With sealed
  delivery, the envelopes of secrets in use stay for their recipients, and the files of
  secrets never set are taken out of their envelopes (a recipient must not be handed a
  password that opens nothing).

Everything here is judged from the trail on the apply runner's disk, which is inside the
trust boundary like the apply key beside it (README, "Git is the approval"); a tail whose
hash chain does not hold is not acted on (`audit verify` reports it).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

from reconciler.audit.trail import SUFFIX, lines_from_end, verify_chain
from reconciler.credentials import CredentialFile
from reconciler.i18n import lazy
from reconciler.plan import Change, Movement
from reconciler.run import Moment

# Fields of a record that belong to the trail, not to the change it describes.
_TRAIL_FIELDS = ("seq", "prev", "hash", "time", "kind", "target", "run", "commit")


@dataclass(frozen=True)
class Interrupted:
    """A run on one target that has a run-start and no run-end."""

    target: str
    run: str
    commit: str | None
    started: str
    planned: tuple[dict, ...]  # its `planned` records (the changes it was about to make)
    results: dict  # (object_kind, key) -> its `result` record, for the steps it finished
    envelopes: tuple[dict, ...] = ()  # its `envelope` records: secrets it sealed, one per object

    def keys(self) -> set[tuple[str, str]]:
        return {(p.get("object_kind"), p.get("key")) for p in self.planned}

    def credentials_file(self, directory: str | Path) -> Path:
        return Path(directory) / f"{self.target}-{self.run}.csv"


def interrupted(audit_dir: str | Path, target: str) -> Interrupted | None:
    """The target's last run, when it never ended; None otherwise (or with no trail).  An
    unreadable line ends the search: `audit verify` is the place to report it."""
    path = Path(audit_dir) / f"{target}{SUFFIX}"
    if not path.is_file():
        return None
    tail: list[dict] = []
    try:
        for line in lines_from_end(path):
            record = json.loads(line)
            if not isinstance(record, dict):
                return None
            if record.get("kind") == "run-end":
                return None
            tail.append(record)
            if record.get("kind") == "run-start":
                break
        else:
            return None
    except (OSError, ValueError):
        return None
    if not _chained(list(reversed(tail))):
        return None
    start, rest = tail[-1], list(reversed(tail[:-1]))
    run = start.get("run")
    mine = [r for r in rest if r.get("run") == run]
    return Interrupted(target, str(run), start.get("commit"), str(start.get("time", "")),
                       tuple(r for r in mine if r.get("kind") == "planned"),
                       {(r.get("object_kind"), r.get("key")): r for r in mine if r.get("kind") == "result"},
                       tuple(r for r in mine if r.get("kind") == "envelope"))


def _chained(tail: list[dict]) -> bool:
    """The tail holds its hash chain (from the hash before its first record): not edited."""
    first = tail[0]
    if not isinstance(first.get("seq"), int):
        return False
    _, broken, _ = verify_chain((("tail", r) for r in tail), prev=first.get("prev"), seq=first["seq"] - 1)
    return broken is None


def relabel(changes: list[Change], stopped: Interrupted, rewritten: frozenset[str] = frozenset()) -> list[Change]:
    """The plan's changes, where an object the stopped run was changing is not called drift:
    one it planned, or one of the kinds every apply of the target rewrites (`rewritten`,
    Provider.rewritten_by_every_apply), when it planned anything at all."""
    keys = stopped.keys()
    reason = lazy("completes what run {run} began (it stopped before its end, {started})",
                  run=stopped.run, started=Moment(stopped.started))
    touched = (lambda c: (c.kind, c.key) in keys or (c.kind in rewritten and bool(keys)))  # noqa: E731
    return [replace(c, drift=False, reason=reason) if c.drift and touched(c) else c for c in changes]


def closing_records(stopped: Interrupted, now_planned: list[Change], closer: str) -> list[dict]:
    """The `change` records that say what became of each of the stopped run's changes, judged
    by its own results, else by what the target shows now (`now_planned`: this run's plan of
    the target), and its `run-end`.  Fields as AuditLog.append takes them (kind first)."""
    pending = {(c.kind, c.key): c for c in now_planned}
    out = []
    for p in stopped.planned:
        key = (p.get("object_kind"), p.get("key"))
        fields = {k: v for k, v in p.items() if k not in _TRAIL_FIELDS}
        status, verified, error = _fate(stopped, key, pending.get(key), p.get("movement"), closer)
        fields.update(status=status, verified=verified, error=error)
        out.append({"kind": "change", "run": stopped.run, "commit": stopped.commit, "closed_by": closer, **fields})
    out.append({"kind": "run-end", "run": stopped.run, "commit": stopped.commit, "result": "interrupted",
                "reason": lazy("the run stopped before its end; run {run} recorded what the target shows", run=closer),
                "applied_ref_moved": False, "closed_by": closer})
    return out


def _fate(stopped: Interrupted, key: tuple, now: Change | None, movement: str | None,
          closer: str) -> tuple[str, bool | None, str | None]:
    """(status, verified, error) of one change of the stopped run."""
    done = stopped.results.get(key)
    if done is not None and done.get("status") != "applied":
        return "failed", False, done.get("error") or "failed"
    if now is None:  # the target shows the change made: nothing is left to do for the object
        return "applied", None, lazy("judged by run {run} from what the target shows", run=closer)
    if movement == Movement.ALTA.value and now.movement is not Movement.ALTA:
        return "applied", False, lazy("begun: the object exists; run {run} finishes it", run=closer)
    if done is not None:
        return "applied", False, lazy("the target does not show all of it; run {run} applies the rest", run=closer)
    return "failed", False, lazy("not done: the run stopped first; run {run} applies it", run=closer)


def in_use(stopped: Interrupted, now_planned: list[Change]) -> set[str]:
    """The keys whose passwords the stopped run set and that are in use now: the objects of
    its altas that exist (whatever its own result said: an add can land and a later step of
    the same change fail), and the resets or rotations it made or began."""
    pending = {(c.kind, c.key): c for c in now_planned}
    keys = set()
    for p in stopped.planned:
        key = (p.get("object_kind"), p.get("key"))
        now = pending.get(key)
        if p.get("movement") == Movement.ALTA.value:
            if now is None or now.movement is not Movement.ALTA:
                keys.add(key[1])
        elif now is None or key in stopped.results:
            keys.add(key[1])
    return keys


def passwords_in_use(stopped: Interrupted, directory: str | Path, keys: set[str]) -> tuple[Path, int, int] | None:
    """(the stopped run's credentials file, rows in use, rows never set), or None without one."""
    path = stopped.credentials_file(directory)
    if not path.exists():
        return None
    rows = CredentialFile.rows(path)
    used = sum(1 for r in rows if r.get("account") in keys or r.get("employee_key") in keys)
    return path, used, len(rows) - used
