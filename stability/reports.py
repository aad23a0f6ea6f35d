"""The stability report (稳定性报告) of a period and a scope: every figure from the selectors that define
it (incidents.selectors, stability.selectors), gathered here and never recomputed.

build_report() runs the queries once and returns a Report: its typed sections (stability.report_sections)
hold plain data (numbers, strings of exact decimals, ISO times), which report_json (the JSON API; also
stability_report) gives as:

- period: label, kind, start, end, previous (label); scope: team / system or null; generated_at;
- headline: incidents, a_b and c_d counts, unrecovered, mttr_seconds with its previous value and
  change, follow_up_rate with previous and change, lowest availability of the P0 systems,
  on_time_completion_rate, overdue_items;
- incidents: by_level and the list in the weekly-report form (when, what, how found, handling,
  cause, level, time to recover, closed-loop status);
- recovery: MTTD / MTTA / MTTR (count, mean, median, p90 in seconds), recovery-target compliance
  overall and per level;
- trend: the last TREND_PERIODS periods of the same kind: incidents by level and MTTR
  (`mttr`: [{period, value}]), follow-up rate (`follow_up_rate`: [{period, value, ...counts}]);
- alerts: follow-up rate overall, per team (ranked, best first), per system, worst-missed alert
  rules (most missed first);
- availability: per system against its target, error budget and share consumed;
- closed_loop: closed_loop_metrics (on-time completion, overdue by owner and team, incident
  closed-loop rate);
- health: health_scores (each term, rank, change), for the teams in scope;
- detection: share detected by monitoring (monitoring_share) and by customers (customer_share),
  counts by detection source and by cause category, and per cause category the counts by source
  with both shares (by_cause_category_and_source).

Per team and per system, the alerts section lists every team and system of the scope, those without
alerts with zero counts and rate null.

The query count depends on the sections, never on how many incidents, alerts or teams there are.
"""

import html
import io
import json
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone, translation
from django.utils.translation import gettext

from incidents import spreadsheet
from incidents.durations import human_duration
from incidents.models import ActionItem, DetectionSource, Incident, System, Team, Tier
from incidents.periods import Period
from incidents.selectors import closed_loop_metrics, in_period, incident_metrics, incident_trend
from stability import report_sections
from stability.models import AlertOccurrence
from stability.selectors import (
    detection_by_cause_category,
    follow_up_breakdown,
    follow_up_rate,
    follow_up_trend,
    health_scores,
    system_availability,
)

TREND_PERIODS = 12
WORST_RULES = 10


def trailing_periods(period: Period, count: int = TREND_PERIODS) -> list[Period]:
    """`count` periods of the same kind back to back, oldest first, ending with `period`."""
    periods = [period]
    while len(periods) < count:
        periods.append(periods[-1].previous())
    return periods[::-1]


def _change(current, previous):
    return None if current is None or previous is None else current - previous


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _plain(value):
    """Decimals as JSON numbers would lose digits: keep them as strings of the exact value."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: _plain(v) for key, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _item_count(condition: Q) -> Coalesce:
    items = ActionItem.objects.filter(condition, incident=OuterRef("pk")).order_by()
    return Coalesce(Subquery(items.values("incident").annotate(n=Count("pk")).values("n")), 0)


def _incident_rows(incidents) -> list[dict]:
    """The period's incidents as the weekly report lists them, with each one's closed-loop status, in one
    query (plain rows: a busy month lists a couple of thousand)."""
    # Counted per incident through the items' incident index, not by joining every item of the database.
    final = Q(status__in=ActionItem.FINAL_STATUSES)
    rows = (
        incidents.annotate(
            items=_item_count(Q()),
            items_closed=_item_count(final),
        )
        .order_by("occurred_at", "pk")
        .values(
            "pk",
            "occurred_at",
            "detected_at",
            "recovered_at",
            "title",
            "team__slug",
            "level",
            "detection_source",
            "handling",
            "cause",
            "cause_category",
            "status",
            "closed_at",
            "items",
            "items_closed",
        )
    )
    return [
        {
            "id": row["pk"],
            "occurred_at": _iso(row["occurred_at"]),
            "detected_at": _iso(row["detected_at"]),
            "recovered_at": _iso(row["recovered_at"]),
            "title": row["title"],
            "team": row["team__slug"],
            "level": row["level"],
            "detection_source": row["detection_source"],
            "handling": row["handling"],
            "cause": row["cause"],
            "cause_category": row["cause_category"],
            # Incident.time_to_recover
            "time_to_recover_seconds": (
                (row["recovered_at"] - row["occurred_at"]).total_seconds() if row["recovered_at"] else None
            ),
            "status": row["status"],
            "closed_at": _iso(row["closed_at"]),
            "action_items": row["items"],
            "action_items_closed": row["items_closed"],
        }
        for row in rows
    ]


@dataclass(frozen=True)
class Report:
    """One report of a period and scope: its sections (stability.report_sections), each holding its figures
    as the JSON API gives them. Built once (build_report); every presenter reads the same value."""

    period: Period
    team: Team | None
    system: System | None
    generated_at: datetime
    headline: report_sections.Headline
    incidents: report_sections.Incidents
    recovery: report_sections.Recovery
    trend: report_sections.Trend
    alerts: report_sections.Alerts
    availability: report_sections.Availability
    closed_loop: report_sections.ClosedLoop
    health: report_sections.Health
    detection: report_sections.Detection

    @property
    def sections(self) -> tuple[report_sections.Section, ...]:
        return tuple(getattr(self, section.key) for section in report_sections.SECTIONS)

    @property
    def scope(self) -> dict:
        return {
            "team": {"slug": self.team.slug, "name": self.team.name} if self.team else None,
            "system": {"code": self.system.code, "name": self.system.name} if self.system else None,
        }


@dataclass(frozen=True)
class _Scope:
    """What a team or a system narrows: incidents, the alerts' condition (on occurrences and day counts
    alike), systems and teams."""

    incidents: QuerySet
    alerts: Q
    systems: QuerySet
    teams: QuerySet


def _scope(*, team: Team | None, system: System | None) -> _Scope:
    incidents = Incident.objects.all()
    alerts = Q()
    systems = System.objects.all()
    teams = Team.objects.all()
    if team is not None:
        incidents = incidents.filter(team=team)
        alerts &= Q(team=team)
        systems = systems.filter(team=team)
        teams = teams.filter(pk=team.pk)
    if system is not None:
        incidents = incidents.filter(pk__in=Incident.objects.filter(systems=system).values("pk"))
        alerts &= Q(system=system)
        systems = systems.filter(pk=system.pk)
        teams = teams.filter(pk=system.team_id)
    return _Scope(incidents=incidents, alerts=alerts, systems=systems, teams=teams)


def _headline(*, metrics: dict, recovery_trend: list, follow_up: dict, alert_trend: list, availability, closed_loop):
    by_level = metrics["by_level"]
    mttr = metrics["time_to_recover"]["mean"]
    # The trend's previous period is period.previous(); its MTTR is incident_metrics' mean, in the same query.
    mttr_before = recovery_trend[-2]["mttr"] if len(recovery_trend) > 1 else None
    follow_up_before = alert_trend[-2]["rate"] if len(alert_trend) > 1 else None
    p0 = [row for row in availability if row["tier"] == Tier.P0]
    lowest_p0 = min(p0, key=lambda row: row["availability"]) if p0 else None
    return {
        "incidents": metrics["incidents"],
        "a_b": by_level["A"] + by_level["B"],
        "c_d": by_level["C"] + by_level["D"],
        "unrecovered": metrics["unrecovered"],
        "mttr_seconds": mttr,
        "previous_mttr_seconds": mttr_before,
        "mttr_change_seconds": _change(mttr, mttr_before),
        "follow_up_rate": follow_up["rate"],
        "previous_follow_up_rate": follow_up_before,
        "follow_up_rate_change": _change(follow_up["rate"], follow_up_before),
        "lowest_p0_availability": lowest_p0["availability"] if lowest_p0 else None,
        "lowest_p0_system": lowest_p0["system"] if lowest_p0 else None,
        "on_time_completion_rate": closed_loop["on_time_completion"]["rate"],
        "overdue_items": closed_loop["overdue"]["count"],
    }


def _alerts(*, follow_up: dict, breakdown: dict) -> dict:
    return {
        "window_seconds": settings.FOLLOW_UP_WINDOW_SECONDS,
        "overall": follow_up,
        "by_team": sorted(breakdown["team"], key=lambda g: (g["rate"] is None, -(g["rate"] or 0), str(g["key"]))),
        "by_system": breakdown["system"],
        "worst_missed_rules": sorted(
            (g for g in breakdown["alertname"] if g["missed"]), key=lambda g: (-g["missed"], str(g["key"]))
        )[:WORST_RULES],
    }


def _detection(*, metrics: dict, detection: dict) -> dict:
    return {
        "monitoring_share": metrics["detected_by_monitoring"]["rate"],
        "by_detection_source": metrics["by_detection_source"],
        "by_cause_category": metrics["by_cause_category"],
        "customer_share": detection["overall"]["customer_share"],
        "by_cause_category_and_source": detection["by_cause_category"],
    }


def build_report(
    *, period: Period, now: datetime | None = None, team: Team | None = None, system: System | None = None
) -> Report:
    """The report of `period` for everyone, one team or one system, as of `now` (see the module): every
    query of it, once. The presenters (report_json, report_markdown, report_csv_tables, the page and PDF of
    stability.report_pdf) read what it returns and query nothing."""
    now = now or timezone.now()
    scope = _scope(team=team, system=system)
    in_the_period = in_period(scope.incidents, period)
    metrics = incident_metrics(incidents=in_the_period)
    availability = system_availability(period=period, now=now, systems=scope.systems)
    occurrences = AlertOccurrence.objects.filter(scope.alerts)
    follow_up = follow_up_rate(occurrences=occurrences, period=period, now=now)["overall"]
    periods = trailing_periods(period)
    recovery_trend = incident_trend(incidents=scope.incidents, periods=periods)
    health = health_scores(period=period, now=now, teams=scope.teams)
    # Every team and system of the scope, those without alerts too (rate None), read from the
    # sections above rather than queried again.
    breakdown = follow_up_breakdown(
        scope=scope.alerts,
        period=period,
        dimensions=("team", "system", "alertname"),
        now=now,
        all_keys={
            "team": [row["team"] for row in health["teams"]],
            "system": [row["system"] for row in availability],
        },
    )
    alert_trend = follow_up_trend(scope=scope.alerts, periods=periods, now=now)
    closed_loop = closed_loop_metrics(period=period, team=team, system=system, now=now)
    detection = detection_by_cause_category(incidents=in_the_period)
    headline = _headline(
        metrics=metrics,
        recovery_trend=recovery_trend,
        follow_up=follow_up,
        alert_trend=alert_trend,
        availability=availability,
        closed_loop=closed_loop,
    )
    recovery = {key: metrics[key] for key in (*report_sections.MEASURES, "recovery_target_compliance")}
    trend = {
        "periods": [p.label for p in periods],
        "incidents": recovery_trend,
        "mttr": [{"period": row["period"], "value": row["mttr"]} for row in recovery_trend],
        "follow_up_rate": [{"value": row["rate"], **row} for row in alert_trend],
    }
    return Report(
        period=period,
        team=team,
        system=system,
        generated_at=now,
        headline=report_sections.Headline(_plain(headline)),
        # Plain already (ISO strings, floats): a busy month's couple of thousand rows skip _plain's walk.
        incidents=report_sections.Incidents(
            {"by_level": _plain(metrics["by_level"]), "list": _incident_rows(in_the_period)}
        ),
        recovery=report_sections.Recovery(_plain(recovery)),
        trend=report_sections.Trend(_plain(trend)),
        alerts=report_sections.Alerts(_plain(_alerts(follow_up=follow_up, breakdown=breakdown))),
        availability=report_sections.Availability(_plain({"systems": availability})),
        closed_loop=report_sections.ClosedLoop(_plain(closed_loop)),
        health=report_sections.Health(_plain(health)),
        detection=report_sections.Detection(_plain(_detection(metrics=metrics, detection=detection))),
    )


def report_json(report: Report) -> dict:
    """The report as the JSON API gives it (docs/report.md): period, scope, generated_at, then a key per
    section with its figures."""
    period = report.period
    return {
        "period": {
            "label": period.label,
            "kind": period.kind,
            "start": period.start.isoformat(),
            "end": period.end.isoformat(),
            "previous": period.previous().label,
        },
        "scope": report.scope,
        "generated_at": report.generated_at.isoformat(),
        **{section.key: section.figures for section in report.sections},
    }


def stability_report(
    *, period: Period, now: datetime | None = None, team: Team | None = None, system: System | None = None
) -> dict:
    """The report of `period` for everyone, one team or one system, as of `now`, as the JSON API gives it."""
    return report_json(build_report(period=period, now=now, team=team, system=system))


# --- exports -------------------------------------------------------------------------------------


def _rate_text(value) -> str:
    return "–" if value is None else f"{float(value) * 100:.1f}%"


def _follow_up_groups(name: str) -> Callable[[Report], list[dict]]:
    dimension = {"by_team": "team", "by_system": "system", "worst_missed_rules": "alertname"}[name]
    return lambda report: [{dimension: g["key"], **g} for g in report.alerts.figures[name]]


def _trend_rows(report: Report) -> list[dict]:
    trend = report.trend.figures
    return [
        {
            "period": incidents["period"],
            "incidents": incidents["incidents"],
            **{f"level_{level}": n for level, n in incidents["by_level"].items()},
            "mttr_seconds": incidents["mttr"],
            "follow_up_rate": alerts["rate"],
            "follow_up_denominator": alerts["denominator"],
        }
        for incidents, alerts in zip(trend["incidents"], trend["follow_up_rate"], strict=True)
    ]


def _detection_rows(report: Report) -> list[dict]:
    return [
        {
            "cause_category": row["cause_category"],
            "incidents": row["incidents"],
            **row["by_detection_source"],
            "monitoring_share": row["monitoring_share"],
            "customer_share": row["customer_share"],
        }
        for row in report.detection.figures["by_cause_category_and_source"]
    ]


def _health_rows(report: Report) -> list[dict]:
    return [
        {
            "rank": row["rank"],
            "team": row["team"],
            "name": row["name"],
            "score": row["score"],
            "previous_score": row["previous_score"],
            "change": row["change"],
            **{f"{term}_points": figures.get("points") for term, figures in row["terms"].items()},
        }
        for row in report.health.figures["teams"]
    ]


# The CSV tables by file name stem (the API's `table`, the zip's files): each a function of the report
# giving its rows; a row's keys are the columns, in the order they first appear.
CSV_TABLES: dict[str, Callable[[Report], list[dict]]] = {
    "headline": lambda report: [{"figure": key, "value": value} for key, value in report.headline.figures.items()],
    "incidents": lambda report: report.incidents.figures["list"],
    "incidents_by_level": lambda report: [
        {"level": level, "incidents": n} for level, n in report.incidents.figures["by_level"].items()
    ],
    "recovery": lambda report: [
        {"measure": name, **{k: report.recovery.figures[name][k] for k in ("count", "mean", "median", "p90")}}
        for name in report_sections.MEASURES
    ],
    "recovery_compliance_by_level": lambda report: [
        {"level": level, **figures}
        for level, figures in report.recovery.figures["recovery_target_compliance"]["by_level"].items()
    ],
    "trend": _trend_rows,
    "alerts_by_team": _follow_up_groups("by_team"),
    "alerts_by_system": _follow_up_groups("by_system"),
    "worst_missed_rules": _follow_up_groups("worst_missed_rules"),
    "availability": lambda report: report.availability.figures["systems"],
    "overdue_items": lambda report: report.closed_loop.figures["overdue"]["items"],
    "health_scores": _health_rows,
    "detection_by_cause": _detection_rows,
}


def _csv_text(rows: list[dict]) -> str:
    buffer = io.StringIO()
    columns = list(dict.fromkeys(k for row in rows for k in row if k != "key")) or ["(none)"]
    writer = spreadsheet.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_cell(v) for k, v in row.items()})
    return buffer.getvalue()


def report_csv_table(report: Report, name: str) -> str:
    """One table of the report as CSV text (`name` one of CSV_TABLES)."""
    return _csv_text(CSV_TABLES[name](report))


def report_csv_tables(report: Report) -> dict[str, str]:
    """The report's tables as CSV texts, by file name stem (the API's single tables and the zip)."""
    return {name: _csv_text(rows(report)) for name, rows in CSV_TABLES.items()}


def _csv_cell(value):
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return value


def report_csv_zip(report: Report) -> bytes:
    """Every table of report_csv_tables as <name>.csv in one zip (UTF-8 with a BOM, so that Excel reads
    Chinese right)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in report_csv_tables(report).items():
            archive.writestr(f"{name}.csv", "\ufeff" + text)
    return buffer.getvalue()


def report_markdown(report: Report, *, language: str) -> str:
    """The report in the form of the team's weekly and monthly reports, ready to paste."""
    with translation.override(language):
        return _markdown(report)


def _local(moment: str | None, pattern: str) -> str:
    if moment is None:
        return "–"
    return timezone.localtime(datetime.fromisoformat(moment), timezone.get_default_timezone()).strftime(pattern)


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-!|~])")
_LINE_BREAKS = re.compile(r"\s*[\r\n]+\s*")


def markdown_text(text: str) -> str:
    """User text (titles, causes, handling, names) as literal text in Markdown: each Markdown control
    character backslash-escaped, HTML's special characters as entities (a title `<script>` stays text
    wherever the Markdown is rendered), line breaks as spaces (a line of its own could start a heading)."""
    return html.escape(_MARKDOWN_SPECIAL.sub(r"\\\1", _LINE_BREAKS.sub(" ", text)), quote=False)


def _as_is(text: str) -> str:
    return text


def incident_line(row: dict, *, escape: Callable[[str], str] = _as_is) -> str:
    """One incident of the report's list as the weekly report writes it (the Markdown, the page and the
    PDF): when, what, level and how it was found, handling, cause, recovery, closed loop. `escape` is
    applied to the user's text (markdown_text for the Markdown; the page and PDF templates escape HTML)."""
    text = gettext("%(when)s %(title)s [level %(level)s, found by %(found)s].") % {
        "when": _local(row["occurred_at"], gettext("%m-%d %H:%M")),
        "title": escape(row["title"]),
        "level": row["level"],
        "found": dict(DetectionSource.choices).get(row["detection_source"], row["detection_source"]),
    }
    if row["handling"]:
        text += " " + gettext("Handling: %(handling)s.") % {"handling": escape(row["handling"].rstrip("。."))}
    if row["cause"]:
        text += " " + gettext("Cause: %(cause)s.") % {"cause": escape(row["cause"].rstrip("。."))}
    if row["recovered_at"]:
        text += " " + gettext("Recovered at %(at)s, after %(ttr)s.") % {
            "at": _local(row["recovered_at"], "%H:%M"),
            "ttr": human_duration(row["time_to_recover_seconds"]),
        }
    else:
        text += " " + gettext("Not yet recovered.")
    text += " " + gettext("Closed loop: %(closed)d of %(items)d items done.") % {
        "closed": row["action_items_closed"],
        "items": row["action_items"],
    }
    return text


def _item(text: str) -> str:
    return "- " + text


def _headline_lines(report: Report) -> list[str]:
    head = report.headline.figures
    overall = report.alerts.figures["overall"]
    detection = report.detection.figures
    lines = [
        gettext("A/B-level incidents %(ab)d, C/D-level %(cd)d (%(open)d not yet recovered).")
        % {"ab": head["a_b"], "cd": head["c_d"], "open": head["unrecovered"]},
        gettext("MTTR %(mttr)s (previous period %(before)s).")
        % {"mttr": human_duration(head["mttr_seconds"]), "before": human_duration(head["previous_mttr_seconds"])},
        gettext("5-minute alert follow-up rate %(rate)s (%(in_time)d of %(denominator)d).")
        % {
            "rate": _rate_text(head["follow_up_rate"]),
            "in_time": overall["in_time"],
            "denominator": overall["denominator"],
        },
    ]
    if head["lowest_p0_system"]:
        lines.append(
            gettext("Lowest availability of a P0 system: %(system)s %(availability)s%%.")
            % {"system": markdown_text(head["lowest_p0_system"]), "availability": head["lowest_p0_availability"]}
        )
    lines.append(
        gettext("Found by monitoring %(monitoring)s, by customers %(customer)s.")
        % {
            "monitoring": _rate_text(detection["monitoring_share"]),
            "customer": _rate_text(detection["customer_share"]),
        }
    )
    lines.append(
        gettext("Closed-loop items done on time %(rate)s; %(overdue)d overdue.")
        % {"rate": _rate_text(head["on_time_completion_rate"]), "overdue": head["overdue_items"]}
    )
    for row in report.health.figures["teams"]:
        lines.append(
            gettext("Health score %(team)s: %(score)s, rank %(rank)d.")
            % {"team": markdown_text(row["name"]), "score": row["score"], "rank": row["rank"]}
        )
    return [_item(line) for line in lines]


def _incident_lines(report: Report) -> list[str]:
    rows = report.incidents.figures["list"]
    if not rows:
        return [gettext("No incident in this period.")]
    return [f"{number}. {incident_line(row, escape=markdown_text)}" for number, row in enumerate(rows, start=1)]


def _overdue_lines(report: Report) -> list[str]:
    return [
        _item(
            gettext("%(title)s (owner %(owner)s, %(days)d days overdue, incident #%(incident)d)")
            % {
                "title": markdown_text(item["title"]),
                "owner": markdown_text(item["owner"] or ""),
                "days": item["days_overdue"],
                "incident": item["incident"],
            }
        )
        for item in report.closed_loop.figures["overdue"]["items"]
    ]


def _worst_rule_lines(report: Report) -> list[str]:
    return [
        _item(
            gettext("%(rule)s: %(missed)d of %(denominator)d not followed up within 5 minutes")
            % {
                "rule": markdown_text(rule["key"]) if rule["key"] else "–",
                "missed": rule["missed"],
                "denominator": rule["denominator"],
            }
        )
        for rule in report.alerts.figures["worst_missed_rules"]
    ]


def scope_name(report: Report) -> str | None:
    """The name of the team or system the report covers; None for everyone."""
    return (report.team.name if report.team else None) or (report.system.name if report.system else None)


def _markdown(report: Report) -> str:
    whom = scope_name(report)
    title = gettext("Stability report %(period)s (%(scope)s)") % {
        "period": report.period.label,
        "scope": markdown_text(whom) if whom else gettext("all teams"),
    }
    lines = ["# " + title, "", "## " + gettext("Headline"), "", *_headline_lines(report)]
    lines += ["", "## " + gettext("Incidents"), "", *_incident_lines(report)]
    # Sections with nothing to say are left out.
    for heading, section in (
        (gettext("Overdue closed-loop items"), _overdue_lines(report)),
        (gettext("Alert rules most often missed"), _worst_rule_lines(report)),
    ):
        if section:
            lines += ["", "## " + heading, "", *section]
    return "\n".join(lines) + "\n"
