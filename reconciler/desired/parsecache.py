"""Unit files already read, kept between runs: parsing and validating the YAML of 10,000 people
takes seconds, and a nightly check or a pull request's plan reads the same files again.  A file
is kept by its content (the SHA-256 of its text, which is what Git's blob id names too), its
path, the units and entitlements it may name, and the code that reads it (ours and the YAML
and schema libraries'), so an entry is the result of reading exactly that file with exactly
this program, or it is not used.

Only a file that had no problem of its own is kept: the validated entries of the people and
shared mailboxes it declares, as JSON (data: a forged entry could at worst claim data, never
run code), from which the people are built again.  A plan of some people (get_some) reads
theirs alone: the head line says where each person's entry lies in the body, and holds the
file's outline (entries.Outline), so that neither the loader nor provenance reads the file.
What crosses files (a key declared twice, an account name taken) is checked again on every
run, over every person, cached or not; a problem there names its line from the file's text,
as without the cache.

Entries live beside the compiled schemas (schemacache.py) under the same rules: the user's own
cache directory, never inside a Git work tree, used only when the entry belongs to the user
running the command and no one else can write it or any folder above it, read through no
link; written atomically, so concurrent runs never read half an entry; a missing, foreign or
unreadable entry means reading the file again.  RECONCILER_SCHEMA_CACHE=off turns this cache
off too.  It is never a source of truth: deleting it only makes the next run slower.  After
each load the entries it used stay, with the most recently used others up to KEPT.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from functools import cache
from pathlib import Path

from reconciler.desired.entries import Outline
from reconciler.desired.schemacache import cache_dir, read_trusted, require_cached, write_private

FORMAT = 3
KEPT = 200  # entries beyond those a load used: an institution's unit files, a few versions each
STALE_TEMPORARY = 3600  # seconds after which a half-written entry (a killed run's) is removed


@cache
def _code_digest() -> str:
    """What reading a file depends on: the desired-state package's source and schemas, and the
    YAML and schema libraries (another release, an edited checkout or another venv is another
    program)."""
    import fastjsonschema
    import yaml

    here = Path(__file__).resolve().parent
    digest = hashlib.sha256(f"{FORMAT}\0{sys.version}\0{yaml.__version__}\0{yaml.__with_libyaml__}\0"
                            f"{fastjsonschema.VERSION}".encode())
    for path in sorted([*here.glob("*.py"), *here.glob("schemas/*.json"), here.parent / "i18n" / "__init__.py"]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def text_identity(text: str) -> str:
    """A file read from disk, named by its text (a committed one is named by its blob id,
    CommitFiles.identity): a tag and a fixed-length digest, so no text can pass for a blob."""
    return "text:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def key(rel: str, display: str, identity: str, units, entitlements) -> str:
    """The entry of one file's reading: its content (text_identity or a blob id), where it is,
    what it may name."""
    digest = hashlib.sha256()
    for part in (_code_digest(), rel, display, "\0".join(sorted(units)), "\0".join(sorted(entitlements)), identity):
        digest.update(part.encode("utf-8", "surrogatepass") + b"\x00\x01")
    return digest.hexdigest()


def _directory() -> Path | None:
    base = cache_dir()
    return base.parent / "parsed" if base is not None else None


def get(entry: str) -> dict | None:
    """The kept reading ({"unit", "people": [[index, entry]], "shared": [...]}), or None."""
    found = _reading(entry)
    if found is None:
        return None
    head, body = found
    try:
        items = json.loads(body)
        require_cached(isinstance(items, list) and len(items) == len(head["index"]))
        require_cached(not set(map(type, items)) - {dict})
    except Exception:  # noqa: BLE001 - a damaged entry means reading the file again, never a crash
        return None
    people = [list(pair) for pair in zip(head["index"], items)]
    return {"unit": head["unit"], "people": people, "shared": head["shared"]}


def get_some(entry: str, keys: frozenset) -> tuple[dict, Outline | None] | None:
    """The kept reading of only the people with these keys (a plan of a hundred people of
    files of 10,000 each: theirs alone are read, each from where the head says it is), and
    the file's outline (entries.Outline) when its text split into the entries it declares;
    or None."""
    found = _reading(entry)
    if found is None:
        return None
    head, body = found
    at, chosen = head["at"], [i for i, key in enumerate(head["keys"]) if key in keys]
    try:
        items = [json.loads(body[at[i]:at[i + 1] - 1]) for i in chosen]
        require_cached(all(isinstance(item, dict) and item.get("employee_key") == head["keys"][i]
                           for i, item in zip(chosen, items)))
        outline = _outline(head)
    except Exception:  # noqa: BLE001 - a damaged entry means reading the file again, never a crash
        return None
    people = [[head["index"][i], item] for i, item in zip(chosen, items)]
    return {"unit": head["unit"], "people": people, "shared": head["shared"]}, outline


def _reading(entry: str) -> tuple[dict, bytes] | None:
    """A kept reading's head, checked, and its body (the people's entries, as one JSON list)."""
    directory = _directory()
    if directory is None:
        return None
    data = read_trusted(directory / entry)
    if data is None:
        return None
    try:
        split = data.index(b"\n")
        head = json.loads(data[:split])
        require_cached(isinstance(head, dict) and head.get("entry") == entry and isinstance(head.get("unit"), str))
        index, keys, at, shared = head["index"], head["keys"], head["at"], head["shared"]
        require_cached(isinstance(index, list) and isinstance(keys, list) and isinstance(at, list))
        # Kept only from a file with no problem: every person, in order.
        require_cached(index == list(range(len(keys))) and len(at) == len(keys) + 1)
        require_cached(not set(map(type, at)) - {int} and not set(map(type, keys)) - {str})
        # Each entry's place in the body: in order, past the list's "[", ending before its "]".
        body = len(data) - split - 1
        require_cached(at[0] == 1 and all(map(int.__lt__, at, at[1:])) and at[-1] == (body if keys else 1))
        require_cached(keys or body == 2)
        require_cached(isinstance(shared, list) and all(isinstance(i, int) and isinstance(e, dict) for i, e in shared))
    except Exception:  # noqa: BLE001 - a damaged entry means reading the file again, never a crash
        return None
    _used(directory / entry)
    return head, data[split + 1:]


def _outline(head: dict) -> Outline | None:
    found = head.get("outline")
    if found is None:
        return None
    lines, unit_line, newlines = found["lines"], found["unit_line"], found["newlines"]
    require_cached(isinstance(lines, list) and len(lines) == 2 * len(head["keys"]))
    require_cached(not set(map(type, lines)) - {int})
    require_cached(isinstance(newlines, int) and (unit_line is None or isinstance(unit_line, int)))
    # Lines within the file; each entry's first line at or before its last, before the next's first.
    require_cached(not lines or (1 <= lines[0] and lines[-1] <= newlines + 1))
    require_cached(all(map(int.__le__, lines[0::2], lines[1::2])) and all(map(int.__lt__, lines[1:-1:2], lines[2::2])))
    require_cached(unit_line is None or 1 <= unit_line <= newlines + 1)
    return Outline(head["keys"], lines, unit_line, newlines)


def _used(path: Path) -> None:
    try:
        os.utime(path, follow_symlinks=False)  # used: kept when older entries go
    except OSError:
        pass


def whole_key(entries: list[str]) -> str:
    """The entry of what crosses files (_checked_across): the files' entries, in order."""
    return hashlib.sha256(("whole\0" + "\0".join(entries)).encode("ascii")).hexdigest()


def get_names(whole: str) -> dict[str, str] | None:
    """The account names kept for these files read together (which had no problem), or None."""
    directory = _directory()
    data = read_trusted(directory / whole) if directory is not None else None
    if data is None:
        return None
    try:
        found = json.loads(data)
        require_cached(isinstance(found, dict) and found.get("entry") == whole and isinstance(found.get("names"), dict))
        require_cached(all(isinstance(k, str) and isinstance(v, str) for k, v in found["names"].items()))
    except Exception:  # noqa: BLE001 - a damaged entry means checking again, never a crash
        return None
    return found["names"]


def put_names(whole: str, names: dict[str, str]) -> None:
    _write({"entry": whole, "names": names}, whole)


def split_key(identity: str) -> str:
    """The entry of a people file's split into entries (entries.split_known): its content's name
    and the reading code."""
    return hashlib.sha256(f"split\0{_code_digest()}\0{identity}".encode("utf-8", "surrogatepass")).hexdigest()


def get_split(entry: str) -> list | None:
    """The kept split ([[key, start, end], ...], or [None] when the file could not be split), or None."""
    directory = _directory()
    data = read_trusted(directory / entry) if directory is not None else None
    if data is None:
        return None
    try:
        found = json.loads(data)
        require_cached(isinstance(found, dict) and found.get("entry") == entry and isinstance(found.get("split"), list))
    except Exception:  # noqa: BLE001 - a damaged entry means splitting again, never a crash
        return None
    _used(directory / entry)
    return found["split"]


def put_split(entry: str, split: list) -> None:
    _write({"entry": entry, "split": split}, entry)


def put(entry: str, unit: str, people: list[tuple[int, dict]], shared: list[tuple[int, dict]],
        outline: Outline | None = None) -> None:
    """Keep a reading; silently not, when there is no safe place (only slower next time).  One
    line of head (each person's index, key and place in the body; the shared mailboxes; the
    outline), then the people's entries as one JSON list, each written alone so that get_some
    can read a few of them."""
    directory = _directory()
    if directory is None:
        return
    items = [json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")
             for _, item in people]
    at = [1]
    for item in items:
        at.append(at[-1] + len(item) + 1)
    head = {"entry": entry, "unit": unit, "index": [i for i, _ in people],
            "keys": [item["employee_key"] for _, item in people], "at": at, "shared": shared,
            "outline": None if outline is None else {"lines": outline.lines, "unit_line": outline.unit_line,
                                                     "newlines": outline.newlines}}
    text = json.dumps(head, ensure_ascii=False, separators=(",", ":"))
    write_private(directory / entry, [text.encode("utf-8", "surrogatepass"), b"\n[", b",".join(items), b"]"])


def _write(document: dict, entry: str) -> None:
    """Atomically, or not at all (no safe place: only slower next time)."""
    directory = _directory()
    if directory is not None:
        text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))  # dump would stream in Python
        write_private(directory / entry, text.encode("utf-8", "surrogatepass"))


def trim(used: set[str]) -> None:
    """After a load: keep the entries it used and the KEPT others used most recently; remove
    half-written ones a killed run left."""
    directory = _directory()
    if directory is None or not directory.is_dir():
        return
    try:
        others, now = [], time.time()
        for path in directory.iterdir():
            info = path.lstat()
            if path.name.startswith(".tmp-"):
                if now - info.st_mtime > STALE_TEMPORARY:
                    path.unlink(missing_ok=True)
            elif path.name not in used:
                others.append((info.st_mtime, path))
        for _mtime, path in sorted(others, reverse=True)[KEPT:]:
            path.unlink(missing_ok=True)
    except OSError:
        pass  # another run removed it first; only slower next time
