"""The stability report (稳定性报告) of a period and a scope: every figure from the selectors that define
it (incidents.selectors, stability.selectors), gathered here and never recomputed.

build_report() runs the queries once and returns a Report: its typed sections (stability.report_sections)
hold plain data (numbers, strings of exact decimals, ISO times), which report_json (the JSON API; also
stability_report) gives as:

- period: label, kind, start, end, previous (label); scope: team / system or null; generated_at;
- headline: incidents, a_b and c_d counts, unrecovered, mttr_seconds with its previous value and
  change, follow_up_rate with previous and change, lowest availability of the P0 systems (the system's
  code, lowest_p0_system_name, and its year-to-date availability lowest_p0_year_to_date_availability),
  on_time_completion_rate, overdue_items;
- incidents: by_level and the list in the weekly-report form (when, what, how found, handling,
  cause, level, time to recover, closed-loop status);
- recovery: MTTD / MTTA / MTTR (count, mean, median, p90 in seconds), recovery-target compliance
  overall and per level;
- trend: the last TREND_PERIODS periods of the same kind: incidents by level and MTTR
  (`mttr`: [{period, value}]), follow-up rate (`follow_up_rate`: [{period, value, ...counts}]);
- alerts: follow-up rate overall, per team (ranked, best first), per system (each group with the
  team's or system's `name`), worst-missed alert rules (most missed first);
- availability: per system against its target, error budget and share consumed; year_to_date: the
  P0 systems' availability from January 1 of the year the period starts in to the period's end
  (年度可用性: label, start, end, systems);
- closed_loop: closed_loop_metrics (on-time completion, overdue by owner and team, incident
  closed-loop rate, the same by source), and drill_coverage of P0 systems in the period's quarter;
- health: health_scores (each term, rank, change), for the teams in scope, ranked among every team
  (teams_ranked of them), each with its previous_rank;
- detection: share detected by monitoring (monitoring_share) and by customers (customer_share),
  counts by detection source and by cause category, and per cause category the counts by source
  with both shares (by_cause_category_and_source).
- service_levels: each service level indicator of the scope measured in Prometheus (`indicators`: value
  as summed good over summed total, objective, error budget left, days measured and missing, year to date)
  and the days a P0/P1 indicator fell below its objective with no incident logged (`possible_unlogged`):
  service_levels.selectors, docs/service-levels.md.

Per team and per system, the alerts section lists every team and system of the scope, those without
alerts with zero counts and rate null.

The query count depends on the sections, never on how many incidents, alerts or teams there are.
"""

import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from incidents import spreadsheet
from incidents.drills import drill_coverage
from incidents.models import ActionItem, Incident, System, Team, Tier
from incidents.periods import Period, containing, date_range
from incidents.selectors import UtcClock, closed_loop_metrics, in_period, incident_metrics, incident_trend, utc
from service_levels.selectors import service_levels_json
from stability import report_narrative, report_sections
from stability.selectors import (
    detection_by_cause_category,
    follow_up_summary,
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
    # Their times through UtcClock: a couple of thousand rows of four times each.
    times = {f"utc_{name}": UtcClock(name) for name in ("occurred_at", "detected_at", "recovered_at", "closed_at")}
    rows = (
        incidents.annotate(
            items=_item_count(Q()),
            items_closed=_item_count(final),
            **times,
        )
        .order_by("occurred_at", "pk")
        .values(
            "pk",
            *times,
            "title",
            "team__slug",
            "level",
            "detection_source",
            "handling",
            "cause",
            "cause_category",
            "status",
            "items",
            "items_closed",
        )
    )
    listed = []
    for row in rows:
        occurred_at, recovered_at = utc(row["utc_occurred_at"]), utc(row["utc_recovered_at"])
        listed.append(
            {
                "id": row["pk"],
                "occurred_at": _iso(occurred_at),
                "detected_at": _iso(utc(row["utc_detected_at"])),
                "recovered_at": _iso(recovered_at),
                "title": row["title"],
                "team": row["team__slug"],
                "level": row["level"],
                "detection_source": row["detection_source"],
                "handling": row["handling"],
                "cause": row["cause"],
                "cause_category": row["cause_category"],
                # Incident.time_to_recover
                "time_to_recover_seconds": (recovered_at - occurred_at).total_seconds() if recovered_at else None,
                "status": row["status"],
                "closed_at": _iso(utc(row["utc_closed_at"])),
                "action_items": row["items"],
                "action_items_closed": row["items_closed"],
            }
        )
    return listed


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
    # Last, with a default: published reports of before it have none (stability.published).
    service_levels: report_sections.ServiceLevels = field(default_factory=lambda: report_sections.ServiceLevels({}))

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


def _headline(
    *,
    metrics: dict,
    recovery_trend: list,
    follow_up: dict,
    alert_trend: list,
    availability,
    year_to_date: dict,
    closed_loop,
):
    by_level = metrics["by_level"]
    mttr = metrics["time_to_recover"]["mean"]
    # The trend's previous period is period.previous(); its MTTR is incident_metrics' mean, in the same query.
    mttr_before = recovery_trend[-2]["mttr"] if len(recovery_trend) > 1 else None
    follow_up_before = alert_trend[-2]["rate"] if len(alert_trend) > 1 else None
    p0 = [row for row in availability if row["tier"] == Tier.P0]
    lowest_p0 = min(p0, key=lambda row: row["availability"]) if p0 else None
    year = {row["system"]: row for row in year_to_date["systems"]}
    its_year = year.get(lowest_p0["system"]) if lowest_p0 else None
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
        "lowest_p0_system_name": lowest_p0["name"] if lowest_p0 else None,
        "lowest_p0_year_to_date_availability": its_year["availability"] if its_year else None,
        "on_time_completion_rate": closed_loop["on_time_completion"]["rate"],
        "overdue_items": closed_loop["overdue"]["count"],
    }


def _named(groups: list[dict], names: dict) -> list[dict]:
    return [{**group, "name": names.get(group["key"])} for group in groups]


def _alerts(*, follow_up: dict, breakdown: dict, team_names: dict, system_names: dict) -> dict:
    by_team = sorted(breakdown["team"], key=lambda g: (g["rate"] is None, -(g["rate"] or 0), str(g["key"])))
    return {
        "window_seconds": settings.FOLLOW_UP_WINDOW_SECONDS,
        "overall": follow_up,
        "by_team": _named(by_team, team_names),
        "by_system": _named(breakdown["system"], system_names),
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


# The figures of a P0 system's year-to-date availability (system_availability's row, shortened).
YEAR_TO_DATE_FIGURES = ("system", "name", "availability", "downtime_seconds", "target", "met")


def year_to_date(period: Period) -> Period:
    """The span of the year-to-date availability (年度可用性): from January 1 of the year the period starts in
    to the period's end, cut in TIME_ZONE (November 2026: 2026-01-01..2026-11-30)."""
    zone = timezone.get_default_timezone()
    first = timezone.localtime(period.start, zone).date().replace(month=1, day=1)
    last = timezone.localtime(period.end, zone).date() - timedelta(days=1)
    return date_range(first, last)


def _year_to_date(*, period: Period, now: datetime, systems: QuerySet) -> dict:
    """The P0 systems' availability over year_to_date(period) (system_availability: two queries)."""
    span = year_to_date(period)
    rows = system_availability(period=span, now=now, systems=systems.filter(tier=Tier.P0))
    return {
        "label": span.label,
        "start": span.start,
        "end": span.end,
        "systems": [{key: row[key] for key in YEAR_TO_DATE_FIGURES} for row in rows],
    }


def _health(*, period: Period, now: datetime, teams: QuerySet | None) -> dict:
    """health_scores over every team, so that a team's rank is its rank among them all (中心排名) whatever
    the report's scope, with the rank each had in the previous period; then the teams of the scope only."""
    health = health_scores(period=period, now=now)
    every = health["teams"]
    by_name = sorted(every, key=lambda row: row["name"])
    previous_ranks = {
        row["team"]: rank for rank, row in enumerate(sorted(by_name, key=lambda row: -row["previous_score"]), 1)
    }
    if teams is not None:
        in_scope = set(teams.values_list("slug", flat=True))
        every = [row for row in every if row["team"] in in_scope]
    return {
        **health,
        "teams_ranked": len(health["teams"]),
        "teams": [{**row, "previous_rank": previous_ranks[row["team"]]} for row in every],
    }


def _service_levels(*, period: Period, team: Team | None, system: System | None, now: datetime) -> dict:
    """The scope's service levels measured in Prometheus: each indicator's figures over the period and the
    year to date, and the days a P0/P1 indicator fell below its objective with no incident logged
    (service_levels.selectors; docs/service-levels.md). Five queries."""
    figures = service_levels_json(period, team=team, system=system, now=now)
    return {"indicators": figures["indicators"], "possible_unlogged": figures["possible_unlogged"]}


def _drill_coverage(*, period: Period, team: Team | None, system: System | None) -> dict:
    """Drill coverage of P0 systems (incidents.drills.drill_coverage) in the quarter holding the period's
    first day (a month's or a week's quarter), of the report's team (a system's report: its team)."""
    quarter = containing("quarter", period.start)
    teams = [team.pk] if team is not None else [system.team_id] if system is not None else None
    coverage = drill_coverage(quarter_start=quarter.start, quarter_end=quarter.end, teams=teams)
    return {"quarter": quarter.label, **coverage}


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
    periods = trailing_periods(period)
    recovery_trend = incident_trend(incidents=scope.incidents, periods=periods)
    scoped = team is not None or system is not None
    health = _health(period=period, now=now, teams=scope.teams if scoped else None)
    # Every team and system of the scope, those without alerts too (rate None), read from the
    # sections above rather than queried again.
    breakdown = follow_up_summary(
        period=period,
        now=now,
        team=team,
        system=system,
        dimensions=("team", "system", "alertname"),
        all_keys={
            "team": [row["team"] for row in health["teams"]],
            "system": [row["system"] for row in availability],
        },
    )
    follow_up = breakdown.pop("overall")
    alert_trend = follow_up_trend(scope=scope.alerts, periods=periods, now=now)
    closed_loop = closed_loop_metrics(period=period, team=team, system=system, now=now)
    closed_loop["drill_coverage"] = _drill_coverage(period=period, team=team, system=system)
    detection = detection_by_cause_category(incidents=in_the_period)
    year = _year_to_date(period=period, now=now, systems=scope.systems)
    headline = _headline(
        metrics=metrics,
        recovery_trend=recovery_trend,
        follow_up=follow_up,
        alert_trend=alert_trend,
        availability=availability,
        year_to_date=year,
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
        alerts=report_sections.Alerts(
            _plain(
                _alerts(
                    follow_up=follow_up,
                    breakdown=breakdown,
                    team_names={row["team"]: row["name"] for row in health["teams"]},
                    system_names={row["system"]: row["name"] for row in availability},
                )
            )
        ),
        availability=report_sections.Availability(_plain({"systems": availability, "year_to_date": year})),
        closed_loop=report_sections.ClosedLoop(_plain(closed_loop)),
        health=report_sections.Health(_plain(health)),
        detection=report_sections.Detection(_plain(_detection(metrics=metrics, detection=detection))),
        service_levels=report_sections.ServiceLevels(_service_levels(period=period, team=team, system=system, now=now)),
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
    """The report in Markdown, ready to paste: the narrative in the weekly report's words, then the appendix's
    tables summarised (stability.report_narrative.markdown)."""
    return report_narrative.markdown(report, language=language)
