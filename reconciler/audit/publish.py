"""What an apply leaves in the repository, pushed back to the remote by the job that ran it.

    refs/reconciler/envelopes/*             the sealed secrets: first, since on an ephemeral
                                            runner they are the only copy of passwords set
    refs/reconciler/work-orders/<target>/*  the work orders issued, written once
    refs/reconciler/applied/<target>        the last commit applied whole, signed
    refs/notes/reconciler                   the audit records, as git notes on the applied commit

A shard's job (run/shards.py) pushes the refs of its own targets only, so shards never race for
a ref, except the notes: every shard notes its records on the same commit.  When the remote's
notes moved since this job fetched them, the two are merged note by note and batch by batch
(one run's records and its seal line stay one block, as written; a block both sides hold is
kept once; the remote's blocks come first, as they were pushed first), and the push is tried
again.  Git's own `notes merge` strategies cannot do this: `union` repeats what both sides
already held, and `cat_sort_uniq` sorts the lines, which breaks every seal.
"""
from __future__ import annotations

import os
import random
import re
import secrets
import time
from dataclasses import dataclass, field

import git

from reconciler import gitobjects
from reconciler.approval.signatures import redacted
from reconciler.audit.seal import SEAL_TAG
from reconciler.audit.trail import GIT_IDENTITY, NOTES_REF, UNPUSHED
from reconciler.errors import ReconcilerError
from reconciler.i18n import _

NOTES = f"refs/notes/{NOTES_REF}"
THEIRS = f"refs/notes/{NOTES_REF}-remote"  # the remote's notes, fetched to merge with
ENVELOPES = "refs/reconciler/envelopes/"
MERGE_MESSAGE = "Notes merged by reconciler"  # not for people: a commit message in the notes' own history
ATTEMPTS = 10  # pushes of the notes; each lost race means another shard pushed meanwhile
BACKOFF = 0.5  # seconds: the first wait's limit, doubled after each lost race, at most CEILING
CEILING = 20.0
_SEAL = SEAL_TAG.encode("ascii") + b" "
_NOTE_PATH = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")  # a note's path, its fan-out joined


def batches(note: bytes) -> list[bytes]:
    """A note's batches, in order: each run's record lines, ended by its seal line or by the
    blank line between runs (audit/trail.attach_note writes them so, noted_batches reads them so).
    Bytes, split at b"\n" alone: a note someone else wrote need not be UTF-8, and a record may
    hold U+2028, which str.splitlines() would cut at."""
    out: list[bytes] = []
    batch: list[bytes] = []
    for line in note.split(b"\n"):
        if line.strip():
            batch.append(line)
        if batch and (not line.strip() or line.startswith(_SEAL)):
            out.append(b"\n".join(batch))
            batch = []
    if batch:
        out.append(b"\n".join(batch))
    return out


def merged_note(ours: bytes, theirs: bytes) -> bytes:
    """The remote's note byte for byte, then our batches it lacks, in our order.  Pure."""
    held = set(batches(theirs))
    missing = [b for b in batches(ours) if b not in held]
    if not missing:
        return theirs
    head = theirs.rstrip(b"\n")
    return (head + b"\n\n" if head else b"") + b"\n\n".join(missing) + b"\n"


def _tip(repo: git.Repo, ref: str) -> str | None:
    return gitobjects.resolve(repo, ref + "^{commit}")


def _ancestor(repo: git.Repo, older: str, newer: str) -> bool:
    try:
        repo.git.merge_base("--is-ancestor", older, newer)
        return True
    except git.GitCommandError:
        return False


def _notes(repo: git.Repo, tip: str) -> dict[str, tuple[str, str]]:
    """commit -> (path, note blob) for every note of the notes commit `tip`.  Only blobs whose
    path, its fan-out joined, is an object id are notes: anything else someone put in the tree
    is never taken for one (nor passed to Git as a revision)."""
    notes = {}
    for entry in repo.git.ls_tree("-r", "-z", tip).split("\0"):  # "<mode> <type> <sha>\t<path>"
        about, _tab, path = entry.partition("\t")
        fields = about.split()
        if len(fields) == 3 and fields[1] == "blob" and _NOTE_PATH.fullmatch(joined := path.replace("/", "")):
            notes[joined] = (path, fields[2])
    return notes


def _blob(repo: git.Repo, sha: str) -> bytes:
    return repo.git.cat_file("blob", sha, stdout_as_string=False)


def merge_notes(repo: git.Repo, theirs: str = THEIRS) -> bool:
    """Merge the notes at `theirs` (the remote's, fetched) into refs/notes/reconciler, so that
    pushing it is a fast-forward; True when a merge commit was made.  Raises ReconcilerError."""
    try:
        return _merge(repo, theirs)
    except git.GitCommandError as exc:
        raise ReconcilerError(_("could not merge the audit notes with {ref}: {error}", ref=theirs,
                                error=(exc.stderr or str(exc)).strip())) from None


def _merge(repo: git.Repo, theirs: str) -> bool:
    ours_tip, theirs_tip = _tip(repo, NOTES), _tip(repo, theirs)
    if theirs_tip is None or theirs_tip == ours_tip or (ours_tip and _ancestor(repo, theirs_tip, ours_tip)):
        return False
    if ours_tip is None or _ancestor(repo, ours_tip, theirs_tip):
        repo.git.update_ref(NOTES, theirs_tip, ours_tip or "0" * 40)
        return False
    mine, remote = _notes(repo, ours_tip), _notes(repo, theirs_tip)
    # The remote's tree as it is, in an index of this merge's own, with each of our notes it
    # lacks or holds otherwise written over its entry: paths, never revisions, so no entry can
    # name another commit's note.
    index = os.path.join(repo.git_dir, f"reconciler-notes-{os.getpid()}-{secrets.token_hex(4)}.index")
    env = {**GIT_IDENTITY, "GIT_INDEX_FILE": index}
    try:
        repo.git.read_tree(theirs_tip, env=env)
        for commit, (path, blob) in mine.items():
            theirs_path, theirs_blob = remote.get(commit, (path, None))
            if theirs_blob == blob:
                continue
            theirs_note = _blob(repo, theirs_blob) if theirs_blob else b""
            note = merged_note(_blob(repo, blob), theirs_note)
            if note != theirs_note:
                written = gitobjects.blob(repo, note).hex()
                repo.git.update_index("--add", "--cacheinfo", f"100644,{written},{theirs_path}", env=env)
        tree = repo.git.write_tree(env=env)
    finally:
        for leftover in (index, index + ".lock"):
            try:
                os.unlink(leftover)
            except FileNotFoundError:
                pass
    merge = repo.git.commit_tree(tree, "-p", theirs_tip, "-p", ours_tip, "-m", MERGE_MESSAGE, env=GIT_IDENTITY)
    repo.git.update_ref(NOTES, merge, ours_tip)
    return True


def push_notes(repo: git.Repo, remote: str, attempts: int = ATTEMPTS, backoff: float = BACKOFF) -> int:
    """Push refs/notes/reconciler, merging what other jobs pushed meanwhile, and what earlier
    runs in this clone noted but never pushed (UNPUSHED); the number of merges it took.
    Between lost races it waits a random time under a limit that doubles (shards that collided
    do not collide again in step; a network that dropped has time to come back).  Raises
    ReconcilerError (the remote's address never shown) when it cannot: the notes stay in
    UNPUSHED for the next push."""
    held = _tip(repo, NOTES)
    # Only those the notes do not already hold: one listing, however many runs noted since.
    for kept in _refs(repo, *([f"--no-merged={held}"] if held else []), UNPUSHED):
        try:
            merge_notes(repo, kept)
        except ReconcilerError:
            pass  # kept for a later push, and never in the way of this one
    keep_unpushed(repo)
    merges, last = 0, None
    for attempt in range(attempts):
        if attempt:
            time.sleep(random.uniform(0, min(CEILING, backoff * 2 ** (attempt - 1))))
        try:
            repo.git.push(remote, f"{NOTES}:{NOTES}")
            # Listed at once: what the push delivered (usually this run's one).
            for delivered in _refs(repo, f"--merged={_tip(repo, NOTES)}", UNPUSHED):
                repo.git.update_ref("-d", delivered, with_exceptions=False)
            return merges
        except git.GitCommandError as exc:
            last = exc
        try:
            repo.git.fetch("--no-tags", remote, f"+{NOTES}:{THEIRS}")
        except git.GitCommandError as exc:
            last = exc
            continue
        merges += merge_notes(repo, THEIRS)
        keep_unpushed(repo)
    raise ReconcilerError(redacted(_("could not push {ref} to {remote}: {error}; its records are kept in {kept} "
                                     "and pushed with the next push from this clone", ref=NOTES, remote=remote,
                                     kept=UNPUSHED, error=(getattr(last, "stderr", "") or str(last)).strip())))


def keep_unpushed(repo: git.Repo) -> None:
    """Keep the notes as they are now under UNPUSHED until a push delivers them."""
    if (tip := _tip(repo, NOTES)) is not None:
        repo.git.update_ref(UNPUSHED + tip, tip)


@dataclass
class Published:
    envelopes: int = 0
    refs: list[str] = field(default_factory=list)  # applied refs and work orders
    notes: bool = False
    merges: int = 0


def _refs(repo: git.Repo, *prefixes: str) -> list[str]:
    listing = repo.git.for_each_ref("--format=%(refname)", *prefixes)
    return [line for line in listing.splitlines() if line]


def publish(repo: git.Repo, remote: str, targets: list[str] | None, envelopes: bool,
            attempts: int = ATTEMPTS, backoff: float = BACKOFF) -> Published:
    """Push what an apply of `targets` (None: every target) left: the envelopes when
    `envelopes` (only the shard that seals secrets holds them), the targets' work orders and
    applied refs, then the notes.  Every part is tried; the first failure is raised after."""
    done, failures = Published(), []
    if envelopes and (sealed := _refs(repo, ENVELOPES)):
        # Forced: an envelope is rewritten without history when a secret is taken back.
        try:
            repo.git.push(remote, *[f"+{ref}:{ref}" for ref in sealed])
            done.envelopes = len(sealed)
        except git.GitCommandError as exc:
            failures.append(exc)
    prefixes = ["refs/reconciler/applied/", "refs/reconciler/work-orders/"] if targets is None else \
        [p for t in targets for p in (f"refs/reconciler/applied/{t}", f"refs/reconciler/work-orders/{t}/")]
    if refs := _refs(repo, *prefixes):
        try:  # never forced: applied refs only move forward, work orders are written once
            repo.git.push(remote, *[f"{ref}:{ref}" for ref in refs])
            done.refs = refs
        except git.GitCommandError as exc:
            failures.append(exc)
    if _tip(repo, NOTES) is not None:
        try:
            done.merges = push_notes(repo, remote, attempts, backoff)
            done.notes = True
        except ReconcilerError as exc:
            failures.append(exc)
    if failures:
        first = failures[0]
        raise ReconcilerError(redacted(_("could not push to {remote}: {error}", remote=remote,
                                         error=getattr(first, "stderr", "") or first)))
    return done
