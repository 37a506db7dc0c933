"""Reading YAML the way people write it, and pointing back at the line they wrote.

Loading uses libyaml (CSafeLoader) because it is an order of magnitude faster than the
pure-Python parser; line numbers are only looked up when there is a problem to report.
Two YAML 1.1 surprises are closed here: dates stay strings (a folio date is text to us, and
JSON Schema expects strings), and a key written twice in one mapping is an error instead of
the last one silently winning.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from reconciler.errors import Problem
from reconciler.i18n import N_, _, ngettext

_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class DuplicateKey(Exception):
    def __init__(self, key: str, line: int, first_line: int):
        self.key, self.line, self.first_line = key, line, first_line


class StrictLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    """Safe loader: timestamps as strings, duplicate mapping keys refused."""

    _resolved: dict | None = None

    def resolve(self, kind, value, implicit):  # noqa: ANN001 - PyYAML signature
        # libyaml asks Python for the tag of every scalar; desired state repeats the same
        # values thousands of times (titles, units), so remember the answers for this file.
        if kind is not yaml.ScalarNode:
            return super().resolve(kind, value, implicit)
        if self._resolved is None:
            self._resolved = {}
        key = (value, implicit)
        tag = self._resolved.get(key)
        if tag is None:
            tag = self._resolved[key] = super().resolve(kind, value, implicit)
        return tag

    def construct_mapping(self, node, deep=False):  # noqa: ANN001 - PyYAML signature
        # Keys are compared as written (scalars), which is cheaper than constructing them twice.
        seen: dict[str, int] = {}
        for key_node, _value in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            line = key_node.start_mark.line + 1
            first = seen.setdefault(key_node.value, line)
            if first != line:
                raise DuplicateKey(key_node.value, line, first)
        return super().construct_mapping(node, deep=deep)


StrictLoader.add_constructor("tag:yaml.org,2002:timestamp", StrictLoader.construct_yaml_str)

_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"


class _NeedsFullLoader(Exception):
    """A feature the fast path does not handle (merge keys): use PyYAML's constructor."""


class Refused(yaml.YAMLError):
    """A document refused for a reason of ours (not a syntax error), with the line to blame."""

    def __init__(self, message: str, line: int | None):
        super().__init__(message)
        self.line = line


def _cut(text: str, limit: int = 60) -> str:
    """Text from the file as a message shows it: cut short (see checks.shown)."""
    return text if len(text) <= limit else text[:limit - 1] + "…"


# Python refuses to turn an int of more than 4300 digits into text (PyYAML's int() of one
# raises ValueError, and so would the repr of a message about one, even one written in hex);
# and PyYAML's constructors raise ValueError or KeyError on `!!int x` or `!!bool maybe`.  No
# field takes a number this long: refused with the line, before any of them can crash.
MAX_NUMBER = 1000  # characters, whatever the base: 1000 hex digits are 1205 decimal ones


def _scalar(construct, refused: str, number: bool):
    """`refused`: the message (marked with N_, said when it is raised) for a value the
    constructor cannot make."""
    def construct_checked(loader, node):  # noqa: ANN001 - PyYAML signature
        line = node.start_mark.line + 1
        if number and len(node.value) > MAX_NUMBER:
            raise Refused(ngettext("a number written with {n} character: no field takes one "
                                   "(put it in quotes if it is text)",
                                   "a number written with {n} characters: no field takes one "
                                   "(put it in quotes if it is text)", len(node.value)), line)
        try:
            return construct(loader, node)
        except (ValueError, KeyError, IndexError, TypeError):
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            raise Refused(_(refused, value=_cut(repr(node.value)), tag=tag), line) from None
    return construct_checked


for _tag, _construct, _refused, _number in (
        ("int", yaml.constructor.SafeConstructor.construct_yaml_int,
         N_("{value} is not a whole number, as its tag {tag} says"), True),
        ("float", yaml.constructor.SafeConstructor.construct_yaml_float,
         N_("{value} is not a number, as its tag {tag} says"), True),
        ("bool", yaml.constructor.SafeConstructor.construct_yaml_bool,
         N_("{value} is not true or false, as its tag {tag} says"), False)):
    StrictLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _scalar(_construct, _refused, _number))

# Desired state nests a few levels (a person's mailbox's aliases); libyaml accepts a thousand,
# which is past Python's recursion limit for the walks that follow (building, the checks of
# every value, the alias walk).  Deeper than this is refused with the line where it goes on.
MAX_DEPTH = 64


class TooDeep(Refused):
    def __init__(self, line: int | None):
        super().__init__(ngettext("mappings and lists nested more than {n} level deep: no file needs that many",
                                  "mappings and lists nested more than {n} levels deep: no file needs that many",
                                  MAX_DEPTH), line)


def _check_depth(root: yaml.Node) -> None:
    """TooDeep when some node is nested past MAX_DEPTH.  Iterative, each node once (an alias
    graph can be a bomb or a cycle: _check_aliases refuses those)."""
    stack, seen = [(root, 0)], set()
    while stack:
        node, depth = stack.pop()
        if id(node) in seen or isinstance(node, yaml.ScalarNode):
            continue
        seen.add(id(node))
        if depth >= MAX_DEPTH:
            raise TooDeep(node.start_mark.line + 1)
        children = node.value if isinstance(node, yaml.SequenceNode) else [n for kv in node.value for n in kv]
        stack.extend((child, depth + 1) for child in children)


def _hashable(key: Any, line: int) -> None:
    """A key tagged as a list, set or mapping (`!!seq x: 1`) is no key Python can hold: a
    problem with its line, not a crash."""
    try:
        hash(key)
    except TypeError:
        raise Refused(_("a key tagged as a list, set or mapping: keys are plain text"), line) from None


def _build(loader: StrictLoader, node: yaml.Node, depth: int = 0) -> Any:
    """Plain data from libyaml's nodes.  PyYAML's generic constructor costs more than parsing;
    desired state is only mappings, lists and scalars, and nearly every scalar is a string,
    taken as written.  Other scalars go through PyYAML's own resolvers, so semantics match."""
    if isinstance(node, yaml.ScalarNode):
        return node.value if node.tag == _STR else loader.construct_object(node)
    if depth >= MAX_DEPTH:
        raise TooDeep(node.start_mark.line + 1)
    if isinstance(node, yaml.SequenceNode):
        return [_build(loader, item, depth + 1) for item in node.value]
    out: dict[Any, Any] = {}
    lines: dict[Any, int] = {}
    for key_node, value_node in node.value:
        if key_node.tag == _MERGE or not isinstance(key_node, yaml.ScalarNode):
            raise _NeedsFullLoader()
        key = key_node.value if key_node.tag == _STR else loader.construct_object(key_node)
        line = key_node.start_mark.line + 1
        _hashable(key, line)
        if key in out:
            raise DuplicateKey(str(key), line, lines[key])
        lines[key] = line
        out[key] = _build(loader, value_node, depth + 1)
    return out


# Aliases let a few hundred bytes stand for billions of values ("billion laughs"), and let one
# line change entries far from it, outside the lines review blames for them: refused.  The
# walk that finds them is linear (memoised), so a bomb is refused before anything expands.
ALIAS_BUDGET = 0


class TooManyAliases(yaml.YAMLError):
    def __init__(self, line: int | None):
        super().__init__(_("anchors and aliases (&name, *name) are not accepted: write the values out, in every entry"))
        self.line = line


def _expanded(node: yaml.Node, sizes: dict[int, int]) -> int:
    """How many nodes `node` stands for once every alias is expanded (linear: memoised)."""
    known = sizes.get(id(node))
    if known is not None:
        return known
    sizes[id(node)] = 1 << 62  # an alias to an ancestor (a cycle) is infinitely large
    if isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded(item, sizes) for item in node.value)
    elif isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded(k, sizes) + _expanded(v, sizes) for k, v in node.value)
    else:
        size = 1
    sizes[id(node)] = size
    return size


def _check_aliases(node: yaml.Node) -> None:
    sizes: dict[int, int] = {}
    if _expanded(node, sizes) > len(sizes) + ALIAS_BUDGET:
        raise TooManyAliases(_first_alias(node, set()) or (node.start_mark.line + 1 if node.start_mark else None))


def _first_alias(node: yaml.Node, seen: set[int]) -> int | None:
    """The line of the first node met twice (its anchor's line), for the message."""
    if id(node) in seen:
        return None
    seen.add(id(node))
    children = node.value if isinstance(node, yaml.SequenceNode) else [n for kv in node.value for n in kv] \
        if isinstance(node, yaml.MappingNode) else []
    marks: set[int] = set()
    for child in children:
        if id(child) in seen or id(child) in marks:
            return child.start_mark.line + 1 if child.start_mark else None
        marks.add(id(child))
        line = _first_alias(child, seen)
        if line is not None:
            return line
    return None


def fast_load(text: str) -> Any:
    if "*" not in text:  # no alias without one: most files are built as they are parsed
        try:
            return _streamed(text)
        except _NeedsFullLoader:
            pass
    return _composed(text)


def _composed(text: str) -> Any:
    """The whole document's nodes first, then its data: what a file with aliases needs (they
    are checked on the nodes before anything expands), and PyYAML's constructor after it."""
    loader = StrictLoader(text)
    node = None
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if "*" in text:  # no alias without one: the common file skips the walk
            _check_depth(node)  # the alias walk is recursive
            _check_aliases(node)
        try:
            return _build(loader, node)
        except _NeedsFullLoader:
            _check_depth(node)  # so is PyYAML's constructor
            return loader.construct_document(node)
    except RecursionError:  # not expected after the checks above; still a problem, not a crash
        raise TooDeep(node.start_mark.line + 1 if node is not None else None) from None
    finally:
        loader.dispose()


# Where a problem found while building (a key written twice, a refused number) must wait: on
# the composed path every syntax error of the file is found first, and so it is here.
_SYNTAX = (yaml.reader.ReaderError, yaml.scanner.ScannerError, yaml.parser.ParserError, yaml.composer.ComposerError)
_NO_KEY = object()  # an open mapping waiting for its next key


def _streamed(text: str) -> Any:
    """The data of a document without aliases, built from libyaml's events as they are parsed,
    never holding its nodes: those take some 29 times the text (840 MB for a file of 100,000
    phone lines), the data 6 times.  The same values, checks and errors as _build on the
    composed nodes; _NeedsFullLoader where that path leaves the rest to PyYAML's constructor."""
    loader = StrictLoader(text)
    try:
        loader.get_event()  # the stream's start
        if loader.check_event(yaml.StreamEndEvent):
            return None  # no document at all (comments only), as get_single_node says
        loader.get_event()  # the document's start
        root = loader.peek_event().start_mark
        anchors: dict[str, yaml.Mark] = {}
        try:
            data = _document(loader, anchors)
        except (_NeedsFullLoader, *_SYNTAX):
            raise
        except Exception as late:  # noqa: BLE001 - raised again, after the syntax errors
            while not loader.check_event(yaml.DocumentEndEvent):
                _anchored(loader.get_event(), anchors)
            _single(loader, root)
            raise late from None
        _single(loader, root)
        return data
    finally:
        loader.dispose()


def _single(loader: StrictLoader, root: yaml.Mark | None) -> None:
    """The rest of the stream after the document: nothing, as get_single_node requires."""
    loader.get_event()  # the document's end
    if not loader.check_event(yaml.StreamEndEvent):
        # PyYAML's own words, as its composer says them (a syntax error's message quotes them).
        raise yaml.composer.ComposerError("expected a single document in the stream", root,  # not for people
                                          "but found another document",  # not for people
                                          loader.get_event().start_mark)


def _anchored(event: yaml.Event, anchors: dict[str, yaml.Mark]) -> None:
    """libyaml's composer refuses an anchor defined twice; so does this path."""
    anchor = getattr(event, "anchor", None)  # end events have none
    if anchor is None or isinstance(event, yaml.AliasEvent):
        return
    if anchor in anchors:
        raise yaml.composer.ComposerError("found duplicate anchor; first occurrence",  # not for people
                                          anchors[anchor], "second occurrence", event.start_mark)  # not for people
    anchors[anchor] = event.start_mark


def _document(loader: StrictLoader, anchors: dict[str, yaml.Mark]) -> Any:
    """The document's value from its events (iterative: the depth is checked, not recursed)."""
    get, construct, memo = loader.get_event, loader.construct_object, loader.constructed_objects
    scalar_event, mapping_start, sequence_start = yaml.ScalarEvent, yaml.MappingStartEvent, yaml.SequenceStartEvent
    # (value, implicit) -> (its tag, the first string of that value): desired state repeats the
    # same units, titles and folios' words thousands of times, and one string each is a third
    # less memory for the data of 100,000 people (strings are never changed, only shared).
    known: dict[tuple[str, tuple[bool, bool]], tuple[str, str]] = {}
    nest: list[list] = []  # [container, key waiting for its value or _NO_KEY, {key: line} or None for a list]
    while True:
        event = get()
        kind = type(event)
        at_key = bool(nest) and nest[-1][2] is not None and nest[-1][1] is _NO_KEY
        if kind is scalar_event:
            if event.anchor is not None:
                _anchored(event, anchors)
            tag, text = event.tag, event.value
            if tag is None or tag == "!":
                seen = known.get((text, event.implicit))
                if seen is None:
                    seen = known[(text, event.implicit)] = (_BaseLoader.resolve(loader, yaml.ScalarNode, text,
                                                                                event.implicit), text)
                tag, text = seen
            if at_key and tag == _MERGE:
                raise _NeedsFullLoader()
            if tag == _STR:
                value = text
            else:
                node = yaml.ScalarNode(tag, text, event.start_mark, event.end_mark, style=event.style)
                value = construct(node)
                memo.pop(node, None)  # PyYAML keeps every value it made until the file is done
        elif kind is mapping_start or kind is sequence_start:
            if event.anchor is not None:
                _anchored(event, anchors)
            if at_key:
                raise _NeedsFullLoader()
            if len(nest) >= MAX_DEPTH:
                raise TooDeep(event.start_mark.line + 1)
            nest.append([{}, _NO_KEY, {}] if kind is mapping_start else [[], _NO_KEY, None])
            continue
        elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
            value, at_key = nest.pop()[0], False  # a collection is never a key (refused at its start)
        else:  # an alias: only with a `*`, which the composed path takes
            raise _NeedsFullLoader()
        if not nest:
            return value
        frame = nest[-1]
        if frame[2] is None:
            frame[0].append(value)
        elif at_key:
            line = event.start_mark.line + 1
            _hashable(value, line)
            if value in frame[2]:
                raise DuplicateKey(str(value), line, frame[2][value])
            frame[1] = value
            frame[2][value] = line
        else:
            frame[0][frame[1]] = value
            frame[1] = _NO_KEY


def read_yaml(path: Path, display: str, data: bytes | None = None) -> tuple[Any, list[Problem]]:
    """Parse one file (`data`: its bytes, when the caller read them already).  Returns (data,
    problems); data is None when the file is unusable."""
    try:
        # Bytes decoded, not read_text: its universal newlines would turn a lone \r into \n,
        # past the check for line breaks Git does not count, and lines would not be Git's.
        text = (path.read_bytes() if data is None else data).decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, [not_utf8(display, exc)]
    except OSError as exc:
        return None, [Problem(display, None, "", _("cannot read: {error}", error=exc.strerror))]
    return parse_yaml(text, display)


def not_utf8(display: str, exc: UnicodeDecodeError) -> Problem:
    line = exc.object[:exc.start].count(b"\n") + 1 if isinstance(exc.object, bytes) else None
    return Problem(display, line, "", _("not UTF-8 text ({reason} at byte {position})", reason=exc.reason,
                                        position=exc.start))


# YAML also breaks lines at a lone \r, U+0085, U+2028 and U+2029; Git counts only \n.  A file
# with them would have its YAML lines blamed on other Git lines (another commit's approval).
_FOREIGN_BREAK = re.compile("\r(?!\n)|[\x85\u2028\u2029]")


def parse_yaml(text: str, display: str) -> tuple[Any, list[Problem]]:
    """Parse one document.  Returns (data, problems); data is None when it is unusable."""
    if found := _FOREIGN_BREAK.search(text):
        return None, [Problem(display, text.count("\n", 0, found.start()) + 1, "",
                              _("a line break Git does not count (U+{code:04X}): save the file with plain line breaks",
                                code=ord(found.group())))]
    try:
        return fast_load(text), []
    except DuplicateKey as dup:
        return None, [Problem(display, dup.line, dup.key[:60],
                              _("key written twice in the same mapping (first on line {line})", line=dup.first_line))]
    except (TooManyAliases, Refused) as exc:
        return None, [Problem(display, exc.line, "", str(exc))]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        what = exc.problem or _("invalid YAML")
        if exc.context:
            what = f"{exc.context}, {what}"
        return None, [Problem(display, line, "", _("YAML syntax error: {error}", error=_cut(what, 200)))]  # a tag can be long
    except yaml.reader.ReaderError as exc:
        # A character YAML refuses (a NUL, an escape, U+FFFE).  Its own message takes two lines
        # and names no line; libyaml gives the position in bytes of the UTF-8 text.
        before = text.encode("utf-8", "surrogatepass")[:exc.position] if _BaseLoader is not yaml.SafeLoader \
            else text[:exc.position]
        char = exc.character
        what = f"U+{char if isinstance(char, int) else ord(char):04X}" if isinstance(char, int) or len(char) == 1 \
            else repr(char)
        return None, [Problem(display, before.count(b"\n" if isinstance(before, bytes) else "\n") + 1, "",
                              _("a character YAML does not accept ({character}): remove it, or write it as an "
                                "escape in double quotes", character=what))]
    except yaml.YAMLError as exc:
        return None, [Problem(display, None, "", _("YAML error: {error}", error=_cut(" ".join(str(exc).split()), 200)))]


class LineIndex:
    """Maps a path inside a document (keys and list indices) to the line that holds it."""

    def __init__(self, text: str):
        self._text_lines = text.splitlines()
        try:
            self._root = yaml.compose(text, Loader=_BaseLoader)
        except yaml.YAMLError:
            self._root = None

    @classmethod
    def of_file(cls, path: Path) -> "LineIndex":
        return cls(path.read_bytes().decode("utf-8"))  # lines as Git counts them (see read_yaml)

    def line(self, path: tuple[Any, ...]) -> int | None:
        """The line of the deepest node along `path` that exists (1-based)."""
        return self._walk(path)[1]

    def span(self, path: tuple[Any, ...]) -> tuple[int, int] | None:
        """First and last line (1-based) of the node at `path`, None if it does not exist."""
        node, _line, complete = self._walk(path)
        if not complete or node is None:
            return None
        # The end mark sits where the next token starts: on the next item's line when only
        # indentation precedes it, so that line is not part of this node.
        row, col = node.end_mark.line, node.end_mark.column
        ends_before = row >= len(self._text_lines) or not self._text_lines[row][:col].strip()
        last = row if ends_before else row + 1
        return node.start_mark.line + 1, max(last, node.start_mark.line + 1)

    def scalar(self, path: tuple[Any, ...]) -> str | None:
        """The text exactly as written at `path` (004512 stays 004512, not octal 2378)."""
        node, _line, complete = self._walk(path)
        return node.value if complete and isinstance(node, yaml.ScalarNode) else None

    def _walk(self, path: tuple[Any, ...]):
        node = self._root
        if node is None:
            return None, None, False
        found = node.start_mark.line + 1
        for step in path:
            child = None
            if isinstance(node, yaml.MappingNode):
                for key_node, value_node in node.value:
                    if key_node.value == str(step):
                        child, found = value_node, key_node.start_mark.line + 1
                        break
            elif isinstance(node, yaml.SequenceNode) and isinstance(step, int) and step < len(node.value):
                child = node.value[step]
                found = child.start_mark.line + 1
            if child is None:
                return node, found, False
            node = child
        return node, found, True
