"""Unit files already read, kept between runs: parsing and validating the YAML of 10,000 people
takes seconds, and a nightly check or a pull request's plan reads the same files again.  A file
is kept by its content (the SHA-256 of its text, which is what Git's blob id names too), its
path, the units and entitlements it may name, and the code that reads it, so a cache entry is
the result of reading exactly that file with exactly this program, or it is not used.

Only a file that had no problem of its own is kept: the people and shared mailboxes it
declares.  What crosses files (a key declared twice, an account name taken) is checked again on
every run, over every person, cached or not; a problem there names its line from the file's
text, as without the cache.

Entries live beside the compiled schemas (schemacache.py) under the same rules: the user's own
cache directory, never inside a Git work tree, used only when the entry and its directory
belong to the user running the command and no one else can write them; written atomically, so
concurrent runs never read half an entry; a missing, foreign or unreadable entry means reading
the file again.  RECONCILER_SCHEMA_CACHE=off turns this cache off too.  It is never a source of
truth: deleting it only makes the next run slower.  The KEPT entries used most recently stay;
older ones are removed as new ones are written.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import sys
import tempfile
from functools import cache
from pathlib import Path

from reconciler.desired.schemacache import _trusted, cache_dir

FORMAT = 1
KEPT = 200  # entries: every unit file of an institution, a few times over; the least recently used go


@cache
def _code_digest() -> str:
    """What reading a file depends on in this program: the desired-state package's source and
    schemas (a checkout edited, or another release, is another program)."""
    here = Path(__file__).resolve().parent
    digest = hashlib.sha256(f"{FORMAT}\0{sys.version}".encode())
    for path in sorted([*here.glob("*.py"), *here.glob("schemas/*.json"), here.parent / "i18n" / "__init__.py"]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def key(rel: str, display: str, text: str, units, entitlements) -> str:
    """The entry of one file's reading: its text, where it is, what it may name."""
    digest = hashlib.sha256()
    for part in (_code_digest(), rel, display, "\0".join(sorted(units)), "\0".join(sorted(entitlements)), text):
        digest.update(part.encode("utf-8", "surrogatepass") + b"\x00\x01")
    return digest.hexdigest()


def _directory() -> Path | None:
    base = cache_dir()
    return base.parent / "parsed" if base is not None else None


def get(entry: str):
    """The kept reading, or None."""
    directory = _directory()
    if directory is None:
        return None
    path = directory / entry
    try:
        if not path.is_file() or not _trusted(path):
            return None
        found = pickle.loads(path.read_bytes())  # noqa: S301 - written by this user alone (see above)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError, ValueError,
            IndexError):
        return None
    if not (isinstance(found, tuple) and len(found) == 3 and found[0] == entry):
        return None
    try:
        os.utime(path)  # recently used: kept when older entries go
    except OSError:
        pass
    return found


def put(entry: str, people: list, shared: list) -> None:
    """Keep a reading; silently not, when there is no safe place (only slower next time)."""
    directory = _directory()
    if directory is None:
        return
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not _trusted(directory / "."):
            return
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(pickle.dumps((entry, people, shared), protocol=pickle.HIGHEST_PROTOCOL))
        os.replace(tmp, directory / entry)
    except (OSError, pickle.PicklingError, TypeError, AttributeError):
        Path(tmp).unlink(missing_ok=True)
        return
    _forget_old(directory)


def _forget_old(directory: Path) -> None:
    """Keep the KEPT entries used most recently: each commit that changes a unit file adds one."""
    try:
        entries = sorted((p for p in directory.iterdir() if not p.name.startswith(".")),
                         key=lambda p: p.stat().st_mtime, reverse=True)
        for old in entries[KEPT:]:
            old.unlink(missing_ok=True)
    except OSError:
        pass  # another run removed it first
