"""Which inventory a run uses: never one nobody approved.

The inventory decides where the reconciler connects and what it reads: the AD host and
whether TLS is checked, the doveadm URL and where its key is read from.  So:
  - the plan of a pull request uses the base branch's inventory, never the pull request's
    own: a pull request that points a target at its own server would otherwise receive the
    runner's secrets before anyone reviewed it;
  - a plan or apply of a commit uses the newest version of the inventory file that landed
    with approval (approval/inventory_review.py), from Git, never the file on disk.
An inventory outside the repository is the operator's, and is used as it is.
"""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from reconciler.desired.files import LINK, blob_text
from reconciler.desired.source import at_ref, open_repo
from reconciler.errors import ReconcilerError
from reconciler.i18n import _, lazy


def _relative(repo, inventory: Path) -> str | None:
    """The inventory's path in the repository (None: outside it).  The file itself is never
    resolved: a link pushed as `inventory/x.yaml` to another approved file must not make the
    run use that file; a link is refused (its committed version would be anyway)."""
    path = Path(inventory)
    try:
        rel = (path.parent.resolve() / path.name).relative_to(Path(repo.working_tree_dir).resolve()).as_posix()
    except ValueError:
        return None
    if path.is_symlink():
        raise ReconcilerError(_("the inventory {file} is {reason}", file=rel, reason=_(LINK)))
    return rel


@contextmanager
def _as_file(rel: str, text: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="reconciler-inventory-") as folder:
        path = Path(folder) / Path(rel).name
        path.write_text(text, encoding="utf-8")
        os.chmod(path, 0o600)
        yield path


@contextmanager
def approved_inventory(source, inventory: Path) -> Iterator[tuple[Path, str | None]]:
    """(the inventory in force at the source's commit, a warning when a newer version of the
    file was not approved)."""
    rel = _relative(source.repo, inventory) if source.commit is not None else None
    if rel is None:
        yield inventory, None
        return
    from reconciler.approval.inventory_review import changed
    from reconciler.approval.policy import joined
    from reconciler.approval.review import Judge
    from reconciler.approval.solicitudes import History

    judge = Judge(source, None, History(source.repo, source.commit))
    in_force = judge.rules.last_approved(source.sha, rel)
    if in_force is None:
        raise ReconcilerError(_("{file} has no approved version on {commit}: no commit that changed it "
                                "was approved (the repository's first commit counts as approved)",
                                file=rel, commit=source.sha[:10]))
    text = blob_text(source.repo.commit(in_force), rel)
    if text is None:
        raise ReconcilerError(_("the approved version of {file} ({commit}) deletes it: nothing to reach",
                                file=rel, commit=in_force[:10]))
    now = blob_text(source.commit, rel)
    note = None
    if now != text:
        what = joined(changed(text, now)[:6], ", ") or lazy("its text")
        pending = ", ".join(sorted(c[:10] for c, p in judge.rules.ignored.items() if p == rel))
        note = lazy("{file} changed without the approvals it needs ({settings}; commit {commits}): this run uses "
                    "the version approved in {approved}", file=rel, settings=what, commits=pending,
                    approved=in_force[:10])
    with _as_file(rel, text) as path:
        yield path, note


@contextmanager
def base_inventory(repo_path: Path, inventory: Path, base: str | None) -> Iterator[tuple[Path, str | None]]:
    """(the inventory to use, a warning when the pull request changes it): the version in force
    on the base branch.  An inventory outside the repository is used as it is."""
    repo = open_repo(repo_path) if base else None
    rel = _relative(repo, inventory) if repo is not None else None
    if repo is None or rel is None:
        yield inventory, None
        return
    from reconciler.approval.review import base_commit

    base_sha = base_commit(repo, base)
    if blob_text(repo.commit(base_sha), rel) is None:
        raise ReconcilerError(_("--proposal: {branch} has no inventory {file}; a pull request's plan uses the base "
                                "branch's inventory, never its own", branch=base, file=rel))
    with approved_inventory(at_ref(repo_path, base_sha), inventory) as (path, _unused):
        mine = Path(inventory).read_text(encoding="utf-8", errors="replace") if Path(inventory).is_file() else None
        note = None if mine == path.read_text(encoding="utf-8") else lazy(
            "this pull request changes {file}: its plan uses the inventory in force on {branch}; the new one counts "
            "once the pull request has landed with the approvals it needs", file=rel, branch=base)
        yield path, note
