"""Compiled schemas kept between runs: fastjsonschema turns a JSON Schema into Python source,
which takes longer than everything else a small command does (about 40 ms for the inventory's
and the people's schemas, and 30 ms more to compile that source to bytecode).  The bytecode is
kept in the user's cache directory, as Python keeps .pyc files, named by a hash of the schema,
fastjsonschema's version and Python's, and is only ever regenerated, never edited: a missing,
foreign or unreadable entry means compiling again.

Only the package's own schemas are compiled (desired_state files never supply one).  An entry
is used only when it belongs to the user running the command and no one else can write it or
its directory, and never from a cache inside a Git work tree: a pull request could commit a
file there (XDG_CACHE_HOME=$CI_PROJECT_DIR/.cache is a common CI setting), and it would pass
for the user's own once checked out.  A relative XDG_CACHE_HOME is ignored, as the XDG
specification says.  RECONCILER_SCHEMA_CACHE=off turns the cache off.
"""
from __future__ import annotations

import hashlib
import json
import marshal
import os
import stat
import sys
import tempfile
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
    directory = Path(base) / "reconciler" / "schemas"
    return None if _in_work_tree(directory) else directory


def _in_work_tree(directory: Path) -> bool:
    """Whether `directory` (or the nearest existing folder above it) is inside a Git work tree."""
    for folder in [directory, *directory.parents]:
        if (folder / ".git").exists():
            return True
    return False


def _key(document: dict, detailed: bool) -> str:
    text = json.dumps([fastjsonschema.VERSION, sys.version, detailed, document], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _trusted(path: Path) -> bool:
    """Ours alone: owned by this user, writable by nobody else (the file and its directory)."""
    for p in (path.parent, path):
        info = p.stat()
        if info.st_uid != os.geteuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return False
    return True


def _read(path: Path):
    try:
        return marshal.loads(path.read_bytes()) if _trusted(path) else None
    except (OSError, ValueError, EOFError, TypeError):
        return None


def _write(path: Path, code) -> None:
    """Atomically, or not at all: a cache that cannot be written is only slower."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(marshal.dumps(code))
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)


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
