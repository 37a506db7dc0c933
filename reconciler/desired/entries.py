"""People files split into their entries by text, without parsing the YAML.

An incremental plan needs to know which people's entries changed in a file of thousands, to
load only those, and to blame only their lines: parsing the whole file would cost more than
everything else the plan does.  Desired-state files are block YAML (`people:` then items
`- employee_key: ...` at one indentation); for anything this scanner does not recognise it
returns None and the caller falls back to parsing everything.
"""
from __future__ import annotations

import bisect
import operator
import re
from collections import OrderedDict
from collections.abc import Callable
from functools import lru_cache
from itertools import repeat
from typing import NamedTuple

_PEOPLE = re.compile(r"^people:[ \t]*(?:#.*)?$", re.MULTILINE)
_FIRST_ITEM = re.compile(r"^( *)(\S)", re.MULTILINE)  # the first line with content after people:
# The files this scanner reads: every line a simple block line, whose value (if any) ends on
# it.  YAML lets a quoted or flow value go on over lines at any indentation (even at the left
# edge, where the scanner would take a line inside it for the end of the list, a new item or
# `unit:`), a block scalar hold lines that look like `employee_key:`, a quoted key be a key,
# `---` or `...` end a document, and a carriage return, a NEL, a line or paragraph separator
# or a byte-order mark start or hide a line.  Any of them and the lines provenance blames would
# be YAML's, not the scanner's (a grant added below such a line was blamed on nobody), so a
# file with any line outside this grammar is left to YAML.  The grammar, per line: spaces;
# sequence dashes; a plain key and `:`, with a value or none, or a value alone; a comment.  A
# value: a plain scalar (not starting with an indicator, no `: ` or ` #` inside), a quoted one
# closed on the line, or a flow collection closed on the line with no quote, comment or nested
# collection inside.  Matched possessively, in C: about 25 ms per MB.
_NOT = r"\x00-\x08\x0a-\x1f\x7f\x85\ufeff\u2028\u2029"  # controls (but the tab), and line breaks YAML 1.1 knows
_PLAIN = (rf"(?:[^\s{_NOT}\-?:,\[\]{{}}#&*!|>'\"%@`]|[-?:](?=[^\s{_NOT}]))"
          rf"(?:[^\n:#{_NOT}]++|:(?=[^\s{_NOT}])|(?<=[^\s])#)*+")
_SIMPLE = (rf"(?:{_PLAIN}|'(?:[^'\n{_NOT}]++|'')*+'|\"(?:[^\"\\\n{_NOT}]++|\\[^\n{_NOT}])*+\""
           rf"|\[[^\[\]{{}}'\"#\n{_NOT}]*+\]|\{{[^\[\]{{}}'\"#\n{_NOT}]*+\}})")
_LINE = (rf"(?!(?:---|\.\.\.)(?:[ \t\n]|\Z)) *+(?:-(?:[ \t]++|(?=\n|\Z)))*+"
         rf"(?:[A-Za-z_][A-Za-z0-9_]*+:(?:[ \t]++{_SIMPLE})?|{_SIMPLE})?+[ \t]*+(?:(?<![^ \t\n])#[^\n{_NOT}]*+)?+")
_BLOCK = re.compile(rf"(?:{_LINE}\n)*+(?:{_LINE})?+")
# A key as the schema allows it (users.schema.json, "key"), whole: anything else on its line (a
# block scalar `>-`, an alias, a tag, `SSM-1#2`, which YAML reads as one scalar) is not ours to
# guess, and the file is left to a full load.  A comment needs a blank before its `#`, as in YAML.
_VALUE = r"""(['"]?)([A-Za-z0-9][A-Za-z0-9_.-]*)\1(?:[ \t]+(?:#[^\n]*)?)?"""
_KEY = re.compile(r"^[ \t]*(?:-[ \t]+)?employee_key:[ \t]*" + _VALUE + "$", re.MULTILINE)
_COMMENT_OR_BLANK = re.compile(r"^[ \t]*(?:#.*)?$")


class Entry(NamedTuple):  # a tuple: files of 10,000 people make 10,000 of them per split
    key: str
    index: int  # position in the people list
    start: int  # character offsets in the text, end exclusive
    end: int


class Outline(NamedTuple):
    """What provenance asks of a people file, known without reading it: each entry's key and
    lines (lines_of), the line of the file's own `unit:`, and how many newlines it has.  Made
    when the file is parsed whole and kept with its reading (parsecache); a plan of some people
    reads it there (know), where reading and splitting the files of 100,000 people took half
    a second."""
    keys: list[str]
    lines: list[int]  # first and last line of each entry, flat: two ints per entry
    unit_line: int | None
    newlines: int

    def span(self, index: int) -> tuple[int, int] | None:
        return (self.lines[2 * index], self.lines[2 * index + 1]) if 0 <= index < len(self.keys) else None


_UNIT_LINE = re.compile(r"^unit[ \t]*:", re.M)  # a people file's own unit, at the top level


def unit_line(text: str) -> int | None:
    """The line of a people file's `unit:` (not the YAML of thousands of people for one line)."""
    unit = _UNIT_LINE.search(text)
    return text.count("\n", 0, unit.start()) + 1 if unit is not None else None


def outline(text: str, entries: tuple[Entry, ...]) -> Outline:
    """The outline of a whole file (its lines counted once, from the top; nothing is cached:
    the file is not asked again)."""
    lines, first, pos = [], 1, 0
    for entry in entries:
        first += text.count("\n", pos, entry.start)
        pos = entry.start
        lines += _lines(text, entry, first)
    return Outline([e.key for e in entries], lines, unit_line(text), text.count("\n"))


_OUTLINES: OrderedDict[str, Outline] = OrderedDict()  # by blob id: what the loader read from the parse cache
_KNOWN = 256  # outlines kept (1.4 MB per 10,000 people): every unit file of an institution


def know(identity: str, found: Outline) -> None:
    _OUTLINES[identity] = found
    _OUTLINES.move_to_end(identity)
    while len(_OUTLINES) > _KNOWN:
        _OUTLINES.popitem(last=False)


def known(identity: str | None) -> Outline | None:
    """The outline of a file the loader read from the parse cache in this run, by its blob id."""
    return _OUTLINES.get(identity) if identity is not None else None


_SPLIT = 16  # files kept split (and their texts, by blob id) in one run
_BLOB_TEXTS: OrderedDict[str, str] = OrderedDict()


def text_of_blob(identity: str | None, read: Callable[[], str | None]) -> str | None:
    """A file's text by its content's name (DesiredFiles.identity), read once per run: a plan
    of a few people loads their entries from files of 100,000 people, then provenance looks
    at the same files (one of 11 MB takes about 40 ms to read again).  As many texts as
    split_entries keeps, which holds them anyway; without an identity, `read()` every time."""
    if identity is None:
        return read()
    if identity in _BLOB_TEXTS:
        _BLOB_TEXTS.move_to_end(identity)
        return _BLOB_TEXTS[identity]
    text = read()
    if text is not None:
        _BLOB_TEXTS[identity] = text
        while len(_BLOB_TEXTS) > _SPLIT:
            _BLOB_TEXTS.popitem(last=False)
    return text


@lru_cache(maxsize=_SPLIT)
def split_entries(text: str) -> tuple[Entry, ...] | None:
    """The entries of a people file, in order (cached: a run looks at the same file from the
    incremental scope, the loader and provenance)."""
    if _BLOCK.fullmatch(text) is None:
        return None  # a line YAML may read otherwise than this scanner: YAML decides
    start = _people_start(text)
    if not start:
        return start  # None: not ours to guess; (): nobody listed
    indent, first = start
    # The list ends at the first line with content that is less indented, or as indented but
    # not a new item (another top-level key).  Found by the newline before it: a pattern that
    # starts with a literal is searched for in C, eight times faster than one anchored by ^.
    stop = _ender(indent).search(text, first)
    end = stop.start() + 1 if stop else len(text)
    fast = _keys_first(text, indent, first, end)
    if fast is not None:
        return fast
    starts = [m.start() for m in re.compile(rf"^ {{{indent}}}-[ \n]", re.MULTILINE).finditer(text, first, end)]
    keys: list[list[str]] = [[] for _ in starts]
    for m in _KEY.finditer(text, first, end):
        keys[bisect.bisect_right(starts, m.start()) - 1].append(m.group(2))
    if any(len(k) != 1 for k in keys):
        return None
    ends = starts[1:] + [end]
    return tuple(Entry(k[0], i, s, e) for i, (k, s, e) in enumerate(zip(keys, starts, ends)))


def _people_start(text: str) -> tuple[int, int] | tuple[()] | None:
    """Where the list of people starts: (its items' indentation, where the first item starts);
    () when it lists nobody; None when it is not block YAML this scanner reads."""
    people = _PEOPLE.search(text)
    if people is None:
        return None
    pos = people.end()
    while True:  # the first item: skip blank and comment lines
        first = _FIRST_ITEM.search(text, pos)
        if first is None:
            return ()
        if first.group(2) != "#":
            break
        pos = text.find("\n", first.start()) + 1 or len(text)
    indent = len(first.group(1))
    if text[first.start(2):first.start(2) + 2] not in ("- ", "-\n"):
        return None  # flow style, or something else: not ours to guess
    return indent, first.start()


@lru_cache(maxsize=8)
def _ender(indent: int) -> re.Pattern:
    """The newline before the first line that ends a list of items at `indent`."""
    return re.compile(rf"\n(?: {{0,{indent - 1}}}[^ \n#]| {{{indent}}}(?!-[ \n])[^ \n#])" if indent else r"\n[^ \n#-]")


@lru_cache(maxsize=8)
def _item_keys(indent: int) -> re.Pattern:
    """An item's first line `- employee_key: KEY` at `indent`, whole (the newline before it)."""
    return re.compile("\n" + " " * indent + r"- employee_key:[ \t]*" + _VALUE + r"(?=\n|\Z)")


@lru_cache(maxsize=_SPLIT)
def split_known(identity: str | None, text: str) -> tuple[Entry, ...] | None:
    """split_entries of a file whose content has a name (DesiredFiles.identity: its blob id),
    kept between runs in the parse cache under that name: a plan of a hundred people of a
    repository of 100,000 splits ten files of 6 MB each, about 0.45 s, where reading and
    checking the kept splits takes about half of that.  A kept split that does not fit the
    text is split again."""
    if identity is None:
        return split_entries(text)
    from reconciler.desired import parsecache

    name = parsecache.split_key(identity)
    kept = parsecache.get_split(name)
    if kept is not None and (entries := _fitting(kept, text)) is not False:
        return entries
    entries = split_entries(text)
    parsecache.put_split(name, [None] if entries is None else [[e.key, e.start, e.end] for e in entries])
    return entries


def _fitting(kept: list, text: str) -> tuple[Entry, ...] | None | bool:
    """The kept split as entries, or None (the file cannot be split); False when it is not
    the file's items: the list's first item first and a line that ends the list after the
    last, every start an item's first line, as many as there are items between, each
    following the one before and holding its key.  A damaged split must not hand one
    person's lines to another's load or provenance.  Checked with counts, map and list
    comparisons, in C: a Python loop over 100,000 entries cost as much as splitting again."""
    if kept == [None]:
        return None
    if not kept:
        return False  # a file of nobody is small: split again rather than trust an empty list
    try:
        keys, starts, ends = (list(column) for column in zip(*kept))
    except (TypeError, ValueError):
        return False
    start = _people_start(text)
    if not start or {type(k) for k in keys} != {str} or {type(n) for n in starts + ends} != {int}:
        return False
    indent, first = start
    end = ends[-1]
    item = "\n" + " " * indent + "-"
    items = text.count(item, first - 1, end)  # a line "-x" is no item: counted, it fails the split (safe)
    # The list's end is checked where the split says it is (a search for it from the top
    # would cost what splitting does).
    ended = end == len(text) or (0 < end <= len(text) and _ender(indent).match(text, end - 1) is not None)
    fits = starts[0] == first and ended and items == len(kept) and starts[1:] == ends[:-1] \
        and all(map(operator.lt, starts, ends)) \
        and all(map(text.startswith, repeat((item + " ", item + "\n")), (s - 1 for s in starts))) \
        and min(map(text.find, keys, starts, ends)) >= 0
    # tuple.__new__ builds each Entry in C; Entry(...) runs NamedTuple's Python __new__, which
    # was a third of the time for 100,000 of them.
    return tuple(map(tuple.__new__, repeat(Entry), zip(keys, range(len(keys)), starts, ends))) if fits else False


def _keys_first(text: str, indent: int, start: int, end: int) -> tuple[Entry, ...] | None:
    """The common layout, found by one C-speed scan: every item starts with its
    `- employee_key:` line, and no other line in the list names an employee key.  None when
    the file is laid out otherwise: the general scan handles it."""
    items = text.count("\n" + " " * indent + "-", start - 1, end)
    if items != text.count("employee_key:", start, end):
        return None
    found = [(m.start() + 1, m.group(2)) for m in _item_keys(indent).finditer(text, start - 1, end)]
    if len(found) != items:
        return None  # an item whose first line is not its key, or a key this scan does not read
    bounds = [s for s, _ in found[1:]] + [end]
    return tuple(Entry(k, i, s, e) for i, ((s, k), e) in enumerate(zip(found, bounds)))


@lru_cache(maxsize=16)
def _marks(text: str) -> tuple[list[int], list[int]]:
    """Offsets whose line numbers are known, sorted, and those line numbers (grown by line_at)."""
    return [0], [1]


def line_at(text: str, offset: int) -> int:
    """The line (1-based) of an offset, counted from the nearest offset asked before: asking
    for a hundred entries of a file of 100,000 people counts its newlines about once, not a
    hundred times from the top."""
    offsets, lines = _marks(text)
    i = bisect.bisect_right(offsets, offset) - 1
    line = lines[i] + text.count("\n", offsets[i], offset)
    if offsets[i] != offset:
        offsets.insert(i + 1, offset)
        lines.insert(i + 1, line)
    return line


def lines_of(text: str, entry: Entry) -> tuple[int, int]:
    """First and last line (1-based) of the entry, trailing blank and comment lines excluded."""
    return _lines(text, entry, line_at(text, entry.start))


def _lines(text: str, entry: Entry, first: int) -> tuple[int, int]:
    body = text[entry.start:entry.end].rstrip("\n").split("\n")
    while len(body) > 1 and _COMMENT_OR_BLANK.match(body[-1]):
        body.pop()
    return first, first + len(body) - 1


def keep_only(text: str, entries: tuple[Entry, ...], keys: set[str]) -> tuple[str, list[int]]:
    """The text with every other entry blanked (newlines kept, so line numbers do not move),
    and the original list index of each entry kept, in order.  Entries are contiguous, so
    what lies between two kept ones is blanked whole: one count of its newlines, however many
    entries it held."""
    if not entries:
        return text, []
    parts, kept, pos = [text[:entries[0].start]], [], entries[0].start
    for e in entries:
        if e.key in keys:
            parts += ["\n" * text.count("\n", pos, e.start), text[e.start:e.end]]
            kept.append(e.index)
            pos = e.end
    parts += ["\n" * text.count("\n", pos, entries[-1].end), text[entries[-1].end:]]
    return "".join(parts), kept


def kept_text(text: str, entries: tuple[Entry, ...], keys: set[str]) -> tuple[str, list[int]]:
    """keep_only without the blank lines: the same document, parsed in half the time where a
    hundred people are kept from files of thousands.  Its lines are not the file's: read it
    for the data, and keep_only's text for the lines of any problem."""
    if not entries:
        return text, []
    kept = [e for e in entries if e.key in keys]
    return "".join([text[:entries[0].start], *(text[e.start:e.end] for e in kept), text[entries[-1].end:]]), \
        [e.index for e in kept]


def entry_texts(text: str | None) -> dict[str, str] | None:
    """employee key -> the entry's text; None when the file cannot be split."""
    if text is None:
        return {}
    entries = split_entries(text)
    if entries is None:
        return None
    return {e.key: text[e.start:e.end].rstrip() for e in entries}
