"""A page of an institutional document (the carta responsiva, a work order): letter paper, the
DejaVu fonts, every value printed as text and never obeyed.

Every value comes from YAML a pull request wrote: control and invisible characters (a bidi
override would reorder a name) are shown escaped, as error messages show them; a character the
font cannot draw is shown as its code rather than vanishing; a value longer than any real one is
cut; long text wraps inside its column.  The fonts are DejaVu Sans, from Debian's
fonts-dejavu-core: fpdf2's built-in fonts know Latin-1 only, and a name may be in any alphabet.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from reconciler.errors import ReconcilerError, plain
from reconciler.i18n import _

if TYPE_CHECKING:
    from fpdf import FPDF

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONTS = {"": FONT_DIR / "DejaVuSans.ttf", "B": FONT_DIR / "DejaVuSans-Bold.ttf"}  # fpdf2 style -> file
FAMILY = "DejaVu"
LONGEST = 400  # characters of one value: more than any real name or title, and a carta stays a page or two
NARROW = 120  # characters of a value in a narrow column (equipment, signatures): in the widest glyphs it fits a page
MARGIN = 20  # mm at the sides
TOP = 15  # mm above and below: room for the footer, and a carta with a few items fits one page
LEADING = 0.48  # mm of line per point of type: 10 pt text, 4.8 mm lines
_NOT_IN_A_FILE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def laid_out(page: Callable[[int | None], "Page"]) -> bytes:
    """A document as PDF.  Laid out twice: the first time only to count its pages, so that each
    page can say "page 1 of 2" (fpdf2's page-count alias would also be replaced inside a value
    that happened to contain it).  `page(pages)` makes the document, knowing its page count or None."""
    first = page(None).write()
    if first.pages_count == 1:  # its "page 1 of 1" is already right
        return bytes(first.output())
    return bytes(page(first.pages_count).write().output())


@dataclass(frozen=True)
class Section:
    """A titled table of a document, already in words: laid out as PDF here, and as Markdown or
    HTML by the document's own module."""

    title: str
    headings: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    empty: str  # what the section says when it has no rows
    widths: tuple[int, ...]  # of the PDF's columns, relative
    more: str = ""  # what the rows leave out, said after them


class Page:
    """An fpdf2 document being laid out top to bottom; a subclass writes its sections (write())
    and names itself by its folio (the footer of every page: "Folio … · page 1 of 2")."""

    def __init__(self, pages: int | None = None):
        from fpdf import FPDF  # imported here: it takes half a second, and only some commands need it

        self.pages = pages
        self.pdf = FPDF(orientation="portrait", unit="mm", format="letter")
        self.pdf.set_margins(MARGIN, TOP, MARGIN)
        self.pdf.set_auto_page_break(True, margin=TOP)
        self.pdf.alias_nb_pages("")  # no text is ever replaced by the page count: see laid_out
        _add_fonts(self.pdf)
        # A character is drawn only if both faces have it; any other is shown as its code.  (fpdf2
        # keys a face by its family in lower case and its style.)
        self.drawable = set.intersection(*(set(self.pdf.fonts[FAMILY.lower() + style].cmap) for style in FONTS))
        self.pdf.footer = self._footer  # fpdf2 calls it at the end of every page

    folio = ""  # what the footer names the document by

    def write(self) -> "FPDF":
        raise NotImplementedError

    def _footer(self) -> None:
        pdf = self.pdf
        pdf.set_y(-TOP + 5)
        pdf.set_font(FAMILY, "", 8)
        pages = self.pages or pdf.page_no()

        def line(folio: str) -> str:
            return _("Folio {folio} · page {page} of {pages}", folio=folio, page=pdf.page_no(), pages=pages)

        # One line, always: a folio too wide for it is cut, as the page's heading shows it whole.
        folio = self.text(self.folio, 60)
        while len(folio) > 1 and pdf.get_string_width(line(folio)) > pdf.epw:
            folio = folio[:-2] + "…"
        pdf.cell(0, 4, line(folio), align="C")

    def text(self, value, limit: int = LONGEST) -> str:
        """A value from the desired state as the page prints it: composed (e + ´ as é), every
        run of white space one space, control and invisible characters escaped, characters the
        fonts lack shown as their code, and then cut at `limit` (a code is six characters)."""
        spaced = " ".join(unicodedata.normalize("NFC", "" if value is None else str(value)).split())
        return plain("".join(c if ord(c) in self.drawable else _code(c) for c in plain(spaced, limit=None)), limit)

    def _height(self, text: str, width: float, size: float, style: str = "") -> float:
        """How tall _say would make `text`, without writing it."""
        self.pdf.set_font(FAMILY, style, size)
        return self.pdf.multi_cell(width, size * LEADING, text, dry_run=True, output="HEIGHT")

    # -- the means -------------------------------------------------------------------------

    def _describe(self, title: str) -> None:
        """The file's own title, creator and language (what a PDF reader and a screen reader say)."""
        from reconciler import i18n

        self.pdf.set_title(title)
        self.pdf.set_creator("reconciler")
        self.pdf.set_lang(i18n.current().replace("_", "-"))

    def _part(self, s: Section) -> None:
        """A section: its heading, then its table (and what it leaves out), or what it says when empty."""
        self._section(s.title)
        if not s.rows:
            self._say(s.empty)
            return
        self._table(s.headings, [tuple(self.text(v) for v in row) for row in s.rows], s.widths)
        if s.more:
            self._say(s.more, size=9)

    def _section(self, title: str) -> None:
        if self.pdf.will_page_break(25):  # a heading stays with what follows it
            self.pdf.add_page()
        self.pdf.ln(2)
        self._say(title, size=11, style="B")
        self.pdf.ln(1)

    def _say(self, text: str, *, size: float = 10, style: str = "", align: str = "L", width: float = 0,
             new_x: str = "LMARGIN") -> None:
        """A paragraph, wrapped to the width (0: the whole line) so nothing runs off the page."""
        self.pdf.set_font(FAMILY, style, size)
        self.pdf.multi_cell(width, size * LEADING, text, align=align, new_x=new_x, new_y="NEXT")

    def _pairs(self, rows: list[tuple[str, str]]) -> None:
        """Label and value, one pair a line, without borders."""
        from fpdf.fonts import FontFace

        self.pdf.set_font(FAMILY, "", 10)
        with self.pdf.table(col_widths=(1, 3), first_row_as_headings=False, borders_layout="NONE", v_align="TOP",
                            text_align="LEFT", line_height=10 * LEADING) as table:
            for label, value in rows:
                row = table.row()
                row.cell(label, style=FontFace(emphasis="BOLD"))
                row.cell(value)

    def _table(self, headings: tuple[str, ...], rows: list[tuple[str, ...]], widths: tuple[int, ...]) -> None:
        """A ruled table whose cells wrap; its headings repeat on a new page."""
        self.pdf.set_font(FAMILY, "", 9)
        with self.pdf.table(col_widths=widths, text_align="LEFT", v_align="TOP", line_height=9 * LEADING,
                            padding=(0.6, 1)) as table:
            for cells in (headings, *rows):
                row = table.row()
                for value in cells:
                    row.cell(value)


def _add_fonts(pdf: FPDF) -> None:
    missing = [path for path in FONTS.values() if not path.is_file()]
    if missing:
        raise ReconcilerError(_("PDF documents need the DejaVu Sans fonts and {path} is missing: install the "
                                "Debian package fonts-dejavu-core", path=missing[0]))
    for style, path in FONTS.items():
        pdf.add_font(FAMILY, style, str(path))


def _code(char: str) -> str:
    """A character the fonts cannot draw, as Python writes it: \\u4e2d."""
    point = ord(char)
    return f"\\u{point:04x}" if point <= 0xFFFF else f"\\U{point:08x}"


def file_part(text: str) -> str:
    """A value as part of a file's name: accents dropped (Ñ as N), anything else outside
    [A-Za-z0-9._-] a hyphen, no run of dots (".." climbs nowhere without a slash, but nobody
    should have to check), cut short."""
    letters = "".join(c for c in unicodedata.normalize("NFKD", text or "") if not unicodedata.combining(c))
    part = re.sub(r"\.{2,}", ".", _NOT_IN_A_FILE_NAME.sub("-", letters))
    return part.strip("-.")[:60].strip("-.") or "none"
