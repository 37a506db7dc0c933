"""The audit trail: one append-only, hash-chained JSON Lines file per target, plus git notes.

Each record carries `seq`, the `prev` hash of the record before it and its own `hash`
(SHA-256 of the record's canonical JSON without `hash`), so editing or removing any record
breaks the chain at that record.  Each run's records are also attached as a git note
(refs/notes/reconciler) to the commit it applied, so `git log --notes=reconciler` shows them
and the trail survives in Git; `verify` checks that the two agree, which also catches a file
cut short at its end.  No record ever holds a secret: changes carry attribute values, and
passwords never enter a Change.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import git

from reconciler import gitobjects
from reconciler.about import exact_version
from reconciler.approval.signatures import SignatureError
from reconciler.audit.seal import SEAL_TAG, seal, sealed
from reconciler.errors import ReconcilerError
from reconciler.i18n import _, lazy

GENESIS = "0" * 64
NOTES_REF = "reconciler"
# Notes noted here but not yet pushed (audit/publish.py), one ref per notes commit, kept outside
# what `git fetch '+refs/notes/*:refs/notes/*'` (the pipelines' fetch) overwrites: a job killed
# between its apply and its push leaves them for the next push from the same clone.
UNPUSHED = "refs/reconciler-local/unpushed-notes/"
# Who writes the notes commits: the program, never the runner's user or its Git configuration.
GIT_IDENTITY = {"GIT_AUTHOR_NAME": "reconciler", "GIT_AUTHOR_EMAIL": "reconciler@localhost",
                "GIT_COMMITTER_NAME": "reconciler", "GIT_COMMITTER_EMAIL": "reconciler@localhost"}
SUFFIX = ".audit.jsonl"
# The first line of a trail whose oldest records were pruned (audit/prune.py): not a record, the
# seq and hash of the last record pruned, from which the chain goes on, and the archive that
# holds them.  An apply appends after it as after a record.
ANCHOR = "anchor"
ANCHOR_NAMESPACE = "reconciler-anchor"  # what an apply key's signature of an anchor is for


def canonical(record: dict) -> str:
    return json.dumps(record, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def record_hash(record: dict) -> str:
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(canonical(body).encode("utf-8")).hexdigest()


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def operator() -> dict:
    """Who or which CI job runs this: never a secret, only names and links."""
    env = os.environ
    who = (env.get("GITHUB_ACTOR") or env.get("GITLAB_USER_LOGIN") or env.get("SUDO_USER") or env.get("USER")
           or f"uid {os.getuid()}")
    job = None
    if env.get("GITHUB_RUN_ID"):
        job = f"{env.get('GITHUB_SERVER_URL', 'https://github.com')}/{env.get('GITHUB_REPOSITORY', '')}" \
              f"/actions/runs/{env['GITHUB_RUN_ID']}"
    elif env.get("CI_JOB_URL") or env.get("CI_JOB_ID"):
        job = env.get("CI_JOB_URL") or f"GitLab job {env['CI_JOB_ID']}"  # not for people: a record field
    return {"operator": who, "ci_job": job, "host": os.uname().nodename}


class AuditLog:
    """Appends to <directory>/<target>.audit.jsonl.  One writer at a time: the target lock."""

    def __init__(self, directory: str | Path, target: str):
        self.path = Path(directory) / f"{target}{SUFFIX}"
        self.target = target
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            last = _last_record(self.path)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as exc:
            raise ReconcilerError(_("cannot write the audit trail {path}: {error}", path=self.path,
                                    error=exc.strerror)) from None
        self.seq = last["seq"] if last else 0
        self.prev = last["hash"] if last else GENESIS
        self.written: list[dict] = []

    def append(self, kind: str, **fields) -> dict:
        record = {"seq": self.seq + 1, "prev": self.prev, "time": now(), "kind": kind, "target": self.target,
                  **fields}
        record["hash"] = record_hash(record)
        os.write(self._fd, (canonical(record) + "\n").encode("utf-8"))
        self.seq, self.prev = record["seq"], record["hash"]
        self.written.append(record)
        return record

    def close(self) -> None:
        os.fsync(self._fd)
        os.close(self._fd)


def lines_from_end(path: Path, chunk: int = 65536) -> Iterator[bytes]:
    """The file's non-blank lines, last first, read from the end (the trail grows without
    bound: the last run's records are read without the rest)."""
    with path.open("rb") as f:
        end = f.seek(0, os.SEEK_END)
        rest = b""
        while end > 0:
            start = max(0, end - chunk)
            f.seek(start)
            lines = (f.read(end - start) + rest).split(b"\n")
            rest = lines.pop(0) if start > 0 else b""  # may be cut: completed by the next block
            yield from (line for line in reversed(lines) if line.strip())
            end = start


def _last_record(path: Path) -> dict | None:
    """The last record, read from the end of the file."""
    if not path.exists():
        return None
    for line in lines_from_end(path):
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            raise ReconcilerError(_("the last line of the audit trail {path} is not a record: "
                                    "run `reconciler audit verify`", path=path)) from None
    return None


def change_record(change, status: str, verified: bool | None = None, error: str | None = None,
                  run: str | None = None, commit: str | None = None) -> dict:
    """One change as the audit trail keeps it: everything an auditor asks, no payload."""
    record = change.to_dict()
    record["object_kind"] = record.pop("kind")  # "kind" is the record's own kind: "change"
    record.update(run=run, commit=commit, status=status, verified=verified, error=error, reconciler=exact_version())
    return record


def attach_note(repo: git.Repo, commit: str, records: Iterable[dict], key=None) -> None:
    """Append the records to the commit's note in refs/notes/reconciler, sealed with the apply
    key (audit/seal.py) when this process holds it."""
    text = "\n".join(canonical(r) for r in records)
    if not text:
        return
    if key is not None and key.private is not None:
        try:
            text += "\n" + seal(text + "\n", key, commit)
        except SignatureError as exc:
            raise ReconcilerError(_("could not seal the audit records: {error}", error=exc)) from None
    try:
        # The note as it is, byte for byte, then a blank line, then this run's batch: written
        # whole (`git notes append` would join a last line someone left without its newline to
        # the batch's first record, and that batch's seal would no longer verify).
        note = _note_bytes(repo, commit)
        if note:
            note = note + (b"" if note.endswith(b"\n") else b"\n") + b"\n"
        blob = gitobjects.blob(repo, note + (text + "\n").encode("utf-8"))
        repo.git.notes("--ref", NOTES_REF, "add", "-f", "-C", blob.hex(), commit, env=GIT_IDENTITY)
        tip = repo.git.rev_parse(f"refs/notes/{NOTES_REF}")
        repo.git.update_ref(UNPUSHED + tip, tip)
    except git.GitCommandError as exc:
        raise ReconcilerError(_("could not attach the audit records as a git note to {commit}: {error}",
                                commit=commit[:10], error=exc.stderr.strip())) from None


def _note_bytes(repo: git.Repo, commit: str) -> bytes:
    """The commit's note in refs/notes/reconciler as stored, or nothing."""
    found = repo.git.notes("--ref", NOTES_REF, "list", commit, with_exceptions=False)
    return repo.git.cat_file("blob", found.strip(), stdout_as_string=False) if found.strip() else b""


def read_file(path: Path) -> Iterator[tuple[int, str]]:
    with path.open("r", encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                yield number, line.rstrip("\n")


def read_notes(repo: git.Repo, sealed_by=None, wanted=None) -> list[tuple[str, dict | None]]:
    """Every record attached as a note, any target, with the commit it is attached to (None
    for a line that is not a record: someone edited the note).  With `sealed_by` (the apply
    key), only the records of batches it sealed; with `wanted(records)`, only the batches it
    accepts are checked at all (a seal costs a process: a flood of batches costs nothing)."""
    return [(commit, record) for commit, record, ok in noted_batches(repo, sealed_by, wanted)
            if ok or sealed_by is None]


def noted_batches(repo: git.Repo, key=None, wanted=None) -> list[tuple[str, dict | None, bool]]:
    """(commit, record, sealed by `key`) for every record line of the notes; seal lines are not
    records.  A batch is one run's append: record lines, then its seal line."""
    try:
        listing = repo.git.notes("--ref", NOTES_REF, "list")
    except git.GitCommandError:
        return []
    out = []
    for line in listing.splitlines():
        note_blob, commit = line.split()
        batch: list[str] = []
        # Records end at "\n" alone: a value may hold U+2028 or U+0085, which splitlines() would cut at.
        for text in repo.git.cat_file("-p", note_blob).split("\n") + [""]:
            if text.startswith(SEAL_TAG + " "):
                records = [_record(t) for t in batch]
                ok = (wanted is None or wanted(records)) and sealed("".join(t + "\n" for t in batch), text, key, commit)
                out += [(commit, r, ok) for r in records]
                batch = []
            elif text.strip():
                batch.append(text)
            else:  # `git notes append` puts a blank line between runs: a batch no seal ended
                out += [(commit, _record(t), False) for t in batch]
                batch = []
    return out


def last_commit(directory: str | Path, target: str) -> str | None:
    """The commit of this runner's last recorded run on `target` (its own trail, on its disk)."""
    try:
        last = _last_record(Path(directory) / f"{target}{SUFFIX}")
    except ReconcilerError:
        return None
    commit = last.get("commit") if last else None
    return commit if isinstance(commit, str) and len(commit) == 40 else None


@dataclass
class Verdict:
    file: Path
    records: int
    broken: str | None = None  # what is wrong, naming the first broken record
    pruned: int = 0  # the seq of the last record pruned from it (0: none)

    @property
    def ok(self) -> bool:
        return self.broken is None


def verify_chain(records: Iterable[tuple[str, dict]], prev: str = GENESIS,
                 seq: int = 0) -> tuple[int, str | None, dict[int, str]]:
    """Check one target's records, in order, each given with where it was read; from the
    first record (or, given the `prev` hash and `seq` before them, from anywhere: a tail).
    Returns (records checked, what is wrong with the first broken one or None, hash by seq)."""
    count = 0
    by_seq: dict[int, str] = {}
    for where, record in records:
        if record is None:
            return count, lazy("{where}: not a JSON record", where=where), by_seq
        count += 1
        if record.get("seq") != seq + 1:
            return count, lazy("{where} (seq {seq}): expected seq {expected}; record {expected} was removed "
                               "or the records were reordered", where=where, seq=record.get("seq"),
                               expected=seq + 1), by_seq
        if record.get("prev") != prev:
            return count, lazy("{where} (seq {seq}): its prev hash does not match record {previous}: a record "
                               "before it was edited or removed", where=where, seq=record["seq"],
                               previous=seq), by_seq
        if record.get("hash") != record_hash(record):
            return count, lazy("{where} (seq {seq}): its content does not match its hash: the record was edited",
                               where=where, seq=record["seq"]), by_seq
        prev, seq = record["hash"], record["seq"]
        by_seq[seq] = record["hash"]
    return count, None, by_seq


def _record(text: str) -> dict | None:
    try:
        record = json.loads(text)
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) else None


def record_lines(path: Path) -> Iterator[tuple[int, str]]:
    """The record lines of a trail with their line numbers: every non-blank line but a pruned
    trail's anchor (its first)."""
    first = True
    for number, line in read_file(path):
        if first:
            first = False
            record = _record(line)
            if record is not None and record.get("kind") == ANCHOR:
                continue
        yield number, line


def parsed(path: Path) -> Iterator[tuple[str, dict | None]]:
    """Each record with where it was read (None for a line that is not one)."""
    for number, line in record_lines(path):
        yield lazy("{file} line {number}", file=path.name, number=number), _record(line)


def anchor(path: Path) -> dict | None:
    """The anchor line of a pruned trail (its first non-blank line), or None."""
    for _number, line in read_file(path):
        record = _record(line)
        return record if record is not None and record.get("kind") == ANCHOR else None
    return None


def start(path: Path) -> tuple[str, int]:
    """The hash and seq the trail's first record follows: the genesis, or its anchor's."""
    found = anchor(path)
    if found is None:
        return GENESIS, 0
    seq = found.get("seq")
    return str(found.get("hash")), seq if isinstance(seq, int) and seq > 0 else -1  # -1: no record can follow


def anchor_statement(found: dict) -> str:
    """What the apply key signs of an anchor: all of it but its seal."""
    return canonical({k: v for k, v in found.items() if k != "seal"})


def sealed_anchor(found: dict, key) -> dict:
    """The anchor with its seal: only the apply job prunes (audit/prune.py)."""
    try:
        return {**found, "seal": key.sign(anchor_statement(found), ANCHOR_NAMESPACE)}
    except SignatureError as exc:
        raise ReconcilerError(_("could not seal the trail's anchor: {error}", error=exc)) from None


def _anchor_problem(path: Path, found: dict, key, notes) -> str | None:
    """Why a trail's anchor does not count: records removed from the file by anyone but the
    apply job's prune (an anchor it did not seal, or sealed for another target), or an anchor
    naming a record the notes do not have (`notes`: the sealed ones)."""
    if key is None:
        return lazy("{file}: its first records were pruned, and without the apply key's public half "
                    "(RECONCILER_APPLY_PUBLIC_KEY) its anchor cannot be checked", file=path.name)
    target = path.name[: -len(SUFFIX)]
    if found.get("target") != target or not key.valid(anchor_statement(found), str(found.get("seal", "")),
                                                       ANCHOR_NAMESPACE):
        return lazy("{file}: its anchor line is not sealed by the apply key for this target: records 1 to {seq} "
                    "were removed from the file by hand", file=path.name, seq=found.get("seq"))
    noted = {r.get("hash") for _c, r in notes or () if r is not None and r.get("target") == target
             and r.get("seq") == found.get("seq")}
    if notes and found.get("hash") not in noted:
        return lazy("{file}: its anchor names record seq {seq}, which the git notes do not hold as it says",
                    file=path.name, seq=found.get("seq"))
    return None


def verify_file(path: Path, notes: list[tuple[str, dict]] | None = None, key=None,
                sealed_notes: list[tuple[str, dict]] | None = None) -> Verdict:
    """Check the chain of one target's trail, and that every record noted in Git is in it (or,
    for a pruned trail, before its anchor, which the apply key must have sealed, naming a record
    of `sealed_notes`: the notes' records the key sealed; by default `notes`)."""
    prev, first = start(path)
    found = anchor(path)
    if found is not None and (problem := _anchor_problem(path, found, key,
                                                         notes if sealed_notes is None else sealed_notes)):
        return Verdict(path, 0, problem, first)
    count, broken, by_seq = verify_chain(parsed(path), prev, first)
    if broken:
        return Verdict(path, count, broken, first)
    target = path.name[: -len(SUFFIX)]
    mine = [n for n in notes or () if n[1] is not None and n[1].get("target") == target
            and n[1].get("seq", 0) > first]  # what was pruned is in its archive (and still in the notes)
    for commit, noted in sorted(mine, key=lambda n: n[1].get("seq", 0)):
        if by_seq.get(noted.get("seq")) != noted.get("hash"):
            if noted.get("seq") not in by_seq:
                broken = lazy("record seq {seq} noted in Git on commit {commit} is missing from {file}",
                              seq=noted.get("seq"), commit=commit[:10], file=path.name)
            else:
                broken = lazy("record seq {seq} noted in Git on commit {commit} differs in {file}",
                              seq=noted.get("seq"), commit=commit[:10], file=path.name)
            return Verdict(path, count, broken, first)
    return Verdict(path, count, None, first)


def verify_notes(notes: list[tuple[str, dict]]) -> list[tuple[str, int, str | None]]:
    """Each target's chain rebuilt from the git notes alone: (target, records, broken or None).
    An auditor with nothing but the repository can check the whole trail this way."""
    by_target: dict[str, list[tuple[str, dict]]] = {}
    out = []
    for commit, record in notes:
        if record is None:
            out.append(("?", 0, lazy("git note on {commit}: a line that is not a JSON record", commit=commit[:10])))
            continue
        by_target.setdefault(record.get("target", "?"), []).append(
            (lazy("git note on {commit}", commit=commit[:10]), record))
    for target, records in sorted(by_target.items()):
        records.sort(key=lambda r: r[1].get("seq", 0))
        count, broken, _ = verify_chain(records)
        out.append((target, count, broken))
    return out


def trail_files(directory: str | Path) -> list[Path]:
    return sorted(Path(directory).glob(f"*{SUFFIX}"))


def load_records(directories: Iterable[str | Path] = (), notes: list[tuple[str, dict]] | None = None) -> list[dict]:
    """All records of every trail in the directories (or, given notes, of the git notes), oldest first."""
    records = []
    for commit, record in notes or ():
        if record is None:
            raise ReconcilerError(_("the git note on {commit} has a line that is not an audit record: "
                                    "run `reconciler audit verify --from-git`", commit=commit[:10]))
        records.append(record)
    for directory in dict.fromkeys(str(d) for d in directories):
        for path in trail_files(directory):
            for where, record in parsed(path):
                if record is None:
                    raise ReconcilerError(_("{where} is not an audit record: run `reconciler audit verify`",
                                            where=where))
                records.append(record)
    return sorted(records, key=lambda r: (r.get("time", ""), r.get("target", ""), r.get("seq", 0)))
