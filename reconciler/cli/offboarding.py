"""`reconciler offboarding KEY`: a person's baja de servicios, as text, JSON, Markdown or PDF.
Exit 0 when every item is done and confirmed, 2 while one is pending (a pipeline can wait on
it), 1 on an error (the person is not a baja, the records cannot be read)."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from reconciler.errors import ReconcilerError
from reconciler.i18n import _

EXIT_PENDING = 2


def _state_applied(repo_path: Path, records: list[dict], person, since: str, fallback):
    """The desired state the baja was first applied from (the equipment and lines it gave the
    person then): the commit of the first baja recorded of their employee key since the
    request; `fallback` when there is none this repository has."""
    from reconciler.desired.load import load_desired_state
    from reconciler.desired.source import at_ref

    for r in records:
        commit = r.get("commit")
        if (r.get("kind") == "change" and r.get("key") == person.employee_key and r.get("movement") == "baja"
                and str(r.get("time", "")) >= since and isinstance(commit, str) and len(commit) == 40):
            try:
                return load_desired_state(at_ref(repo_path, commit).files)
            except ReconcilerError:
                return fallback
    return fallback


def _work_orders(key: str, folio: str, since: str, systems) -> list[OrderItem]:
    """The orders the baja raised on each system with no API (`systems`: (ManualTarget, its
    orders) pairs): every baja order of the person's still open (issued, not confirmed, not
    superseded by a later order confirmed), whatever its date, and those confirmed that were
    issued since the request or for it; and, where the person will still
    have access (no baja order issued yet: the next apply issues it), that access, pending."""
    from reconciler.offboarding.servicios import OrderItem
    from reconciler.providers.manual.diff import holders, pending

    start = dt.datetime.fromisoformat(since)
    out = []
    for target, orders in systems:
        mine = [o for o in orders if o.employee_key == key]
        still_open = {o.folio for o in pending(mine)}  # not superseded by a later order confirmed
        for o in mine:
            if o.movement != "baja":
                continue
            if o.folio in still_open or (o.done is not None and (
                    o.solicitud == folio or dt.datetime.fromisoformat(o.issued) >= start)):
                done = f"{o.done.date} · {o.done.by} · {o.done.ticket}" if o.done is not None else None
                out.append(OrderItem(target.name, target.title, target.operator.name, o.folio, o.issued, o.due, done))
        holder = holders(mine).get(key)
        if holder is not None and holder.will_have:
            out.append(OrderItem(target.name, target.title, target.operator.name, None, None, None))
    return out


def compose(args, err: Console):
    from reconciler.audit import trail
    from reconciler.audit.seal import ApplyKey
    from reconciler.cli.records import every_record
    from reconciler.config.inventory import load_inventory
    from reconciler.desired.load import load_desired_state
    from reconciler.desired.source import at_ref
    from reconciler.i18n import day_start
    from reconciler.offboarding.servicios import baja_de_servicios
    from reconciler.providers.manual.orders import Ledger

    source = at_ref(args.repo, args.ref)
    now = load_desired_state(source.files)
    person = now.person(args.key)
    if person is None:
        raise ReconcilerError(_("{key} is not declared in the desired state at {ref}", key=args.key, ref=args.ref))
    if person.active:
        raise ReconcilerError(_("{key} ({person}) is not a baja in the desired state at {ref}: a baja de servicios "
                                "starts with `status: baja` and its request", key=args.key,
                                person=person.display_name, ref=args.ref))
    records = every_record(args, err)
    since = day_start(dt.date.fromisoformat(person.solicitud.date))
    then = _state_applied(args.repo, records, person, since, now)
    ledger = Ledger(source.repo, ApplyKey.from_env())
    systems = []
    for target in load_inventory(args.inventory).values():
        if target.kind == "manual":
            orders, notes = ledger.orders(target.name)
            for note in notes:
                err.print(escape(str(note)))
            systems.append((target, orders))
    folio = person.solicitud.folio
    return baja_de_servicios(args.key, now, then, records, _work_orders(args.key, folio, since, systems), since,
                             source.commit.hexsha, trail.now())


def offboarding(args, out: Console, err: Console) -> int:
    from reconciler.offboarding import document
    from reconciler.pdfpage import file_part

    baja = compose(args, err)
    if args.output == "json":
        print(json.dumps(baja.to_dict(), ensure_ascii=False, indent=2))
    elif args.output == "markdown":
        print(document.markdown(baja), end="")
    elif args.output == "pdf":
        path = args.out or Path(f"baja-de-servicios-{file_part(baja.employee_key)}.pdf")
        try:
            path.write_bytes(document.pdf(baja))
        except OSError as exc:
            raise ReconcilerError(_("cannot write {path}: {error}", path=path, error=exc.strerror)) from None
        out.print(escape(_("{path}: {verdict}", path=path, verdict=document.verdict(baja))))
    else:
        document.print_text(baja, out)
    return 0 if baja.complete else EXIT_PENDING
