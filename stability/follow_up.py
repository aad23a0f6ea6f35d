"""The follow-up rate's one engine (docs/metrics.md): its rule, its aggregates and its day counts.

The rule: `rules(now)` says, as conditions on an occurrence, which are excluded at receipt, pending,
flapping, in the denominator, in time and missed; `aggregates()` counts them in one pass and
`figures()` turns a row of counts into the published figures. Every figure of the follow-up rate
(stability.selectors' follow_up_rate, follow_up_breakdown, follow_up_trend, the health score) is
computed from these three, never restated.

The day counts: a day (in the organisation's zone, settings.TIME_ZONE) is settled once it ended at
least one follow-up window ago: none of its occurrences can still be pending, so its counts depend on
the occurrences' own fields only, not on the clock. AlertDayCount holds them, per settled day, team,
system and alert name; `refresh_day_counts()` is their only writer (beat every 5 minutes, and bulk
loaders after loading), written by the database with the aggregates above (INSERT ... SELECT).

Readers never write. `period_counts()` reads the settled days the last refresh counted and that are
known clean from AlertDayCount, and counts everything else from the occurrences with the same
aggregates: the days not counted yet, the last window, a period not cut at midnight, and every
counted day holding an occurrence changed since that refresh looked. "Changed" is
AlertOccurrence.changed_at, which every write that can change a count stamps (ingestion's SQL, the
follow-ups of stability.services, the model's default for an insert). The figures are therefore
exactly those of counting every occurrence, at any moment (tests/stability/test_day_counts.py).

Changing FOLLOW_UP_WINDOW_SECONDS, FOLLOW_UP_FLAPPING_SECONDS or TIME_ZONE makes the stored counts
stale as a whole: readers count from the occurrences until the next refresh counts everything again.
"""

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import (
    Aggregate,
    Case,
    Count,
    DurationField,
    Expression,
    ExpressionWrapper,
    F,
    FloatField,
    Func,
    IntegerField,
    Min,
    Q,
    Sum,
    Value,
    When,
)
from django.db.models.functions import TruncDate
from django.utils import timezone

from incidents import periods as calendar
from incidents.models import System, Team
from incidents.periods import Period
from incidents.selectors import percentile, period_bucket, rate
from stability.models import AlertDayCount, AlertDayCountState, AlertDelayPercentiles, AlertOccurrence

# --- The rule ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rules:
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


def rules(now: datetime) -> Rules:
    """The rule of metrics.md under the settings in force, as of `now`."""
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
    return Rules(
        counted=counted,
        pending=pending,
        flapping=flapping,
        denominator=denominator,
        followed_up=denominator & Q(followed_up_at__isnull=False),
        in_time=denominator & in_time,
        missed=denominator & ~in_time,
    )


def rules_in_force() -> dict:
    """What the stored day counts depend on besides the occurrences: counted under other rules, they
    are not read."""
    return {
        "window_seconds": settings.FOLLOW_UP_WINDOW_SECONDS,
        "flapping_seconds": settings.FOLLOW_UP_FLAPPING_SECONDS,
        "time_zone": settings.TIME_ZONE,
    }


# --- Its aggregates and figures ------------------------------------------------------------------

# Delays are whole microseconds and the fractions tenths, so an exact percentile lies on a 1e-7 s grid.
# Rounding to it drops PostgreSQL's float error (5850.000000000001) and both paths agree to the bit.
_PERCENTILE_DIGITS = 7
PERCENTILES = {"median_delay": 0.5, "p90_delay": 0.9}


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


def delay() -> Expression:
    """Follow-up delay: followed_up_at - received_at, exact."""
    return ExpressionWrapper(F("followed_up_at") - F("received_at"), output_field=DurationField())


def aggregates(rule: Rules, *, in_database_percentiles: bool = False) -> dict:
    """The counts of each set of `rule` (and, asked for, the delay percentiles by percentile_cont).

    Aliased apart from the model's fields: an alias `excluded` would capture Q(excluded=...). Counts
    of received_at (never null), not of the id: every column read is in the covering index
    alert_received_follow_up, so PostgreSQL scans the index only."""
    counts = {
        "n_received": Count("received_at"),
        "n_excluded": Count("received_at", filter=~rule.counted),
        "n_pending": Count("received_at", filter=rule.pending),
        "n_denominator": Count("received_at", filter=rule.denominator),
        "n_in_time": Count("received_at", filter=rule.in_time),
        "n_followed_up": Count("received_at", filter=rule.followed_up),
    }
    if rule.flapping is not None:
        counts["n_flapping_excluded"] = Count("received_at", filter=rule.flapping)
    if in_database_percentiles:
        counts.update(
            {
                f"n_{name}": PercentileCont(_EpochSeconds(delay()), fraction=fraction, filter=rule.followed_up)
                for name, fraction in PERCENTILES.items()
            }
        )
    return counts


def empty_counts(now: datetime) -> dict[str, int]:
    """A row of aggregates() (without percentiles) counting nothing."""
    return dict.fromkeys(aggregates(rules(now)), 0)


def figures(row: dict, delays: list[float] | None = None, *, percentiles: bool = True) -> dict:
    """The published figures of one set from its row of aggregates(); `delays` (sorted seconds) when
    the database has no percentile_cont. rate = in time / denominator (None when it is 0)."""
    if not percentiles:
        quantiles = {name: None for name in PERCENTILES}
    elif delays is not None:
        quantiles = {name: percentile(delays, fraction) for name, fraction in PERCENTILES.items()}
    else:
        quantiles = {name: row[f"n_{name}"] for name in PERCENTILES}
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


# --- The day counts ------------------------------------------------------------------------------

# Occurrences changed this long before a refresh looked are looked at again (by the next refresh and
# by readers): a write whose transaction commits up to this long after it stamped changed_at is still
# seen. Writes here last milliseconds.
MARGIN = timedelta(minutes=5)
# AlertDayCount column: the aggregate it holds.
COUNTS = {
    "received": "n_received",
    "excluded": "n_excluded",
    "flapping": "n_flapping_excluded",
    "denominator": "n_denominator",
    "in_time": "n_in_time",
    "followed_up": "n_followed_up",
}
DIMENSIONS = ("team", "system", "alertname")
EPOCH = date(1970, 1, 1)  # before any occurrence


def _zone():
    return timezone.get_default_timezone()


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=_zone())


def _local_day(moment: datetime) -> date:
    return timezone.localtime(moment, _zone()).date()


def _on_days(days: Sequence[date]) -> Q:
    """Occurrences received on any of `days` (local), by received_at ranges the index serves."""
    on = Q()
    for day in days:
        on |= Q(received_at__gte=_midnight(day), received_at__lt=_midnight(day + timedelta(days=1)))
    return on


def settled_until(now: datetime) -> date:
    """The first day not settled at `now`: every day before it ended at least one window before now."""
    return _local_day(now - timedelta(seconds=settings.FOLLOW_UP_WINDOW_SECONDS))


def _changed_days(*, since: datetime, before: date) -> list[date]:
    """The days before `before` holding an occurrence changed at or after `since` (index alert_changed)."""
    return list(
        AlertOccurrence.objects.filter(changed_at__gte=since, received_at__lt=_midnight(before))
        .annotate(changed_day=TruncDate("received_at", tzinfo=_zone()))
        .values_list("changed_day", flat=True)
        .distinct()
        .order_by()
    )


def _insert_counts(occurrences: Q, now: datetime) -> None:
    """INSERT ... SELECT: the counts of the occurrences matching `occurrences`, per day and dimension."""
    counted = aggregates(rules(now))
    selected = {column: counted.get(name, Value(0)) for column, name in COUNTS.items()}
    source = (
        AlertOccurrence.objects.filter(occurrences)
        .annotate(counted_day=TruncDate("received_at", tzinfo=_zone()))
        .values("counted_day", "team_id", "system_id", "alertname")
        .annotate(**{f"c_{column}": expression for column, expression in selected.items()})
        .order_by()
    )
    sql, params = source.query.sql_with_params()
    q = connection.ops.quote_name
    columns = ["day", "team_id", "system_id", "alertname", *COUNTS]
    picked = ["counted_day", "team_id", "system_id", "alertname", *(f"c_{column}" for column in COUNTS)]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {q(AlertDayCount._meta.db_table)} ({', '.join(q(c) for c in columns)}) "
            f"SELECT {', '.join(q(c) for c in picked)} FROM ({sql}) counted",
            params,
        )


def refresh_day_counts(now: datetime | None = None) -> date:
    """Bring AlertDayCount up to date for `now`: count the days settled since the last refresh and
    count again the days of occurrences changed since then. Returns the first day not counted (every
    day before it is). The only writer of the day counts and of the delay percentiles of the months and
    weeks they hold whole (_refresh_delays): beat runs it every 5 minutes, a bulk loader after loading.
    Concurrent refreshes wait for each other (the state row is locked). The same sixteen statements
    (eighteen with the savepoint's) whether there is anything to count or not."""
    now = now or timezone.now()
    clock = timezone.now()  # writers stamp changed_at with it, whatever `now` the counts are for
    until = settled_until(now)
    with transaction.atomic():
        AlertDayCountState.objects.bulk_create([AlertDayCountState(pk=1)], ignore_conflicts=True)
        state = AlertDayCountState.objects.select_for_update().get(pk=1)
        if state.rules != rules_in_force():
            # Other rules, other counts: everything is counted again (the span below starts at the beginning).
            state.rules, state.counted_until, state.checked_at = rules_in_force(), None, None
        since = state.counted_until
        changed = _changed_days(since=state.checked_at - MARGIN if state.checked_at else clock, before=since or EPOCH)
        counted_until = max(until, since or until)
        first = since or EPOCH
        AlertDayCount.objects.filter(
            Q(day__gte=first, day__lt=counted_until) | Q(day__in=changed) if since is not None else Q()
        ).delete()
        _insert_counts(
            Q(received_at__gte=_midnight(first), received_at__lt=_midnight(counted_until)) | _on_days(changed), now
        )
        _refresh_delays(everything=since is None, counted_until=counted_until, changed=changed, now=now)
        state.counted_until, state.checked_at = counted_until, clock
        state.save()
    return counted_until


# --- The delay percentiles of the months and weeks ----------------------------------------------------

# Exact percentiles do not add up from days: the median and p90 delay of a month or an ISO week are kept
# per period and scope (AlertDelayPercentiles) once the day counts hold the period whole, and computed
# again when one of its days changes, by the same refresh. Readers take them where they would take the
# day counts; anything else (quarters, years, ranges, a team and a system at once) is counted live.
DELAY_PERIODS = ("month", "week")
_SCOPES = AlertDelayPercentiles.Scope


def _delay_percentiles(periods: Sequence[Period], group: str | None, scope: Q, now: datetime) -> list[tuple]:
    """(index of the period, team or system id by `group` or None, followed up, median, p90) over the
    followed-up occurrences matching `scope` received in each of `periods`: the percentiles of
    follow_up_rate's figures (PostgreSQL's percentile_cont, or the same interpolation here). One query,
    an empty range when there is no period."""
    spans = Q(received_at__gte=_midnight(EPOCH), received_at__lt=_midnight(EPOCH))
    if periods:
        spans = Q()
        for period in periods:
            spans |= Q(received_at__gte=period.start, received_at__lt=period.end)
    keys = ("bucket", f"{group}_id") if group else ("bucket",)
    followed_up = (
        AlertOccurrence.objects.filter(scope, spans)
        .filter(rules(now).followed_up)
        .annotate(bucket=period_bucket("received_at", periods) if periods else Value(None, IntegerField()))
        .order_by()
    )
    if connection.vendor == "postgresql":
        rows = followed_up.values(*keys).annotate(
            n=Count("received_at"),
            **{name: PercentileCont(_EpochSeconds(delay()), fraction=f) for name, f in PERCENTILES.items()},
        )
        # Without a period the grouping is by a constant: one row of nothing, left out.
        return [
            (row["bucket"], row[keys[-1]] if group else None, row["n"], *map(row.get, PERCENTILES))
            for row in rows
            if row["bucket"] is not None
        ]
    delays: dict[tuple, list[float]] = {}
    for *key, between in followed_up.annotate(between=delay()).values_list(*keys, "between"):
        delays.setdefault(tuple(key), []).append(between.total_seconds())
    return [
        (key[0], key[-1] if group else None, len(found), *(percentile(sorted(found), f) for f in PERCENTILES.values()))
        for key, found in delays.items()
    ]


def _whole_periods(first_day: date | None, until: date) -> list[Period]:
    """The months and ISO weeks ending by `until` that hold a day from `first_day` on."""
    found = []
    for kind in DELAY_PERIODS if first_day is not None else ():
        period = calendar.containing(kind, _midnight(first_day))
        while _local_day(period.end) <= until:
            found.append(period)
            period = calendar.containing(kind, period.end)
    return found


def _refresh_delays(*, everything: bool, counted_until: date, changed: list[date], now: datetime) -> None:
    """Part of refresh_day_counts: compute the delay percentiles of the months and weeks the day counts now
    hold whole that have none yet (newly settled, or all of them when `everything` is counted again) or
    hold a day in `changed`, per everyone, team and system. Ten statements whatever there is to do."""
    first_day = AlertDayCount.objects.aggregate(first=Min("day"))["first"]
    kept = set(AlertDelayPercentiles.objects.filter(scope=_SCOPES.ALL).values_list("period", flat=True))
    stale = [
        period
        for period in _whole_periods(first_day, counted_until)
        if everything or period.label not in kept or any(period.start <= _midnight(day) < period.end for day in changed)
    ]
    labels = [period.label for period in stale]
    AlertDelayPercentiles.objects.filter(Q() if everything else Q(period__in=labels or [""])).delete()
    rows = {(label, _SCOPES.ALL, None): (0, None, None) for label in labels}  # a row for everyone, always
    for kind in DELAY_PERIODS:
        chosen = [period for period in stale if period.kind == kind]
        for scope, group in ((_SCOPES.ALL, None), (_SCOPES.TEAM, "team"), (_SCOPES.SYSTEM, "system")):
            for index, key, *figures in _delay_percentiles(chosen, group, Q(), now):
                rows[(chosen[index].label, scope, key)] = tuple(figures)
    table = AlertDelayPercentiles._meta
    columns = [table.get_field(name).column for name in ("period", "scope", "key", "followed_up", *PERCENTILES)]
    q = connection.ops.quote_name
    with connection.cursor() as cursor:
        # executemany, also of no row: the same statements whatever there is to do.
        cursor.executemany(
            f"INSERT INTO {q(table.db_table)} ({', '.join(map(q, columns))}) VALUES ({', '.join(['%s'] * 6)})",
            [(*key, *figures) for key, figures in rows.items()],
        )


def period_delays(*, period: Period, now: datetime, team: int | None = None, system: int | None = None) -> dict:
    """follow_up_rate's median_delay and p90_delay (seconds, as it rounds them) over the occurrences of
    `period` of team `team`, system `system` (ids) or everyone: read from AlertDelayPercentiles for a
    month or ISO week the day counts hold whole and unchanged since the last refresh (when period_counts
    reads them), else counted from the occurrences. Four queries whatever the data."""
    stored = _stored_days([period], now)
    scope, key = (_SCOPES.ALL, None)
    if team is not None or system is not None:
        scope, key = (_SCOPES.TEAM, team) if team is not None else (_SCOPES.SYSTEM, system)
    rows = {
        row.scope: row
        for row in AlertDelayPercentiles.objects.filter(period=period.label).filter(
            Q(scope=_SCOPES.ALL) | Q(scope=scope, key=key)
        )
    }
    kept = (
        period.kind in DELAY_PERIODS
        and (team is None or system is None)
        and stored.until == _local_day(period.end)
        and not stored.changed
        and _SCOPES.ALL in rows
    )
    occurrences = Q(**{name: value for name, value in (("team_id", team), ("system_id", system)) if value is not None})
    counted = _delay_percentiles([] if kept else [period], None, occurrences, now)
    if kept:
        row = rows.get(scope)
        values = (row.median_delay, row.p90_delay) if row is not None else (None, None)
    else:
        values = tuple(counted[0][3:]) if counted else (None, None)
    return {
        name: None if value is None else round(value, _PERCENTILE_DIGITS)
        for name, value in zip(PERCENTILES, values, strict=True)
    }


@dataclass(frozen=True)
class _Stored:
    """What a reader may take from AlertDayCount: the days in [first, until) except `changed`."""

    first: date
    until: date
    changed: list[date]

    def rows(self) -> Q:
        return Q(day__gte=self.first, day__lt=self.until) & ~Q(day__in=self.changed)

    def rest(self, start: datetime, end: datetime) -> Q:
        """The occurrences received in [start, end) (`first` is start's day) whose counts the rows do not
        hold, as bounded ranges of received_at: the changed days of the stored span and what follows it.
        Each is an index range, so the stored span is never read (excluding it from [start, end) read
        it all, a year for a trend). The range after the span is there even when empty: the same query
        whatever the data."""
        ranges = [(_midnight(day), _midnight(day + timedelta(days=1))) for day in self.changed]
        ranges.append((max(start, _midnight(self.until)), end))
        rest = Q()
        for low, high in ranges:
            rest |= Q(received_at__gte=max(low, start), received_at__lt=min(high, end))
        return rest


def _stored_days(periods: Sequence[Period], now: datetime) -> _Stored:
    """The days of `periods` whose counts are read from AlertDayCount as of `now`: counted by the last
    refresh under the rules in force, settled at `now`, unchanged since that refresh looked. Periods
    not all cut at local midnight read nothing from it. Two queries (the state, the changed days),
    whatever the periods, so that a report's queries do not depend on the month."""
    first, last = _local_day(periods[0].start), _local_day(periods[-1].end)
    cut_at_midnight = all(
        p.start == _midnight(_local_day(p.start)) and p.end == _midnight(_local_day(p.end)) for p in periods
    )
    state = AlertDayCountState.objects.filter(pk=1).first()
    usable = cut_at_midnight and state is not None and state.counted_until and state.rules == rules_in_force()
    until = max(first, min(state.counted_until, settled_until(now), last)) if usable else first
    # Asked even when nothing is read from the day counts (an empty span then).
    since = state.checked_at - MARGIN if usable else timezone.now()
    changed = [day for day in _changed_days(since=since, before=until) if day >= first]
    return _Stored(first, until, changed)


def period_counts(
    *, scope: Q, periods: Sequence[Period], dimensions: tuple[str, ...], now: datetime
) -> dict[tuple, dict[str, int]]:
    """The rows of aggregates() (without percentiles) of the occurrences matching `scope` (a condition on
    team, system or alertname, fields AlertDayCount shares) received in `periods` (back to back), per
    (index of the period, *the key of each of `dimensions`: team slug, system code, alert name), as of
    `now`. Reads only: stored day counts where they are known exact, the occurrences for the rest.
    Four queries whatever the data, one more per team or system dimension (their slugs and codes)."""
    if any(d not in DIMENSIONS for d in dimensions):
        raise ValueError(f"dimensions must be among {', '.join(DIMENSIONS)}, not {dimensions!r}")
    stored = _stored_days(periods, now)
    counted = aggregates(rules(now))
    totals: dict[tuple, dict[str, int]] = {}

    def add(bucket, row: dict) -> None:
        total = totals.setdefault((bucket, *(row[d] for d in dimensions)), dict.fromkeys(counted, 0))
        for name in counted:
            total[name] += row.get(name) or 0

    for bucket, row in _stored_rows(scope, periods, dimensions, stored, counted):
        add(bucket, row)
    for row in (
        AlertOccurrence.objects.filter(scope)
        .filter(stored.rest(periods[0].start, periods[-1].end))
        .annotate(bucket=period_bucket("received_at", periods))
        .values("bucket", *dimensions)
        .annotate(**counted)
        .order_by()
    ):
        add(row["bucket"], row)
    return _named(totals, dimensions)


def _stored_rows(scope: Q, periods: Sequence[Period], dimensions: tuple[str, ...], stored: _Stored, counted: dict):
    """(index of the period, row of sums) of the stored day counts, grouped by the ids (no join,
    narrow rows). Without dimensions, by day, each day's period found here (a year's trend groups ~366
    days rather than bucketing ~300,000 rows in the database); with dimensions, by period in the
    database (a day per key would be many rows)."""
    sums = {name: Sum(column) for column, name in COUNTS.items() if name in counted}
    day_counts = AlertDayCount.objects.filter(scope, stored.rows()).order_by()
    if not dimensions:
        starts = [_local_day(p.start) for p in periods]
        for row in day_counts.values("day").annotate(**sums):
            yield bisect_right(starts, row["day"]) - 1, row
        return
    bucket = Case(
        *(When(day__gte=_local_day(p.start), day__lt=_local_day(p.end), then=Value(i)) for i, p in enumerate(periods))
    )
    for row in day_counts.annotate(bucket=bucket).values("bucket", *dimensions).annotate(**sums):
        yield row["bucket"], row


def _named(totals: dict[tuple, dict], dimensions: tuple[str, ...]) -> dict[tuple, dict]:
    """Team and system ids as the selectors key them: slug and code."""
    names = {}
    for i, d in enumerate(dimensions, start=1):
        if d in ("team", "system"):
            model, field = (Team, "slug") if d == "team" else (System, "code")
            names[i] = dict(model.objects.values_list("pk", field))  # a few hundred at most; one query
    if not names:
        return totals
    return {
        tuple(names[i].get(part) if i in names else part for i, part in enumerate(key)): counts
        for key, counts in totals.items()
    }
