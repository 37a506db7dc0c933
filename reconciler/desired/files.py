"""Where the desired-state files are read from: a directory on disk or a tree in a Git commit.

`apply` reads from a commit of the protected branch, never from the working tree, so the
loader only ever sees this interface.  Paths are POSIX, relative to desired_state/.
"""
from __future__ import annotations

import errno
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from reconciler.i18n import N_, _

if TYPE_CHECKING:  # only for names: reading a directory needs no Git
    import git



class DesiredFiles(Protocol):
    label: str  # how file names are shown: "desired_state"

    def exists(self) -> bool: ...

    def read_text(self, rel: str) -> str | None:
        """The file's text, or None when it does not exist.  Raises UnicodeDecodeError."""

    def listing(self, rel_dir: str, suffixes: tuple[str, ...]) -> list[str]:
        """Sorted relative paths of the files directly in rel_dir with one of the suffixes."""

    def identity(self, rel: str) -> str | None:
        """A name of the file's content known without reading it (Git's blob id), or None."""


LINK = N_("a symbolic link: desired state is regular files inside the repository, never links")


def refuse_link(path: Path, root: Path) -> None:
    """Raise (an OSError that names why) when `path` is a link, or leads out of `root`: a
    link to the runner's private key would otherwise be read, and echoed in a message."""
    if path.is_symlink() or not path.resolve().is_relative_to(root.resolve()):
        raise OSError(errno.ELOOP, _(LINK))


class DirectoryFiles:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.label = self.root.name or str(self.root)

    def exists(self) -> bool:
        return self.root.is_dir()

    def read_text(self, rel: str) -> str | None:
        path = self.root / rel
        if not path.exists() and not path.is_symlink():
            return None
        refuse_link(path, self.root)
        for folder in [self.root, *path.relative_to(self.root).parents]:  # desired_state/, users/...
            if (self.root / folder).is_symlink():
                raise OSError(errno.ELOOP, _(LINK))
        if not path.is_file():
            return None
        return path.read_bytes().decode("utf-8")

    def identity(self, rel: str) -> str | None:
        return None  # a file on disk is known by its text: read, then hashed

    def listing(self, rel_dir: str, suffixes: tuple[str, ...]) -> list[str]:
        directory = self.root / rel_dir
        if not directory.is_dir():
            return []
        return sorted(f"{rel_dir}/{p.name}" for p in directory.iterdir()
                      if p.suffix in suffixes and (p.is_file() or p.is_symlink()))  # a link: refused when read


SYMLINK_MODE = 0o120000  # a blob that is a symbolic link: its content is the target's path


def blob_id(commit: git.Commit, path: str) -> str | None:
    """The id of a file's content as committed (equal ids: equal content), or None when the
    commit has no such file."""
    try:
        return (commit.tree / path).hexsha
    except (KeyError, TypeError):  # TypeError: a link where a folder on the way belongs
        return None


def identity_at(commit: git.Commit, path: str) -> str | None:
    """CommitFiles.identity of a file of the commit, by its path in the repository."""
    try:
        return _identity(commit.tree / path)
    except (KeyError, TypeError):  # TypeError: a link where a folder on the way belongs
        return None


def _identity(blob) -> str | None:
    # A link's blob may hold the same bytes, and so have the same id, as a file: never named.
    if blob is None or blob.type != "blob" or blob.mode == SYMLINK_MODE:
        return None
    return f"blob:{blob.hexsha}"


def blob_text(commit: git.Commit, path: str) -> str | None:
    """A file's text as committed, or None when the commit has no such file, it is a link, or
    it is not UTF-8 text."""
    try:
        obj = commit.tree / path
    except (KeyError, TypeError):  # TypeError: a link where a folder on the way belongs
        return None
    if obj.type != "blob" or obj.mode == SYMLINK_MODE:
        return None
    try:
        return obj.data_stream.read().decode("utf-8")
    except UnicodeDecodeError:
        return None


class CommitFiles:
    """desired_state/ as committed: blobs are read from the object store, not the checkout."""

    def __init__(self, commit: git.Commit, root: str = "desired_state"):
        self.commit, self.label = commit, root
        try:
            self.tree = commit.tree / root
        except KeyError:
            self.tree = None
        if self.tree is not None and self.tree.type != "tree":  # a link (or a file) where the folder belongs
            self.tree = None

    def exists(self) -> bool:
        return self.tree is not None

    def _object(self, rel: str):
        if self.tree is None:
            return None
        try:
            return self.tree / rel
        except (KeyError, TypeError):  # TypeError: a link where a folder on the way belongs
            return None

    def read_text(self, rel: str) -> str | None:
        blob = self._object(rel)
        if blob is None or blob.type != "blob":
            return None
        if blob.mode == SYMLINK_MODE:
            raise OSError(errno.ELOOP, _(LINK))
        return blob.data_stream.read().decode("utf-8")

    def identity(self, rel: str) -> str | None:
        """The file's content named without reading it (Git's blob id), or None: a link, a
        folder, nothing there (reading it says which)."""
        return _identity(self._object(rel))

    def listing(self, rel_dir: str, suffixes: tuple[str, ...]) -> list[str]:
        tree = self._object(rel_dir)
        if tree is None or tree.type != "tree":
            return []
        return sorted(f"{rel_dir}/{b.name}" for b in tree.blobs if Path(b.name).suffix in suffixes)
