"""The carta responsiva: the page a person signs when IT hands over their institutional account.

Mexican state health services (ISSEMYM, SESVER, Servicios de Salud de Morelos) file one for
every account they hand over: who received what under which folio, the obligations of use
accepted, and two signatures, the person's ("Recibe") and IT's ("Entrega").  It travels in the
person's envelope (delivery/envelopes.py) beside the sealed secret, as a PDF on letter paper
("tamaño carta"), the size Mexican offices print on.

It never holds a secret: there is no password to give it, and the page says in words that the
initial password comes in a sealed envelope, so nobody looks for it there.

Every value on it comes from YAML a pull request wrote, and is printed as text, never obeyed:
control and invisible characters (a bidi override would reorder a name) are shown escaped, as
error messages show them; a character the font cannot draw is shown as its code rather than
vanishing; a value longer than any real one is cut; long text wraps inside its column.  The
same handover makes the same bytes: the document is dated the day of the delivery, and fpdf2
derives the file's identifier from its content.

The words are the catalogs' (reconciler/i18n).  The fonts are DejaVu Sans, from Debian's
fonts-dejavu-core: fpdf2's built-in fonts know Latin-1 only, and a name may be in any alphabet.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from reconciler import i18n
from reconciler.i18n import N_, _
from reconciler.pdfpage import FAMILY, LEADING, NARROW, Page, file_part, laid_out

if TYPE_CHECKING:
    from fpdf import FPDF

SIGNING_ROOM = 15  # mm above a signature line, to sign in

_OBLIGATIONS = (
    N_("The account is personal and non-transferable: do not lend it or let anyone else use it."),
    N_("Keep your password secret and change it the first time you log in."),
    N_("Use the account, mailbox, extensions and equipment only for your institutional functions."),
    N_("Report any loss, theft or misuse to the Information Technology area at once."),
    N_("Return the equipment in good condition when you leave the institution (baja) or are transferred."),
    N_("The institution may audit the use of the account, mailbox, extensions and equipment."),
)


@dataclass(frozen=True)
class Handover:
    """What one carta says was handed over to one person under one folio."""

    institution: str  # "Servicios de Salud de Morelos"
    unit_key: str  # "HG-CUERNAVACA"
    unit_name: str  # 'Hospital General de Cuernavaca "Dr. José G. Parres"'
    folio: str  # "SSM/STI/2025/00007"
    day: dt.date  # the day of the delivery, already in the institution's time zone
    person_name: str  # "Zoé Güemes O'Brien"
    employee_key: str  # "SSM-000007"
    title: str  # "Trabajadora Social"
    account: str | None = None  # the AD account name, "zguemeso"
    upn: str | None = None  # "zguemeso@salud.lab"
    mailbox: str | None = None  # the mail address
    extensions: tuple[str, ...] = ()  # SIP extensions, ("365",)
    equipment: tuple[Item, ...] = ()


@dataclass(frozen=True)
class Item:
    """One piece of equipment handed over, as the asset inventory names it."""

    inventory_number: str
    type: str
    brand: str
    model: str
    serial: str


def carta_pdf(handover: Handover) -> bytes:
    """The carta as PDF.  Laid out twice: the first time only to count its pages, so that each
    page can say "page 1 of 2" (fpdf2's page-count alias would also be replaced inside a value
    that happened to contain it)."""
    return laid_out(lambda pages: _Carta(handover, pages))


def carta_name(folio: str, employee_key: str) -> str:
    """"carta-SSM-STI-2025-00007-SSM-000007.pdf": only [A-Za-z0-9._-], whatever the folio says."""
    return f"carta-{file_part(folio)}-{file_part(employee_key)}.pdf"


class _Carta(Page):
    """One carta being laid out on an fpdf2 document, section by section, top to bottom."""

    def __init__(self, handover: Handover, pages: int | None = None):
        super().__init__(pages)
        self.handover = handover

    def write(self) -> FPDF:
        self._metadata()
        self.pdf.add_page()
        self._heading()
        self._section(_("Who receives"))
        self._pairs(self._person())
        self._section(_("What is handed over"))
        self._handed_over()
        self._section(_("Obligations of use"))
        self._obligations()
        self._password_notice()
        self._signatures()
        return self.pdf

    # -- the sections ----------------------------------------------------------------------

    def _metadata(self) -> None:
        handover, pdf, title = self.handover, self.pdf, _("Carta responsiva")
        self._describe(f"{title} {self.text(handover.folio, 120)}")
        pdf.set_subject(_("Handover of an institutional account to {key}", key=self.text(handover.employee_key, 120)))
        pdf.set_author(self.text(handover.institution, 120))
        # The day of the delivery, not the moment of rendering: the same carta is the same bytes.
        pdf.set_creation_date(dt.datetime.combine(handover.day, dt.time(), tzinfo=i18n.zone()))

    def _heading(self) -> None:
        handover = self.handover
        self._say(self.text(handover.institution), size=12, style="B", align="C")
        self._say(f"{self.text(handover.unit_name)} ({self.text(handover.unit_key)})", size=10, align="C")
        self.pdf.ln(2)
        self._say(_("Carta responsiva"), size=16, style="B", align="C")
        self._say(_("Assignment of an institutional account"), size=11, align="C")
        self.pdf.ln(2)
        self._say(_("Folio: {folio}", folio=self.text(handover.folio)), style="B", align="R")
        self._say(_("Date: {date}", date=i18n.date(handover.day)), align="R")

    def _person(self) -> list[tuple[str, str]]:
        handover = self.handover
        unit = f"{self.text(handover.unit_name)} ({self.text(handover.unit_key)})"
        return [(_("Name"), self.text(handover.person_name)), (_("Employee key"), self.text(handover.employee_key)),
                (_("Unit"), unit), (_("Title"), self.text(handover.title))]

    def _handed_over(self) -> None:
        services, items = self._services(), self.handover.equipment
        if not services and not items:
            self._say(_("Nothing is recorded as handed over under this folio."))
        if services:
            self._table((_("Item"), _("Detail")), services, widths=(1, 2))
        if items:
            self.pdf.ln(2)
            self._say(_("Equipment"), style="B")
            headings = (_("Inventory number"), _("Type"), _("Brand"), _("Model"), _("Serial number"))
            rows = [tuple(self.text(v, NARROW) for v in (i.inventory_number, i.type, i.brand, i.model, i.serial))
                    for i in items]
            self._table(headings, rows, widths=(6, 4, 4, 5, 5))

    def _services(self) -> list[tuple[str, str]]:
        """The account, its sign-in name, the mailbox and each extension: those there are."""
        handover = self.handover
        rows = [(_("Account"), handover.account), (_("Sign-in name (UPN)"), handover.upn),
                (_("Mailbox"), handover.mailbox)] + [(_("Extension"), number) for number in handover.extensions]
        return [(label, self.text(value)) for label, value in rows if value is not None and str(value).strip()]

    def _obligations(self) -> None:
        self.pdf.set_font(FAMILY, "", 9)
        for n, obligation in enumerate(_OBLIGATIONS, 1):
            self.pdf.cell(7, 9 * LEADING, f"{n}.")
            # multi_cell wraps under its own left edge: a hanging indent after the number.
            self.pdf.multi_cell(0, 9 * LEADING, _(obligation), align="L", new_x="LMARGIN", new_y="NEXT")

    def _password_notice(self) -> None:
        self.pdf.ln(3)
        self.pdf.set_font(FAMILY, "B", 10)
        self.pdf.multi_cell(0, 10 * LEADING, _("Your initial password is NOT printed in this document: it is delivered to you "
                                       "in a sealed envelope."), border=1, padding=2, align="L",
                            new_x="LMARGIN", new_y="NEXT")

    def _signatures(self) -> None:
        """The declaration and, side by side, the two signatures with a name under each line: on
        one page, so no signature ever stands on a page that does not say what was signed."""
        pdf, handover = self.pdf, self.handover
        declaration = _("By signing, I declare that I received what is listed above and accept the obligations "
                        "of use.")
        width = (pdf.epw - 10) / 2
        receives = (_("Receives"), _("Name: {name}", name=self.text(handover.person_name, NARROW)),
                    _("Employee key: {key}", key=self.text(handover.employee_key, NARROW)))
        hands_over = (_("Hands over"), _("Name: {name}", name="_" * 30), _("Information Technology area"))
        columns = max(self._column_height(width, lines) for lines in (receives, hands_over))
        if pdf.will_page_break(3 + self._height(declaration, 0, 10) + 4 + columns):
            pdf.add_page()
        pdf.ln(3)
        self._say(declaration)
        top = pdf.get_y() + 4
        bottom = max(self._column(pdf.l_margin, top, width, receives),
                     self._column(pdf.l_margin + width + 10, top, width, hands_over))
        pdf.set_xy(pdf.l_margin, bottom)

    def _column(self, x: float, y: float, width: float, lines: tuple[str, ...]) -> float:
        """Who signs, room to sign, the line, "Signature", then the name lines; returns the y below."""
        pdf = self.pdf
        pdf.set_xy(x, y)
        self._say(lines[0], style="B", align="C", width=width, new_x="LEFT")
        line_y = pdf.get_y() + SIGNING_ROOM
        pdf.line(x + 4, line_y, x + width - 4, line_y)
        pdf.set_xy(x, line_y + 1)
        self._say(_("Signature"), size=8, align="C", width=width, new_x="LEFT")
        for line in lines[1:]:
            self._say(line, size=9, align="C", width=width, new_x="LEFT")
        return pdf.get_y()

    def _column_height(self, width: float, lines: tuple[str, ...]) -> float:
        return (self._height(lines[0], width, 10, "B") + SIGNING_ROOM + 1 + self._height(_("Signature"), width, 8)
                + sum(self._height(line, width, 9) for line in lines[1:]))

    @property
    def folio(self) -> str:
        return self.handover.folio
