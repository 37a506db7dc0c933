"""The monthly report as a document (reconciler report --output pdf|html): the indicators per
movement and per unit, the weeks and the time to apply as charts, the open work orders and the
deliveries without acuse; its numbers are `report --output json`'s.

The records come from real applies (the engine, Git, the ledger); the automatic target is the
fake kind (tests/fakes.py), a test double."""
from __future__ import annotations

import datetime as dt
import json
import subprocess

from conftest import run_cli
from PIL import Image
from test_audit import SCRIPTED
from test_offboarding import office  # noqa: F401 - the fixture

from reconciler.audit.indicators import approved_in, time_to_apply, weekly
from reconciler.i18n import zone


def _report(repo, inventory, month, *more) -> tuple[int, str, str]:
    return run_cli("--lang", "en", "--repo", str(repo.root), "report", "--month", month, "--inventory",
                   str(inventory), *more)


def _text(pdf) -> str:
    return subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout


def test_the_pdf_says_every_number_the_json_says_and_shows_the_charts(office, tmp_path):  # noqa: F811
    repo, inventory = office
    month = dt.datetime.now(zone()).strftime("%Y-%m")
    code, out, err = _report(repo, inventory, month, "--output", "json")
    said = json.loads(out)
    assert code == 0, err
    # SSM-000001's alta: their account (applied and verified) and their SIEMPRE work order, issued
    # but not attended until its confirmation is recorded.
    total = said["indicators"][-1]
    assert total["movement"] == "total" and total["approved"] == 2 and total["applied_verified"] == 1
    assert list(said["per_unit"]) == ["HG-CUERNAVACA"] and said["per_unit"]["HG-CUERNAVACA"][0]["approved"] == 2
    [order] = said["pending_work_orders"]
    assert sum(w["approved"] for w in said["weekly"]) == 2 and sum(w["attended"] for w in said["weekly"]) == 1

    pdf = tmp_path / "reporte.pdf"
    code, out, err = _report(repo, inventory, month, "--output", "pdf", "--out", str(pdf))
    assert code == 0 and pdf.read_bytes().startswith(b"%PDF"), err
    text = _text(pdf)
    lines = {line.split()[0]: line.split()[1:] for line in text.splitlines() if line.split()}
    for row in said["indicators"]:  # each movement's line carries its numbers, in order
        numbers = [str(row["approved"]), str(row["applied_verified"]), "–" if row["percent"] is None else None,
                   str(row["failed_or_pending"])]
        assert lines[row["movement"]][:2] == numbers[:2], (row, lines[row["movement"]])
        assert str(row["failed_or_pending"]) in lines[row["movement"]][2:], row
    unit = said["per_unit"]["HG-CUERNAVACA"]
    cells = text.replace(" ", "")  # poppler reads "2 / 1" as "2/1"
    assert f"HG-CUERNAVACA{unit[0]['approved']}/{unit[0]['applied_verified']}" in cells
    assert f"{unit[-1]['approved']}/{unit[-1]['applied_verified']}" in cells
    assert order["folio"] in text and "SSM-000001" in text

    # The pages as images: the charts' bars are there, in their colours.
    subprocess.run(["pdftoppm", "-r", "60", "-png", "-f", "1", "-l", "1", str(pdf), str(tmp_path / "page")],
                   check=True)
    [page] = tmp_path.glob("page*.png")
    image = Image.open(page).convert("RGB")
    pixels = [image.getpixel((x, y)) for y in range(image.height) for x in range(image.width)]
    approved_blue = sum(1 for r, g, b in pixels if abs(r - 0x1F) < 24 and abs(g - 0x5F) < 24 and abs(b - 0x8B) < 24)
    attended_orange = sum(1 for r, g, b in pixels if abs(r - 0xE0) < 24 and abs(g - 0x7B) < 24 and abs(b - 0x39) < 24)
    assert approved_blue > 50 and attended_orange > 50, (approved_blue, attended_orange)

    page_html = tmp_path / "reporte.html"
    code, _out, err = _report(repo, inventory, month, "--output", "html", "--out", str(page_html))
    document = page_html.read_text(encoding="utf-8")
    assert code == 0 and document.count("<svg") == 2 and order["folio"] in document and "<script" not in document


def test_weeks_and_times_from_a_scripted_history():
    entries = approved_in(SCRIPTED, "2026-11")
    weeks = weekly(entries, "2026-11")
    assert [(w.start, w.end) for w in weeks][:2] == [("2026-11-01", "2026-11-01"), ("2026-11-02", "2026-11-08")]
    assert weeks[-1].end == "2026-11-30" and sum(w.approved for w in weeks) == 3
    assert [(w.approved, w.attended) for w in weeks[1:3]] == [(2, 2), (1, 0)]
    times = {row["range"]: row for row in time_to_apply(entries)}
    assert times["1–8 h"]["altas"] == 1 and times["8–24 h"]["altas"] == 0 and times["1–3 d"]["altas"] == 1  # 2 h, 24 h
    assert times["pending"]["modificaciones"] == 1


def test_hostile_values_in_the_html_are_text(office, tmp_path):  # noqa: F811
    from reconciler.audit.indicators import monthly_report
    from reconciler.render.monthly import html_page

    order = {"folio": "OT-X-<b>", "system": "<script>alert(1)</script>", "movement": "alta", "person": "A & B",
             "employee_key": "K", "issued": "2026-11-02T10:00:00+00:00", "due": "2026-11-07", "age_days": 1,
             "sla_days": 5, "overdue": False}
    page = html_page(monthly_report(SCRIPTED, "2026-11", [order]))
    assert "<script>" not in page and "&lt;script&gt;" in page and "A &amp; B" in page
