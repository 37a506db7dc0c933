"""The monthly report as a document (procedure 004's indicators, for management): one set of
words (Sections) and two charts, laid out as PDF on letter paper and as one self-contained HTML
page, in the institution's language and time zone.  Every number is the one `report --output
json` gives; every value from YAML or a record is printed as text (pdfpage.Page.text; HTML
escaped), never obeyed."""
from __future__ import annotations

import html

from reconciler import i18n
from reconciler.audit.indicators import MOVEMENTS, PLURAL, IndicatorRow, MonthlyReport
from reconciler.i18n import N_, _, pgettext
from reconciler.pdfpage import Page, Section, laid_out
from reconciler.render import charts
from reconciler.render.audit import MOVEMENT_ROWS


LISTED = 30  # open items a document lists, oldest first; JSON and the commands list them all


def _n(value) -> str:
    return "–" if value is None else i18n.number(value)


def _percent(row: IndicatorRow) -> str:
    return "–" if row.percent is None else i18n.percent(row.percent / 100)


def _movement(name: str) -> str:
    return _(MOVEMENT_ROWS[name]) if name in MOVEMENT_ROWS else name


def title(report: MonthlyReport) -> str:
    return _("Monthly report of solicitudes: {month}", month=i18n.month(report.month))


def sections(report: MonthlyReport) -> list[Section]:
    indicators = Section(
        _("Solicitudes approved in {month}: attended and verified", month=i18n.month(report.month)),
        (pgettext("indicators column", "movement"), pgettext("indicators column", "approved"),
         pgettext("indicators column", "applied + verified"), "%", pgettext("indicators column", "failed or pending"),
         pgettext("indicators column", "median h to apply"), pgettext("indicators column", "max h to apply")),
        tuple((_movement(r.movement), _n(r.approved), _n(r.applied_verified), _percent(r), _n(r.failed_or_pending),
               _n(r.median_hours), _n(r.max_hours)) for r in report.rows),
        _("No solicitud was approved this month."), (4, 3, 3, 2, 3, 3, 3))
    per_unit = Section(
        _("Per unit: approved / applied and verified"),
        (_("Unit"), *(_movement(PLURAL[m]) for m in MOVEMENTS), _movement("total"), "%"),
        tuple((unit or _("(no unit)"), *(f"{_n(r.approved)} / {_n(r.applied_verified)}" for r in rows[:-1]),
               f"{_n(rows[-1].approved)} / {_n(rows[-1].applied_verified)}", _percent(rows[-1]))
              for unit, rows in report.units.items()),
        _("No solicitud was approved this month."), (6, 3, 5, 3, 3, 3))
    orders = Section(
        _("Work orders pending on systems with no API"),
        (pgettext("work orders column", "folio"), pgettext("work orders column", "system"),
         pgettext("work orders column", "movement"), pgettext("work orders column", "person"),
         pgettext("work orders column", "issued"), pgettext("work orders column", "days"),
         pgettext("work orders column", "due")),
        tuple((o["folio"], o["system"], _("alta") if o["movement"] == "alta" else _("baja"),
               f"{o['person']} ({o['employee_key']})", i18n.when(o["issued"]),
               _("{age} of {sla}", age=i18n.number(o["age_days"]), sla=i18n.number(o["sla_days"])),
               i18n.date(o["due"]) + (" " + _("OVERDUE") if o["overdue"] else "")) for o in report.work_orders[:LISTED]),
        _("No work order is pending."), (7, 4, 3, 6, 5, 3, 4),
        i18n.ngettext("… and {n} more: reconciler pending lists them all",
                      "… and {n} more: reconciler pending lists them all",
                      len(report.work_orders) - LISTED) if len(report.work_orders) > LISTED else "")
    waiting = Section(
        _("Cartas responsivas not yet acknowledged"),
        (pgettext("deliveries column", "employee key"), pgettext("deliveries column", "folio"),
         pgettext("deliveries column", "sealed"), pgettext("deliveries column", "days")),
        tuple((d.holder, d.folio, i18n.when(d.sealed), i18n.number(d.days)) for d in report.waiting[:LISTED]),
        _("Every delivered envelope is acknowledged."), (3, 4, 4, 2),
        i18n.ngettext("… and {n} more: reconciler report --output json lists them all",
                      "… and {n} more: reconciler report --output json lists them all",
                      len(report.waiting) - LISTED) if len(report.waiting) > LISTED else "")
    return [indicators, per_unit, orders, waiting]


def _week(start: str, end: str) -> str:
    return f"{int(start[8:])}–{int(end[8:])}"


def weekly_chart(report: MonthlyReport):
    return charts.grouped_bars(
        _("Approved and attended, per week of {month}", month=i18n.month(report.month)),
        [_week(w.start, w.end) for w in report.weeks],
        [(_("approved"), [w.approved for w in report.weeks]),
         (_("applied and verified that week"), [w.attended for w in report.weeks])], _("changes"))


# The time ranges of audit/indicators.py (their keys in JSON), as people read them.
RANGES = {"< 1 h": N_("< 1 h"), "1–8 h": N_("1–8 h"), "8–24 h": N_("8–24 h"), "1–3 d": N_("1–3 days"),
          "> 3 d": N_("> 3 days"), "pending": N_("not yet")}


def time_chart(report: MonthlyReport):
    ranges = [_(RANGES[row["range"]]) if row["range"] in RANGES else row["range"] for row in report.times]
    return charts.grouped_bars(
        _("Time from approval to verified apply"), ranges,
        [(_movement(PLURAL[m]), [row[PLURAL[m]] for row in report.times]) for m in MOVEMENTS], _("changes"))


def how_counted() -> str:
    return _("A solicitud counts in the month its pull request was approved and landed; it is attended once every "
             "target applied it and read it back (verified); on a system with no API, once its work order's "
             "confirmation is recorded. The times run from the approval to the first verified apply.")


# -- PDF ----------------------------------------------------------------------------------

def pdf(report: MonthlyReport) -> bytes:
    pictures = (charts.png(weekly_chart(report)), charts.png(time_chart(report)))  # drawn once, laid out twice
    return laid_out(lambda pages: _Document(report, pictures, pages))


class _Document(Page):
    def __init__(self, report: MonthlyReport, pictures: tuple[bytes, bytes], pages: int | None = None):
        super().__init__(pages)
        self.report, self.pictures = report, pictures

    @property
    def folio(self) -> str:
        return self.report.month

    def write(self):
        import io

        pdf, report = self.pdf, self.report
        heading = title(report)
        self._describe(heading)
        pdf.add_page()
        self._say(heading, size=15, style="B", align="C")
        pdf.ln(2)
        self._say(how_counted(), size=9)
        found = sections(report)
        for s in found[:2]:
            self._part(s)
        for picture in self.pictures:
            if pdf.will_page_break(pdf.epw * 0.4 + 4):
                pdf.add_page()
            pdf.ln(3)
            pdf.image(io.BytesIO(picture), w=pdf.epw)
        for s in found[2:]:
            self._part(s)
        return pdf


# -- HTML ---------------------------------------------------------------------------------

_STYLE = """body{font-family:"DejaVu Sans",Arial,sans-serif;max-width:60em;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}th,td{border:1px solid #bbb;padding:.25em .6em;text-align:left}
th{background:#eef2f5}figure{margin:1em 0}svg{max-width:100%;height:auto}p.note{font-size:.9em;color:#555}"""  # not for people


def html_page(report: MonthlyReport) -> str:
    e = html.escape
    heading = title(report)
    lang = e(i18n.current().replace("_", "-"))
    parts = [f'<!DOCTYPE html>\n<html lang="{lang}">', '<head><meta charset="utf-8">',  # not for people
             f"<title>{e(heading)}</title>", f"<style>{_STYLE}</style></head>", "<body>", f"<h1>{e(heading)}</h1>",
             f'<p class="note">{e(how_counted())}</p>']
    found = sections(report)
    for s in found[:2]:
        parts += _html_section(s)
    for figure in (weekly_chart(report), time_chart(report)):
        parts.append(f"<figure>{charts.svg(figure)}</figure>")
    for s in found[2:]:
        parts += _html_section(s)
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _html_section(s: Section) -> list[str]:
    e = html.escape
    out = [f"<h2>{e(s.title)}</h2>"]
    if not s.rows:
        return out + [f"<p>{e(s.empty)}</p>"]
    out.append("<table><thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in s.headings) + "</tr></thead><tbody>")
    out += ["<tr>" + "".join(f"<td>{e(v)}</td>" for v in row) + "</tr>" for row in s.rows]
    return out + ["</tbody></table>"] + ([f'<p class="note">{e(s.more)}</p>'] if s.more else [])
