"""What auditors read on a terminal or in a spreadsheet: an object's history, the indicators."""
from __future__ import annotations

import csv
import io

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from reconciler.audit.indicators import IndicatorRow, RecordedMovement


def print_history(moves: list[RecordedMovement], query: str, console: Console) -> None:
    if not moves:
        console.print(f"No recorded movement matches {escape(query)!r}.")
        return
    for m in moves:
        state = "verified" if m.verified else m.status
        console.print(f"[bold]{escape(m.time)}[/]  {escape(m.target)}  {m.movement} {m.kind} "
                      f"[bold]{escape(m.label)}[/]: {escape(state)}")
        pr = f"PR {m.pull_request}" if m.pull_request else f"commit {(m.commit or '')[:10]}"
        mark = "[green]✓[/]" if m.approved else "[red]✗ not approved:[/]"
        console.print(f"    {escape(pr)}, requested by {escape(m.requester or 'unknown')}, landed "
                      f"{escape(m.approved_at or '?')}; {mark} {escape(m.verdict)}")
        for line in m.changed:
            console.print(f"    {escape(line)}")
        if m.note:
            console.print(f"    [yellow]{escape(m.note)}[/]")


def _cell(value) -> str:
    return "" if value is None else str(value)


def indicators_csv(rows: list[IndicatorRow], month: str) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["month", "movement", "approved", "applied_verified", "percent", "failed_or_pending",
                     "median_hours_to_apply", "max_hours_to_apply"])
    for r in rows:
        writer.writerow([month, r.movement, r.approved, r.applied_verified, _cell(r.percent), r.failed_or_pending,
                         _cell(r.median_hours), _cell(r.max_hours)])
    return out.getvalue()


def print_indicators(rows: list[IndicatorRow], month: str, console: Console) -> None:
    table = Table(title=f"Solicitudes approved in {month}: attended and verified")
    for column in ("movement", "approved", "applied + verified", "%", "failed or pending",
                   "median h to apply", "max h to apply"):
        table.add_column(column, justify="left" if column == "movement" else "right", no_wrap=column == "movement")
    for r in rows:
        table.add_row(r.movement, str(r.approved), str(r.applied_verified), _cell(r.percent) or "–",
                      str(r.failed_or_pending), _cell(r.median_hours) or "–", _cell(r.max_hours) or "–")
    console.print(table)


def print_bill_findings(findings, bill: str, rows: int, console: Console) -> None:
    """The monthly bill analysis grouped by master account and unit, with the money at stake
    per kind of finding."""
    from reconciler.audit.bills import totals

    console.print(f"[bold]Bill:[/] {escape(bill)} ({rows} lines billed)")
    if not findings:
        console.print("[green]Every line billed is declared, every declared line is billed, none over its plan.[/]")
        return
    colour = {"billed but not declared": "red", "over the plan": "yellow", "declared but not billed": "cyan"}
    group = None
    for f in findings:
        if (f.master_account, f.unit) != group:
            group = (f.master_account, f.unit)
            console.print(f"\n[bold]Master account {escape(f.master_account)}[/] · "
                          f"{escape(f.unit or 'no unit (not declared)')}")
        d = f.to_dict()
        money = "  ".join(part for part in (
            f"billed ${d['billed']}" if d["billed"] else "", f"contracted ${d['contracted']}" if d["contracted"] else "",
            f"[bold]over by ${d['amount']}[/]" if d["amount"] and f.kind != "billed but not declared" else "") if part)
        console.print(f"  [{colour[f.kind]}]{f.kind:<24}[/] {f.number}  {money}"
                      + (f"  [dim]# {escape(f.note)}[/]" if f.note else ""))
    console.print()
    for kind, amount in totals(findings).items():
        console.print(f"{kind}: [bold]${amount:,.2f}[/] MXN")
