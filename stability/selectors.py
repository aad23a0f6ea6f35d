"""Reads of the stability app, and the alert figures of metrics.md, defined once here.

Every consumer (API, pages, reports, health score) calls these; none recomputes a figure.
"""

import functools
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from types import SimpleNamespace

from django.conf import settings
from django.db import connections
from django.db.models import Count, Expression, F, Max, Min, Q, QuerySet, Window
from django.db.models.functions import RowNumber, TruncDay, TruncMonth, TruncWeek
from django.utils import timezone

from incidents.models import CauseCategory, DetectionSource, Incident, Level, System, Team
from incidents.periods import Period
from incidents.selectors import (
    RECOVERED,
    WITHIN_RECOVERY_TARGET,
    UtcClock,
    each_once,
    in_period,
    on_time_completion_by_team,
    rate,
    utc_clock,
)
from stability import follow_up
from stability.models import AlertOccurrence, InboxPreference

GROUP_BY = ("team", "system", "severity", "alertname", "day", "week", "month")


def _received_in(occurrences: QuerySet[AlertOccurrence], period: Period) -> QuerySet[AlertOccurrence]:
    """A period selects occurrences by received_at, half-open."""
    return occurrences.filter(received_at__gte=period.start, received_at__lt=period.end)


def _group_expression(group_by: str) -> Expression:
    zone = timezone.get_default_timezone()
    return {
        "team": F("team__slug"),
        "system": F("system__code"),
        "severity": F("severity"),
        "alertname": F("alertname"),
        "day": TruncDay("received_at", tzinfo=zone),
        "week": TruncWeek("received_at", tzinfo=zone),
        "month": TruncMonth("received_at", tzinfo=zone),
    }[group_by]


def _group_key(group_by: str, value):
    """Team slug, system code, severity label as stored; local day 2026-11-03, ISO week 2026-W45,
    month 2026-11 (the truncation is a local wall-clock time)."""
    if value is None or group_by not in ("day", "week", "month"):
        return value
    if group_by == "day":
        return value.date().isoformat()
    if group_by == "week":
        year, week, _day = value.date().isocalendar()
        return f"{year}-W{week:02d}"
    return f"{value:%Y-%m}"


def follow_up_rate(
    *,
    occurrences: QuerySet[AlertOccurrence],
    period: Period,
    group_by: str | None = None,
    now: datetime | None = None,
    percentiles: bool = True,
) -> dict:
    """The 5-minute follow-up rate of metrics.md over the occurrences received in `period`, as of `now`.

    rate = followed up within FOLLOW_UP_WINDOW_SECONDS (inclusive) / denominator, where the denominator
    is the occurrences received in the period minus those excluded at receipt, pending ones (not
    followed up, received less than a window before `now`) and, when FOLLOW_UP_FLAPPING_SECONDS > 0,
    those the source resolved within that many seconds with no follow-up. None when the denominator is
    0. With the counts, and the median and p90 delay in seconds over the followed-up ones. `group_by`:
    one of GROUP_BY, groups ordered by key (no team / system last). `percentiles=False` leaves the
    delay median and p90 out (None): the counts and the rate alone, for trends and scores over many
    alerts.
    """
    if group_by is not None and group_by not in GROUP_BY:
        raise ValueError(f"group_by must be one of {', '.join(GROUP_BY)}, not {group_by!r}")
    now = now or timezone.now()
    rule = follow_up.rules(now)
    base = _received_in(occurrences, period)
    in_database = connections[base.db].vendor == "postgresql"
    aggregates = follow_up.aggregates(rule, in_database_percentiles=in_database and percentiles)

    rows = []
    if group_by is not None:
        rows = list(
            base.annotate(group_key=_group_expression(group_by))
            .values("group_key")
            .annotate(**aggregates)
            .order_by(F("group_key").asc(nulls_last=True))
        )
    if group_by is not None and not percentiles:
        # Every occurrence is in exactly one group (no team: the None group), so the counts add up.
        overall = {name: sum(row[name] for row in rows) for name in aggregates}
    else:
        overall = base.aggregate(**aggregates)

    # No percentile_cont (SQLite): the delays are read and interpolated here.
    delays = _delays_by_group(base, rule, group_by) if percentiles and not in_database else None
    return {
        "period": period.label,
        "window_seconds": settings.FOLLOW_UP_WINDOW_SECONDS,
        "flapping_seconds": settings.FOLLOW_UP_FLAPPING_SECONDS,
        "as_of": now,
        "group_by": group_by,
        "overall": follow_up.figures(
            overall,
            None if delays is None else sorted(d for group in delays.values() for d in group),
            percentiles=percentiles,
        ),
        "groups": [
            {
                "key": _group_key(group_by, row["group_key"]),
                **follow_up.figures(
                    row,
                    None if delays is None else sorted(delays.get(row["group_key"], [])),
                    percentiles=percentiles,
                ),
            }
            for row in rows
        ],
    }


def _delays_by_group(
    base: QuerySet[AlertOccurrence], rule: follow_up.Rules, group_by: str | None
) -> dict[object, list[float]]:
    """The follow-up delays in seconds of the followed-up occurrences of `base`, per group key (None
    without grouping), in one query."""
    keyed = base.filter(rule.followed_up).annotate(delay=follow_up.delay())
    if group_by is not None:
        pairs = keyed.annotate(group_key=_group_expression(group_by)).values_list("group_key", "delay")
    else:
        pairs = ((None, delay) for delay in keyed.values_list("delay", flat=True))
    delays: dict[object, list[float]] = {}
    for key, delay in pairs:
        delays.setdefault(key, []).append(delay.total_seconds())
    return delays


def _summed(totals: dict[tuple, dict], dimensions: tuple[str, ...], names: list[str]) -> tuple[dict, dict]:
    """period_counts' rows added up: over everything, and per key of each dimension."""
    overall = dict.fromkeys(names, 0)
    sums: dict[str, dict] = {d: {} for d in dimensions}
    for key, counts in totals.items():
        for name in names:
            overall[name] += counts[name]
        for i, d in enumerate(dimensions, start=1):
            total = sums[d].setdefault(key[i], dict.fromkeys(names, 0))
            for name in names:
                total[name] += counts[name]
    return overall, sums


def follow_up_breakdown(
    *,
    scope: Q | None = None,
    period: Period,
    dimensions: tuple[str, ...],
    now: datetime | None = None,
    all_keys: dict[str, Iterable] | None = None,
) -> dict[str, list[dict]]:
    """follow_up_rate(group_by=d, percentiles=False)["groups"] for each d of `dimensions` (team, system,
    alertname) over the occurrences matching `scope` (a condition on team, system or alertname), from
    the counts grouped by all the dimensions at once (stability.follow_up.period_counts: settled days
    read as day counts), added up per dimension: every occurrence is in exactly one group of each.
    `all_keys`: per dimension, keys listed even when they received nothing (as follow_up_rate's all_keys)."""
    now = now or timezone.now()
    totals = follow_up.period_counts(scope=scope or Q(), periods=[period], dimensions=dimensions, now=now)
    names = list(follow_up.empty_counts(now))
    _overall, sums = _summed(totals, dimensions, names)
    return _groups(sums, names, all_keys)


def _groups(sums: dict[str, dict], names: list[str], all_keys: dict[str, Iterable] | None) -> dict[str, list[dict]]:
    """Per dimension, its keys' figures (follow_up_rate's groups, no percentiles), keys of `all_keys` with
    nothing received included, ordered by key (none last)."""
    result = {}
    for d, by_key in sums.items():
        for key in (all_keys or {}).get(d, ()):
            by_key.setdefault(key, dict.fromkeys(names, 0))
        ordered = sorted(by_key.items(), key=lambda item: (item[0] is None, str(item[0] or "")))
        result[d] = [{"key": key, **follow_up.figures(total, percentiles=False)} for key, total in ordered]
    return result


def follow_up_summary(
    *,
    period: Period,
    now: datetime,
    team: Team | None = None,
    system: System | None = None,
    dimensions: tuple[str, ...] = (),
    all_keys: dict[str, Iterable] | None = None,
    percentiles: bool = True,
) -> dict:
    """The follow-up figures of a report: `overall`, follow_up_rate(...)["overall"] over the occurrences of
    one team, one system or everyone, with its delay median and p90, and follow_up_breakdown's groups of
    each of `dimensions`, from one read of the counts (settled days read as day counts) and the delay
    percentiles kept per month and week (stability.follow_up.period_delays): the same figures, without
    reading the period's occurrences (a busy month holds hundreds of thousands). `percentiles=False`
    leaves the delays out (None): the running period's would be read from its occurrences."""
    scope = Q()
    if team is not None:
        scope &= Q(team=team)
    if system is not None:
        scope &= Q(system=system)
    totals = follow_up.period_counts(scope=scope, periods=[period], dimensions=dimensions, now=now)
    names = list(follow_up.empty_counts(now))
    overall, sums = _summed(totals, dimensions, names)
    delays = (
        follow_up.period_delays(
            period=period,
            now=now,
            team=None if team is None else team.pk,
            system=None if system is None else system.pk,
        )
        if percentiles
        else {}
    )
    return {"overall": {**follow_up.figures(overall, percentiles=False), **delays}, **_groups(sums, names, all_keys)}


def follow_up_missed(
    *, occurrences: QuerySet[AlertOccurrence], period: Period, now: datetime | None = None
) -> QuerySet[AlertOccurrence]:
    """The occurrences behind follow_up_rate's `missed`: in the denominator, not followed up within the
    window (late or never), oldest first."""
    return (
        _received_in(occurrences, period)
        .filter(follow_up.rules(now or timezone.now()).missed)
        .select_related("team", "system", "integration")
        .order_by("received_at", "pk")
    )


# --- Detection (发现方式) --------------------------------------------------------------------------


def _detection_figures(by_source: dict[str, int]) -> dict:
    with_source = sum(n for source, n in by_source.items() if source)
    return {
        "incidents": sum(by_source.values()),
        "by_detection_source": {source: n for source, n in by_source.items() if source},
        "monitoring_share": rate(by_source[DetectionSource.MONITORING], with_source),
        "customer_share": rate(by_source[DetectionSource.CUSTOMER], with_source),
    }


def detection_by_cause_category(*, incidents: QuerySet[Incident]) -> dict:
    """How `incidents` (usually in_period(...)) were found: counts by detection source and the shares
    found by monitoring and by customers over the incidents with a detection source (the
    detected-by-monitoring share of incident_metrics; None when there are none), overall and per cause
    category. One query; categories in CauseCategory order, those without incidents left out."""
    base = each_once(incidents)
    counts: dict[str, dict[str, int]] = {}
    for cause, source, n in base.values_list("cause_category", "detection_source").annotate(n=Count("pk")).order_by():
        counts.setdefault(cause, {"": 0, **dict.fromkeys(DetectionSource.values, 0)})[source or ""] += n
    overall = {"": 0, **dict.fromkeys(DetectionSource.values, 0)}
    for by_source in counts.values():
        for source, n in by_source.items():
            overall[source] += n
    causes = [c for c in CauseCategory.values if c in counts] + sorted(set(counts) - set(CauseCategory.values))
    return {
        "overall": _detection_figures(overall),
        "by_cause_category": [{"cause_category": cause, **_detection_figures(counts[cause])} for cause in causes],
    }


# --- Availability (可用性) -------------------------------------------------------------------------

# Availability is returned in percent, like System.availability_target, rounded down to 1e-6 %: a
# second of downtime in a year still shows (99.999997), and any downtime never shows as 100.
_AVAILABILITY_PLACES = Decimal("0.000001")
_SHARE_PLACES = Decimal("0.000001")


def _exact_seconds(delta: timedelta) -> Decimal:
    whole = Decimal(delta.days * 86_400 + delta.seconds)
    return whole + Decimal(delta.microseconds).scaleb(-6) if delta.microseconds else whole


def _plain(value: Decimal) -> Decimal:
    """Without trailing zeros (259.2, not 259.20000000), and never in exponent form (2592, not 2.592E+3)."""
    return value.quantize(Decimal(1)) if value == value.to_integral_value() else value.normalize()


@functools.lru_cache(maxsize=1024)  # a few distinct values, met on thousands of rows
def _effective_impact(availability_impact: Decimal | None, level: str) -> Decimal:
    # Incident.effective_availability_impact's own rule (when not set: 0 for level D, 1 otherwise),
    # applied to the values of a row rather than to a loaded model instance.
    impact = Incident.effective_availability_impact.fget(
        SimpleNamespace(availability_impact=availability_impact, level=level)
    )
    return _plain(impact)


def _downtime(intervals: list[tuple[datetime, datetime, Decimal]]) -> Decimal:
    """Integral over time of the largest impact among the intervals [start, end) covering each instant
    (a sweep over the endpoints): overlapping incidents are never counted twice."""
    events: dict[datetime, dict[Decimal, int]] = defaultdict(dict)
    for start, end, impact in intervals:
        events[start][impact] = events[start].get(impact, 0) + 1
        events[end][impact] = events[end].get(impact, 0) - 1
    active: dict[Decimal, int] = {}  # impact: how many intervals with it cover the instant
    downtime = Decimal(0)
    previous = None
    for moment in sorted(events):
        if previous is not None and active:
            downtime += max(active) * _exact_seconds(moment - previous)
        for impact, change in events[moment].items():
            covering = active.get(impact, 0) + change
            if covering:
                active[impact] = covering
            else:
                active.pop(impact, None)  # no longer active
        previous = moment
    return downtime


def system_availability(*, period: Period, now: datetime, systems: QuerySet[System] | None = None) -> list[dict]:
    """Availability of each system over `period` (metrics.md "Availability"), as of `now`.

    downtime = integral over the period of the system's unavailability, the largest effective
    availability_impact among its incidents whose [occurred_at, recovered_at) contains the instant (an
    unrecovered incident runs until `now`); availability = 1 - downtime / period length, in percent. A
    period not over yet counts downtime up to `now` over its FULL length. error budget = (1 - target) x
    period length; budget_consumed = downtime / budget (None when the budget is 0); met = downtime <=
    budget. Two queries, whatever the number of systems and incidents. Systems in tier, code order.
    """
    systems = System.objects.all() if systems is None else systems
    rows = list(
        systems.order_by("tier", "code").values("pk", "code", "name", "tier", "team__slug", "availability_target")
    )
    measured_end = min(period.end, now)
    intervals: dict[int, list] = defaultdict(list)
    incidents: dict[int, set] = defaultdict(set)
    if measured_end > period.start:
        # Times as UTC wall clock (UtcClock: thousands of rows for a year to date), compared and
        # subtracted as such; the period's bounds likewise.
        period_start, measured_until = (utc_clock(moment) for moment in (period.start, measured_end))
        impacts = (
            Incident.systems.through.objects.filter(
                system__in=systems.values("pk"), incident__occurred_at__lt=measured_end
            )
            .filter(Q(incident__recovered_at__isnull=True) | Q(incident__recovered_at__gt=period.start))
            .annotate(occurred=UtcClock("incident__occurred_at"), recovered=UtcClock("incident__recovered_at"))
            .values_list(
                "system_id",
                "incident_id",
                "occurred",
                "recovered",
                "incident__availability_impact",
                "incident__level",
            )
        )
        for system_id, incident_id, occurred_at, recovered_at, impact, level in impacts:
            incidents[system_id].add(incident_id)
            start = max(utc_clock(occurred_at), period_start)
            end = min(utc_clock(recovered_at) if recovered_at else measured_until, measured_until)
            impact = _effective_impact(impact, level)
            if end > start and impact > 0:
                intervals[system_id].append((start, end, impact))

    length = Decimal(period.seconds)
    result = []
    for row in rows:
        downtime = _downtime(intervals[row["pk"]])
        target = row["availability_target"]
        budget = (Decimal(100) - target) * length / 100
        result.append(
            {
                "system": row["code"],
                "name": row["name"],
                "tier": row["tier"],
                "team": row["team__slug"],
                "period_seconds": period.seconds,
                "measured_seconds": _plain(max(_exact_seconds(measured_end - period.start), Decimal(0))),
                "incidents": len(incidents[row["pk"]]),
                "downtime_seconds": _plain(downtime),
                "availability": (100 - 100 * downtime / length).quantize(_AVAILABILITY_PLACES, rounding="ROUND_DOWN"),
                "target": _plain(target),
                "error_budget_seconds": _plain(budget),
                "budget_consumed": (downtime / budget).quantize(_SHARE_PLACES) if budget else None,
                "met": downtime <= budget,
            }
        )
    return result


# --- Health score (健康分) -------------------------------------------------------------------------


def incident_figures_by_team(*, period: Period, teams: QuerySet[Team] | None = None) -> dict[int, dict]:
    """Per team (Incident.team), over the incidents of `period` (by occurred_at): counts by level and
    recovery-target compliance (recovered within their level's target / recovered), with the same
    conditions as incidents.selectors.incident_metrics. One query; teams without incidents are absent."""
    incidents = in_period(Incident.objects.all(), period)
    if teams is not None:
        incidents = incidents.filter(team__in=teams.values("pk"))
    figures: dict[int, dict] = {}
    grouped = (
        incidents.values_list("team_id", "level")
        .annotate(
            n=Count("pk"),
            n_recovered=Count("pk", filter=RECOVERED),
            n_within=Count("pk", filter=WITHIN_RECOVERY_TARGET),
        )
        .order_by()
    )
    for team_id, level, n, n_recovered, n_within in grouped:
        team = figures.setdefault(
            team_id, {"by_level": dict.fromkeys(Level.values, 0), "recovered": 0, "within_target": 0}
        )
        team["by_level"][level] = n
        team["recovered"] += n_recovered
        team["within_target"] += n_within
    for team in figures.values():
        team["recovery_target_compliance"] = rate(team["within_target"], team["recovered"])
    return figures


def _points(value: Fraction) -> Decimal:
    """Round half up to one decimal, exactly."""
    return Decimal(math.floor(value * 10 + Fraction(1, 2))).scaleb(-1)


def _share_of(weight: int, numerator: int, denominator: int) -> Decimal:
    """weight x numerator / denominator; the full weight when there is no data (denominator 0)."""
    return _points(Fraction(weight) * Fraction(numerator, denominator) if denominator else Fraction(weight))


def _team_scores(
    *, period: Period, now: datetime, teams: QuerySet[Team] | None, team_slugs: dict, follow_up_counts: dict
) -> dict:
    """`follow_up_counts`: the period's follow-up counts by team slug (stability.follow_up.period_counts)."""
    config = settings.HEALTH_SCORE
    weights, penalties = config["weights"], config["penalties"]
    incidents = incident_figures_by_team(period=period, teams=teams)
    on_time = on_time_completion_by_team(period=period, now=now)

    scores = {}
    for team_id, slug in team_slugs.items():
        figures = incidents.get(team_id)
        by_level = figures["by_level"] if figures else dict.fromkeys(Level.values, 0)
        recovered = figures["recovered"] if figures else 0
        within = figures["within_target"] if figures else 0
        penalty = sum(n * penalties[level] for level, n in by_level.items())
        alerts = follow_up_counts.get(slug)
        in_time, counted = (alerts["n_in_time"], alerts["n_denominator"]) if alerts else (0, 0)
        on_time_items, due_items, _rate = on_time.get(team_id, (0, 0, None))
        terms = {
            "incidents": {
                "points": _points(Fraction(max(weights["incidents"] - penalty, 0))),
                "max": weights["incidents"],
                "by_level": by_level,
                "penalty": penalty,
            },
            "follow_up": {
                "points": _share_of(weights["follow_up"], in_time, counted),
                "max": weights["follow_up"],
                "rate": rate(in_time, counted),
                "in_time": in_time,
                "denominator": counted,
            },
            "closed_loop": {
                "points": _share_of(weights["closed_loop"], on_time_items, due_items),
                "max": weights["closed_loop"],
                "rate": rate(on_time_items, due_items),
                "on_time": on_time_items,
                "denominator": due_items,
            },
            "recovery": {
                "points": _share_of(weights["recovery"], within, recovered),
                "max": weights["recovery"],
                "rate": rate(within, recovered),
                "within_target": within,
                "recovered": recovered,
            },
        }
        scores[team_id] = {"score": sum(term["points"] for term in terms.values()), "terms": terms}
    return scores


def health_scores(*, period: Period, now: datetime, teams: QuerySet[Team] | None = None) -> dict:
    """The health score (健康分) of each team over `period`, as of `now` (metrics.md "Health score").

    Four terms, each shown with its inputs and rounded half up to one decimal; the score is their sum:
    incidents = max(W_incidents - sum of the level penalties of the team's incidents of the period, 0);
    follow_up = W_follow_up x the 5-minute follow-up rate of the team's alerts; closed_loop =
    W_closed_loop x the on-time completion rate of the team's items; recovery = W_recovery x the
    recovery-target compliance of the team's incidents. A rate with no data gives the full term.
    Weights and penalties: settings.HEALTH_SCORE, returned as `settings`. Teams ranked by score, ties
    by name; `change` is the score minus the previous period's. Queries do not grow with the teams.
    """
    teams_read = list(
        (Team.objects.all() if teams is None else teams).order_by("name").values_list("pk", "slug", "name")
    )
    team_slugs = {pk: slug for pk, slug, _name in teams_read}
    previous_period = period.previous()
    # Both periods' follow-up counts by team at once (previous_period ends where period starts).
    counts = follow_up.period_counts(
        scope=Q() if teams is None else Q(team__in=teams.values("pk")),
        periods=[previous_period, period],
        dimensions=("team",),
        now=now,
    )
    by_period = [{slug: team for (i, slug), team in counts.items() if i == index} for index in (0, 1)]
    current = _team_scores(period=period, now=now, teams=teams, team_slugs=team_slugs, follow_up_counts=by_period[1])
    previous = _team_scores(
        period=previous_period, now=now, teams=teams, team_slugs=team_slugs, follow_up_counts=by_period[0]
    )
    # Sorting is stable and teams_read is in name order: equal scores stay ranked by name.
    ranked = sorted(teams_read, key=lambda team: -current[team[0]]["score"])
    return {
        "period": period.label,
        "previous_period": previous_period.label,
        "as_of": now,
        "settings": {
            "weights": dict(settings.HEALTH_SCORE["weights"]),
            "penalties": dict(settings.HEALTH_SCORE["penalties"]),
        },
        "teams": [
            {
                "rank": rank,
                "team": slug,
                "name": name,
                "score": current[pk]["score"],
                "previous_score": previous[pk]["score"],
                "change": current[pk]["score"] - previous[pk]["score"],
                "terms": current[pk]["terms"],
            }
            for rank, (pk, slug, name) in enumerate(ranked, start=1)
        ],
    }


def follow_up_trend(*, scope: Q | None = None, periods: list[Period], now: datetime | None = None) -> list[dict]:
    """follow_up_rate's counts and rate (no delay percentiles) for each period of `periods`, back to
    back, over the occurrences matching `scope` (a condition on team, system or alertname): the same
    rules, settled days read as day counts (stability.follow_up.period_counts)."""
    now = now or timezone.now()
    totals = follow_up.period_counts(scope=scope or Q(), periods=periods, dimensions=(), now=now)
    empty = follow_up.empty_counts(now)
    return [
        {"period": p.label, **follow_up.figures(totals.get((i,), empty), percentiles=False)}
        for i, p in enumerate(periods)
    ]


# --- The inbox of the on-call engineer -------------------------------------------------------------

# Alerts nobody followed up leave the inbox a day after they arrived (they stay counted as missed by the
# follow-up rate and listed on the missed alerts page): its cost is that of one day, whatever the history.
INBOX_HOURS = 24
# A page of the inbox shows this many groups, each listing its newest INBOX_GROUP_ALERTS alerts (the counts
# are always whole): a busy day (thousands of alerts in as many groups) is paged, not rendered at once.
INBOX_GROUPS = 20
INBOX_GROUP_ALERTS = 5


class InboxState:
    """What an alert waiting for follow-up needs (stability.follow_up's window):

    act now: firing, counted, inside its follow-up window; missed: firing, counted, window passed;
    resolved: the source resolved it, nobody followed it up; all: every alert waiting, excluded
    ones (maintenance window, silence, test integration) included."""

    ACT_NOW = "act_now"
    MISSED = "missed"
    RESOLVED = "resolved"
    ALL = "all"
    CHOICES = (ACT_NOW, MISSED, RESOLVED, ALL)


def inbox_since(now: datetime) -> datetime:
    return now - timedelta(hours=INBOX_HOURS)


def _inbox_states(now: datetime) -> dict[str, Q]:
    """The states of alerts nobody followed up (inbox_waiting), by the follow-up rate's own rule: act now is
    its pending, missed what it counts and no longer waits for (late by exactly one window included)."""
    rule = follow_up.rules(now)
    firing = Q(status=AlertOccurrence.Status.FIRING)
    return {
        InboxState.ACT_NOW: firing & rule.pending,
        InboxState.MISSED: firing & rule.counted & ~rule.pending,
        InboxState.RESOLVED: Q(status=AlertOccurrence.Status.RESOLVED, resolved_by__isnull=True),
        InboxState.ALL: Q(),
    }


def inbox_waiting(*, now: datetime, occurrences: QuerySet[AlertOccurrence] | None = None) -> QuerySet[AlertOccurrence]:
    """The alerts the inbox can show: of `occurrences` (default: all), those nobody followed up received in
    the last INBOX_HOURS. A range of the partial index alert_inbox_waiting."""
    alerts = AlertOccurrence.objects.all() if occurrences is None else occurrences
    return alerts.filter(received_at__gte=inbox_since(now), followed_up_at__isnull=True)


def inbox_alerts(
    *, now: datetime, state: str, occurrences: QuerySet[AlertOccurrence] | None = None
) -> QuerySet[AlertOccurrence]:
    """The inbox's alerts (of `occurrences`, default all) in one state (InboxState), newest first."""
    return (
        inbox_waiting(now=now, occurrences=occurrences)
        .filter(_inbox_states(now)[state])
        .select_related("team", "system__team", "incident")
        .order_by("-received_at", "-id")
    )


def inbox_counts(*, now: datetime, occurrences: QuerySet[AlertOccurrence] | None = None) -> dict[str, int]:
    """How many alerts of the inbox are in each state: one count over the last day."""
    states = _inbox_states(now)
    return inbox_waiting(now=now, occurrences=occurrences).aggregate(
        **{state: Count("pk", filter=condition) for state, condition in states.items() if state != InboxState.ALL},
        all=Count("pk"),
    )


@dataclass(frozen=True)
class InboxGroups:
    """One page of the inbox's groups (InboxGroups.groups), of `total` groups on `pages` pages."""

    groups: list[SimpleNamespace]
    total: int
    page: int
    pages: int


def inbox_groups(
    *, now: datetime, state: str, occurrences: QuerySet[AlertOccurrence] | None = None, page: int = 1
) -> InboxGroups:
    """The inbox's alerts in one state grouped as Alertmanager groups them, by alert name and system, the
    group whose last alert arrived last first, INBOX_GROUPS a page: each group's count, first and last
    receipt, its system and its newest INBOX_GROUP_ALERTS alerts. A page out of range is the nearest one.
    Three queries however many alerts (one when there is none): what a page shows is bounded, whatever the
    day brought."""
    alerts = inbox_alerts(now=now, state=state, occurrences=occurrences)
    rows = list(
        alerts.order_by()
        .values("alertname", "system")
        .annotate(count=Count("pk"), first=Min("received_at"), last=Max("received_at"))
        .order_by("-last", "alertname", "system")
    )
    pages = max(1, -(-len(rows) // INBOX_GROUPS))
    page = min(max(page, 1), pages)
    shown = rows[(page - 1) * INBOX_GROUPS : page * INBOX_GROUPS]
    if not shown:
        return InboxGroups(groups=[], total=len(rows), page=page, pages=pages)
    systems = System.objects.select_related("team").in_bulk({row["system"] for row in shown if row["system"]})
    groups = {
        (row["alertname"], row["system"]): SimpleNamespace(
            alertname=row["alertname"],
            system_id=row["system"],
            system=systems.get(row["system"]),
            count=row["count"],
            first=row["first"],
            last=row["last"],
            # The group's countdown is its oldest alert's (web/alerts/_countdown.html reads these two).
            received_at=row["first"],
            followed_up_at=None,
            alerts=[],
        )
        for row in shown
    }
    of_shown = Q()
    for alertname, system in groups:
        of_shown |= Q(alertname=alertname, system=system)
    newest = Window(
        RowNumber(), partition_by=[F("alertname"), F("system")], order_by=[F("received_at").desc(), F("id").desc()]
    )
    for alert in alerts.filter(of_shown).annotate(rank=newest).filter(rank__lte=INBOX_GROUP_ALERTS):
        group = groups.get((alert.alertname, alert.system_id))
        if group is not None:  # an alert that arrived between the two queries waits for the next refresh
            group.alerts.append(alert)
    return InboxGroups(groups=list(groups.values()), total=len(rows), page=page, pages=pages)


def inbox_preference(*, user) -> str:
    """The query string of the inbox filters this person last used ("" when none)."""
    return InboxPreference.objects.filter(user=user).values_list("query", flat=True).first() or ""
