"""`reconciler pending`: the work orders still open on the systems with no API, oldest first,
each with its age against the target's SLA.  Exit 1 when one is overdue, so that the nightly
job fails until its operator answers (or it is confirmed)."""
from __future__ import annotations

import datetime as dt
import json

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from reconciler import i18n
from reconciler.i18n import _, ngettext, pgettext


def open_orders(args) -> tuple[list[dict], list[str]]:
    """(every open order as a row, what a person should know about refs that do not count)."""
    from reconciler.audit.seal import ApplyKey
    from reconciler.config.inventory import load_inventory
    from reconciler.desired.load import load_desired_state
    from reconciler.desired.source import at_ref
    from reconciler.providers.manual.orders import Ledger
    from reconciler.providers.manual.provider import overdue
    from reconciler.run.engine import today_here

    targets = [t for t in load_inventory(args.inventory).values()
               if t.kind == "manual" and (not args.target or t.name in args.target)]
    source = at_ref(args.repo, args.ref)
    confirmed = {c.folio for c in load_desired_state(source.files).confirmations}
    ledger, today = Ledger(source.repo, ApplyKey.from_env()), today_here()
    rows, notes = [], []
    for target in targets:
        orders, said = ledger.orders(target.name)
        notes += [str(n) for n in said]
        for o in orders:
            if o.folio in confirmed:
                continue
            issued = dt.datetime.fromisoformat(o.issued).astimezone(i18n.zone()).date()
            rows.append({"folio": o.folio, "target": target.name, "system": target.title, "movement": o.movement,
                         "employee_key": o.employee_key, "person": o.person, "unit": o.unit, "issued": o.issued,
                         "due": o.due, "age_days": (dt.date.fromisoformat(today) - issued).days,
                         "sla_days": target.sla_days, "overdue": overdue(o, today),
                         "operator": target.operator.name})
    return sorted(rows, key=lambda r: (r["issued"], r["folio"])), notes


def pending(args, out: Console, err: Console) -> int:
    rows, notes = open_orders(args)
    for note in notes:
        err.print(escape(note))
    late = [r for r in rows if r["overdue"]]
    if args.output == "json":
        print(json.dumps({"open": rows, "overdue": len(late)}, ensure_ascii=False, indent=2))
    elif not rows:
        out.print(escape(_("No work order is pending.")))
    else:
        table = Table(title=escape(ngettext("{n} work order pending", "{n} work orders pending", len(rows))))
        for column in (pgettext("work orders column", "folio"), pgettext("work orders column", "system"),
                       pgettext("work orders column", "movement"), pgettext("work orders column", "person"),
                       pgettext("work orders column", "issued"), pgettext("work orders column", "days"),
                       pgettext("work orders column", "due")):
            table.add_column(escape(column))
        for r in rows:
            days = _("{age} of {sla}", age=i18n.number(r["age_days"]), sla=i18n.number(r["sla_days"]))
            due = i18n.date(r["due"]) + (" " + _("OVERDUE") if r["overdue"] else "")
            table.add_row(escape(r["folio"]), escape(r["system"]), escape(r["movement"]),
                          escape(f"{r['person']} ({r['employee_key']})"), escape(i18n.when(r["issued"])),
                          escape(days), f"[red]{escape(due)}[/]" if r["overdue"] else escape(due))
        out.print(table)
        if late:
            out.print(escape(ngettext("{n} work order is past its SLA: ask its operator, or record its confirmation "
                                      "in desired_state/work_orders.yaml", "{n} work orders are past their SLA: ask "
                                      "their operators, or record their confirmations in desired_state/work_orders.yaml",
                                      len(late))))
    return 1 if late else 0
