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

import random
import tempfile
import time
from dataclasses import dataclass, field

import git

from reconciler.approval.signatures import redacted
from reconciler.audit.seal import SEAL_TAG
from reconciler.audit.trail import NOTES_REF
from reconciler.errors import ReconcilerError
from reconciler.i18n import _

NOTES = f"refs/notes/{NOTES_REF}"
THEIRS = f"refs/notes/{NOTES_REF}-remote"  # the remote's notes, fetched to merge with
MERGING = f"refs/notes/{NOTES_REF}-merging"  # the merge being written
ENVELOPES = "refs/reconciler/envelopes/"
MERGE_MESSAGE = "Notes merged by reconciler"  # not for people: a commit message in the notes' own history
ATTEMPTS = 8  # pushes of the notes; each lost race means another shard pushed meanwhile
_IDENTITY = {"GIT_AUTHOR_NAME": "reconciler", "GIT_AUTHOR_EMAIL": "reconciler@localhost",
             "GIT_COMMITTER_NAME": "reconciler", "GIT_COMMITTER_EMAIL": "reconciler@localhost"}


def batches(text: str) -> list[str]:
    """A note's batches, in order: each run's record lines, ended by its seal line or by the
    blank line `git notes append` puts between runs (audit/trail.noted_batches reads them so)."""
    out: list[str] = []
    batch: list[str] = []
    for line in text.splitlines():
        if line.strip():
            batch.append(line)
        if batch and (not line.strip() or line.startswith(SEAL_TAG + " ")):
            out.append("\n".join(batch))
            batch = []
    if batch:
        out.append("\n".join(batch))
    return out


def merged_note(ours: str, theirs: str) -> str:
    """The remote's note as it is, then our batches it lacks, in our order.  Pure."""
    kept = batches(theirs)
    held = set(kept)
    kept += [b for b in batches(ours) if b not in held]
    return "\n\n".join(kept) + "\n" if kept else ""


def _tip(repo: git.Repo, ref: str) -> str | None:
    try:
        return repo.git.rev_parse("--verify", "--quiet", ref + "^{commit}")
    except git.GitCommandError:
        return None


def _ancestor(repo: git.Repo, older: str, newer: str) -> bool:
    try:
        repo.git.merge_base("--is-ancestor", older, newer)
        return True
    except git.GitCommandError:
        return False


def _notes(repo: git.Repo, ref: str) -> dict[str, str]:
    """commit -> note blob, for every note of `ref`."""
    listing = repo.git.notes("--ref", ref, "list")
    return {commit: blob for blob, commit in (line.split() for line in listing.splitlines() if line.strip())}


def merge_notes(repo: git.Repo, theirs: str = THEIRS) -> bool:
    """Merge the notes ref `theirs` (the remote's, fetched) into refs/notes/reconciler, so
    that pushing it is a fast-forward; True when a merge commit was made."""
    ours_tip, theirs_tip = _tip(repo, NOTES), _tip(repo, theirs)
    if theirs_tip is None or theirs_tip == ours_tip or (ours_tip and _ancestor(repo, theirs_tip, ours_tip)):
        return False
    if ours_tip is None or _ancestor(repo, ours_tip, theirs_tip):
        repo.git.update_ref(NOTES, theirs_tip, ours_tip or "0" * 40)
        return False
    mine, remote = _notes(repo, NOTES), _notes(repo, theirs)
    repo.git.update_ref(MERGING, theirs_tip)
    try:
        for commit, blob in mine.items():
            if remote.get(commit) == blob:
                continue
            theirs_text = repo.git.cat_file("blob", remote[commit], strip_newline_and_whitespace=False) \
                if commit in remote else ""
            text = merged_note(repo.git.cat_file("blob", blob, strip_newline_and_whitespace=False), theirs_text)
            if text.strip() == theirs_text.strip():
                continue
            with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".note") as note:
                note.write(text)
                note.flush()
                repo.git.notes("--ref", MERGING, "add", "-f", "--file", note.name, commit, env=_IDENTITY)
        tree = repo.git.rev_parse(MERGING + "^{tree}")
        merge = repo.git.commit_tree(tree, "-p", theirs_tip, "-p", ours_tip, "-m", MERGE_MESSAGE, env=_IDENTITY)
        repo.git.update_ref(NOTES, merge, ours_tip)
    finally:
        repo.git.update_ref("-d", MERGING)
    return True


def push_notes(repo: git.Repo, remote: str, attempts: int = ATTEMPTS) -> int:
    """Push refs/notes/reconciler, merging what other jobs pushed meanwhile; the number of
    merges it took.  Raises ReconcilerError (the remote's address never shown) when it cannot."""
    merges, last = 0, None
    for attempt in range(attempts):
        try:
            repo.git.push(remote, f"{NOTES}:{NOTES}")
            return merges
        except git.GitCommandError as exc:
            last = exc
        try:
            repo.git.fetch("--no-tags", remote, f"+{NOTES}:{THEIRS}")
        except git.GitCommandError as exc:
            last = exc
            continue
        merges += merge_notes(repo, THEIRS)
        time.sleep(random.uniform(0, 0.2 * (attempt + 1)))  # shards that collided do not collide again in step
    raise ReconcilerError(redacted(_("could not push {ref} to {remote}: {error}", ref=NOTES, remote=remote,
                                     error=getattr(last, "stderr", "") or last)))


@dataclass
class Published:
    envelopes: int = 0
    refs: list[str] = field(default_factory=list)  # applied refs and work orders
    notes: bool = False
    merges: int = 0


def _refs(repo: git.Repo, *prefixes: str) -> list[str]:
    listing = repo.git.for_each_ref("--format=%(refname)", *prefixes)
    return [line for line in listing.splitlines() if line]


def publish(repo: git.Repo, remote: str, targets: list[str] | None, envelopes: bool) -> Published:
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
            done.merges = push_notes(repo, remote)
            done.notes = True
        except ReconcilerError as exc:
            failures.append(exc)
    if failures:
        first = failures[0]
        raise ReconcilerError(redacted(_("could not push to {remote}: {error}", remote=remote,
                                         error=getattr(first, "stderr", "") or first)))
    return done
