"""The checks every YAML file goes through: the schema (compiled, with jsonschema for the
messages), and problems reported with file, line and field.  Shared by the desired state, the
inventory and the approval policy; depends on no loader."""
from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, Callable, Iterable

import fastjsonschema

from reconciler.desired.files import DesiredFiles
from reconciler.desired.schemacache import compiled
from reconciler.desired.yamlfile import LineIndex, not_utf8, parse_yaml
from reconciler.errors import Problem
from reconciler.i18n import N_, _

# What a field should look like, said the way a person filling in the form would say it.
_HINTS = {
    "employee_key": N_("an employee key: letters, digits, '-', '_' or '.' (quote keys like '004512')"),
    "given_names": N_("a name: letters, with spaces, apostrophes, hyphens or periods between words"),
    "first_surname": N_("a surname: letters, with spaces, apostrophes, hyphens or periods between words"),
    "second_surname": N_("a surname, or null for a person with a single surname"),
    "phone": N_("a phone number: digits, spaces, '+', '(', ')' or '-', 7 to 25 characters"),
    "extension": N_("an extension: 1 to 8 digits, in quotes"),
    "date": N_("a date written YYYY-MM-DD"),
    "sam": N_("an account name: at most 20 letters, digits, '.', '_' or '-'"),
    "clues": N_("a CLUES: 2-letter state, 3 letters and 6 digits, e.g. MSSSA000011"),
    "group": N_("a group name: letters, digits, spaces, '.', '_' or '-'"),
    "unit": N_("a unit key from desired_state/units.yaml"),
    "address": N_("a mail address in lower case, like nombre.apellido@salud.gob.mx"),
    "quota": N_("a size in megabytes or gigabytes, like 500M or 2G"),
}


_DEFINED: dict[str, dict] = {}  # schemas composed at run time (the inventory's), by name


def define_schema(name: str, document: dict) -> None:
    """Make a composed schema known by `name`; a name stands for one document for good."""
    _DEFINED.setdefault(name, document)


@cache
def _schema_document(name: str) -> dict:
    if name in _DEFINED:
        return _anchored(_DEFINED[name])
    text = resources.files("reconciler.desired").joinpath(f"schemas/{name}.schema.json").read_text("utf-8")
    return _anchored(json.loads(text))


def _anchored(node: Any) -> Any:
    """The schema with every pattern's final `$` made `\\Z`: Python's `$` also matches before a
    final newline, so "SSM-000003\\n" would pass for an employee key (and split a registry
    line in two).  JSON Schema means the end of the text."""
    if isinstance(node, dict):
        return {k: (_end_anchor(v) if k == "pattern" and isinstance(v, str) else _anchored(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [_anchored(v) for v in node]
    return node


def _end_anchor(pattern: str) -> str:
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        return pattern[:-1] + "\\Z"
    return pattern


@cache
def schema(name: str):
    """The reference validator: slow, but it reports every error with its path.  Imported only
    when some file fails the compiled check: importing it costs a plan 45 ms."""
    import jsonschema

    return jsonschema.Draft7Validator(_schema_document(name))


@cache
def _fast_check(name: str):
    """The same schema compiled to Python (and kept compiled, see schemacache): about 20x
    faster, but it stops at the first error.
    Only "valid or not" is asked of it (jsonschema explains), so it is compiled without the
    detailed messages: five times faster to compile, which is most of a command's start.
    fastjsonschema 2.22 fails to generate some keywords without them (a KeyError in its code
    generator, seen with the inventory's if/then): those are compiled with them."""
    document = _schema_document(name)
    try:
        return compiled(document, detailed=False)
    except KeyError:
        return compiled(document, detailed=True)


def schema_valid(data: Any, name: str) -> bool:
    try:
        _fast_check(name)(data)
        return True
    except fastjsonschema.JsonSchemaException:
        return False


def field_path(path: Iterable[Any]) -> str:
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else str(step))
    return out


def shown(value: Any, limit: int = 60) -> str:
    """A value as a message shows it: its repr (control characters escaped), cut short.  A
    hostile file's content is never echoed whole into a CI log."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _describe(error) -> tuple[tuple[Any, ...], str]:
    """A jsonschema.ValidationError as (path of the offending field, plain message)."""
    path = tuple(error.absolute_path)
    last = path[-1] if path and not isinstance(path[-1], int) else None
    if error.validator == "required":
        missing = error.message.split("'")[1]
        return path + (missing,), _("required field is missing")
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})), key=repr)  # keys of any type
        return path + (extra[0],) if extra else path, _(
            "unknown field (allowed: {fields})", fields=", ".join(sorted(error.schema.get("properties", {}))))
    if "propertyNames" in error.relative_schema_path:  # before "type": a key of None, 1 or true is no name
        return path + (error.instance,), _("{value} is not a valid key (letters, digits, '-', '_' or '.')",
                                           value=shown(error.instance))
    if error.validator == "type":
        found = shown(error.instance)
        expected = {"string": N_("expected text (put it in quotes), found {value}"),
                    "array": N_("expected a list, found {value}"),
                    "object": N_("expected a mapping, found {value}"),
                    "integer": N_("expected a whole number, found {value}"),
                    "boolean": N_("expected true or false, found {value}")}.get(str(error.validator_value))
        if expected is None:  # a type the schemas do not use alone: named as the schema names it
            return path, _("expected {expected}, found {value}", expected=str(error.validator_value), value=found)
        return path, _(expected, value=found)
    if error.validator == "enum":
        return path, _("{value} is not one of {allowed}", value=shown(error.instance),
                       allowed=", ".join(map(repr, error.validator_value)))
    if error.validator == "uniqueItems":
        return path, _("lists the same item twice")
    hint = _HINTS.get(str(last)) if last is not None else None
    if hint:
        return path, _("{value} is not valid: expected {hint}", value=shown(error.instance), hint=_(hint))
    if error.validator in ("minLength", "pattern") and isinstance(error.instance, str):
        if not error.instance.strip():
            return path, _("must not be empty")
        return path, _("{value} is not valid (no leading or trailing spaces; see the schema)", value=shown(error.instance))
    # jsonschema's own message begins with the value's repr, whole ("'…' is too long"): cut it
    # as every other message does.  The ones the schemas can produce are said in the catalog's
    # words (the same English); any other stays jsonschema's.
    message, written = error.message, repr(error.instance)
    if message.startswith(written):
        rest = message[len(written):]
        said = _library_words(error.validator_value).get(rest)
        message = _(said, value=shown(error.instance), limit=error.validator_value) if said else (
            shown(error.instance) + rest)
    return path, message if len(message) <= 200 else message[:199] + "…"


def _library_words(limit: Any) -> dict[str, str]:
    """jsonschema's message (after the value) -> the same message in the catalog."""
    return {
        " is too long": N_("{value} is too long"),  # the key: not for people
        " is too short": N_("{value} is too short"),  # the key: not for people
        " should be non-empty": N_("{value} should be non-empty"),  # the key: not for people
        " is expected to be empty": N_("{value} is expected to be empty"),  # the key: not for people
        " has too many properties": N_("{value} has too many properties"),  # the key: not for people
        " does not have enough properties": N_("{value} does not have enough properties"),  # the key: not for people
        " is not valid under any of the given schemas": N_("{value} is not valid under any of the given schemas"),  # the key: not for people
        f" is less than the minimum of {limit!r}": N_("{value} is less than the minimum of {limit!r}"),  # the key: not for people
        f" is greater than the maximum of {limit!r}": N_("{value} is greater than the maximum of {limit!r}"),  # the key: not for people
    }


@dataclass
class FileCheck:
    """Problems of one file, with line numbers looked up only if there are any."""

    display: str
    text: str = ""
    found: bool = True
    index_map: list[int] | None = None  # people[i] parsed -> its index in the file (partial loads)
    problems: list[Problem] = field(default_factory=list)
    _lines: LineIndex | None = None
    text_source: Callable[[], str] | None = None  # the text, read only when a line is asked for

    def _index(self) -> LineIndex:
        if self._lines is None:
            if self.text_source is not None and not self.text:
                self.text = self.text_source()
            self._lines = LineIndex(self.text)
        return self._lines

    def line(self, path: tuple[Any, ...]) -> int | None:
        return self._index().line(path)

    def original(self, path: tuple[Any, ...]) -> tuple[Any, ...]:
        """`path` with the people index the file has, when only some entries were parsed."""
        if self.index_map is not None and len(path) > 1 and path[0] == "people" and isinstance(path[1], int):
            return ("people", self.index_map[path[1]]) + tuple(path[2:])
        return path

    def add(self, path: tuple[Any, ...], message: str) -> None:
        # A message may name another file ("already declared at ..."), whose name comes from
        # the repository: escaped like the problem's own file name (errors.Problem).
        if not message.isprintable():
            message = "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)
        self.problems.append(Problem(self.display, self.line(path), field_path(self.original(path)), message))

    def validate(self, data: Any, schema_name: str) -> set[tuple[Any, ...]]:
        """Schema-check `data`; returns the paths of the top two levels that had errors.

        Valid data (the common case) is checked by the compiled schema only; jsonschema runs
        just for data that failed, to find every error in it."""
        bad: set[tuple[Any, ...]] = self._values(data)
        if schema_valid(data, schema_name):
            return bad
        for error in schema(schema_name).iter_errors(data):
            path, message = _describe(error)
            if error.validator == "type" and error.validator_value == "string" and not isinstance(error.instance, str):
                written = self._index().scalar(path)
                # Only for a short one (004512): a long one, a pasted secret of digits, would be echoed
                # whole; it gets the message any value gets, which cuts it short.
                if written is not None and written != str(error.instance) and len(written) <= 40:
                    message = _("expected text; YAML reads {written} as {value!r}: write it in quotes, '{written}'",
                                written=written, value=error.instance)
            self.add(path, message)
            bad.add(tuple(error.absolute_path)[:2])
            # jsonschema leaves a key of None out of its path: the key as described counts too
            bad.add(tuple(path)[:2])
        return bad


    def _values(self, data: Any) -> set[tuple[Any, ...]]:
        """What no schema says, in one walk over the values: control characters (they end up in
        a DN, a registry line, a CSV cell or a log: refused everywhere, and a line break
        everywhere but in free texts, MULTILINE), and dates the pattern lets through but no
        calendar has (2026-02-30).  Each a problem; its entry left out like one the schema refused."""
        bad = set()
        for path, value in _strings(data, ()):
            found = _CONTROL.search(value)
            if found is None and "\n" in value and not (path and path[-1] in MULTILINE):
                found = _NEWLINE.search(value)
            if found is not None:
                self.add(path, _("contains a control character (U+{code:04X}): write it on one line, in plain text",
                                 code=ord(found.group())))
                bad.add(path[:2])
            elif _MAYBE_IMPOSSIBLE.fullmatch(value):
                try:
                    dt.date.fromisoformat(value)
                except ValueError:
                    self.add(path, _("{value!r} is not a date on the calendar", value=value))
                    bad.add(path[:2])
        return bad


MULTILINE = frozenset({"justification", "description", "reason"})  # free texts a form lets run over lines
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")  # tab and newline aside; \r is refused
_NEWLINE = re.compile(r"\n")
_MAYBE_IMPOSSIBLE = re.compile(r"\d{4}-(?:02-(?:29|3[01])|(?:04|06|09|11)-31)")  # the dates a calendar may lack


def _strings(node: Any, path: tuple) -> Iterable[tuple[tuple, str]]:
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, path + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _strings(value, path + (index,))


def people_keys(data: Any) -> list | None:
    """The employee keys of a unit file's people, in order (None: not such a file)."""
    people = data.get("people") if isinstance(data, dict) else None
    if not isinstance(people, list):
        return None
    return [p.get("employee_key") if isinstance(p, dict) else None for p in people]


def open_file(files: DesiredFiles, rel: str, checks: list[FileCheck],
              keep: frozenset | None = None, text: str | None = None) -> tuple[FileCheck, Any, bool]:
    """Read and parse one file: (its check, data, usable).  A missing file is (check, None, False)
    with no problem recorded: whether that is a problem is the caller's business.  With `keep`,
    only those people's entries are parsed, when the file splits into entries and the parse
    finds exactly them; line numbers and (through check.index_map) list indices in messages
    stay those of the file.  Otherwise the whole file is.  `text`: the file's text, when the
    caller already read it."""
    from reconciler.desired.entries import keep_only, kept_text, split_known, text_of_blob  # loading only

    check = FileCheck(f"{files.label}/{rel}")
    checks.append(check)
    identity = files.identity(rel) if keep is not None else None
    try:
        if text is None:  # a partial load's file is split, then blamed: read once (text_of_blob)
            text = files.read_text(rel) if keep is None else text_of_blob(identity, lambda: files.read_text(rel))
    except UnicodeDecodeError as exc:
        check.problems.append(not_utf8(check.display, exc))
        return check, None, False
    except OSError as exc:
        check.add((), _("cannot read: {error}", error=exc.strerror))
        return check, None, False
    if text is None:
        check.found = False
        return check, None, False
    if keep is not None and (entries := split_known(identity, text)) is not None:
        whole, wanted = text, set(keep)
        compact, index_map = kept_text(text, entries, wanted)
        data, problems = parse_yaml(compact, check.display)
        if not problems and people_keys(data) == [entries[i].key for i in index_map]:
            # The lines of a later problem are the file's, in its blanked text.
            check.index_map, check.text_source = index_map, lambda: keep_only(whole, entries, wanted)[0]
            return check, data, True
        # A problem, or not the people the split saw (a quoted value that goes on, less
        # indented, past where the scanner ended its entry): the whole file, as YAML reads it.
    check.text = text
    data, problems = parse_yaml(text, check.display)
    check.problems += problems
    return check, data, not problems
