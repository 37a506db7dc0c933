"""`reconciler audit prune`: a runner's trail file shortened by its oldest records, only once
their retention is over and an archive that verifies holds every one of them.

Nothing else is ever deleted: the git notes keep every record (an auditor's `audit verify
--from-git` still sees them), and the trail file goes on from an anchor line (trail.ANCHOR:
the seq and hash of the last record pruned, and the archive's SHA-256), so its chain still
verifies and the next apply appends as before.  The cut falls at the end of a run (its
run-end record): a run is never split, and recovery reads whole runs.

Refused, with the date from which it would be allowed, while the target's
`audit_retention_years` have not passed since the day the records end; refused when the
archive does not verify with the apply key, or lacks one of the records (same seq, same hash).
"""
from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from reconciler.audit import archive, archive_check, trail
from reconciler.errors import ReconcilerError
from reconciler.i18n import _, day_start


@dataclass(frozen=True)
class Pruned:
    target: str
    records: int  # how many left the file
    through: int  # the seq of the last one
    kept: int  # how many stay


def allowed_from(before: dt.date, years: int) -> dt.date:
    """The first day records dated before `before` may leave a trail kept `years` years."""
    return archive.years_after(before, years)


def _cut(lines: list[str], end: str) -> int:
    """How many leading lines go: up to the last run-end recorded before `end`."""
    cut = 0
    for i, line in enumerate(lines):
        record = json.loads(line)
        if str(record.get("time", "")) >= end:
            break
        if record.get("kind") == "run-end":
            cut = i + 1
    return cut


def _archived(root: Path, target: str, pruned: list[dict]) -> bool:
    """Does the (verified) archive at `root` hold each of these records, same seq and hash?"""
    path = root / "records" / f"{target}.jsonl"
    if not path.is_file():
        return False
    held = {}
    for line in filter(None, path.read_text(encoding="utf-8").split("\n")):  # not splitlines(): U+2028
        record = json.loads(line)
        held[record.get("seq")] = record.get("hash")
    return all(held.get(r["seq"]) == r["hash"] for r in pruned)


def check_retention(targets: list, before: dt.date, today: dt.date) -> None:
    """Refuse, before any file is touched, when a target's retention is not over."""
    for target in targets:
        years = target.audit_retention_years
        if today < allowed_from(before, years):
            raise ReconcilerError(_("target {target} keeps its records {years} years: those before {before} may "
                                    "leave its trail from {allowed} on", target=target.name, years=years,
                                    before=before.isoformat(), allowed=allowed_from(before, years).isoformat()))


def prune(target, before: dt.date, archive_file: Path, key, today: dt.date, notes=None) -> Pruned | None:
    """Shorten `target`'s trail by its runs that ended before `before`; None when none did.
    The caller holds the target's lock (no apply appends meanwhile).  `notes`: the repository's
    git notes (trail.read_notes), against which the trail, and any anchor it has, is checked
    first: a trail someone shortened by hand is never sealed over."""
    check_retention([target], before, today)
    if key is None or key.private is None:
        raise ReconcilerError(_("only the apply job prunes a trail (its anchor is sealed with the apply key): "
                                "RECONCILER_APPLY_KEY is not set"))
    path = Path(target.audit_dir) / f"{target.name}{trail.SUFFIX}"
    if not path.is_file():
        return None
    sealed = [n for n in notes or () if n[1] is not None]
    verdict = trail.verify_file(path, notes, key, sealed)
    if not verdict.ok:
        raise ReconcilerError(_("{file}: {problem}; a trail that does not verify is not pruned", file=path,
                                problem=verdict.broken))
    lines = [line for _number, line in trail.record_lines(path)]
    cut = _cut(lines, day_start(before))
    if cut == 0:
        return None
    pruned = [json.loads(line) for line in lines[:cut]]
    digest = _check_archive(archive_file, target.name, pruned, key)
    last = pruned[-1]
    anchor = trail.sealed_anchor({"kind": trail.ANCHOR, "target": target.name, "seq": last["seq"],
                                  "hash": last["hash"], "time": trail.now(), "pruned_before": before.isoformat(),
                                  "retention_years": target.audit_retention_years, "archive_sha256": digest}, key)
    _replace(path, [trail.canonical(anchor), *lines[cut:]])
    return Pruned(target.name, cut, last["seq"], len(lines) - cut)


def _check_archive(archive_file: Path, target: str, pruned: list[dict], key) -> str:
    """Check a private copy of the archive (the file could change after it was read); its SHA-256."""
    import shutil

    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "archive.tar.gz"
        try:
            shutil.copyfile(archive_file, copy)
        except OSError as exc:
            raise ReconcilerError(_("cannot read {file}: {error}", file=archive_file, error=exc.strerror)) from None
        root = archive.extract(copy, Path(tmp) / "x", named=archive_file)
        problems, _said = archive_check.check(root, key.public)
        if problems:
            raise ReconcilerError(_("{file} does not verify ({problem}): nothing is pruned", file=archive_file,
                                    problem=_(archive_check.MESSAGES[problems[0].code], **problems[0].values)))
        if not _archived(root, target, pruned):
            raise ReconcilerError(_("{file} does not hold every record of {target} up to seq {seq}: nothing is "
                                    "pruned (export the period first)", file=archive_file, target=target,
                                    seq=pruned[-1]["seq"]))
        return archive_check.sha256_file(copy)


def _replace(path: Path, lines: list[str]) -> None:
    """The trail's new content, whole or not at all: a temporary file beside it, synced, then
    renamed over it, with the file's mode (0600)."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("".join(line + "\n" for line in lines))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(name, 0o600)
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
