"""The plan of a pull request uses the base branch's inventory, never the pull request's own.

The inventory decides where the reconciler connects and what it reads: the AD host and
whether TLS is checked, the doveadm URL and where its key is read from.  A pull request that
points a target at its own server would otherwise receive the runner's secrets before anyone
reviewed it.  Its inventory counts once it has landed.
"""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from reconciler.approval.review import base_commit
from reconciler.desired.files import blob_text
from reconciler.desired.source import open_repo
from reconciler.errors import ReconcilerError


@contextmanager
def base_inventory(repo_path: Path, inventory: Path, base: str | None) -> Iterator[tuple[Path, str | None]]:
    """(the inventory to use, a warning when the pull request changes it).  An inventory
    outside the repository is the operator's, and is used as it is."""
    repo = open_repo(repo_path) if base else None
    if repo is None:
        yield inventory, None
        return
    try:
        rel = Path(inventory).resolve().relative_to(Path(repo.working_tree_dir).resolve()).as_posix()
    except ValueError:
        yield inventory, None
        return
    text = blob_text(repo.commit(base_commit(repo, base)), rel)
    if text is None:
        raise ReconcilerError(f"--proposal: {base} has no inventory {rel}; a pull request's plan uses the base "
                              "branch's inventory, never its own")
    mine = Path(inventory).read_text(encoding="utf-8", errors="replace") if Path(inventory).is_file() else None
    note = None if mine == text else (f"this pull request changes {rel}: its plan uses the inventory of {base}; the "
                                      "new one counts once the pull request has landed")
    with tempfile.TemporaryDirectory(prefix="reconciler-inventory-") as folder:
        path = Path(folder) / Path(rel).name
        path.write_text(text, encoding="utf-8")
        os.chmod(path, 0o600)
        yield path, note
