"""The monthly analysis of carrier bills (SESVER 002, "Administración de Líneas Telefónicas y
Servicios"): a carrier's export checked against the declared lines.  Pure: text in, findings out.

The export is CSV, one row per line billed, with a header.  Columns (names are matched without
regard to case, accents or spaces; extra columns are ignored):

    cuenta_maestra   the master account the line is billed under          required
    numero           the line's number (10 digits; spaces and dashes are ignored)  required
    total            what the line was billed for the period, MXN          required
    periodo          the billing period, YYYY-MM                           optional
    plan             the plan as the carrier names it                      optional
    consumo          the usage charges inside the total                    optional

Amounts may carry "$" and thousands separators ("1,234.50").  Findings, for the master
accounts the bill covers:
    billed but not declared    money leaking: a line nobody declared, or one declared as a baja
    declared but not billed    a declared active line the carrier did not bill (cancelled? moved?)
    over the plan              billed more than the declared monthly cost, by how much
"""
from __future__ import annotations

import csv
import io
import unicodedata
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from reconciler.desired.model import PhoneLine
from reconciler.errors import Problem, ValidationFailed
from reconciler.i18n import N_, _, lazy, ngettext, source
from reconciler.spreadsheet import csv_text

REQUIRED = ("cuenta_maestra", "numero", "total")
OPTIONAL = ("periodo", "plan", "consumo")
# The kinds of finding: codes in JSON and CSV, words for people through _() where shown.
NOT_DECLARED, NOT_BILLED, OVER_PLAN = N_("billed but not declared"), N_("declared but not billed"), N_("over the plan")
ORDER = {NOT_DECLARED: 0, OVER_PLAN: 1, NOT_BILLED: 2}


@dataclass(frozen=True)
class BilledLine:
    row: int  # line of the file
    master_account: str
    number: str
    total: Decimal
    period: str | None = None
    plan: str | None = None
    usage: Decimal | None = None


@dataclass(frozen=True)
class Finding:
    kind: str
    master_account: str
    unit: str | None
    number: str
    billed: Decimal | None = None
    contracted: Decimal | None = None
    note: str = ""

    @property
    def amount(self) -> Decimal | None:
        """The money at stake: the whole bill of an undeclared line, the excess over the plan."""
        if self.kind == NOT_DECLARED:
            return self.billed
        if self.kind == OVER_PLAN:
            return self.billed - self.contracted
        return None

    def to_dict(self) -> dict:
        money = lambda v: f"{v:.2f}" if v is not None else None  # noqa: E731
        return {"finding": self.kind, "master_account": self.master_account, "unit": self.unit,
                "number": self.number, "billed": money(self.billed), "contracted": money(self.contracted),
                "amount": money(self.amount), "note": source(self.note)}


def _column(name: str) -> str:
    folded = unicodedata.normalize("NFKD", name.strip().lower())
    return "".join(c for c in folded if not unicodedata.combining(c)).replace(" ", "_").replace("-", "_")


def _money(text: str) -> Decimal:
    cleaned = text.strip().replace("$", "").replace(",", "").replace(" ", "")
    value = Decimal(cleaned)
    if not value.is_finite():
        raise InvalidOperation
    return value


def parse_bill(text: str, name: str) -> list[BilledLine]:
    """The rows of a carrier export; every bad row is reported with its line and column."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    header = next(reader, None)
    if not header:
        raise ValidationFailed([Problem(name, None, "", _("the bill is empty: expected a CSV header row"))])
    columns = {_column(h): i for i, h in enumerate(header)}
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise ValidationFailed([Problem(name, 1, ", ".join(missing), ngettext(
            "missing column (the header has {header}; required: {required})",
            "missing columns (the header has {header}; required: {required})", len(missing),
            header=", ".join(header), required=", ".join(REQUIRED)))])
    rows, problems = [], []
    for line_no, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        cell = lambda c: row[columns[c]].strip() if c in columns and columns[c] < len(row) else ""  # noqa: E731
        number = "".join(ch for ch in cell("numero") if ch not in " -()")
        if not number.isdigit():
            problems.append(Problem(name, line_no, "numero", _("{value!r} is not a phone number",
                                                               value=cell("numero"))))
            continue
        amounts = {}
        for column in ("total", "consumo"):
            if cell(column):
                try:
                    amounts[column] = _money(cell(column))
                except (InvalidOperation, ValueError):
                    problems.append(Problem(name, line_no, column, _("{value!r} is not an amount",
                                                                     value=cell(column))))
        if "total" not in amounts:
            if not cell("total"):
                problems.append(Problem(name, line_no, "total", _("empty: every line billed has a total")))
            continue
        total, usage = amounts["total"], amounts.get("consumo")
        if not cell("cuenta_maestra"):
            problems.append(Problem(name, line_no, "cuenta_maestra",
                                    _("empty: every line is billed under a master account")))
            continue
        rows.append(BilledLine(line_no, cell("cuenta_maestra"), number, total, cell("periodo") or None,
                               cell("plan") or None, usage))
    if problems:
        raise ValidationFailed(problems)
    return rows


def analyse(declared: list[PhoneLine], bill: list[BilledLine]) -> list[Finding]:
    """Findings for the master accounts the bill covers, grouped by master account and unit."""
    accounts = {b.master_account for b in bill}
    carrier = {line.number: line for line in declared if line.kind == "carrier"}
    billed: dict[str, Decimal] = {}
    account_of: dict[str, str] = {}
    for b in bill:  # a line may appear in several rows (services billed apart): add them up
        billed[b.number] = billed.get(b.number, Decimal(0)) + b.total
        account_of[b.number] = b.master_account
    findings = []
    for number, total in billed.items():
        line = carrier.get(number)
        account = account_of[number]
        if line is None:
            findings.append(Finding(NOT_DECLARED, account, None, number, total,
                                    note=lazy("no declared line has this number")))
        elif line.status != "activa":
            findings.append(Finding(NOT_DECLARED, account, line.unit, number, total,
                                    note=lazy("declared as a baja (folio {folio}): cancel it with the carrier",
                                              folio=line.solicitud.folio)))
        elif line.monthly_cost is not None and total > Decimal(str(line.monthly_cost)):
            findings.append(Finding(OVER_PLAN, account, line.unit, number, total, Decimal(str(line.monthly_cost)),
                                    note=line.plan or ""))
        if line is not None and line.master_account != account:
            findings.append(Finding(NOT_DECLARED, account, line.unit, number, total,
                                    note=lazy("declared under master account {account}",
                                              account=line.master_account)))
    for number, line in carrier.items():
        if line.status == "activa" and line.master_account in accounts and number not in billed:
            contracted = Decimal(str(line.monthly_cost)) if line.monthly_cost is not None else None
            findings.append(Finding(NOT_BILLED, line.master_account, line.unit, number, None, contracted,
                                    note=line.plan or ""))
    return sorted(findings, key=lambda f: (f.master_account, f.unit or "", ORDER[f.kind], f.number))


CSV_COLUMNS = ("master_account", "unit", "number", "finding", "billed", "contracted", "amount", "note")


def findings_csv(findings: list[Finding]) -> str:
    return csv_text(CSV_COLUMNS, ([f.to_dict()[c] for c in CSV_COLUMNS] for f in findings))


def totals(findings: list[Finding]) -> dict[str, Decimal]:
    """Money at stake per kind of finding."""
    out: dict[str, Decimal] = {}
    for f in findings:
        if f.amount is not None:
            out[f.kind] = out.get(f.kind, Decimal(0)) + f.amount
    return out
