"""Every word a person reads is in the catalogs, and the catalogs are complete.

- The catalogs match the code (ci/catalogs --check): no message the code says is missing, none
  untranslated or fuzzy, in Spanish or in English, and each translation keeps its placeholders.
- No prose is left outside the catalogs: a string literal in reconciler/ that reads like words
  (two or more words of letters) must be said through reconciler.i18n (_, ngettext, lazy,
  lazy_n, N_, pgettext), be a docstring, or stand on a line marked `# not for people` (SQL,
  commands, LDAP filters, text other programs read).
- Plural forms are right for 0, 1 and 2 in both languages.
"""
from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

from reconciler import i18n
from reconciler.i18n import catalogs

PACKAGE = Path(i18n.__file__).resolve().parent.parent
SAYING = {"_", "ngettext", "lazy", "lazy_n", "N_", "pgettext"}
MARK = "not for people"
MARKUP = re.compile(r"\[/?[a-z ]*\]")  # rich's [bold red]...[/]
STYLES = {"bold", "dim", "italic", "underline", "red", "green", "yellow", "cyan", "magenta", "blue", "white", "on"}
WORDS = re.compile(r"[A-Za-zÁÉÍÓÚÑáéíóúñü']{2,}(?: +[A-Za-zÁÉÍÓÚÑáéíóúñü'(]{1,})+")


def _marked_lines(text: str) -> set[int]:
    lines = set()
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type == tokenize.COMMENT and MARK in token.string:
            lines.add(token.start[0])
    return lines


def _docstrings(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                out.add(id(body[0].value))
    return out


def _said(tree: ast.AST) -> set[int]:
    """The string nodes inside a call of _, lazy and the others (at any depth of their first arguments)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            if name in SAYING:
                for arg in node.args[:2]:
                    out.update(id(n) for n in ast.walk(arg))
    return out


def _prose(literal: str) -> bool:
    text = MARKUP.sub(" ", literal)
    return bool(WORDS.search(text)) and not set(re.findall(r"[A-Za-z]+", text)) <= STYLES


def unsaid(path: Path) -> list[str]:
    """Prose in this file that does not go through the catalogs."""
    text = path.read_text("utf-8")
    tree = ast.parse(text)
    skip = _docstrings(tree) | _said(tree)
    marked = _marked_lines(text)
    found = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.JoinedStr):
            skip.update(id(v) for v in node.values)
            for inner in ast.walk(node):
                name = getattr(inner.func, "id", getattr(inner.func, "attr", "")) if isinstance(inner, ast.Call) else ""
                if name in SAYING:  # Babel cannot see into an f-string before Python 3.12
                    found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {name}() said inside an f-string")
            literal = "".join(v.value for v in node.values if isinstance(v, ast.Constant)) if any(
                isinstance(v, ast.Constant) for v in node.values) else ""
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            literal = node.value
        else:
            continue
        lines = set(range(node.lineno, (node.end_lineno or node.lineno) + 1))
        if _prose(literal) and not lines & marked:
            found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {literal[:70]!r}")
    return found


# The catalogs' own maintenance tool speaks to developers, in the code's language.
DEVELOPERS_ONLY = {PACKAGE / "i18n" / "catalogs.py"}


def test_no_prose_outside_the_catalogs():
    found = [line for path in sorted(PACKAGE.rglob("*.py")) if path not in DEVELOPERS_ONLY for line in unsaid(path)]
    assert not found, f"{len(found)} strings a person may read are not in the catalogs:\n" + "\n".join(found)


def shadowing(source: str) -> list[tuple[str, int]]:
    """Functions that both call `_` (the catalogs' lookup) and assign a local `_` (`_, x = …`,
    `for _ in …`): Python then takes every `_` in them for the local, and the message that
    would explain a failure raises UnboundLocalError or "int is not callable" instead."""
    found = []
    scopes = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef, ast.ListComp, ast.SetComp,
              ast.DictComp, ast.GeneratorExp)
    for function in ast.walk(ast.parse(source)):
        if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        names, stack = [], list(ast.iter_child_nodes(function))
        while stack:
            node = stack.pop()
            if isinstance(node, scopes):
                continue  # a scope of its own
            if isinstance(node, ast.Name) and node.id == "_":
                names.append(node)
            stack.extend(ast.iter_child_nodes(node))
        if any(isinstance(n.ctx, ast.Store) for n in names) and any(isinstance(n.ctx, ast.Load) for n in names):
            found.append((function.name, function.lineno))
    return found


def test_no_function_hides_the_catalogs_lookup_behind_a_local_underscore():
    assert shadowing("def f():\n    for _ in range(3):\n        pass\n    raise ValueError(_('x'))\n") == [("f", 1)]
    assert shadowing("def f():\n    xs = [1 for _ in range(3)]\n    return _('x')\n") == []
    found = [f"{path.relative_to(PACKAGE.parent)}:{line}: {name}" for path in sorted(PACKAGE.rglob("*.py"))
             for name, line in shadowing(path.read_text(encoding="utf-8"))]
    assert not found, "\n".join(found)


def said(source: str) -> set[str]:
    """Every message a call of `_` or `lazy` says with a literal, wherever it sits (an f-string
    included, which Babel's extraction does not look into)."""
    return {node.args[0].value for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("_", "lazy")
            and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)}


def test_every_message_the_code_says_is_in_the_catalog_even_inside_an_f_string():
    assert said("x = f\"# {_('Work order {folio}', folio=f)}\"\n") == {"Work order {folio}"}
    known = {m.id if isinstance(m.id, str) else m.id[0] for m in catalogs.template() if m.id}
    missing = sorted(f"{path.relative_to(PACKAGE.parent)}: {message!r}" for path in sorted(PACKAGE.rglob("*.py"))
                     for message in said(path.read_text(encoding="utf-8")) - known)
    assert not missing, "said where the catalog's extraction does not look:\n" + "\n".join(missing)


def test_catalogs_match_the_code_and_are_complete():
    source = catalogs.template()
    assert len(source) > 100
    problems = []
    for language in i18n.LANGUAGES:
        catalog = catalogs.updated(language, source)
        problems += [f"{p} is out of date (run ci/catalogs)" for p in catalogs.stale(language, catalog)]
        problems += [str(f) for f in catalogs.findings(language, catalog)]
    assert not problems, "\n".join(problems)


def test_the_lint_sees_prose_and_spares_what_is_said_or_marked(tmp_path):
    sample = PACKAGE / "_lint_sample_for_tests.py"
    sample.write_text('from reconciler.i18n import _\n'
                      'a = "cannot reach the server"\n'
                      'b = _("cannot reach the server")\n'
                      'c = "SELECT id FROM users"  # not for people\n'
                      'd = f"{a} is gone for good"\n'
                      'e = "account"\n', "utf-8")
    try:
        found = unsaid(sample)
    finally:
        sample.unlink()
    assert [line.split(":")[1] for line in found] == ["2", "5"]


@pytest.mark.parametrize("language, forms", [
    ("es_MX", {0: "0 modificaciones", 1: "1 modificación", 2: "2 modificaciones"}),
    ("en", {0: "0 modificaciones", 1: "1 modificación", 2: "2 modificaciones"}),
])
def test_plural_forms_for_zero_one_and_two(speaking, language, forms):
    from reconciler.plan import Movement
    from reconciler.render.words import movements

    speaking(language)
    assert {n: movements(Movement.MODIFICACION, n) for n in forms} == forms


@pytest.mark.parametrize("language, forms", [
    ("es_MX", {0: "0 conflictos", 1: "1 conflicto", 2: "2 conflictos"}),
    ("en", {0: "0 conflicts", 1: "1 conflict", 2: "2 conflicts"}),
])
def test_plural_forms_of_an_ordinary_noun(speaking, language, forms):
    speaking(language)
    assert {n: i18n.ngettext("{n} conflict", "{n} conflicts", n) for n in forms} == forms


def test_every_plural_message_has_the_forms_its_language_needs():
    for language in i18n.LANGUAGES:
        catalog = catalogs.read(language)
        assert catalog.num_plurals == 2, language  # both have one and other
        for message in catalog:
            if isinstance(message.id, tuple):
                assert len(message.string) == 2 and all(message.string), (language, message.id)


def test_a_message_is_its_source_text_and_speaks_when_shown(speaking):
    import json

    message = i18n.lazy("{n} conflict", n=1)  # not a plural call: the singular text is the message
    speaking("es_MX")
    assert json.dumps({"m": message}) == '{"m": "1 conflict"}'
    assert i18n.source(message) == "1 conflict"
    plural = i18n.lazy_n("{n} conflict", "{n} conflicts", 3)
    assert str(plural) == "3 conflictos" and f"[{plural}]" == "[3 conflictos]"
    assert plural == "3 conflicts"  # compares, hashes and sorts as its source text


def test_dates_numbers_and_money_as_mexico_writes_them(speaking):
    import datetime as dt

    speaking("es_MX")
    i18n.institution(None, "America/Mexico_City")
    assert i18n.date("2026-12-01") == "1 de diciembre de 2026"
    # 06:30 UTC on 2 December is 00:30 in Mexico City (UTC-6, no daylight saving since 2022)
    assert i18n.when(dt.datetime(2026, 12, 2, 6, 30, tzinfo=dt.timezone.utc)) == "2 de diciembre de 2026, 00:30 CST"
    assert i18n.date("2026-12-02T05:59:00+00:00") == "1 de diciembre de 2026"
    assert i18n.month("2026-11") == "noviembre de 2026"
    assert i18n.number(1210) == "1,210" and i18n.money(1210) == "$1,210.00 MXN"
    speaking("en")
    assert i18n.date("2026-12-01") == "December 1, 2026" and i18n.month("2026-11") == "November 2026"


@pytest.mark.parametrize("asked, chosen", [
    ("es_MX.UTF-8", "es_MX"), ("es", "es_MX"), ("es-ES", "es_MX"), ("en_US.UTF-8", "en"), ("en", "en"),
    ("C.UTF-8", None), ("POSIX", None), ("fr_FR.UTF-8", None), ("", None),
])
def test_language_tags_find_their_catalog(asked, chosen):
    assert i18n.negotiate(asked) == chosen


def test_the_language_comes_from_the_flag_then_the_environment_then_the_inventory():
    try:
        assert i18n.choose(None, {"LANG": "C.UTF-8"}) == "es_MX" and not i18n.explicit()
        i18n.institution("en", None)
        assert i18n.current() == "en"  # the inventory decides when nothing else did
        assert i18n.choose(None, {"LC_ALL": "C", "LANG": "en_US.UTF-8"}) == "es_MX"  # LC_ALL=C: no wish
        assert i18n.choose(None, {"LANG": "en_US.UTF-8"}) == "en" and i18n.explicit()
        i18n.institution("es_MX", None)
        assert i18n.current() == "en"  # the environment's wish stands
        assert i18n.choose("es", {"LANG": "en_US.UTF-8"}) == "es_MX"
        with pytest.raises(ValueError, match="klingon"):
            i18n.choose("klingon", {})
    finally:
        i18n.use("en", explicit=True)


def test_moments_at_the_ends_of_time_are_shown_not_crashed_on(speaking):
    """A hostile record's time (year 9999 west of UTC, year 1) cannot be taken to the
    institution's zone; it is shown in its own instead of stopping `history`."""
    speaking("es_MX")
    assert i18n.when("9999-12-31T23:00:00-10:00") == "31 de diciembre de 9999, 23:00 UTC-10:00"
    assert i18n.date("0001-01-01T00:00:00") == "1 de enero de 1"
    assert i18n.when("not a time") == "not a time"


def test_a_compiled_catalog_is_current_whatever_minute_it_was_written(tmp_path):
    catalog = catalogs.updated("es_MX", catalogs.template())
    written = catalogs.mo_bytes(catalog)
    catalog.creation_date = catalog.revision_date = __import__("datetime").datetime(2001, 1, 1)
    assert catalogs._same_messages(written, catalog)
