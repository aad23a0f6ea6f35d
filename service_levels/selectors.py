"""Reads of the service-levels app, and its figures, defined once here (docs/service-levels.md).

Over a period, an indicator's value is its summed good events over its summed events on the measured
days (NOT the mean of the daily ratios: a quiet day weighs what its traffic weighs); for an indicator
given as a ratio only, the mean of its measured days' ratios. Days are local days (settings.TIME_ZONE).
A day counts from the indicator's first stored day on, once it is over; a counted day without a measured
value (no data, a failed pull, never pulled) is missing: it is counted and shown, never taken as 100 %.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_DOWN, Decimal

from django.db.models import Avg, Count, Min, Q, QuerySet, Sum
from django.utils import timezone

from incidents.models import Incident, System, Team, Tier
from incidents.periods import Period, year
from service_levels.models import DailyValue, Indicator
from service_levels.prometheus import problem_text
from service_levels.services import day_bounds, local_today

PERCENT_PLACES = Decimal("0.000001")
SHARE_PLACES = Decimal("0.000001")
# Systems whose bad days are flagged when no incident explains them.
FLAGGED_TIERS = (Tier.P0, Tier.P1)

OK = DailyValue.Status.OK


def _decimal(value: float) -> Decimal:
    return Decimal(repr(value))


def _count(value: float | None) -> float | int | None:
    """Event counts as Prometheus gave them (increase() may extrapolate to a fraction); whole ones as ints."""
    if value is None:
        return None
    return int(value) if float(value).is_integer() else value


def _percent(ratio: Decimal | None) -> Decimal | None:
    # Rounded down: 99.99999 % never shows as 100 %.
    return None if ratio is None else (ratio * 100).quantize(PERCENT_PLACES, rounding=ROUND_DOWN)


def _objective(value: Decimal) -> Decimal:
    """99.99, not 99.9900; 100, not 1E+2."""
    return value.quantize(Decimal(1)) if value == value.to_integral_value() else value.normalize()


def error_budget_left(ratio: Decimal | None, objective: Decimal) -> Decimal | None:
    """1 - (1 - ratio) / (1 - objective), with the objective as a share: 1 when nothing failed, 0 when
    exactly the objective was met, below 0 when it was missed. None without a value, or for an objective
    of 100 % (no budget at all)."""
    budget = 1 - objective / 100
    if ratio is None or budget == 0:
        return None
    return (1 - (1 - ratio) / budget).quantize(SHARE_PLACES)


def local_days(period: Period) -> tuple[date, date]:
    """The first and the last local day of a period."""
    zone = timezone.get_default_timezone()
    return (
        timezone.localtime(period.start, zone).date(),
        timezone.localtime(period.end, zone).date() - timedelta(days=1),
    )


def year_to_date(period: Period) -> Period:
    """From January 1 of the year the period starts in to the period's end."""
    return Period("range", year(local_days(period)[0].year).start, period.end)


@dataclass(frozen=True)
class _Sums:
    good: float | None = None
    total: float | None = None
    ratio_mean: float | None = None
    measured: int = 0


def _counted_days(first: date, last: date, *, first_stored: date | None, yesterday: date) -> int:
    """The days of [first, last] from the first stored day on, up to yesterday."""
    if first_stored is None:
        return 0
    start, end = max(first, first_stored), min(last, yesterday)
    return max((end - start).days + 1, 0)


def _figures(indicator: Indicator, sums: _Sums, *, days: int) -> dict:
    if indicator.counts_events:
        ratio = _decimal(sums.good) / _decimal(sums.total) if sums.total else None
    else:
        ratio = _decimal(sums.ratio_mean) if sums.ratio_mean is not None else None
    value = _percent(ratio)
    return {
        "value": value,
        "good": _count(sums.good) if indicator.counts_events else None,
        "total": _count(sums.total) if indicator.counts_events else None,
        "days": days,
        "days_measured": sums.measured,
        "days_missing": max(days - sums.measured, 0),
        "error_budget_left": error_budget_left(ratio, indicator.objective),
        "met": None if ratio is None else ratio * 100 >= indicator.objective,
    }


def indicators_in_scope(*, team: Team | None = None, system: System | None = None) -> QuerySet[Indicator]:
    indicators = Indicator.objects.select_related("system", "system__team", "source")
    if team is not None:
        indicators = indicators.filter(system__team=team)
    if system is not None:
        indicators = indicators.filter(system=system)
    return indicators.order_by("system__tier", "system__code", "name", "pk")


def service_level_figures(
    period: Period, *, team: Team | None = None, system: System | None = None, now: datetime | None = None
) -> list[dict]:
    """Per indicator of the scope (tier, system, name order): over `period` and over its year to date
    (year_to_date), the value in percent (summed good / summed total, or the mean daily ratio for a ratio
    indicator), the counts, the days counted, measured and missing, the error budget left and whether the
    objective was met. Three queries, whatever the number of indicators and days."""
    now = now or timezone.now()
    indicators = list(indicators_in_scope(team=team, system=system))
    if not indicators:
        return []
    yesterday = local_today(now) - timedelta(days=1)
    first, last = local_days(period)
    ytd_first = local_days(year_to_date(period))[0]
    ids = [indicator.pk for indicator in indicators]
    first_stored = dict(
        DailyValue.objects.filter(indicator__in=ids)
        .values("indicator")
        .annotate(first=Min("day"))
        .order_by()
        .values_list("indicator", "first")
    )
    measured = Q(status=OK)
    in_period = measured & Q(day__gte=first)
    rows = (
        DailyValue.objects.filter(indicator__in=ids, day__gte=ytd_first, day__lte=last)
        .values("indicator")
        .annotate(
            period_good=Sum("good", filter=in_period),
            period_total=Sum("total", filter=in_period),
            period_ratio_mean=Avg("ratio", filter=in_period),
            period_measured=Count("pk", filter=in_period),
            ytd_good=Sum("good", filter=measured),
            ytd_total=Sum("total", filter=measured),
            ytd_ratio_mean=Avg("ratio", filter=measured),
            ytd_measured=Count("pk", filter=measured),
        )
        .order_by()
    )
    sums = {row["indicator"]: row for row in rows}
    result = []
    for indicator in indicators:
        row = sums.get(indicator.pk, {})
        stored = first_stored.get(indicator.pk)
        here = _Sums(
            row.get("period_good"), row.get("period_total"), row.get("period_ratio_mean"), row.get("period_measured", 0)
        )
        ytd = _Sums(row.get("ytd_good"), row.get("ytd_total"), row.get("ytd_ratio_mean"), row.get("ytd_measured", 0))
        system_ = indicator.system
        result.append(
            {
                "indicator": indicator.pk,
                "name": indicator.name,
                "kind": indicator.kind,
                "system": system_.code,
                "system_name": system_.name,
                "tier": system_.tier,
                "team": system_.team.slug,
                "objective": _objective(indicator.objective),
                **_figures(indicator, here, days=_counted_days(first, last, first_stored=stored, yesterday=yesterday)),
                "year_to_date": _figures(
                    indicator, ytd, days=_counted_days(ytd_first, last, first_stored=stored, yesterday=yesterday)
                ),
            }
        )
    return result


def day_percent(value: DailyValue) -> Decimal | None:
    """A measured day's value in percent, from its counts when it has them (exact), else its ratio."""
    if value.status != OK:
        return None
    if value.total:
        return _percent(_decimal(value.good) / _decimal(value.total))
    return _percent(_decimal(value.ratio))


def daily_values(indicator: Indicator, period: Period, *, now: datetime | None = None) -> list[dict]:
    """Each finished local day of `period`, oldest first: its status (ok, missing, failed, or
    `not_pulled` when nothing is stored), value in percent, counts and, without a value, why in words."""
    now = now or timezone.now()
    first, last = local_days(period)
    last = min(last, local_today(now) - timedelta(days=1))
    stored = {v.day: v for v in DailyValue.objects.filter(indicator=indicator, day__gte=first, day__lte=last)}
    result = []
    day = first
    while day <= last:
        value = stored.get(day)
        result.append(
            {
                "day": day,
                "status": value.status if value else "not_pulled",
                "value": day_percent(value) if value else None,
                "good": _count(value.good) if value else None,
                "total": _count(value.total) if value else None,
                "below_objective": bool(value and value.status == OK and day_percent(value) < indicator.objective),
                "problem": problem_text(value.problem, value.detail) if value and value.problem else "",
                "attempts": value.attempts if value else 0,
                "pulled_at": value.pulled_at if value else None,
            }
        )
        day += timedelta(days=1)
    return result


def _incident_spans(systems: QuerySet, *, start: datetime, end: datetime, now: datetime) -> dict[int, list]:
    """Per system (`systems`: a query of system ids): the [occurred_at, recovered_at or now) of its
    incidents that touch [start, end)."""
    rows = (
        Incident.systems.through.objects.filter(system_id__in=systems, incident__occurred_at__lt=end)
        .filter(
            Q(incident__recovered_at__isnull=True)
            | Q(incident__recovered_at__gt=start)
            | Q(incident__occurred_at__gte=start)
        )
        .values_list("system_id", "incident__occurred_at", "incident__recovered_at")
    )
    spans: dict[int, list] = defaultdict(list)
    for system_id, occurred_at, recovered_at in rows:
        spans[system_id].append((occurred_at, recovered_at or now))
    return spans


def _logged(spans: list, day: date) -> bool:
    """An incident of the system touches the local day: it occurred that day, or was unrecovered in it."""
    start, end = day_bounds(day)
    return any(occurred < end and (recovered > start or occurred >= start) for occurred, recovered in spans)


def possible_unlogged_incidents(
    period: Period,
    *,
    team: Team | None = None,
    system: System | None = None,
    teams: QuerySet[Team] | None = None,
    now: datetime | None = None,
) -> list[dict]:
    """Days of `period` on which an indicator of a P0 or P1 system was measured below its objective and
    no incident of that system was logged for the day: none occurred that local day and none that
    occurred before was still unrecovered in it. Newest day first, then tier and system. `teams` narrows
    to several teams (a manager's home page). Two queries, whatever the data."""
    now = now or timezone.now()
    first, last = local_days(period)
    scope = Q(system__tier__in=FLAGGED_TIERS)
    if team is not None:
        scope &= Q(system__team=team)
    if teams is not None:
        scope &= Q(system__team__in=teams)
    if system is not None:
        scope &= Q(system=system)
    indicators = Indicator.objects.filter(scope)
    values = DailyValue.objects.filter(
        indicator__in=indicators.values("pk"), status=OK, day__gte=first, day__lte=last
    ).select_related("indicator__system__team")
    below = [value for value in values if day_percent(value) < value.indicator.objective]
    spans = _incident_spans(
        indicators.values("system_id"), start=day_bounds(first)[0], end=day_bounds(last)[1], now=now
    )
    flagged = []
    for value in below:
        if _logged(spans[value.indicator.system_id], value.day):
            continue
        indicator, system_ = value.indicator, value.indicator.system
        flagged.append(
            {
                "day": value.day,
                "system": system_.code,
                "system_name": system_.name,
                "tier": system_.tier,
                "team": system_.team.slug,
                "indicator": indicator.pk,
                "indicator_name": indicator.name,
                "value": day_percent(value),
                "objective": _objective(indicator.objective),
            }
        )
    flagged.sort(key=lambda row: (-row["day"].toordinal(), row["tier"], row["system"], row["indicator_name"]))
    return flagged


def measurement_percent(measurement) -> Decimal | None:
    """A measurement's value in percent (services.Measurement), from its counts when it has them."""
    if measurement.ratio is None:
        return None
    if measurement.total:
        return _percent(_decimal(measurement.good) / _decimal(measurement.total))
    return _percent(_decimal(measurement.ratio))


def _plain(value):
    """Decimals as strings of the exact value, days as ISO dates: the JSON the API and the report give."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: _plain(v) for key, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def service_levels_json(
    period: Period, *, team: Team | None = None, system: System | None = None, now: datetime | None = None
) -> dict:
    """The figures of `period` as the API gives them: `indicators` (service_level_figures) and
    `possible_unlogged` (possible_unlogged_incidents)."""
    now = now or timezone.now()
    return {
        "period": period.label,
        "indicators": _plain(service_level_figures(period, team=team, system=system, now=now)),
        "possible_unlogged": _plain(possible_unlogged_incidents(period, team=team, system=system, now=now)),
    }
