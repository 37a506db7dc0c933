"""People files split into their entries by text, without parsing the YAML.

An incremental plan needs to know which people's entries changed in a file of a thousand, and
to load only those: parsing the whole file twice would cost more than everything else the plan
does.  Desired-state files are block YAML (`people:` then `- employee_key: ...` items); for
anything this scanner does not recognise it returns None and the caller does a full load.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

_PEOPLE = re.compile(r"^people:\s*(#.*)?$")
_KEY = re.compile(r"""^\s*(?:-\s+)?employee_key:\s*(['"]?)(?P<key>[^'"#\s]+)\1\s*(#.*)?$""")


@dataclass(frozen=True)
class Entry:
    key: str
    index: int  # position in the people list
    first: int  # 0-based line numbers, end exclusive
    end: int


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def split_entries(text: str) -> list[Entry] | None:
    lines = text.split("\n")
    start = next((i for i, line in enumerate(lines) if _PEOPLE.match(line)), None)
    if start is None:
        return None
    entries: list[Entry] = []
    item_indent, first, index = None, None, 0

    def close(end: int) -> bool:
        keys = [m["key"] for m in (_KEY.match(line) for line in lines[first:end]) if m]
        if len(keys) != 1:
            return False
        entries.append(Entry(keys[0], len(entries), first, end))
        return True

    end = len(lines)
    for i in range(start + 1, len(lines)):
        line = lines[i]
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        indent = _indent(line)
        if item_indent is None:
            if not stripped.startswith("- "):
                return None  # flow style, or something else: not ours to guess
            item_indent = indent
        if indent < item_indent or (indent == item_indent and not stripped.startswith("- ")):
            end = i  # the list ended: another top-level key follows
            break
        if indent == item_indent:
            if first is not None and not close(i):
                return None
            first, index = i, index + 1
    if first is not None and not close(end):
        return None
    # Trailing blank and comment lines belong to no entry.
    return entries


def keep_only(text: str, entries: list[Entry], keys: set[str]) -> tuple[str, list[int]]:
    """The text with every other entry's lines blanked (line numbers unchanged), and the
    original list index of each entry kept, in order."""
    lines = text.split("\n")
    kept = []
    for e in entries:
        if e.key in keys:
            kept.append(e.index)
        else:
            lines[e.first:e.end] = [""] * (e.end - e.first)
    return "\n".join(lines), kept


def entry_texts(text: str | None) -> dict[str, str] | None:
    """employee key -> the entry's text; None when the file cannot be split."""
    if text is None:
        return {}
    entries = split_entries(text)
    if entries is None:
        return None
    lines = text.split("\n")
    return {e.key: "\n".join(lines[e.first:e.end]).rstrip() for e in entries}
