"""Compiled schemas kept between runs: fastjsonschema turns a JSON Schema into Python source,
which takes longer than everything else a small command does (about 40 ms for the inventory's
and the people's schemas, and 30 ms more to compile that source to bytecode).  The bytecode is
kept in the user's cache directory, as Python keeps .pyc files, named by a hash of the schema,
fastjsonschema's version and Python's, and is only ever regenerated, never edited: a missing,
foreign or unreadable entry means compiling again.

Only the package's own schemas are compiled (desired_state files never supply one).  An entry
is used only when it belongs to the user running the command and no one else can write it or
any folder above it (read through no link, from the file that was checked), and never from a
cache inside a Git work tree (its links resolved first): a pull request could commit a
file there (XDG_CACHE_HOME=$CI_PROJECT_DIR/.cache is a common CI setting), and it would pass
for the user's own once checked out.  A relative XDG_CACHE_HOME is ignored, as the XDG
specification says.  RECONCILER_SCHEMA_CACHE=off turns the cache off.
"""
from __future__ import annotations

import hashlib
import json
import marshal
import math
import os
import stat
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Callable

import fastjsonschema


def cache_dir() -> Path | None:
    """Where compiled schemas are kept, or None: no safe place (or turned off)."""
    if os.environ.get("RECONCILER_SCHEMA_CACHE", "").lower() in ("off", "0", "no"):
        return None
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):
        try:
            base = str(Path.home() / ".cache")
        except (RuntimeError, KeyError):  # no HOME and no passwd entry
            return None
    directory = Path(os.path.realpath(Path(base) / "reconciler" / "schemas"))  # a link into a checkout is seen
    return None if _in_work_tree(directory) else directory


def _in_work_tree(directory: Path) -> bool:
    """Whether `directory` (or the nearest existing folder above it) is inside a Git work tree."""
    for folder in [directory, *directory.parents]:
        if (folder / ".git").exists():
            return True
    return False


def make_dirs(directory: Path) -> None:
    """Create each missing folder down to `directory` for this user alone (mkdir's parents
    would get the umask's mode, 0777 under umask 000)."""
    missing = [d for d in [directory, *directory.parents] if not d.exists()]
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)


def _safe_folders(path: Path) -> bool:
    """Every folder from / down to `path`'s own belongs to root or this user and no one else
    can write it (as OpenSSH's StrictModes judges a key's path); a folder anyone may write but
    only its owner may rename in, root's with the sticky bit (/tmp), is safe too."""
    for folder in [path.parent, *path.parent.parents]:
        info = os.lstat(folder)
        if stat.S_ISLNK(info.st_mode):
            return False  # cache_dir resolved the links it chose; a new one is someone else's
        if info.st_uid not in (0, os.geteuid()):
            return False
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not (info.st_uid == 0 and info.st_mode & stat.S_ISVTX):
            return False
    return True


def read_trusted(path: Path, limit: int = -1) -> bytes | None:
    """The bytes of a cache entry that is ours alone (see _safe_folders), read from the very
    file that was checked (no link followed, no swap between the check and the read, never
    waiting on a pipe put in its place); None for any other.  `limit`: its first bytes only."""
    try:
        if not _safe_folders(path):
            return None
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() \
                or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return None
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read(limit)
    except OSError:
        return None
    finally:
        os.close(fd)


def require_cached(condition) -> None:
    """A check of what a cache file holds, which `python -O` keeps (an assert would go): the
    caller catches the ValueError and treats the file as absent."""
    if not condition:
        raise ValueError("not an entry this code wrote")  # not for people: caught, read as absent


def cached_time(value) -> float:
    """A time a cache file holds (seconds since the epoch), checked like require_cached: NaN,
    an infinity or a time no clock gives is damage (a plan shows it, and datetime refuses it)."""
    seconds = float(value)
    require_cached(math.isfinite(seconds) and 0 <= seconds < 2 ** 33)
    return seconds


def _key(document: dict, detailed: bool) -> str:
    text = json.dumps([fastjsonschema.VERSION, sys.version, detailed, document], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _trusted(path: Path) -> bool:
    """Ours alone: the file and every folder above it (see _safe_folders)."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(info.st_mode) and info.st_uid == os.geteuid() \
        and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and _safe_folders(path)


def _read(path: Path):
    data = read_trusted(path)
    if data is None:
        return None
    try:
        return marshal.loads(data)
    except Exception:  # noqa: BLE001 - a damaged entry is compiled again, never a crash
        return None


def write_private(path: Path, data: bytes | Iterable[bytes]) -> bool:
    """Atomically (readers see the old file or the new one, whole), 0600 in folders made 0700,
    or not at all: a cache that cannot be written is only slower.  Whether it was written.
    `data` may come in pieces: a file of 100,000 accounts made whole, as text and then as
    bytes, took 300 MB beside the plan."""
    try:
        make_dirs(path.parent)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    except OSError:
        return False
    try:
        with os.fdopen(fd, "wb") as out:
            if isinstance(data, bytes):
                out.write(data)
            else:
                out.writelines(data)
        os.replace(tmp, path)
        return True
    except OSError:
        Path(tmp).unlink(missing_ok=True)
        return False
    except BaseException:  # the pieces failed to come (killed, or a value JSON cannot write)
        Path(tmp).unlink(missing_ok=True)
        raise


def json_pieces(head: dict, name: str, items: Iterable, batch: int = 2000) -> Iterator[bytes]:
    """`head` with `name` holding the list of `items`, as compact UTF-8 JSON (json.loads reads it
    as one document) in pieces of `batch` items, for write_private."""
    opened = json.dumps(head, ensure_ascii=False, separators=(",", ":"))[:-1]
    yield f'{opened}{"," if head else ""}"{name}":['.encode("utf-8", "surrogatepass")
    piece: list = []
    first = True
    for item in items:
        piece.append(item)
        if len(piece) == batch:
            yield _piece(piece, first)
            piece, first = [], False
    if piece:
        yield _piece(piece, first)
    yield b"]}"


def _piece(items: list, first: bool) -> bytes:
    text = json.dumps(items, ensure_ascii=False, separators=(",", ":"))[1:-1]
    return (text if first else "," + text).encode("utf-8", "surrogatepass")


def _write(path: Path, code) -> None:
    write_private(path, marshal.dumps(code))


def compiled(document: dict, detailed: bool) -> Callable[[Any], Any]:
    """The validator of `document` (raises fastjsonschema.JsonSchemaException when invalid)."""
    key = _key(document, detailed)
    directory = cache_dir()
    path = directory / f"{key}.bytecode" if directory is not None else None
    code = _read(path) if path is not None else None
    if code is None:
        source = fastjsonschema.compile_to_code(document, detailed_exceptions=detailed)
        code = compile(source, f"<schema {key[:12]}>", "exec")
        if path is not None:
            _write(path, code)
    namespace: dict[str, Any] = {}
    exec(code, namespace)  # noqa: S102 - our own schemas' generated code (see above)
    return namespace["validate"]
