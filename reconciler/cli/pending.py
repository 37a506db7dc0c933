"""`reconciler pending`: the work orders still open on the systems with no API, oldest first,
each with its age against the target's SLA.  Exit 2 when one is overdue, so that the nightly
job fails until its operator answers and the confirmation is recorded; 1 when something is
wrong with the orders themselves (a confirmation naming an order whose ref is gone)."""
from __future__ import annotations

import datetime as dt
import json

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from reconciler import i18n
from reconciler.errors import ReconcilerError
from reconciler.i18n import _, ngettext, pgettext

EXIT_OVERDUE = 2


def open_orders(args) -> tuple[list[dict], list[str], list[str]]:
    """(every open order as a row, notes about refs that do not count, problems)."""
    from reconciler.audit.seal import ApplyKey
    from reconciler.config.inventory import load_inventory
    from reconciler.desired.load import load_desired_state
    from reconciler.desired.source import at_ref
    from reconciler.providers.manual import diff as manual
    from reconciler.providers.manual.orders import Ledger
    from reconciler.providers.manual.provider import overdue
    from reconciler.run.connections import select
    from reconciler.run.engine import today_here

    chosen = select(load_inventory(args.inventory), tuple(args.target), args.inventory)  # an unknown name: an error
    targets = [t for t in chosen.values() if t.kind == "manual"]
    source = at_ref(args.repo, args.ref)
    state = load_desired_state(source.files)
    ledger, today = Ledger(source.repo, ApplyKey.from_env()), today_here()
    rows, notes, problems = [], [], [str(m) for m in ledger.vanished(_stored(source.repo, ledger.key, targets))]
    for target in targets:
        orders, said = ledger.orders(target.name)
        notes += [str(n) for n in said]
        problems += [str(c.message) for c in manual.confirmations(state.confirmations, orders, target.name,
                                                                  target.folio_prefix)[1]]
        for o in manual.pending(orders):
            issued = dt.date.fromisoformat(manual.issued_day(o))
            rows.append({"folio": o.folio, "target": target.name, "system": target.title, "movement": o.movement,
                         "employee_key": o.employee_key, "person": o.person, "unit": o.unit, "issued": o.issued,
                         "due": o.due, "age_days": (dt.date.fromisoformat(today) - issued).days,
                         "sla_days": target.sla_days, "overdue": overdue(o, today), "operator": target.operator.name})
    return sorted(rows, key=lambda r: (r["issued"], r["folio"])), notes, problems


def _stored(repo, key, targets) -> list[dict]:
    """The sealed audit records (git notes) of the orders apply stored on `targets`: only the
    apply key's seals count, so a forged note cannot claim an order that never was."""
    from reconciler.audit import trail

    if key is None:
        return []
    names = {t.name for t in targets}

    def has_evidence(records) -> bool:  # a seal costs a process: only batches that matter are checked
        return any(r is not None and r.get("evidence") and r.get("target") in names for r in records)

    return [r for _commit, r in trail.read_notes(repo, sealed_by=key, wanted=has_evidence)
            if r is not None and isinstance(r.get("evidence"), dict) and r.get("target") in names]


def show(args, out: Console) -> int:
    """The document of one order, from the ref the apply key signed (a ref someone pushed over
    it is refused, not printed)."""
    from reconciler.audit.seal import ApplyKey
    from reconciler.config.inventory import load_inventory
    from reconciler.desired.source import at_ref
    from reconciler.providers.manual.orders import Ledger

    source = at_ref(args.repo, args.ref)
    ledger = Ledger(source.repo, ApplyKey.from_env())
    for target in load_inventory(args.inventory).values():
        if target.kind == "manual" and args.show.startswith(target.folio_prefix):
            document = ledger.document(target.name, args.show)
            if document is not None:
                print(document, end="")
                return 0
    raise ReconcilerError(_("no work order {folio} signed by the apply key in this repository", folio=args.show))


def pending(args, out: Console, err: Console) -> int:
    if args.show:
        return show(args, out)
    rows, notes, problems = open_orders(args)
    for note in notes + problems:
        err.print(escape(note))
    late = [r for r in rows if r["overdue"]]
    if args.output == "json":
        print(json.dumps({"open": rows, "overdue": len(late), "problems": problems}, ensure_ascii=False, indent=2))
    elif not rows:
        out.print(escape(_("No work order is pending.")))
    else:
        _table(rows, late, out)
    return 1 if problems else EXIT_OVERDUE if late else 0


def _table(rows: list[dict], late: list[dict], out: Console) -> None:
    table = Table(title=escape(ngettext("{n} work order pending", "{n} work orders pending", len(rows))))
    for i, column in enumerate((pgettext("work orders column", "folio"), pgettext("work orders column", "system"),
                                pgettext("work orders column", "movement"), pgettext("work orders column", "person"),
                                pgettext("work orders column", "issued"), pgettext("work orders column", "days"),
                                pgettext("work orders column", "due"))):
        # The folio is what a confirmation needs: never cut short, however narrow the log.
        table.add_column(escape(column), no_wrap=i == 0, min_width=18 if i == 0 else None)
    for r in rows:
        days = _("{age} of {sla}", age=i18n.number(r["age_days"]), sla=i18n.number(r["sla_days"]))
        due = i18n.date(r["due"]) + (" " + _("OVERDUE") if r["overdue"] else "")
        movement = _("alta") if r["movement"] == "alta" else _("baja")
        table.add_row(escape(r["folio"]), escape(r["system"]), escape(movement),
                      escape(f"{r['person']} ({r['employee_key']})"), escape(i18n.when(r["issued"])),
                      escape(days), f"[red]{escape(due)}[/]" if r["overdue"] else escape(due))
    out.print(table)
    if late:
        out.print(escape(ngettext("{n} work order is past its SLA: ask its operator, or record its confirmation "
                                  "in desired_state/work_orders.yaml", "{n} work orders are past their SLA: ask "
                                  "their operators, or record their confirmations in desired_state/work_orders.yaml",
                                  len(late))))
