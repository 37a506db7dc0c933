"""Keeping the catalogs: extract every message from the code with Babel, bring each
language's `.po` up to date, compile the `.mo` files the program reads (`ci/catalogs`), and
say what is missing (`ci/catalogs --check`, and the tests).

English is the source language: its catalog is filled from the messages themselves (a new
message is complete in English the moment it is written), so that plural forms and any
later rewording live in one place.  Spanish is written by people: a message without its
Spanish words is reported, never guessed.
"""
from __future__ import annotations

import copy
import io
import string
from dataclasses import dataclass
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

from reconciler.i18n import DOMAIN, LANGUAGES, LOCALE_DIR

PACKAGE = LOCALE_DIR.parent
# The calls whose first string (and second, for plurals) is a message; see reconciler.i18n.
KEYWORDS = {"_": None, "N_": None, "lazy": None, "ngettext": (1, 2), "lazy_n": (1, 2),
            "pgettext": ((1, "c"), 2)}
METHOD_MAP = [("**.py", "python")]


def template() -> Catalog:
    """Every message the code says, with where it says it."""
    catalog = Catalog(domain=DOMAIN, project="reconciler", charset="utf-8")
    for filename, lineno, message, comments, context in extract_from_dir(
            str(PACKAGE), METHOD_MAP, keywords=KEYWORDS, comment_tags=("TRANSLATORS:",), strip_comment_tags=True):
        catalog.add(message, None, [(f"reconciler/{filename}", lineno)], auto_comments=comments, context=context)
    return catalog


def po_path(language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def read(language: str) -> Catalog:
    path = po_path(language)
    if not path.exists():
        return Catalog(locale=language, domain=DOMAIN, project="reconciler", charset="utf-8")
    with path.open("rb") as fp:
        return read_po(fp, locale=language, domain=DOMAIN)


# GNU gettext's forms for both languages: one, and every other count.  (CLDR gives Spanish a
# third form for round millions; the messages never count that high in words.)
PLURAL_FORMS = "nplurals=2; plural=(n != 1);"


def updated(language: str, source: Catalog) -> Catalog:
    catalog = read(language)
    catalog._num_plurals, catalog._plural_expr = 2, "(n != 1)"  # noqa: SLF001 (Babel has no setter)
    # A copy: Babel adds a template's new messages by reference, and one language's words would
    # otherwise appear in the other's catalog (English filling in for missing Spanish).
    catalog.update(copy.deepcopy(source), no_fuzzy_matching=True)  # a guessed translation is worse than none
    catalog.obsolete.clear()
    if language == "en":
        for message in catalog:
            if message.id and not _complete(message):
                message.string = message.id
    return catalog


@dataclass
class Finding:
    language: str
    message: str
    problem: str
    locations: tuple = ()

    def __str__(self) -> str:
        return f"{self.language}: {self.problem}: {self.message!r}"


def _complete(message) -> bool:
    strings = message.string if isinstance(message.string, tuple) else (message.string,)
    return all(strings) and bool(strings)


def _fields(text: str) -> set[str]:
    try:
        return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError:
        return {"<unbalanced braces>"}


def findings(language: str, catalog: Catalog, only: str = "") -> list[Finding]:
    """Messages without words, fuzzy ones, and translations whose placeholders differ (of the
    messages said under the path `only`)."""
    out = []
    for message in catalog:
        if not message.id or not any(where.startswith(only) for where, _ in message.locations):
            continue
        shown = message.id[0] if isinstance(message.id, tuple) else message.id
        if not _complete(message):
            out.append(Finding(language, shown, "not translated"))
            continue
        if message.fuzzy:
            out.append(Finding(language, shown, "fuzzy"))
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        wanted = set().union(*(_fields(i) for i in ids)) - {"n"}
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        for text in strings:
            if _fields(text) - {"n"} != wanted:
                out.append(Finding(language, shown, f"placeholders {sorted(_fields(text))} in {text!r}"))
    return out


def po_bytes(catalog: Catalog) -> bytes:
    buffer = io.BytesIO()
    write_po(buffer, catalog, width=100, omit_header=False, sort_output=True, include_lineno=False)
    return buffer.getvalue()


def mo_bytes(catalog: Catalog) -> bytes:
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    return buffer.getvalue()


def _header_free(po: bytes) -> bytes:
    """A .po without the header lines that change on every write (dates)."""
    return b"\n".join(line for line in po.split(b"\n") if not line.startswith((b'"POT-Creation-Date', b'"PO-Revision-Date')))


def stale(language: str, catalog: Catalog) -> list[str]:
    """Files that do not match what the code says now."""
    out = []
    po, mo = po_path(language), po_path(language).with_suffix(".mo")
    if not po.exists() or _header_free(po.read_bytes()) != _header_free(po_bytes(catalog)):
        out.append(str(po.relative_to(PACKAGE.parent)))
    if not mo.exists() or not _same_messages(mo.read_bytes(), catalog):
        out.append(str(mo.relative_to(PACKAGE.parent)))
    return out


def _same_messages(mo: bytes, catalog: Catalog) -> bool:
    import gettext

    compiled = gettext.GNUTranslations(io.BytesIO(mo))._catalog  # noqa: SLF001 (the only way to list them)
    fresh = gettext.GNUTranslations(io.BytesIO(mo_bytes(catalog)))._catalog  # noqa: SLF001
    # The header entry ("") carries the minute it was written: compare the messages only.
    return {k: v for k, v in compiled.items() if k != ""} == {k: v for k, v in fresh.items() if k != ""}


def write(language: str, catalog: Catalog) -> None:
    po = po_path(language)
    po.parent.mkdir(parents=True, exist_ok=True)
    if not po.exists() or _header_free(po.read_bytes()) != _header_free(po_bytes(catalog)):
        po.write_bytes(po_bytes(catalog))
    po.with_suffix(".mo").write_bytes(mo_bytes(catalog))


def fill(catalog: Catalog, others: list[Path]) -> None:
    """Take the words of messages this catalog lacks from other .po files (a translator's)."""
    for path in others:
        with path.open("rb") as fp:
            other = read_po(fp, locale=catalog.locale)
        for message in other:
            mine = catalog.get(message.id, context=message.context)
            if message.id and mine is not None and not _complete(mine) and not message.fuzzy:
                words = message.string[:catalog.num_plurals] if isinstance(message.string, tuple) else message.string
                if all(words if isinstance(words, tuple) else (words,)):
                    mine.string = words


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    p = argparse.ArgumentParser(prog="ci/catalogs", description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="change nothing; fail if out of date or incomplete")
    p.add_argument("--translations", type=Path, action="append", default=[], metavar="FILE.po",
                   help="fill the Spanish words a message lacks from this file (repeatable)")
    p.add_argument("--only", metavar="PATH", default="", help="report only messages said under this path")
    args = p.parse_args(argv)
    source = template()
    problems: list[str] = []
    for language in LANGUAGES:
        catalog = updated(language, source)
        if language != "en":
            fill(catalog, args.translations)
        if args.check and not args.only:
            problems += [f"{path} is out of date: run ci/catalogs" for path in stale(language, catalog)]
        elif not args.check:
            write(language, catalog)
        problems += [str(f) for f in findings(language, catalog, args.only)]
    for line in problems:
        print(line, file=sys.stderr)
    print(f"{len(source)} messages; {len(problems)} problems", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
