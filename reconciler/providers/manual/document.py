"""The document a work order is: what its operator receives, as Markdown (it reads the same as
text in an e-mail or a help desk's ticket) and as PDF on letter paper (for an operator who files
paper), in the institution's language and time zone.  Both are made from the same facts; every
value from the desired state is printed as text, never obeyed (markdown_cell; pdfpage.Page.text)."""
from __future__ import annotations

from dataclasses import dataclass

from reconciler.desired.model import DesiredState
from reconciler.i18n import _, date, when
from reconciler.markdown import markdown_cell as cell
from reconciler.pdfpage import Page, laid_out
from reconciler.plan import Change
from reconciler.providers.manual.orders import Order
from reconciler.providers.manual.target import ManualTarget


@dataclass(frozen=True)
class Facts:
    """What a work order says, in the words of the day's language."""

    folio: str
    system: str
    task: str
    rows: tuple[tuple[str, str], ...]
    backing: tuple[str, ...]
    confirming: str


def _channel(channel: str) -> str:
    return {"correo": _("by e-mail"), "mesa_de_ayuda": _("through their help desk"),
            "oficio": _("by signed letter"), "telefono": _("by phone")}.get(channel, channel)


def _task(order: Order, target: ManualTarget) -> str:
    if order.movement == "alta":
        return _("Give this person access to {system}, with the profile their title calls for.", system=target.title)
    return _("Remove this person's access to {system}: cancel or disable their account, and end any session they "
             "have open.", system=target.title)


def facts(order: Order, target: ManualTarget, state: DesiredState | None, change: Change) -> Facts:
    """What the order of `change` (approved) says."""
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
    confirming = _("Once it is done, answer with the date, who did it and your ticket number. Until then this order "
                   "stays pending in every plan; after {days} days it is overdue.", days=target.sla_days)
    return Facts(order.folio, target.title, _task(order, target), tuple(rows), tuple(_backing(order, person, change)),
                 confirming)


def _backing(order: Order, person, change: Change) -> list[str]:
    out = []
    if order.movement == "baja" and person is not None and person.active:  # their request is still their alta
        out.append(_("The entitlement that gave this person access to it was removed from the approved desired state"))
    elif person is not None and person.solicitud.folio == order.solicitud:
        s = person.solicitud
        out.append(_("Request {folio} of {date}, by {requester}: {justification}", folio=s.folio,
                     date=date(s.date), requester=s.requested_by, justification=s.justification))
    elif order.solicitud:
        out.append(_("Request {folio}", folio=order.solicitud))
    if change.approval is not None and change.approval.approvers:
        out.append(_("Approved by {approvers}", approvers=", ".join(change.approval.approvers)))
    if order.commit:
        out.append(_("Declared in commit {commit} of the desired state", commit=order.commit[:12]))
    return out or [_("The approved desired state: the person no longer has an entitlement to it")]


def _confirmation(folio: str) -> list[str]:
    day = _("YYYY-MM-DD")
    return ["confirmations:", f"  - folio: {folio}", "    confirmado: {fecha: " + day + ", por: …, ticket: …}"]


def markdown(f: Facts) -> str:
    title = _("Work order {folio}", folio=cell(f.folio))
    field, value, backing, confirming = _("Field"), _("Value"), _("What backs it"), _("How to confirm it")
    lines = [f"# {title}", "", cell(f.task), "", f"| {field} | {value} |", "|---|---|"]
    lines += [f"| {cell(name)} | {cell(value)} |" for name, value in f.rows]
    lines += ["", f"## {backing}", ""] + ["- " + cell(b) for b in f.backing]
    lines += ["", f"## {confirming}", "", cell(f.confirming), "",
              cell(_("The IT area records your answer in the desired-state repository:")), "", "```yaml",
              *_confirmation(f.folio), "```", ""]
    return "\n".join(lines)


def pdf(f: Facts) -> bytes:
    return laid_out(lambda pages: _Document(f, pages))


class _Document(Page):
    """The work order on paper: what to do, the facts, what backs it, how to confirm it."""

    def __init__(self, f: Facts, pages: int | None = None):
        super().__init__(pages)
        self.facts = f

    @property
    def folio(self) -> str:
        return self.facts.folio

    def write(self):
        f, pdf = self.facts, self.pdf
        title = _("Work order {folio}", folio=self.text(f.folio, 120))
        self._describe(title)
        pdf.add_page()
        self._say(self.text(f.system), size=12, style="B", align="C")
        self._say(title, size=16, style="B", align="C")
        pdf.ln(3)
        self._say(self.text(f.task), style="B")
        self._section(_("Details"))
        self._pairs([(name, self.text(value)) for name, value in f.rows])
        self._section(_("What backs it"))
        for line in f.backing:
            self._say("• " + self.text(line))
        self._section(_("How to confirm it"))
        self._say(self.text(f.confirming))
        pdf.ln(2)
        self._say(_("The IT area records your answer in the desired-state repository:"))
        for line in _confirmation(self.text(f.folio, 120)):
            self._say(line, size=9)
        return pdf


def work_order(order: Order, target: ManualTarget, state: DesiredState | None, change: Change) -> dict[str, bytes]:
    """The files of the order's document: orden.md and orden.pdf."""
    said = facts(order, target, state, change)
    return {"orden.md": markdown(said).encode("utf-8"), "orden.pdf": pdf(said)}
