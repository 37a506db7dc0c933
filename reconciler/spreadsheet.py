"""CSV that a spreadsheet opens as data, never as formulas.

Every CSV the reconciler writes (the carrier bill's findings, the monthly indicators, a lab's
clear-text credentials file) ends up in the help desk's spreadsheet, and some of its cells come
from files a pull request or a carrier wrote: a folio `=HYPERLINK("http://…")` or a number
`@SUM(…)` would run there.  A cell that a spreadsheet would read as a formula (beginning with
=, +, -, @, a tab or a carriage return) gets a leading apostrophe, as OWASP advises for CSV
injection; a plain number (-120.50, a credit on a bill) stays a number.
"""
from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "＝", "＋", "－", "＠")  # and their full-width forms
_NUMBER = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")  # ASCII digits only: \d takes any script's


def cell(value) -> str:
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA_START) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def csv_row(values: Iterable) -> str:
    """One line, ending in a line feed.  Written with CR LF as the terminator and then cut: the
    csv module quotes only fields holding the terminator's characters, and a bare carriage
    return left unquoted would split the row in two where it is read."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow([cell(v) for v in values])
    return out.getvalue()[:-2] + "\n"


def csv_text(header: Iterable[str], rows: Iterable[Iterable]) -> str:
    return csv_row(header) + "".join(csv_row(r) for r in rows)
