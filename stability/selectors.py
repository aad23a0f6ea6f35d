"""Reads of the stability app, and the alert figures of metrics.md, defined once here.

Every consumer (API, pages, reports, health score) calls these; none recomputes a figure.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connections
from django.db.models import (
    Aggregate,
    Count,
    DurationField,
    Expression,
    ExpressionWrapper,
    F,
    FloatField,
    Func,
    Q,
    QuerySet,
)
from django.db.models.functions import TruncDay, TruncMonth, TruncWeek
from django.utils import timezone

from incidents.periods import Period
from incidents.selectors import percentile, rate
from stability.models import AlertOccurrence

GROUP_BY = ("team", "system", "severity", "day", "week", "month")

# Delays are whole microseconds and the fractions tenths, so an exact percentile lies on a 1e-7 s grid.
# Rounding to it drops PostgreSQL's float error (5850.000000000001) and both paths agree to the bit.
_PERCENTILE_DIGITS = 7
_PERCENTILES = {"median_delay": 0.5, "p90_delay": 0.9}


class _EpochSeconds(Func):
    """A duration as float seconds (PostgreSQL)."""

    template = "EXTRACT(EPOCH FROM %(expressions)s)::double precision"
    output_field = FloatField()


class PercentileCont(Aggregate):
    """PostgreSQL's percentile_cont: linear interpolation between closest ranks."""

    function = "percentile_cont"
    name = "PercentileCont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression, *, fraction: float, **extra):
        super().__init__(expression, fraction=float(fraction), **extra)


@dataclass(frozen=True)
class _Rules:
    """The follow-up rate's sets as conditions on an occurrence (metrics.md), as of `now`.

    received = excluded + pending + flapping + denominator; each rule applies to what the ones
    before it left: excluded at receipt, then pending, then (when on) flapping.
    """

    counted: Q  # not excluded at receipt
    pending: Q  # counted, not followed up, received less than one window ago
    flapping: Q | None  # counted, not pending, resolved by the source soon, no follow-up; None when off
    denominator: Q
    followed_up: Q  # of the denominator
    in_time: Q  # of the denominator: delay <= window
    missed: Q  # of the denominator: followed up late or never


def _rules(now: datetime) -> _Rules:
    window = timedelta(seconds=settings.FOLLOW_UP_WINDOW_SECONDS)
    flapping_seconds = settings.FOLLOW_UP_FLAPPING_SECONDS
    counted = Q(excluded=AlertOccurrence.Exclusion.NONE)
    not_followed_up = Q(followed_up_at__isnull=True)
    # "Received less than one window ago": now - received_at < window. Exactly one window ago is decided.
    young = Q(received_at__gt=now - window)
    pending = counted & not_followed_up & young
    decided = counted & ~(not_followed_up & young)
    if flapping_seconds > 0:
        resolved_by_source_soon = Q(
            resolved_by__isnull=True,
            resolved_at__isnull=False,
            resolved_at__lte=F("received_at") + timedelta(seconds=flapping_seconds),
        )
        flapping = decided & not_followed_up & resolved_by_source_soon
        denominator = decided & ~(not_followed_up & resolved_by_source_soon)
    else:
        flapping = None
        denominator = decided
    in_time = Q(followed_up_at__isnull=False, followed_up_at__lte=F("received_at") + window)
    return _Rules(
        counted=counted,
        pending=pending,
        flapping=flapping,
        denominator=denominator,
        followed_up=denominator & Q(followed_up_at__isnull=False),
        in_time=denominator & in_time,
        missed=denominator & ~in_time,
    )


def _received_in(occurrences: QuerySet[AlertOccurrence], period: Period) -> QuerySet[AlertOccurrence]:
    """A period selects occurrences by received_at, half-open."""
    return occurrences.filter(received_at__gte=period.start, received_at__lt=period.end)


def _delay() -> Expression:
    return ExpressionWrapper(F("followed_up_at") - F("received_at"), output_field=DurationField())


def _aggregates(rules: _Rules, *, in_database_percentiles: bool) -> dict:
    """Aliased apart from the model's fields: an alias `excluded` would capture Q(excluded=...)."""
    counts = {
        "n_received": Count("pk"),
        "n_excluded": Count("pk", filter=~rules.counted),
        "n_pending": Count("pk", filter=rules.pending),
        "n_denominator": Count("pk", filter=rules.denominator),
        "n_in_time": Count("pk", filter=rules.in_time),
        "n_followed_up": Count("pk", filter=rules.followed_up),
    }
    if rules.flapping is not None:
        counts["n_flapping_excluded"] = Count("pk", filter=rules.flapping)
    if in_database_percentiles:
        counts.update(
            {
                f"n_{name}": PercentileCont(_EpochSeconds(_delay()), fraction=fraction, filter=rules.followed_up)
                for name, fraction in _PERCENTILES.items()
            }
        )
    return counts


def _figures(row: dict, delays: list[float] | None) -> dict:
    """One set's figures from its aggregate row; `delays` (sorted seconds) when the database has no
    percentile_cont."""
    if delays is not None:
        quantiles = {name: percentile(delays, fraction) for name, fraction in _PERCENTILES.items()}
    else:
        quantiles = {name: row[f"n_{name}"] for name in _PERCENTILES}
    return {
        "rate": rate(row["n_in_time"], row["n_denominator"]),
        "in_time": row["n_in_time"],
        "missed": row["n_denominator"] - row["n_in_time"],
        "denominator": row["n_denominator"],
        "followed_up": row["n_followed_up"],
        "received": row["n_received"],
        "excluded": row["n_excluded"],
        "pending": row["n_pending"],
        "flapping_excluded": row.get("n_flapping_excluded", 0),
        **{name: None if value is None else round(value, _PERCENTILE_DIGITS) for name, value in quantiles.items()},
    }


def _group_expression(group_by: str) -> Expression:
    zone = timezone.get_default_timezone()
    return {
        "team": F("team__slug"),
        "system": F("system__code"),
        "severity": F("severity"),
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
) -> dict:
    """The 5-minute follow-up rate of metrics.md over the occurrences received in `period`, as of `now`.

    rate = followed up within FOLLOW_UP_WINDOW_SECONDS (inclusive) / denominator, where the denominator
    is the occurrences received in the period minus those excluded at receipt, pending ones (not
    followed up, received less than a window before `now`) and, when FOLLOW_UP_FLAPPING_SECONDS > 0,
    those the source resolved within that many seconds with no follow-up. None when the denominator is
    0. With the counts, and the median and p90 delay in seconds over the followed-up ones. `group_by`:
    one of GROUP_BY, groups ordered by key (no team / system last).
    """
    if group_by is not None and group_by not in GROUP_BY:
        raise ValueError(f"group_by must be one of {', '.join(GROUP_BY)}, not {group_by!r}")
    now = now or timezone.now()
    rules = _rules(now)
    base = _received_in(occurrences, period)
    in_database = connections[base.db].vendor == "postgresql"
    aggregates = _aggregates(rules, in_database_percentiles=in_database)

    rows = []
    if group_by is not None:
        rows = list(
            base.annotate(group_key=_group_expression(group_by))
            .values("group_key")
            .annotate(**aggregates)
            .order_by(F("group_key").asc(nulls_last=True))
        )
    overall = base.aggregate(**aggregates)

    overall_delays = group_delays = None
    if not in_database:
        # No percentile_cont (SQLite): one query for the delays of every group, interpolated here.
        keyed = base.filter(rules.followed_up).annotate(delay=_delay())
        if group_by is not None:
            keyed = keyed.annotate(group_key=_group_expression(group_by))
            pairs = keyed.values_list("group_key", "delay")
        else:
            pairs = ((None, delay) for delay in keyed.values_list("delay", flat=True))
        group_delays = {}
        for key, delay in pairs:
            group_delays.setdefault(key, []).append(delay.total_seconds())
        overall_delays = sorted(d for delays in group_delays.values() for d in delays)

    return {
        "period": period.label,
        "window_seconds": settings.FOLLOW_UP_WINDOW_SECONDS,
        "flapping_seconds": settings.FOLLOW_UP_FLAPPING_SECONDS,
        "as_of": now,
        "group_by": group_by,
        "overall": _figures(overall, overall_delays),
        "groups": [
            {
                "key": _group_key(group_by, row["group_key"]),
                **_figures(row, None if in_database else sorted(group_delays.get(row["group_key"], []))),
            }
            for row in rows
        ],
    }


def follow_up_missed(
    *, occurrences: QuerySet[AlertOccurrence], period: Period, now: datetime | None = None
) -> QuerySet[AlertOccurrence]:
    """The occurrences behind follow_up_rate's `missed`: in the denominator, not followed up within the
    window (late or never), oldest first."""
    rules = _rules(now or timezone.now())
    return (
        _received_in(occurrences, period)
        .filter(rules.missed)
        .select_related("team", "system", "integration")
        .order_by("received_at", "pk")
    )
