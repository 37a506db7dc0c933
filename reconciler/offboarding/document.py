"""The baja de servicios as people read it: one set of words (Sections) laid out three ways,
as Markdown (a pull request comment, an e-mail), as text on a terminal, and as PDF on letter
paper for the person's file; in the institution's language and time zone.  Every value that
came from YAML or a record is printed as text, never obeyed (markdown_cell; pdfpage.Page.text)."""
from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from reconciler import i18n
from reconciler.i18n import _, date, when
from reconciler.markdown import markdown_cell as cell
from reconciler.offboarding.servicios import NOT_REMOVED, BajaDeServicios
from reconciler.pdfpage import Page, Section, laid_out


def _mark(done: bool, yes: str) -> str:
    return ("✓ " + yes) if done else ("✗ " + _("pending"))


def _checked(r) -> str:
    """Whether a removal was applied and read back."""
    if r.done:
        return "✓ " + _("verified")
    if r.status == "applied":
        return "✗ " + _("applied, not verified")
    if r.status == "failed":
        return "✗ " + (_("failed: {error}", error=r.error) if r.error else _("failed"))
    if r.status == "skipped":
        return "✗ " + _("not applied: not approved")
    if r.status == NOT_REMOVED:
        return "✗ " + _("no baja recorded yet: the target was out of reach, or the change is still to apply")
    return "✗ " + _("pending")


def title(b: BajaDeServicios) -> str:
    return _("Baja de servicios of {person} ({key})", person=b.person, key=b.employee_key)


def verdict(b: BajaDeServicios) -> str:
    if not b.removed:
        return _("Not complete: no target has recorded this baja yet (it is applied once its request is approved "
                 "and landed).")
    if b.complete:
        return _("Complete: every item is done and confirmed ({n} in all).", n=len(b.items))
    return i18n.ngettext("Not complete: {n} of {total} item is still pending.",
                         "Not complete: {n} of {total} items are still pending.", b.pending, total=len(b.items))


def details(b: BajaDeServicios) -> list[tuple[str, str]]:
    rows = [(_("Person"), b.person), (_("Employee key"), b.employee_key), (_("Title"), b.title), (_("Unit"), b.unit)]
    if b.account:
        rows.append((_("Account"), b.account))
    rows += [(_("Request"), _("{folio} of {date}, by {requester}", folio=b.folio, date=date(b.requested),
                                requester=b.requested_by)),
             (_("Justification"), b.justification)]
    if b.approvers:
        rows.append((_("Approved by"), ", ".join(b.approvers)))
    if b.commit:
        rows.append((_("Desired state read"), _("commit {commit}", commit=b.commit[:12])))
    if b.made:
        rows.append((_("Made"), when(b.made)))
    return rows


def sections(b: BajaDeServicios) -> list[Section]:
    removed = tuple((r.target, r.label, "; ".join(r.changed), when(r.time) if r.time else "—", _checked(r))
                    for r in b.removed)
    orders = tuple((o.system, o.operator, o.folio or "—",
                    when(o.issued) if o.issued else _("to be issued by the next apply"),
                    date(o.due) if o.due else "—", _mark(o.done, o.confirmed or "")) for o in b.orders)
    equipment = tuple((e.key, e.description, e.unit, e.now, _mark(e.done, _("collected"))) for e in b.equipment)
    lines = tuple((x.key, x.description, x.unit, x.now, _mark(x.done, _("cancelled"))) for x in b.lines)
    return [
        Section(_("Access removed automatically"),
                (_("Target"), _("What"), _("Changed"), _("Recorded"), _("Verified")), removed,
                _("No automatic target recorded a removal for this baja yet."), (2, 4, 6, 3, 3)),
        Section(_("Work orders on systems with no API"),
                (_("System"), _("Operator"), _("Folio"), _("Issued"), _("Due"), _("Confirmed")), orders,
                _("No system with no API gave this person access."), (3, 3, 4, 3, 3, 3)),
        Section(_("Equipment to collect"), (_("Inventory"), _("Equipment"), _("Unit"), _("Now"), _("Collected")),
                equipment, _("No equipment was assigned to this person."), (4, 5, 3, 2, 2)),
        Section(_("Carrier lines to cancel"), (_("Number"), _("Carrier"), _("Unit"), _("Now"), _("Cancelled")),
                lines, _("No carrier line was assigned to this person."), (2, 5, 3, 2, 2)),
    ]


def how_items_close() -> str:
    return _("An automatic removal is done once its target read it back; a work order, once its operator's "
             "confirmation is recorded (desired_state/work_orders.yaml, by pull request); equipment, once "
             "desired_state/assets/equipment.yaml no longer assigns it to the person; a carrier line, once "
             "desired_state/assets/lines.yaml marks it as a baja.")


def markdown(b: BajaDeServicios) -> str:
    field, value = _("Field"), _("Value")
    lines = [f"# {cell(title(b))}", "", f"**{cell(verdict(b))}**", "", f"| {field} | {value} |", "|---|---|"]
    lines += [f"| {cell(name)} | {cell(v)} |" for name, v in details(b)]
    for s in sections(b):
        lines += ["", f"## {cell(s.title)}", ""]
        if not s.rows:
            lines.append(cell(s.empty))
            continue
        lines += ["| " + " | ".join(cell(h) for h in s.headings) + " |", "|" + "---|" * len(s.headings)]
        lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in s.rows]
    lines += ["", cell(how_items_close()), ""]
    return "\n".join(lines)


def print_text(b: BajaDeServicios, out: Console) -> None:
    out.print(f"[bold]{escape(title(b))}[/]")
    out.print(f"[{'green' if b.complete else 'yellow'}]{escape(verdict(b))}[/]")
    for name, v in details(b):
        out.print(f"  {escape(name)}: {escape(v)}")
    for s in sections(b):
        if not s.rows:
            out.print(f"\n[bold]{escape(s.title)}[/]: {escape(s.empty)}")
            continue
        table = Table(title=escape(s.title), title_justify="left")
        for heading in s.headings:
            table.add_column(escape(heading))
        for row in s.rows:
            table.add_row(*(escape(v) for v in row))
        out.print(table)
    out.print(escape(how_items_close()))


def pdf(b: BajaDeServicios) -> bytes:
    return laid_out(lambda pages: _Document(b, pages))


class _Document(Page):
    """The baja de servicios on paper, for the person's file."""

    def __init__(self, b: BajaDeServicios, pages: int | None = None):
        super().__init__(pages)
        self.baja = b

    @property
    def folio(self) -> str:
        return self.baja.folio

    def write(self):
        b, pdf = self.baja, self.pdf
        heading = self.text(title(b))
        self._describe(heading)
        pdf.add_page()
        self._say(heading, size=15, style="B", align="C")
        pdf.ln(2)
        self._say(verdict(b), style="B")
        self._section(_("Details"))
        self._pairs([(name, self.text(v)) for name, v in details(b)])
        for s in sections(b):
            self._part(s)
        pdf.ln(3)
        self._say(how_items_close(), size=9)
        return pdf
