"""The demo's service levels (docs/service-levels.md): an indicator per P0 system and a year of daily values,
made here (the demo has no Prometheus; random.Random(SEED + 7), so every load makes the same figures for the
same incidents).

Each day's events follow a weekly rhythm around the indicator's volume; a small share fails on a normal day,
more while one of the system's demo incidents is impacting it (its availability impact, for the part of the
day it lasted). Two days fall below the objective with no incident logged, so the "possible unlogged
incident" flag shows: three days ago on 入金 (collection), and on the 12th of last month on 出金 (payout)
(moved to an earlier day where an incident of the system was logged). One day of payout has no data, as when
Prometheus was down: it is counted as missing, never as 100 %.

The source is disabled: the hourly pull leaves these indicators alone (its test query shows what an
unreachable Prometheus looks like).
"""

import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.utils import timezone

from incidents.models import Incident, System
from service_levels import services
from service_levels.models import DailyValue, Indicator, PrometheusSource

SEED = 2024 + 7
DAYS = 365
SOURCE_NAME = "Demo Prometheus"
# Days before today on which collection's indicator dips with no incident logged.
UNLOGGED_DAYS_AGO = 3
# Last month's day of payout's dip with no incident, and the day (days ago) it has no data.
UNLOGGED_DAY_OF_LAST_MONTH = 12
MISSING_DAYS_AGO = 40


@dataclass(frozen=True)
class DemoIndicator:
    system: str
    name: str
    objective: str
    good_query: str = ""
    total_query: str = ""
    ratio_query: str = ""
    kind: str = Indicator.Kind.SUCCESS_RATIO
    volume: int = 0  # events on a weekday
    failing: float = 0.0  # share failing on a normal day


def _requests(metric: str) -> tuple[str, str]:
    return (
        f'sum(increase({metric}{{outcome="success"}}[$window]))',
        f"sum(increase({metric}[$window]))",
    )


INDICATORS = (
    DemoIndicator(
        "collection", "入金有效成功率", "99.99", *_requests("collection_requests_total"), volume=1_200_000, failing=2e-5
    ),
    DemoIndicator(
        "payout", "出金有效成功率", "99.95", *_requests("payout_requests_total"), volume=300_000, failing=3e-4
    ),
    DemoIndicator(
        "cashier", "一次支付成功率", "99", *_requests("cashier_payments_total"), volume=2_000_000, failing=8.5e-3
    ),
    DemoIndicator(
        "account-core",
        "记账可用性",
        "99.99",
        ratio_query='avg_over_time(up{job="account-core"}[$window])',
        kind=Indicator.Kind.AVAILABILITY,
    ),
)


def _impacted_seconds(spans: list[tuple[datetime, datetime, float]], start: datetime, end: datetime) -> float:
    """Seconds of [start, end) under an incident, weighted by its availability impact (overlaps add up to at
    most the whole day)."""
    seconds = sum(
        max((min(recovered, end) - max(occurred, start)).total_seconds(), 0) * impact
        for occurred, recovered, impact in spans
    )
    return min(seconds, (end - start).total_seconds())


def _spans(system: System, now: datetime) -> list[tuple[datetime, datetime, float]]:
    return [
        (incident.occurred_at, incident.recovered_at or now, float(incident.effective_availability_impact))
        for incident in Incident.objects.filter(systems=system)
    ]


def _logged(spans, day: date) -> bool:
    start, end = services.day_bounds(day)
    return any(occurred < end and (recovered > start or occurred >= start) for occurred, recovered, _i in spans)


def _quiet_day(spans, day: date) -> date:
    """`day`, or the nearest earlier day on which no incident of the system was logged."""
    while _logged(spans, day):
        day -= timedelta(days=1)
    return day


def _day_value(spec: DemoIndicator, day: date, *, rng: random.Random, spans, dip: bool) -> DailyValue:
    start, end = services.day_bounds(day)
    impacted = _impacted_seconds(spans, start, end) / 86400
    if spec.ratio_query:
        ratio = 1 - impacted - rng.uniform(0, 2e-5)
        if dip:
            ratio = min(ratio, 0.9990)
        return DailyValue(day=day, status=DailyValue.Status.OK, ratio=max(ratio, 0.0))
    weekend = day.isoweekday() >= 6
    total = round(spec.volume * (0.7 if weekend else 1.0) * rng.uniform(0.9, 1.1))
    failing = spec.failing * rng.uniform(0.6, 1.1) + impacted * 0.5
    if dip:
        # Below the objective: three times the failures the objective allows.
        failing = max(failing, 3 * (1 - float(Decimal(spec.objective) / 100)))
    good = total - min(round(total * failing), total)
    return DailyValue(day=day, status=DailyValue.Status.OK, good=good, total=total, ratio=good / total)


def load(systems: dict[str, System], *, now: datetime | None = None) -> int:
    """The demo source, its indicators and their year of days; nothing when the source exists. Returns the
    number of daily values made."""
    if PrometheusSource.objects.filter(name=SOURCE_NAME).exists():
        return 0
    now = now or timezone.now()
    source = services.source_create(name=SOURCE_NAME, url="http://127.0.0.1:9090", enabled=False)
    today = services.local_today(now)
    last_month = (today.replace(day=1) - timedelta(days=1)).replace(day=UNLOGGED_DAY_OF_LAST_MONTH)
    rng = random.Random(SEED)
    made = 0
    for spec in INDICATORS:
        system = systems.get(spec.system)
        if system is None:
            continue
        indicator = services.indicator_create(
            system=system,
            source=source,
            name=spec.name,
            kind=spec.kind,
            objective=Decimal(spec.objective),
            good_query=spec.good_query,
            total_query=spec.total_query,
            ratio_query=spec.ratio_query,
            check=False,
        )
        spans = _spans(system, now)
        dips = set()
        if spec.system == "collection":
            dips.add(_quiet_day(spans, today - timedelta(days=UNLOGGED_DAYS_AGO)))
        if spec.system == "payout":
            dips.add(_quiet_day(spans, last_month))
        values = []
        for n in range(DAYS, 0, -1):
            day = today - timedelta(days=n)
            if spec.system == "payout" and n == MISSING_DAYS_AGO and day not in dips:
                values.append(DailyValue(day=day, status=DailyValue.Status.MISSING, problem="no_data"))
                continue
            values.append(_day_value(spec, day, rng=rng, spans=spans, dip=day in dips))
        for value in values:
            value.pulled_at = now
            value.attempts = 1
        made += services.daily_values_load(indicator=indicator, values=values)
    return made
