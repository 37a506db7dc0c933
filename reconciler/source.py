"""What the desired state was read from, said in one line for plan headers (gitpython)."""
from __future__ import annotations

from pathlib import Path

import git


def describe(root: Path) -> str:
    try:
        repo = git.Repo(root, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return f"{root} (not a Git repository)"
    try:
        head = repo.head.commit.hexsha[:12]
    except ValueError:
        return f"{root} (Git repository with no commits yet)"
    branch = "detached HEAD" if repo.head.is_detached else repo.active_branch.name
    rel = Path(root).resolve().relative_to(Path(repo.working_tree_dir).resolve())
    dirty = repo.is_dirty(untracked_files=True, path=str(rel) if str(rel) != "." else None)
    state = "working tree with uncommitted changes" if dirty else "clean working tree"
    return f"commit {head} on {branch}, {state}"
