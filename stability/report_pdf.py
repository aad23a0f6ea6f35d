"""The stability report as a document: the page and the PDF (WeasyPrint, from the page's own template with
its print styles, A4) draw each section's tables (stability.report_sections) with its charts, and the few
lines a chat message carries. Every figure comes from stability.reports.build_report; nothing is computed
here.

The PDF needs pango (Debian: libpango-1.0-0) and, for Chinese, a CJK font: fonts-noto-cjk.
"""

import re
from datetime import datetime

from django.conf import settings
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.translation import gettext as _

from stability import report_charts
from stability.report_sections import Column, Headline, Kind, Section, Table
from stability.reports import Report, incident_line

TEMPLATE = "web/reports/pdf.html"


# --- cells and tables -----------------------------------------------------------------------------

# What a missing figure reads as, by its column's kind: a rate (or a percentage) "no data", a duration "–".
_MISSING = {Kind.RATE: "rate", Kind.PERCENT_DIGITS: "rate", Kind.DURATION: "duration"}
# Exact decimals are shown as written.
_AS_WRITTEN = {Kind.PERCENT_DIGITS, Kind.DECIMAL}


def cell(column: Column, value) -> dict:
    """A value as the template shows it (web/reports/_cell.html): `kind` picks the filter (duration, rate,
    moment, number, label, text), from the column's declared kind."""
    if column.kind is Kind.CHOICE:
        if isinstance(value, bool):
            return {"kind": "label", "value": _("Yes") if value else _("No")}
        if value in column.choices:
            return {"kind": "label", "value": str(column.choices[value])}
        return {"kind": "text", "value": value}
    if value is None or column.kind is Kind.LIST:
        return {"kind": _MISSING.get(column.kind, "text"), "value": None}
    if column.kind in _AS_WRITTEN:
        return {"kind": "text", "value": value}
    return {"kind": column.kind.value, "value": value}


def _label_cell(text) -> dict:
    return {"kind": "text", "value": str(text)}


def table_context(table: Table) -> dict | None:
    """A table as the template draws it: title, head, rows of cells; `pairs` a figure per row, headed by its
    label. None: nothing to draw (an empty list, shown among its section's pairs)."""
    if table.pairs:
        (figures,) = table.rows
        # A list is a table of its own, unless empty.
        shown = [c for c in table.columns if c.kind is not Kind.LIST or not figures.get(c.key)]
        if not shown:
            return None
        rows = [[_label_cell(column.label), cell(column, figures.get(column.key))] for column in shown]
        return {"title": table.title, "head": [], "rows": rows, "pairs": True}
    if not table.rows:
        return None
    head = [str(column.label) for column in table.columns]
    rows = [[cell(column, row.get(column.key)) for column in table.columns] for row in table.rows]
    if table.row_labels:
        head = ["", *head]
        rows = [[_label_cell(label), *cells] for label, cells in zip(table.row_labels, rows, strict=True)]
    return {"title": table.title, "head": head, "rows": rows}


def section_context(section: Section) -> dict:
    drawn = (table_context(table) for table in section.tables())
    return {"key": section.key, "title": str(section.title), "tables": [table for table in drawn if table]}


# --- page and PDF ---------------------------------------------------------------------------------

# Shown as the headline and the charts, not as tables of their own.
_NOT_TABLED = {"headline", "trend"}


def charts(report: Report) -> dict:
    """The page's and PDF's charts as inline SVG, from the report's own figures: every chart is there, a
    chart with nothing to draw as the words that say so (stability.report_charts)."""
    trend = report.trend.figures
    ranking = [
        (str(row["name"] or row["team"]), float(row["score"]))
        for row in report.health.figures["teams"]
        if row["score"] is not None
    ]
    return {
        "levels": report_charts.level_counts(report.incidents.figures["by_level"]),
        "mttr": report_charts.mttr_trend([(point["period"], point["value"]) for point in trend["mttr"]]),
        "follow_up": report_charts.follow_up_trend(
            [(point["period"], point["value"]) for point in trend["follow_up_rate"]]
        ),
        "ranking": report_charts.health_ranking(ranking),
    }


def context(report: Report) -> dict:
    """What the report templates need: the report, its charts, its headline and its sections as tables."""
    sections = []
    for section in report.sections:
        if section.key in _NOT_TABLED:
            continue
        drawn = section_context(section)
        if section.key == "incidents":
            # The list in the weekly report's words (as the Markdown has it), not a table of 17 columns.
            drawn["entries"] = [{"id": row["id"], "text": incident_line(row)} for row in section.figures["list"]]
        sections.append(drawn)
    return {
        "report": report,
        "report_period": report.period.label,
        "report_scope": scope_text(report),
        "charts": charts(report),
        "sections": sections,
        "headline": headline(report),
    }


def scope_text(report: Report) -> str:
    """Whom the report covers, in words: a team, a system, both, or the whole organisation."""
    names = []
    if report.team is not None:
        names.append(report.team.name or report.team.slug)
    if report.system is not None:
        names.append(report.system.name or report.system.code)
    return " · ".join(names) if names else _("All teams")


def headline(report: Report) -> list[dict]:
    """The figures on top of the report, as cells."""
    figures = report.headline.figures
    return [{"label": str(column.label), **cell(column, figures[column.key])} for column in Headline.COLUMNS]


def summary_lines(report: Report) -> list[str]:
    """The headline as plain lines for a chat message."""
    lines = []
    for item in headline(report):
        value = item["value"]
        if item["kind"] == "rate":
            value = _("no data") if value is None else f"{round(value * 100, 1)} %"
        elif item["kind"] == "duration":
            value = "-" if value is None else _("%(minutes)s min") % {"minutes": round(value / 60, 1)}
        lines.append(f"{item['label']}: {value}")
    return lines


def filename(report: Report) -> str:
    parts = ["stability-report", report.period.label]
    parts += [scope for scope in (report.team and report.team.slug, report.system and report.system.code) if scope]
    return re.sub(r"[^A-Za-z0-9._-]+", "-", "-".join(parts)) + ".pdf"


def render_html(report: Report, *, generated_at: datetime | None = None) -> str:
    return render_to_string(
        TEMPLATE,
        {
            **context(report),
            "generated_at": generated_at or timezone.now(),
            "currency": settings.CURRENCY,
            "reader_zone": timezone.get_current_timezone_name(),
        },
    )


def report_pdf_bytes(report: Report, *, generated_at: datetime | None = None) -> bytes:
    """The report as an A4 PDF in the active language (WeasyPrint draws the inline SVG charts too)."""
    from weasyprint import HTML

    html = render_html(report, generated_at=generated_at)
    return HTML(string=html, base_url=str(settings.BASE_DIR)).write_pdf()
