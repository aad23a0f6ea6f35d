"""The stability report as a document: the page and the PDF (WeasyPrint, from the page's own template with
its print styles, A4) open with the narrative (stability.report_narrative), then the key figures and the
charts, then each section's tables (stability.report_sections) as the appendix; and the lines an email or
chat message carries. Every figure comes from stability.reports.build_report; nothing is computed here.
The page shows the first rows of a long list (`rows`) and links the rest; the PDF keeps every row.

The PDF needs pango (Debian: libpango-1.0-0) and, for Chinese, a CJK font: fonts-noto-cjk.
"""

import re
from datetime import datetime

from django.conf import settings
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from incidents.durations import human_duration
from stability import report_charts, report_layout, report_narrative
from stability.report_sections import (
    Column,
    Kind,
    Section,
    Table,
    availability_text,
    duration_change_text,
    percent_text,
    points_text,
    shown,
    written,
)
from stability.reports import Report

TEMPLATE = "web/reports/pdf.html"


# --- cells and tables -----------------------------------------------------------------------------

# What a missing figure reads as, by its column's kind: a rate "no data", a duration "–".
_MISSING = {Kind.RATE: "rate", Kind.DURATION: "duration"}


def cell(column: Column, value) -> dict:
    """A value as the template shows it (web_tags.report_cell): `kind` picks the filter (duration, rate,
    moment, number, label, text), from the column's declared kind; a code is shown in small print; the kinds
    written out in stability.report_sections (availability, exact seconds, changes, ...) come as a "figure",
    their text ready."""
    if column.kind is Kind.CHOICE:
        if isinstance(value, bool):
            return {"kind": "label", "value": _("Yes") if value else _("No")}
        if value in column.choices:
            return {"kind": "label", "value": str(column.choices[value])}
        return {"kind": "text", "value": value}
    if written(column.kind):
        return {"kind": "figure", "value": shown(column, value)}
    if value is None or column.kind is Kind.LIST:
        return {"kind": _MISSING.get(column.kind, "text"), "value": None}
    if column.kind is Kind.DECIMAL:
        return {"kind": "text", "value": value}  # a score, as written
    return {"kind": column.kind.value, "value": value}


def _label_cell(text) -> dict:
    return {"kind": "text", "value": str(text)}


def table_context(table: Table, *, rows: int | None = None, start: int = 0) -> dict | None:
    """A table as the template draws it: title, head, rows of cells; `pairs` a figure per row, headed by its
    label; `wide` (more than six columns: landscape pages in the PDF). `rows`: at most that many rows from
    `start` (the page), `total` saying how many there are. None: nothing to draw (an empty list, shown
    among its section's pairs)."""
    if table.pairs:
        (figures,) = table.rows
        # A list is a table of its own, unless empty.
        listed = [c for c in table.columns if c.kind is not Kind.LIST or not figures.get(c.key)]
        if not listed:
            return None
        cells = [[_label_cell(column.label), cell(column, figures.get(column.key))] for column in listed]
        return {"title": table.title, "head": [], "rows": cells, "pairs": True, "wide": False, "key": table.key}
    if not table.rows:
        return None
    head = [str(column.label) for column in table.columns]
    end = len(table.rows) if rows is None else start + rows
    chosen = table.rows[start:end]
    cells = [[cell(column, row.get(column.key)) for column in table.columns] for row in chosen]
    if table.row_labels:
        head = ["", *head]
        labels = table.row_labels[start:end]
        cells = [[_label_cell(label), *row] for label, row in zip(labels, cells, strict=True)]
    return {
        "title": table.title,
        "head": head,
        "rows": cells,
        "wide": table.wide,
        "key": table.key,
        "start": start,
        "total": len(table.rows),
        "more": len(table.rows) - len(chosen) - start,
    }


def section_context(section: Section, *, rows: int | None = None) -> dict:
    drawn = (table_context(table, rows=rows) for table in section.tables())
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


def report_query(report: Report) -> dict:
    """The report's period and scope as the page's query parameters."""
    query = {"period": report.period.label}
    if report.team is not None:
        query["team"] = report.team.slug
    if report.system is not None:
        query["system"] = report.system.code
    return query


def _href(target: report_narrative.Target | None, query: dict) -> str:
    """Where a narrative line leads, as a link of the page (relative: the page and its PDF)."""
    if target is None:
        return ""
    try:
        if target.kind == report_narrative.INCIDENT:
            return reverse("web:incident-detail", kwargs={"pk": target.id})
        if target.kind == report_narrative.ITEM:
            if target.incident is None:  # an item of a drill, a meeting, an audit: its page leads to it
                return reverse("web:item-detail", kwargs={"item_pk": target.id})
            return reverse("web:incident-detail", kwargs={"pk": target.incident}) + f"#item-{target.id}"
        if target.kind == report_narrative.INCIDENTS:
            return reverse("web:incident-list") + "?" + urlencode({**query, "ordering": "occurred_at"})
        if target.kind == report_narrative.MISSED_ALERTS:
            return reverse("web:alerts-missed") + "?" + urlencode({**query, **dict(target.filters)})
        if target.kind == report_narrative.APPENDIX:
            return reverse("web:reports") + "?" + urlencode({**query, "appendix": target.table})
    except NoReverseMatch:  # a page this installation does not have
        return ""
    return ""


_RECORDS = {report_narrative.INCIDENT, report_narrative.ITEM}
_LINK_TEXT = {
    report_narrative.INCIDENT: lambda target: f"#{target.id}",
    report_narrative.ITEM: lambda target: f"#{target.id}",
    report_narrative.INCIDENTS: lambda target: _("the incident list"),
    report_narrative.MISSED_ALERTS: lambda target: _("missed alerts"),
    report_narrative.APPENDIX: lambda target: _("the table"),
}


def narrative_context(report: Report, *, rows: int | None = None) -> list[dict]:
    """The narrative's paragraphs as the template draws them: each line with its link; a paragraph with
    lines left out (`rows`: the page) links where every one of them is."""
    query = report_query(report)
    drawn = []
    for paragraph in report_narrative.narrative(report, limit=rows):
        lines = [
            {
                "text": line.text,
                "subject": line.subject,
                "code": line.code if line.code != line.subject else "",
                "href": _href(line.target, query),
                "link": _LINK_TEXT[line.target.kind](line.target) if line.target else "",
                # A link to a page, not a record: not printed (the PDF is forwarded).
                "aside": line.target is not None and line.target.kind not in _RECORDS,
            }
            for line in paragraph.lines
        ]
        drawn.append(
            {
                "key": paragraph.key,
                "heading": paragraph.heading,
                "numbered": paragraph.numbered,
                "empty": paragraph.empty,
                "lines": lines,
                "total": paragraph.total,
                "more": paragraph.more,
                "more_href": _href(paragraph.everything, query) if paragraph.more else "",
            }
        )
    return drawn


def context(report: Report, *, rows: int | None = None) -> dict:
    """What the report templates need: the report, its title, its narrative, its key figures, its charts and
    its sections as the appendix's tables. `rows`: at most that many lines of a narrative paragraph and rows
    of a table (the page; the PDF has them all)."""
    sections = [section_context(s, rows=rows) for s in report.sections if s.key not in _NOT_TABLED]
    return {
        "report": report,
        "report_title": report_narrative.title(report.period),
        "report_period": report.period.label,
        "report_scope": scope_text(report),
        "report_query": urlencode(report_query(report)),
        "narrative": narrative_context(report, rows=rows),
        "separator": report_narrative.separator(),
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
    """The key figures, in human units: each a label, a value, what it is about (`name`, `code` in small
    print) and a detail (the previous period, the split)."""
    head = report.headline.figures
    previous = _("previous period %(before)s, %(change)s")
    items = [
        {
            "label": _("Incidents"),
            "value": f"{head['incidents']:,}",
            "detail": _("A/B-level %(ab)d, C/D-level %(cd)d, %(open)d not yet recovered")
            % {"ab": head["a_b"], "cd": head["c_d"], "open": head["unrecovered"]},
        },
        {
            "label": _("MTTR"),
            "value": human_duration(head["mttr_seconds"]),
            "detail": previous
            % {
                "before": human_duration(head["previous_mttr_seconds"]),
                "change": duration_change_text(head["mttr_change_seconds"]),
            }
            if head["previous_mttr_seconds"] is not None and head["mttr_seconds"] is not None
            else "",
        },
        {
            "label": _("5-minute follow-up rate"),
            "value": percent_text(head["follow_up_rate"]),
            "detail": previous
            % {
                "before": percent_text(head["previous_follow_up_rate"]),
                "change": points_text(head["follow_up_rate_change"]),
            }
            if head["follow_up_rate_change"] is not None
            else "",
        },
    ]
    if head["lowest_p0_system"]:
        items.append(
            {
                "label": _("Lowest P0 availability"),
                "value": availability_text(head["lowest_p0_availability"]),
                "name": head.get("lowest_p0_system_name") or head["lowest_p0_system"],
                "code": head["lowest_p0_system"],
                "detail": _("year to date %(year)s")
                % {"year": availability_text(head.get("lowest_p0_year_to_date_availability"))},
            }
        )
    items.append(
        {
            "label": _("Items done on time"),
            "value": percent_text(head["on_time_completion_rate"]),
            "detail": ngettext("%(count)d overdue", "%(count)d overdue", head["overdue_items"])
            % {"count": head["overdue_items"]},
        }
    )
    return items


SUMMARY_LINES = 10  # lines of a paragraph in an email or chat message; the PDF and the page have them all


def summary_lines(report: Report) -> list[str]:
    """The report for an email or chat message, as plain lines: its title and the narrative, each paragraph's
    first SUMMARY_LINES lines."""
    more = lambda paragraph: _("… and %(count)d more: see the report.") % {"count": paragraph.more}  # noqa: E731
    paragraphs = report_narrative.narrative(report, limit=SUMMARY_LINES)
    return [report_narrative.title(report.period), *report_narrative.plain_lines(paragraphs, more=more)]


def filename(report: Report) -> str:
    parts = ["stability-report", report.period.label]
    parts += [scope for scope in (report.team and report.team.slug, report.system and report.system.code) if scope]
    return re.sub(r"[^A-Za-z0-9._-]+", "-", "-".join(parts)) + ".pdf"


def render_html(report: Report, *, generated_at: datetime | None = None) -> str:
    """The HTML the PDF is made from: the page's report with every table fitted to A4 (every column kept:
    stability.report_layout)."""
    drawn = context(report)
    return render_to_string(
        TEMPLATE,
        {
            **drawn,
            "sections": report_layout.on_paper(drawn["sections"]),
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
