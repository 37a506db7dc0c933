"""The document a work order is: what its operator receives (Markdown; it reads the same as
text in an e-mail), in the institution's language and time zone.  Every value from the desired
state goes through markdown_cell: a name or a justification cannot open a link, a code span or
HTML in it."""
from __future__ import annotations

from reconciler.desired.model import DesiredState
from reconciler.i18n import _, date, when
from reconciler.plan import Change
from reconciler.providers.manual.orders import Order
from reconciler.providers.manual.target import ManualTarget
from reconciler.render.plan import markdown_cell as cell



def _channel(channel: str) -> str:
    return {"correo": _("by e-mail"), "mesa_de_ayuda": _("through their help desk"),
            "oficio": _("by signed letter"), "telefono": _("by phone")}.get(channel, channel)


def _task(order: Order, target: ManualTarget) -> str:
    if order.movement == "alta":
        return _("Give this person access to {system}, with the profile their title calls for.", system=target.title)
    return _("Remove this person's access to {system}: cancel or disable their account, and end any session they "
             "have open.", system=target.title)


def work_order(order: Order, target: ManualTarget, state: DesiredState | None, change: Change) -> str:
    """The Markdown of `order`, issued for `change` (approved) of `target`."""
    person = state.person(order.employee_key) if state is not None else None
    unit = state.units.get(order.unit) if state is not None and order.unit else None
    rows = [
        (_("Folio"), order.folio),
        (_("System"), target.title),
        (_("Addressed to"), _("{name} ({contact}), {channel}", name=target.operator.name,
                              contact=target.operator.contact, channel=_channel(target.operator.channel))),
        (_("Movement"), _("alta") if order.movement == "alta" else _("baja")),
        (_("Person"), order.person),
        (_("Employee key"), order.employee_key),
    ]
    if person is not None:
        rows.append((_("Title"), person.title))
    if unit is not None:
        rows.append((_("Unit"), f"{unit.name} (CLUES {unit.clues})" if unit.clues else unit.name))
    elif order.unit:
        rows.append((_("Unit"), order.unit))
    rows += [(_("Issued"), when(order.issued)), (_("Due"), date(order.due))]
    title = _("Work order {folio}", folio=cell(order.folio))
    field, value, backing, confirming = _("Field"), _("Value"), _("What backs it"), _("How to confirm it")
    lines = [f"# {title}", "", cell(_task(order, target)), "", f"| {field} | {value} |", "|---|---|"]
    lines += [f"| {cell(name)} | {cell(value)} |" for name, value in rows]
    lines += ["", f"## {backing}", ""] + _backing(order, person, change)
    lines += ["", f"## {confirming}", "",
              cell(_("Once it is done, answer with the date, who did it and your ticket number. Until then this "
                     "order stays pending in every plan; after {days} days it is overdue.", days=target.sla_days)),
              "", cell(_("The IT area records your answer in the desired-state repository:")), "", "```yaml",
              "confirmations:", f"  - folio: {order.folio}",
              "    confirmado: {fecha: AAAA-MM-DD, por: …, ticket: …}", "```", ""]
    return "\n".join(lines)


def _backing(order: Order, person, change: Change) -> list[str]:
    out = []
    if person is not None and person.solicitud.folio == order.solicitud:
        s = person.solicitud
        out.append("- " + cell(_("Request {folio} of {date}, by {requester}: {justification}", folio=s.folio,
                                 date=date(s.date), requester=s.requested_by, justification=s.justification)))
    elif order.solicitud:
        out.append("- " + cell(_("Request {folio}", folio=order.solicitud)))
    if change.approval is not None and change.approval.approvers:
        out.append("- " + cell(_("Approved by {approvers}", approvers=", ".join(change.approval.approvers))))
    if order.commit:
        out.append("- " + cell(_("Declared in commit {commit} of the desired state", commit=order.commit[:12])))
    return out or ["- " + cell(_("The approved desired state: the person no longer has an entitlement to it"))]
