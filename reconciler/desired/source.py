"""Where a run reads the desired state from: a commit of the protected branch, or (for a local
preview only) the working tree.  Plans name what they were made from.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.desired.files import CommitFiles, DesiredFiles, DirectoryFiles
from reconciler.errors import ReconcilerError
from reconciler.i18n import _, lazy

if TYPE_CHECKING:  # Git is imported when a repository is opened: validating files needs none
    import git

DEFAULT_REF = "main"
DESIRED_DIR = "desired_state"


@dataclass
class DesiredSource:
    files: DesiredFiles
    description: str  # a Message (i18n.lazy): it is kept in the plan and the audit trail
    repo: git.Repo | None = None
    commit: git.Commit | None = None  # None: the working tree
    prefix: str = ""  # the desired repository's directory inside the Git work tree ("" at its root)

    @property
    def sha(self) -> str | None:
        return self.commit.hexsha if self.commit is not None else None

    def path_in_repo(self, rel: str) -> str:
        """'desired_state/users/x.yaml' as Git names it."""
        return f"{self.prefix}{rel}"

    def tree_id(self) -> str:
        """The identity of the desired_state/ content: its Git tree (the same for a pull
        request's head and the squash commit made from it), or a hash of the files on disk."""
        if self.commit is not None:
            try:
                return (self.commit.tree / self.path_in_repo(DESIRED_DIR)).hexsha
            except (KeyError, TypeError):  # TypeError: a link where a folder belongs
                return "0" * 40
        digest = hashlib.sha256()
        root = Path(self.files.root)  # type: ignore[attr-defined]
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
        return digest.hexdigest()


def open_repo(path: Path) -> git.Repo | None:
    """The Git repository holding `path`, or None."""
    import git

    try:
        return git.Repo(path, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return None


def _prefix(repo: git.Repo, path: Path) -> str:
    rel = Path(path).resolve().relative_to(Path(repo.working_tree_dir).resolve())
    return "" if str(rel) == "." else f"{rel.as_posix()}/"


def working_tree(path: Path) -> DesiredSource:
    path = Path(path)
    files = DirectoryFiles(path / DESIRED_DIR)
    repo = open_repo(path)
    if repo is None:
        return DesiredSource(files, lazy("working tree {path} (not a Git repository; a preview only)", path=str(path)))
    try:
        head = repo.head.commit.hexsha[:12]
    except ValueError:
        head = None
    prefix = _prefix(repo, path)
    dirty = repo.is_dirty(untracked_files=True, path=f"{prefix}{DESIRED_DIR}")
    if head is None and dirty:
        description = lazy("working tree (no commit yet, with uncommitted changes; a preview only, apply reads commits)")
    elif head is None:
        description = lazy("working tree (no commit yet, no uncommitted changes; a preview only, apply reads commits)")
    elif dirty:
        description = lazy("working tree (commit {commit}, with uncommitted changes; a preview only, apply reads "
                           "commits)", commit=head)
    else:
        description = lazy("working tree (commit {commit}, no uncommitted changes; a preview only, apply reads "
                           "commits)", commit=head)
    return DesiredSource(files, description, repo=repo, prefix=prefix)


def branch_commit(repo: "git.Repo", name: str) -> str | None:
    """The commit of branch `name` (main, origin/main, or a full refs/heads/ or refs/remotes/
    name), or None.  Never a tag: anyone with push rights can make a tag called main or
    origin/main, and Git prefers tags when a short name is ambiguous."""
    if name.startswith("refs/"):
        candidates = [name] if name.startswith(("refs/heads/", "refs/remotes/")) else []
    else:
        candidates = [f"refs/heads/{name}", f"refs/remotes/{name}"]
    for ref in candidates:
        sha = repo.git.rev_parse("--verify", "-q", f"{ref}^{{commit}}", with_exceptions=False).strip()
        if sha:
            return sha
    return None


def plain_directory(path: Path) -> DesiredSource:
    """The files on disk and nothing else: what `validate` checks (no Git, no description)."""
    return DesiredSource(DirectoryFiles(Path(path) / DESIRED_DIR), lazy("directory {path}", path=str(path)))


def at_ref(path: Path, ref: str = DEFAULT_REF) -> DesiredSource:
    import git

    repo = open_repo(Path(path))
    if repo is None:
        raise ReconcilerError(_("{path} is not a Git repository: desired state is read from a commit "
                                "(use plan --working-tree to preview files that are not committed)", path=path))
    try:
        commit = repo.commit(ref)
    except (git.BadName, ValueError, git.GitCommandError):
        raise ReconcilerError(_("the repository {repo} has no commit {ref!r} "
                                "(desired state is read from the protected branch, by default main)",
                                repo=repo.working_tree_dir, ref=ref)) from None
    prefix = _prefix(repo, Path(path))
    files = CommitFiles(commit, f"{prefix}{DESIRED_DIR}")
    return DesiredSource(files, lazy("commit {commit} ({ref}): {summary}", commit=commit.hexsha[:12], ref=ref,
                                     summary=commit.summary),
                         repo=repo, commit=commit, prefix=prefix)
