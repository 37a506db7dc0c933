"""Git objects written straight into the object database (gitpython's, no process per
object), for what the reconciler keeps under refs/reconciler/ beside the desired state: sealed
envelopes (delivery/envelopes.py) and work orders (providers/manual/).  Each is a commit with
no parent, on disk (fsync) before its ref moves."""
from __future__ import annotations

import datetime as dt
import os
from io import BytesIO
from pathlib import Path


def durable(repo, objects: list[str]) -> None:
    """Loose objects on disk before the ref that names them moves (gitdb writes them without
    fsync): a power cut afterwards must not lose what the ref promises (an envelope's password a
    directory already holds, a work order an operator already received).  The object store is
    the common one: a linked worktree's git_dir holds none."""
    store = Path(repo.common_dir) / "objects"
    folders = set()
    for sha in objects:
        path = store / sha[:2] / sha[2:]
        if path.exists():
            sync(path)
            folders.add(path.parent)
    for folder in folders | {store}:  # a new two-letter folder is an entry of `objects/`
        sync(folder)


def durable_ref(repo, ref: str) -> None:
    """The ref's file and every folder it was created in, up to refs/ (Git syncs the file's
    contents with core.fsync, not the folders a new ref's rename makes entries in)."""
    path = Path(repo.common_dir) / ref
    if not path.exists():
        return  # packed: Git wrote and renamed packed-refs itself
    sync(path)
    for folder in path.parents:
        sync(folder)
        if folder.name == "refs":
            break


def sync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def resolve(repo, ref: str) -> str | None:
    """The object the ref names now, whatever its type (the update is compared against it)."""
    try:
        return repo.git.rev_parse("--verify", "-q", ref)
    except Exception:
        return None


def blob(repo, data: bytes) -> bytes:
    from gitdb import IStream

    return repo.odb.store(IStream(b"blob", len(data), BytesIO(data))).binsha


def tree_entries(repo, commit: str) -> list[tuple[str, bytes]]:
    tree = repo.commit(commit).tree
    return [(b.name, b.binsha) for b in tree.blobs]


def tree(repo, entries: dict[str, bytes]) -> str:
    from gitdb import IStream

    body = b"".join(b"100644 " + name.encode("utf-8") + b"\0" + sha for name, sha in sorted(entries.items()))
    return repo.odb.store(IStream(b"tree", len(body), BytesIO(body))).hexsha.decode("ascii")


def orphan_commit(repo, tree: str, message: str, parent: str | None = None) -> str:
    """A commit with no parent: what an earlier commit of the same ref held is not reachable
    from it (envelopes: a secret taken back is gone for good).  With `parent`, one on top of it
    (a work order's confirmation, which keeps the order in its history)."""
    from gitdb import IStream

    stamp = f"reconciler <reconciler@localhost> {int(dt.datetime.now(dt.timezone.utc).timestamp())} +0000"
    lines = [f"tree {tree}", *([f"parent {parent}"] if parent else []), f"author {stamp}", f"committer {stamp}", "",
             message]
    body = "\n".join(lines).encode("utf-8")
    return repo.odb.store(IStream(b"commit", len(body), BytesIO(body))).hexsha.decode("ascii")
