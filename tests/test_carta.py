"""The carta responsiva: every fact handed over is on it, the password never is, a hostile
value is printed as text inside the page, and the same handover makes the same bytes.

The PDF is read back as a person's tools read it: poppler's pdftotext, pdfinfo and pdftoppm
(Debian's poppler-utils).  The tests speak English (conftest.py); the Spanish words are the
catalogs' business, so the checks here are about structure and values, not wording.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import inspect
import re
import shutil
import subprocess
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler import pdfpage
from reconciler.delivery import carta
from reconciler.delivery.carta import Handover, Item, carta_name, carta_pdf
from reconciler.errors import ReconcilerError

DAY = dt.date(2026, 12, 2)


def handover(**overrides) -> Handover:
    base = dict(
        institution="Servicios de Salud de Morelos", unit_key="HG-CUERNAVACA",
        unit_name='Hospital General de Cuernavaca "Dr. José G. Parres"', folio="SSM/STI/2025/00007", day=DAY,
        person_name="Zoé Güemes O'Brien", employee_key="SSM-000007", title="Trabajadora Social",
        account="zguemeso", upn="zguemeso@salud.lab", mailbox="zoe.guemes@salud.morelos.gob.mx",
        extensions=("365", "366"),
        equipment=(Item("INV-2025-0001", "Laptop", "Lenovo", "ThinkPad E14 Gen 5", "PF4XK2Z9"),
                   Item("INV-2025-0002", "Teléfono IP", "Yealink", "T31P", "803120F0A1")))
    base.update(overrides)
    return Handover(**base)


def poppler(tool: str, pdf: bytes, *args: str) -> str:
    """What a poppler tool says of `pdf` (given on its standard input)."""
    if shutil.which(tool) is None:
        pytest.fail(f"{tool} is missing: apt-get install poppler-utils")
    return subprocess.run([tool, *args], input=pdf, capture_output=True, check=True).stdout.decode("utf-8")


def text_of(pdf: bytes, *pages: int) -> str:
    """The words of the PDF (of pages first..last, when given), every run of white space one
    space: a value wrapped over two lines still reads as one."""
    span = ["-f", str(pages[0]), "-l", str(pages[-1])] if pages else []
    return " ".join(poppler("pdftotext", pdf, "-enc", "UTF-8", *span, "-", "-").split())


def info_of(pdf: bytes) -> dict[str, str]:
    out = poppler("pdfinfo", pdf, "-enc", "UTF-8", "-")
    return {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in out.splitlines() if ":" in line)}


def assert_inside_the_page(pdf: bytes) -> None:
    boxes = poppler("pdftotext", pdf, "-bbox", "-", "-")
    width, height = map(float, re.search(r'<page width="([\d.]+)" height="([\d.]+)"', boxes).groups())
    words = [tuple(map(float, m)) for m in re.findall(
        r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)"', boxes)]
    assert words
    for x_min, y_min, x_max, y_max in words:
        assert 0 <= x_min and x_max <= width and 0 <= y_min and y_max <= height


@pytest.fixture(scope="module")
def sample() -> bytes:
    return carta_pdf(handover())


@pytest.mark.parametrize("name", ["Zoé Güemes O'Brien", "Begoña Ñúñez Ibáñez"])
def test_every_fact_handed_over_is_on_the_carta(name):
    given = handover(person_name=name)
    text = text_of(carta_pdf(given))
    for value in (given.institution, given.unit_name, given.unit_key, "Carta responsiva", given.folio,
                  "December 2, 2026", name, given.employee_key, given.title, given.account, given.upn,
                  given.mailbox, "365", "366", *(v for item in given.equipment for v in dataclasses.astuple(item))):
        assert value in text, value


def test_it_says_the_obligations_the_envelope_and_who_signs(sample):
    text = text_of(sample)
    assert "Obligations of use" in text
    obligations = text[text.index("Obligations of use"):]
    assert all(f"{n}. " in obligations for n in range(1, 7))
    assert "non-transferable" in obligations and "audit" in obligations
    assert "password is NOT printed" in text and "sealed envelope" in text
    assert text.index("Receives") < text.index("Hands over")
    assert text.count("Signature") == 2 and text.count("Name: ") == 2


def test_the_date_is_the_institution_s_long_form(speaking):
    speaking("es_MX")
    assert "2 de diciembre de 2026" in text_of(carta_pdf(handover()))


def test_what_was_not_handed_over_has_no_row():
    text = text_of(carta_pdf(handover(upn=None, mailbox="  ", extensions=(), equipment=())))
    assert "zguemeso" in text
    for absent in ("Sign-in name", "Mailbox", "Extension", "Equipment", "Inventory number"):
        assert absent not in text, absent
    nothing = text_of(carta_pdf(handover(account=None, upn=None, mailbox=None, extensions=(), equipment=())))
    assert "Account" not in nothing and "Nothing is recorded as handed over" in nothing


def test_no_password_can_reach_the_carta(sample):
    fields = {f.name for f in dataclasses.fields(Handover)} | {f.name for f in dataclasses.fields(Item)}
    assert not {f for f in fields if re.search("password|secret|pass", f)}
    assert list(inspect.signature(carta_pdf).parameters) == ["handover"]
    info = info_of(sample)
    assert info["Title"] == "Carta responsiva SSM/STI/2025/00007"
    assert info["Subject"] == "Handover of an institutional account to SSM-000007"
    assert info["Page size"].startswith("612 x 792 pts")  # letter


def test_the_same_handover_makes_the_same_bytes(sample):
    time.sleep(1.05)  # a clock in the file would now read another second
    assert carta_pdf(handover()) == sample
    assert b"D:20261202" in sample  # dated the day of the delivery, not the moment of rendering
    assert carta_pdf(handover(folio="SSM/STI/2025/00008")) != sample


def test_hostile_values_are_printed_as_text_inside_the_page():
    title = "Trabajadora Social de Urgencias Pediátricas " * 40
    hostile = handover(person_name="Zoé\x07 Güemes\u202e O'Brien", title=title, unit_name='=HYPERLINK("http://evil")',
                       account="a" * 5000, mailbox="correo@salud.lab\r\nBcc: todos@salud.lab",
                       extensions=("中", "{nb}"))
    pdf = carta_pdf(hostile)
    text = text_of(pdf)
    assert "Zoé\\x07 Güemes\\u202e O'Brien" in text  # escaped: seen, never obeyed
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f\u202e]", text)
    assert title[:200].strip() in text and '=HYPERLINK("http://evil")' in text
    assert "correo@salud.lab Bcc: todos@salud.lab" in text and "\\u4e2d" in text  # a glyph the font lacks: its code
    assert "{nb}" in text  # fpdf2's page-count alias is not replaced in a value
    assert "a" * 5000 not in text.replace(" ", "") and "…" in text  # cut: no value takes over the carta
    assert int(info_of(pdf)["Pages"]) <= 2
    assert_inside_the_page(pdf)


def test_a_long_list_runs_over_pages_and_the_signatures_stay_with_the_declaration():
    items = tuple(Item(f"INV-2025-{n:04}", "Laptop", "Lenovo", "ThinkPad E14 Gen 5", f"PF4XK{n:03}") for n in range(60))
    pdf = carta_pdf(handover(equipment=items))
    pages = int(info_of(pdf)["Pages"])
    assert pages > 1
    assert f"page 1 of {pages}" in text_of(pdf, 1)
    last = text_of(pdf, pages)
    assert "By signing" in last and "Receives" in last and "Hands over" in last and f"page {pages} of {pages}" in last
    text = text_of(pdf)
    assert all(item.inventory_number in text and item.serial in text for item in items)
    assert_inside_the_page(pdf)


def test_the_widest_letters_in_every_field_still_fit_the_page():
    """ᙶ is the widest glyph DejaVu Sans draws: a row of them in a narrow column must still fit
    one page (fpdf2 refuses a table row taller than a page)."""
    wide = "ᙶ" * 1000
    pdf = carta_pdf(Handover(wide, wide, wide, wide, DAY, wide, wide, wide, account=wide, upn=wide, mailbox=wide,
                             extensions=(wide,) * 2, equipment=(Item(wide, wide, wide, wide, wide),) * 2))
    assert "Receives" in text_of(pdf, int(info_of(pdf)["Pages"]))
    assert_inside_the_page(pdf)


HOSTILE = st.one_of(st.text(max_size=300), st.sampled_from(
    ["", " ", "\x00" * 40, "\u202eevil", "=HYPERLINK(\"http://evil\")", "{nb}", "{folio}", "ᙶ" * 900, "中" * 900,
     "e\u0301" * 300, "\ud800", "line\r\nbreak\u2028"]))


@settings(max_examples=12, deadline=None, derandomize=True)
@given(st.tuples(*[HOSTILE] * 8), st.lists(st.tuples(*[HOSTILE] * 5), max_size=3))
def test_any_text_in_any_field_makes_a_carta_whose_words_are_printable(values, items):
    institution, unit_key, unit_name, folio, name, key, title, account = values
    pdf = carta_pdf(Handover(institution, unit_key, unit_name, folio, DAY, name, key, title, account=account,
                             upn=name, mailbox=title, extensions=(folio,), equipment=tuple(Item(*i) for i in items)))
    text = text_of(pdf)
    assert pdf.startswith(b"%PDF-") and "Receives" in text and not re.search(r"[\x00-\x1f\x7f\u202e]", text)
    assert_inside_the_page(pdf)


def test_a_person_can_look_at_it(sample, tmp_path):
    poppler("pdftoppm", sample, "-r", "50", "-png", "-", str(tmp_path / "page"))
    images = sorted(tmp_path.glob("page*.png"))
    assert images and images[0].stat().st_size > 1000


def test_without_the_fonts_it_names_the_package_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(pdfpage, "FONTS", {"": tmp_path / "DejaVuSans.ttf", "B": tmp_path / "DejaVuSans-Bold.ttf"})
    with pytest.raises(ReconcilerError, match="fonts-dejavu-core"):
        carta_pdf(handover())


@pytest.mark.parametrize("folio", ["../../etc/passwd", "=cmd|' /C calc'!A0", "..", "", "Ñoño\x00/\\..\n.lock",
                                   "-rf *", "x" * 1000])
def test_the_file_name_is_safe_whatever_the_folio(folio):
    name = carta_name(folio, "../SSM-000007")
    assert re.fullmatch(r"carta-[A-Za-z0-9._-]+\.pdf", name), name
    assert ".." not in name and len(name) < 200


def test_the_file_name_reads_as_folio_and_key():
    assert carta_name("SSM/STI/2025/00007", "SSM-000007") == "carta-SSM-STI-2025-00007-SSM-000007.pdf"
    assert carta_name("SSM/STI/2025/Ñ01", "SSM-000007") == "carta-SSM-STI-2025-N01-SSM-000007.pdf"
