"""Compiled schemas kept between runs: fastjsonschema turns a JSON Schema into Python source,
which takes longer than everything else a small command does (about 40 ms for the inventory's
and the people's schemas, and 30 ms more to compile that source to bytecode).  The bytecode is
kept in the user's cache directory, as Python keeps .pyc files, named by a hash of the schema,
fastjsonschema's version and Python's, and is only ever regenerated, never edited: a missing,
foreign or unreadable entry means compiling again.

Only the package's own schemas are compiled (desired_state files never supply one), and an
entry is used only when it belongs to the user running the command and no one else can write
it or its directory: what a writer of the cache could do, they could do to the user's shell.
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


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "reconciler" / "schemas"


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
        with os.fdopen(fd, "wb") as out:
            out.write(marshal.dumps(code))
        os.replace(tmp, path)
    except OSError:
        pass


def compiled(document: dict, detailed: bool) -> Callable[[Any], Any]:
    """The validator of `document` (raises fastjsonschema.JsonSchemaException when invalid)."""
    key = _key(document, detailed)
    path = cache_dir() / f"{key}.bytecode"
    code = _read(path)
    if code is None:
        source = fastjsonschema.compile_to_code(document, detailed_exceptions=detailed)
        code = compile(source, f"<schema {key[:12]}>", "exec")
        _write(path, code)
    namespace: dict[str, Any] = {}
    exec(code, namespace)  # noqa: S102 - our own schemas' generated code (see above)
    return namespace["validate"]
