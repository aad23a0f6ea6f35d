"""The stability report as a document: the tables and charts the page and the PDF share, the PDF itself
(WeasyPrint, from the page's own template with its print styles, A4), and the few lines a chat message
carries. Every figure comes from stability.reports.stability_report; nothing is computed here.

The PDF needs pango (Debian: libpango-1.0-0) and, for Chinese, a CJK font: fonts-noto-cjk.
"""

import re
from datetime import date, datetime
from decimal import Decimal

from django.conf import settings
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext_lazy

from incidents.models import ActionItem, CauseCategory, DetectionSource, Status, System, Team, Tier
from incidents.periods import Period
from stability import report_charts

TEMPLATE = "web/reports/pdf.html"
# Keys whose value is a duration in seconds, a rate in [0, 1], or a moment: how a cell reads.
DURATION_KEY = re.compile(r"(^|_)(mean|median|p50|p90|seconds|ttr|ttd|tta|mttr|mttd|mtta|downtime|delay|budget)(_|$)")
RATE_KEY = re.compile(r"(^|_)(rate|share|consumed|availability|compliance)(_|$)")
MOMENT_KEY = re.compile(r"(_at|^as_of|^start|^end|^generated)$")


def team_report(*, team: Team | None, period: Period, now: datetime, system: System | None = None) -> dict:
    from stability.reports import stability_report

    return stability_report(period=period, team=team, system=system, now=now)


# --- cells and tables -----------------------------------------------------------------------------


def _kind(key: str, value) -> str:
    if value is None:  # no data: a rate reads "no data", a duration "–"
        return "rate" if RATE_KEY.search(key) else "duration" if DURATION_KEY.search(key) else "text"
    if isinstance(value, bool):
        return "text"
    if isinstance(value, datetime | date) or (isinstance(value, str) and MOMENT_KEY.search(key)):
        return "moment"
    if isinstance(value, int | float | Decimal):
        if RATE_KEY.search(key) and not isinstance(value, int):
            return "rate"
        if DURATION_KEY.search(key):
            return "duration"
        return "number"
    return "text"


# Columns holding a choice's value, shown as the choice's label in the reader's language. An incident's
# and an item's statuses share the column "status" (and agree on "open").
CHOICES = {
    "detection_source": dict(DetectionSource.choices),
    "cause_category": dict(CauseCategory.choices),
    "status": {**dict(ActionItem.Status.choices), **dict(Status.choices)},
    "priority": dict(ActionItem.Priority.choices),
    "tier": dict(Tier.choices),
}


def cell(key: str, value) -> dict:
    """A value as the template shows it: `kind` picks the filter (duration, rate, moment, number, label,
    text)."""
    # "label": a short word (a choice, yes or no) the table keeps on one line.
    if isinstance(value, bool):
        return {"kind": "label", "value": _("Yes") if value else _("No")}
    if isinstance(value, str) and value in CHOICES.get(str(key), {}):
        return {"kind": "label", "value": str(CHOICES[str(key)][value])}
    if isinstance(value, list):
        if all(not isinstance(v, dict | list) for v in value):
            return {"kind": "text", "value": ", ".join(str(v) for v in value)}
        return {"kind": "text", "value": _("%(count)d entries") % {"count": len(value)}}
    if isinstance(value, dict):
        return {"kind": "text", "value": ", ".join(f"{k}: {v}" for k, v in value.items() if not isinstance(v, dict))}
    return {"kind": _kind(str(key), value), "value": value}


# Headings of the report's keys in the reader's language; other keys read as their words.
LABELS = {
    "incidents": gettext_lazy("Incidents"),
    "a_b": gettext_lazy("A/B-level incidents"),
    "c_d": gettext_lazy("C/D-level incidents"),
    "unrecovered": gettext_lazy("Not yet recovered"),
    "mttr_seconds": gettext_lazy("MTTR"),
    "previous_mttr_seconds": gettext_lazy("MTTR, previous period"),
    "mttr_change_seconds": gettext_lazy("MTTR change"),
    "follow_up_rate": gettext_lazy("5-minute follow-up rate"),
    "previous_follow_up_rate": gettext_lazy("Follow-up rate, previous period"),
    "follow_up_rate_change": gettext_lazy("Follow-up rate change"),
    "lowest_p0_availability": gettext_lazy("Lowest P0 availability (%)"),
    "lowest_p0_system": gettext_lazy("Lowest P0 system"),
    "on_time_completion_rate": gettext_lazy("Items done on time"),
    "overdue_items": gettext_lazy("Overdue items"),
    "by_level": gettext_lazy("By level"),
    "list": gettext_lazy("List"),
    "recovery": gettext_lazy("Recovery"),
    "time_to_detect": gettext_lazy("Time to detect"),
    "time_to_respond": gettext_lazy("Time to respond"),
    "time_to_recover": gettext_lazy("Time to recover"),
    "recovery_target_compliance": gettext_lazy("Recovery-target compliance"),
    "alerts": gettext_lazy("Alerts"),
    "overall": gettext_lazy("Overall"),
    "by_team": gettext_lazy("By team"),
    "by_system": gettext_lazy("By system"),
    "worst_missed_rules": gettext_lazy("Alert rules most often missed"),
    "availability": gettext_lazy("Availability"),
    "systems": gettext_lazy("Systems"),
    "closed_loop": gettext_lazy("Closed loop"),
    "on_time_completion": gettext_lazy("On-time completion"),
    "overdue": gettext_lazy("Overdue"),
    "incident_closed_loop": gettext_lazy("Incident closed-loop rate"),
    "health": gettext_lazy("Health score"),
    "detection": gettext_lazy("Detection"),
    "monitoring_share": gettext_lazy("Found by monitoring"),
    "customer_share": gettext_lazy("Found by customers"),
    "by_cause_category_and_source": gettext_lazy("By cause category and detection source"),
    "by_detection_source": gettext_lazy("By detection source"),
    "by_cause_category": gettext_lazy("By cause category"),
    "rate": gettext_lazy("Rate"),
    "count": gettext_lazy("Count"),
    "mean": gettext_lazy("Mean"),
    "median": gettext_lazy("Median"),
    "p90": gettext_lazy("p90"),
    "title": gettext_lazy("Title"),
    "level": gettext_lazy("Level"),
    "team": gettext_lazy("Team"),
    "system": gettext_lazy("System"),
    "owner": gettext_lazy("Owner"),
    "score": gettext_lazy("Score"),
    "rank": gettext_lazy("Rank"),
    "change": gettext_lazy("Change"),
    "occurred_at": gettext_lazy("Occurred at"),
    "recovered_at": gettext_lazy("Recovered at"),
    "handling": gettext_lazy("Handling"),
    "cause": gettext_lazy("Cause"),
    "time_to_recover_seconds": gettext_lazy("Time to recover"),
    "denominator": gettext_lazy("Counted"),
    "in_time": gettext_lazy("In time"),
    "missed": gettext_lazy("Missed"),
    "action_items": gettext_lazy("Items"),
    "action_items_closed": gettext_lazy("Items closed"),
    "as_of": gettext_lazy("As of"),
    "budget_consumed": gettext_lazy("Error budget consumed"),
    "by_owner": gettext_lazy("By owner"),
    "cause_category": gettext_lazy("Cause category"),
    "closed_at": gettext_lazy("Closed at"),
    "completed": gettext_lazy("Completed"),
    "completed_late": gettext_lazy("Completed late"),
    "days_overdue": gettext_lazy("Days overdue"),
    "detected_at": gettext_lazy("Detected at"),
    "detection_source": gettext_lazy("Detection source"),
    "downtime_seconds": gettext_lazy("Downtime"),
    "due_at": gettext_lazy("Due"),
    "due_in_period": gettext_lazy("Due in the period"),
    "end": gettext_lazy("End"),
    "error_budget_seconds": gettext_lazy("Error budget"),
    "excluded": gettext_lazy("Excluded"),
    "flapping_excluded": gettext_lazy("Flapping, excluded"),
    "follow_up": gettext_lazy("Alert follow-up"),
    "followed_up": pgettext_lazy("report column", "Followed up"),
    "generated_at": gettext_lazy("Generated at"),
    "headline": gettext_lazy("Headline"),
    "id": gettext_lazy("No."),
    "incident": gettext_lazy("Incident"),
    "incident_title": gettext_lazy("Incident title"),
    "items": gettext_lazy("Items"),
    "key": gettext_lazy("Name"),
    "kind": gettext_lazy("Kind"),
    "label": gettext_lazy("Period"),
    "max": gettext_lazy("Maximum"),
    "measured_seconds": gettext_lazy("Measured"),
    "median_delay": gettext_lazy("Median delay"),
    "met": gettext_lazy("Target met"),
    "mttr": gettext_lazy("MTTR"),
    "name": gettext_lazy("Name"),
    "not_yet_due": gettext_lazy("Not yet due"),
    "numerator": gettext_lazy("Numerator"),
    "on_time": gettext_lazy("On time"),
    "p90_delay": gettext_lazy("p90 delay"),
    "penalties": gettext_lazy("Penalties"),
    "penalty": gettext_lazy("Penalty"),
    "pending": pgettext_lazy("report column", "Pending"),
    "period": gettext_lazy("Period"),
    "period_seconds": gettext_lazy("Period length"),
    "periods": gettext_lazy("Periods"),
    "points": gettext_lazy("Points"),
    "previous": gettext_lazy("Previous period"),
    "previous_period": gettext_lazy("Previous period"),
    "previous_score": gettext_lazy("Previous score"),
    "priority": gettext_lazy("Priority"),
    "received": pgettext_lazy("report column", "Received"),
    "recovered": gettext_lazy("Recovered"),
    "scope": gettext_lazy("Scope"),
    "settings": gettext_lazy("Settings"),
    "start": gettext_lazy("Start"),
    "status": gettext_lazy("Status"),
    "target": gettext_lazy("Target"),
    "teams": gettext_lazy("Teams"),
    "terms": gettext_lazy("Terms"),
    "trend": gettext_lazy("Trend"),
    "value": gettext_lazy("Value"),
    "waived": gettext_lazy("Waived"),
    "weights": gettext_lazy("Weights"),
    "window_seconds": gettext_lazy("Window"),
    "within_target": gettext_lazy("Within target"),
}


def label(key) -> str:
    """A key as a heading: its label in the reader's language, else its words (`time_to_x` -> `Time to x`)."""
    if str(key) in LABELS:
        return str(LABELS[str(key)])
    for choices in CHOICES.values():  # a choice's value as a row's heading (counts by detection source, ...)
        if str(key) in choices:
            return str(choices[str(key)])
    text = str(key).replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def _is_flat(mapping: dict) -> bool:
    return all(not isinstance(v, dict | list) or _scalar_list(v) for v in mapping.values())


def _scalar_list(value) -> bool:
    return isinstance(value, list) and all(not isinstance(v, dict | list) for v in value)


def tables(value, *, key: str = "", depth: int = 0) -> list[dict]:
    """Readable tables of any part of the report: a flat mapping is a two-column table, a list of
    mappings a table with a column per key, a mapping of flat mappings one row per entry; deeper
    nesting gets a table of its own, titled by its path."""
    title = " · ".join(label(part) for part in str(key).split(" · ")) if key else ""
    if isinstance(value, list):
        if not value:
            return [{"title": title, "empty": True, "head": [], "rows": []}]
        if all(isinstance(row, dict) for row in value):
            columns = list(dict.fromkeys(k for row in value for k, v in row.items() if not isinstance(v, dict | list)))
            rows = [[cell(column, row.get(column)) for column in columns] for row in value]
            return [{"title": title, "head": [label(c) for c in columns], "rows": rows}]
        return [{"title": title, "head": [], "rows": [[cell(key, ", ".join(str(v) for v in value))]]}]
    if not isinstance(value, dict):
        return [{"title": title, "head": [], "rows": [[cell(key, value)]]}]
    found: list[dict] = []
    flat = {k: v for k, v in value.items() if not isinstance(v, dict | list) or _scalar_list(v)}
    nested = {k: v for k, v in value.items() if k not in flat}
    matrix = {k: v for k, v in nested.items() if isinstance(v, dict) and v and _is_flat(v)}
    if matrix and len(matrix) > 1 and len({tuple(v) for v in matrix.values()}) == 1:
        # e.g. {"A": {"recovered": 2, "within_target": 1, "rate": 0.5}, "B": {...}}: one row per key
        columns = list(next(iter(matrix.values())))
        rows = [[{"kind": "text", "value": label(k)}] + [cell(c, v.get(c)) for c in columns] for k, v in matrix.items()]
        found.append({"title": title, "head": ["", *(label(c) for c in columns)], "rows": rows})
        nested = {k: v for k, v in nested.items() if k not in matrix}
    if flat:
        rows = [[{"kind": "text", "value": label(k)}, cell(k, v)] for k, v in flat.items()]
        found.insert(0, {"title": title, "head": [], "rows": rows, "pairs": True})
    for child_key, child in nested.items():
        path = f"{key} · {child_key}" if key and depth else str(child_key)
        found.extend(tables(child, key=path if depth else child_key, depth=depth + 1))
    return found


# --- page and PDF ---------------------------------------------------------------------------------


def _series(report: dict, name: str):
    """A trend series from the report: [(label, value)], or [] when the report has none."""
    trend = report.get("trend") or report.get("trends") or {}
    if isinstance(trend, dict):
        points = trend.get(name) or []
    else:
        points = [{"period": row.get("period"), "value": row.get(name)} for row in trend]
    return [(str(p.get("period") or p.get("label")), p.get("value")) for p in points if isinstance(p, dict)]


def charts(report: dict) -> dict:
    """The page's and PDF's charts as inline SVG, from the report's own figures."""
    drawn = {}
    incidents = report.get("incidents") or {}
    if isinstance(incidents.get("by_level"), dict):
        drawn["levels"] = report_charts.level_counts(incidents["by_level"])
    mttr = _series(report, "mttr")
    if mttr:
        drawn["mttr"] = report_charts.mttr_trend(mttr)
    follow = _series(report, "follow_up_rate")
    if follow:
        drawn["follow_up"] = report_charts.follow_up_trend(follow)
    ranking = _ranking(report)
    if ranking:
        drawn["ranking"] = report_charts.health_ranking(ranking)
    return drawn


def _ranking(report: dict) -> list[tuple[str, float]]:
    health = report.get("health") or report.get("health_scores") or {}
    rows = health.get("teams") if isinstance(health, dict) else health
    ranked = []
    for row in rows or []:
        score = row.get("score")
        if isinstance(score, dict):
            score = score.get("total")
        if score is not None:
            ranked.append((str(row.get("name") or row.get("team")), float(score)))
    return ranked


def context(report: dict) -> dict:
    """What the report templates need: the dict itself, its charts and its sections as tables."""
    from stability.reports import incident_line

    skip = {"period", "scope", "generated_at", "headline", "trend", "trends"}
    sections = []
    for key, value in report.items():
        if key in skip:
            continue
        if key == "incidents":
            # The list in the weekly report's words (as the Markdown has it), not a table of 17 columns.
            rest = {k: v for k, v in value.items() if k != "list"}
            entries = [{"id": row["id"], "text": incident_line(row)} for row in value["list"]]
            sections.append({"key": key, "title": label(key), "tables": tables(rest, key=""), "entries": entries})
        else:
            sections.append({"key": key, "title": label(key), "tables": tables(value, key="")})
    return {
        "report": report,
        "report_period": period_label(report),
        "report_scope": scope_text(report),
        "charts": charts(report),
        "sections": sections,
        "headline": headline(report),
    }


def scope_text(report: dict) -> str:
    """Whom the report covers, in words: a team, a system, both, or the whole organisation."""
    scope = report.get("scope") or {}
    names = []
    for key in ("team", "system"):
        value = scope.get(key)
        if isinstance(value, dict):
            value = value.get("name") or value.get("slug") or value.get("code")
        if value:
            names.append(str(value))
    return " · ".join(names) if names else _("All teams")


def headline(report: dict) -> list[dict]:
    """The figures on top of the report, as cells."""
    top = report.get("headline") or {}
    return [{"label": label(k), **cell(k, v)} for k, v in top.items() if not isinstance(v, dict | list)]


def summary_lines(report: dict) -> list[str]:
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


def period_label(report: dict) -> str:
    period = report.get("period")
    return str(period.get("label") if isinstance(period, dict) else period or "")


def filename(report: dict) -> str:
    scope = report.get("scope") or {}
    parts = ["stability-report", period_label(report)]
    for key in ("team", "system"):
        value = scope.get(key)
        if isinstance(value, dict):
            value = value.get("slug") or value.get("code")
        if value:
            parts.append(str(value))
    return re.sub(r"[^A-Za-z0-9._-]+", "-", "-".join(parts)) + ".pdf"


def render_html(report: dict, *, generated_at: datetime | None = None) -> str:
    return render_to_string(
        TEMPLATE,
        {
            **context(report),
            "generated_at": generated_at or timezone.now(),
            "currency": settings.CURRENCY,
            "reader_zone": timezone.get_current_timezone_name(),
        },
    )


def render_pdf(report: dict, *, generated_at: datetime | None = None) -> bytes:
    """The report as an A4 PDF in the active language (WeasyPrint draws the inline SVG charts too)."""
    from weasyprint import HTML

    html = render_html(report, generated_at=generated_at)
    return HTML(string=html, base_url=str(settings.BASE_DIR)).write_pdf()
