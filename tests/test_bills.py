"""`reconciler lines report --bill`: a carrier's monthly export against the declared lines,
checked on the shipped sample bill, which has every kind of finding."""
from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from pathlib import Path

import pytest

from conftest import run_cli
from reconciler.audit.bills import NOT_BILLED, NOT_DECLARED, OVER_PLAN, analyse, parse_bill
from reconciler.desired.load import load_desired_state
from reconciler.errors import ValidationFailed

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "ci" / "lab" / "bills" / "telmex-2026-10.csv"


def test_the_sample_bill_against_the_example_lines_has_every_kind_of_finding():
    state = load_desired_state(ROOT / "desired_state")
    findings = analyse(list(state.lines), parse_bill(SAMPLE.read_text(encoding="utf-8"), "sample"))
    got = [(f.master_account, f.unit, f.number, f.kind, f.amount) for f in findings]
    assert got == [
        ("7353500000", None, "7353520042", NOT_DECLARED, Decimal("1210.00")),  # nobody declared it
        ("7353500000", "HG-CUAUTLA", "7353520041", NOT_DECLARED, Decimal("499.00")),  # billed after its baja
        ("7353500000", "HG-CUAUTLA", "7353520040", NOT_BILLED, None),
        ("7773100000", None, "7773112299", NOT_DECLARED, Decimal("499.00")),
        ("7773100000", "HG-CUERNAVACA", "7773112211", OVER_PLAN, Decimal("141.50")),  # 640.50 on a 499.00 plan
    ]
    # A line of another carrier (AT&T) is not expected in a Telmex bill.
    assert "7771234567" not in [f.number for f in findings]


def test_the_command_prints_csv_grouped_by_master_account_and_unit():
    code, out, err = run_cli("--repo", str(ROOT), "lines", "report", "--bill", str(SAMPLE), "--working-tree",
                             "--output", "csv")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["master_account"], r["unit"], r["finding"]) for r in rows][-1] == (
        "7773100000", "HG-CUERNAVACA", "over the plan")
    assert rows[-1]["billed"] == "640.50" and rows[-1]["contracted"] == "499.00" and rows[-1]["amount"] == "141.50"
    code, out, _ = run_cli("--repo", str(ROOT), "lines", "report", "--bill", str(SAMPLE), "--working-tree",
                           "--output", "json")
    assert sum(Decimal(f["amount"]) for f in json.loads(out) if f["finding"] == NOT_DECLARED) == Decimal("2208.00")
    code, out, _ = run_cli("--repo", str(ROOT), "lines", "report", "--bill", str(SAMPLE), "--working-tree")
    assert "Master account 7773100000 · HG-CUERNAVACA" in out and "billed but not declared: $2,208.00 MXN" in out


def test_a_bill_line_split_in_several_rows_is_added_up():
    text = ("cuenta_maestra,numero,total\n"
            "7773100000,7773112211,400.00\n"
            "7773100000,7773112211,140.00\n")
    state = load_desired_state(ROOT / "desired_state")
    [over] = [f for f in analyse(list(state.lines), parse_bill(text, "b")) if f.kind == OVER_PLAN]
    assert over.billed == Decimal("540.00") and over.amount == Decimal("41.00")


def test_a_bad_export_names_the_file_line_and_column(tmp_path):
    with pytest.raises(ValidationFailed) as missing:
        parse_bill("Cuenta,Numero\n1,2\n", "bill.csv")
    assert str(missing.value.problems[0]).startswith("bill.csv:1: cuenta_maestra, total: missing column")
    with pytest.raises(ValidationFailed) as bad:
        parse_bill("cuenta_maestra,numero,total\n7773100000,7773112211,seiscientos\n7773100000,77-A,1\n", "bill.csv")
    assert [str(p) for p in bad.value.problems] == [
        "bill.csv:2: total: 'seiscientos' is not an amount",
        "bill.csv:3: numero: '77-A' is not a phone number",
    ]
    path = tmp_path / "bill.csv"
    path.write_text("cuenta_maestra,numero,total\n7773100000,7773112211,seiscientos\n", encoding="utf-8")
    code, out, err = run_cli("--repo", str(ROOT), "lines", "report", "--bill", str(path), "--working-tree")
    assert code == 1 and "Traceback" not in out + err and f"{path}:2: total: 'seiscientos' is not an amount" in err
