"""What auditors read on a terminal or in a spreadsheet: an object's history, the indicators."""
from __future__ import annotations


from rich.console import Console
from rich.markup import escape
from rich.table import Table

from reconciler import i18n
from reconciler.audit.indicators import IndicatorRow, RecordedMovement
from reconciler.i18n import N_, _, ngettext, pgettext, shown
from reconciler.plan import Movement
from reconciler.render.words import kind_name, movement_name
from reconciler.spreadsheet import csv_text

# The rows of the indicators table: codes in JSON and CSV, words for people.
MOVEMENT_ROWS = {"altas": N_("altas"), "modificaciones": N_("modificaciones"), "bajas": N_("bajas"), "total": N_("total")}


def status_name(status: str, verified: bool | None) -> str:
    """A recorded movement's status (a code in records and JSON) as people read it."""
    if verified:
        return pgettext("movement status", "verified")
    if status == "applied":
        return pgettext("movement status", "applied")
    if status == "failed":
        return pgettext("movement status", "failed")
    if status == "skipped":
        return pgettext("movement status", "skipped")
    if status == "planned":
        return pgettext("movement status", "planned")
    return status


def _movement(value: str) -> str:
    try:
        return movement_name(Movement(value))
    except ValueError:
        return value


def print_history(moves: list[RecordedMovement], query: str, console: Console) -> None:
    if not moves:
        console.print(escape(_("No recorded movement matches {query!r}.", query=query)))
        return
    for m in moves:
        label = "[bold]" + escape(m.label) + "[/]"
        what = _("{movement} {kind} {label}: {status}", movement=escape(_movement(m.movement)),
                 kind=escape(kind_name(m.kind)), label=label,
                 status=escape(status_name(m.status, m.verified)))
        console.print(f"[bold]{escape(i18n.when(m.time))}[/]  {escape(m.target)}  {what}")
        pr = f"PR {m.pull_request}" if m.pull_request else f"commit {(m.commit or '')[:10]}"
        mark = "[green]✓[/]" if m.approved else "[red]✗ " + escape(_("not approved:")) + "[/]"
        approval = mark + " " + escape(m.verdict)
        requester = m.requester or _("unknown")
        said = _("{request}, requested by {requester}, landed {landed}; {approval}", request=escape(pr),
                 requester=escape(requester),
                 landed=escape(i18n.when(m.approved_at) if m.approved_at else "?"),
                 approval=approval)
        console.print(f"    {said}")
        for line in m.changed:
            console.print(f"    {escape(shown(line))}")
        if m.note:
            console.print(f"    [yellow]{escape(m.note)}[/]")


def indicators_csv(rows: list[IndicatorRow], month: str) -> str:
    return csv_text(["month", "movement", "approved", "applied_verified", "percent", "failed_or_pending",
                     "median_hours_to_apply", "max_hours_to_apply"],
                    ([month, r.movement, r.approved, r.applied_verified, r.percent, r.failed_or_pending,
                      r.median_hours, r.max_hours] for r in rows))


def print_unacknowledged(waiting: list, console: Console) -> None:
    """Credentials delivered in a sealed envelope whose signed carta has not come back."""
    if not waiting:
        console.print(escape(_("Every delivered envelope is acknowledged.")))
        return
    table = Table(title=escape(ngettext("{n} delivery without acknowledgement (acuse)",
                                        "{n} deliveries without acknowledgement (acuse)", len(waiting))))
    for i, column in enumerate((pgettext("deliveries column", "employee key"), pgettext("deliveries column", "folio"),
                                pgettext("deliveries column", "sealed"), pgettext("deliveries column", "days"))):
        table.add_column(escape(column), justify="right" if i == 3 else "left")
    for d in waiting:
        table.add_row(escape(d.holder), escape(d.folio), escape(i18n.when(d.sealed)), i18n.number(d.days))
    console.print(table)


def print_indicators(rows: list[IndicatorRow], month: str, console: Console) -> None:
    table = Table(title=escape(_("Solicitudes approved in {month}: attended and verified", month=i18n.month(month))))
    columns = (pgettext("indicators column", "movement"), pgettext("indicators column", "approved"),
               pgettext("indicators column", "applied + verified"), "%",
               pgettext("indicators column", "failed or pending"), pgettext("indicators column", "median h to apply"),
               pgettext("indicators column", "max h to apply"))
    for i, column in enumerate(columns):
        table.add_column(escape(column), justify="left" if i == 0 else "right", no_wrap=i == 0)
    hours = lambda h: "–" if h is None else i18n.number(h)  # noqa: E731
    for r in rows:
        table.add_row(escape(_(MOVEMENT_ROWS[r.movement]) if r.movement in MOVEMENT_ROWS else r.movement), i18n.number(r.approved),
                      i18n.number(r.applied_verified), "–" if r.percent is None else i18n.percent(r.percent / 100),
                      i18n.number(r.failed_or_pending), hours(r.median_hours), hours(r.max_hours))
    console.print(table)


def print_bill_findings(findings, bill: str, rows: int, console: Console) -> None:
    """The monthly bill analysis grouped by master account and unit, with the money at stake
    per kind of finding."""
    from reconciler.audit.bills import NOT_BILLED, NOT_DECLARED, OVER_PLAN, totals

    billed = escape(ngettext("{n} line billed", "{n} lines billed", rows))
    console.print("[bold]" + escape(_("Bill:")) + f"[/] {escape(bill)} ({billed})")
    if not findings:
        console.print("[green]" + escape(_("Every line billed is declared, every declared line is billed, none "
                                           "over its plan.")) + "[/]")
        return
    colour = {NOT_DECLARED: "red", OVER_PLAN: "yellow", NOT_BILLED: "cyan"}
    width = max(24, *(len(_(kind)) for kind in colour))
    group = None
    for f in findings:
        if (f.master_account, f.unit) != group:
            group = (f.master_account, f.unit)
            account = escape(_("Master account {account}", account=f.master_account))
            unit = escape(f.unit or _("no unit (not declared)"))
            console.print(f"\n[bold]{account}[/] · {unit}")
        money = "  ".join(part for part in (
            escape(_("billed ${amount}", amount=i18n.number(f.billed, 2))) if f.billed is not None else "",
            escape(_("contracted ${amount}", amount=i18n.number(f.contracted, 2))) if f.contracted is not None else "",
            "[bold]" + escape(_("over by ${amount}", amount=i18n.number(f.amount, 2))) + "[/]"
            if f.amount is not None and f.kind != NOT_DECLARED else "") if part)
        kind = escape(_(f.kind))
        console.print(f"  [{colour[f.kind]}]{kind:<{width}}[/] {f.number}  {money}"
                      + (f"  [dim]# {escape(shown(f.note))}[/]" if f.note else ""))
    console.print()
    for kind, amount in totals(findings).items():
        # Not i18n.money(): in English it writes "MX$", and the report has always read "$… MXN".
        name = escape(_(kind))
        console.print(f"{name}: [bold]${i18n.number(amount, 2)}[/] MXN")
