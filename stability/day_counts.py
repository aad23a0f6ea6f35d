"""Follow-up counts per day, so that a report over a year reads days instead of a million occurrences.

A day (in the organisation's zone, settings.TIME_ZONE) is settled once it ended at least one
follow-up window ago: none of its occurrences can still be pending, so its counts under the rules of
stability.selectors (_rules, _aggregates) depend on the occurrences' own fields only, not on the
clock. refresh() keeps AlertDayCount: one row per settled day, team, system and alert name holding
those counts, written by the database from the occurrences (INSERT ... SELECT). Every write that can
change a count stamps AlertOccurrence.changed_at (ingestion, follow-ups, resolutions, a renamed rule);
refresh() counts again each counted day holding an occurrence changed since it last looked.

period_counts() is what the selectors read: for periods cut at local midnight, the settled days from
AlertDayCount and everything else (today, the last window, a period not cut at midnight) from the
occurrences, with the same rules. The figures are the same as counting every occurrence
(tests/stability/test_day_counts.py checks it); only the rows read differ.

Changing FOLLOW_UP_WINDOW_SECONDS, FOLLOW_UP_FLAPPING_SECONDS or TIME_ZONE counts everything again.
"""

from bisect import bisect_right
from collections.abc import Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, Q, Sum, Value, When
from django.db.models.functions import TruncDate
from django.utils import timezone

from incidents.models import System, Team
from incidents.periods import Period
from incidents.selectors import period_bucket
from stability import selectors
from stability.models import AlertDayCount, AlertDayCountState, AlertOccurrence

# Occurrences changed this long before the last look are looked at again: a write whose transaction
# commits up to this long after it stamped changed_at is still seen. Writes here last milliseconds.
MARGIN = timedelta(minutes=5)
# AlertDayCount column: the selectors' aggregate it holds.
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


def settled_until(now: datetime) -> date:
    """The first day not settled at `now`: every day before it ended at least one window before now."""
    return _local_day(now - timedelta(seconds=settings.FOLLOW_UP_WINDOW_SECONDS))


def _rules_in_force() -> dict:
    return {
        "window_seconds": settings.FOLLOW_UP_WINDOW_SECONDS,
        "flapping_seconds": settings.FOLLOW_UP_FLAPPING_SECONDS,
        "time_zone": settings.TIME_ZONE,
    }


def _days(days: Sequence[date], since: date | None, until: date) -> tuple[Q, Q]:
    """(the AlertDayCount rows, the occurrences) of `days` and of the days from `since` (None: the
    beginning) to `until`; an empty span when since >= until, still one statement each."""
    first = since or EPOCH
    rows = Q(day__gte=first, day__lt=until) | Q(day__in=days)
    occurrences = Q(received_at__gte=_midnight(first), received_at__lt=_midnight(until))
    for day in days:
        occurrences |= Q(received_at__gte=_midnight(day), received_at__lt=_midnight(day + timedelta(days=1)))
    return rows, occurrences


def _count(occurrences: Q, now: datetime) -> None:
    """INSERT ... SELECT: the counts of the occurrences matching `occurrences`, per day and dimension."""
    aggregates = selectors._aggregates(selectors._rules(now), in_database_percentiles=False)
    selected = {column: aggregates.get(name, Value(0)) for column, name in COUNTS.items()}
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


def refresh(now: datetime | None = None) -> date:
    """Bring AlertDayCount up to date for `now`: count the days settled since the last refresh and
    count again the days of occurrences changed since then. Returns the first day not counted (every
    day before it is). Concurrent refreshes wait for each other (the state row is locked). The same
    six statements (eight with the savepoint's) whether there is anything to count or not."""
    now = now or timezone.now()
    clock = timezone.now()  # writers stamp changed_at with it, whatever `now` a report is taken at
    until = settled_until(now)
    rules = _rules_in_force()
    with transaction.atomic():
        AlertDayCountState.objects.bulk_create([AlertDayCountState(pk=1)], ignore_conflicts=True)
        state = AlertDayCountState.objects.select_for_update().get(pk=1)
        if state.rules != rules:
            # Other rules, other counts: everything is counted again (the span below starts at the beginning).
            state.rules, state.counted_until, state.checked_at = rules, None, None
        looked_at = state.checked_at - MARGIN if state.checked_at else clock
        changed = list(
            AlertOccurrence.objects.filter(
                changed_at__gte=looked_at, received_at__lt=_midnight(state.counted_until or EPOCH)
            )
            .annotate(changed_day=TruncDate("received_at", tzinfo=_zone()))
            .values_list("changed_day", flat=True)
            .distinct()
            .order_by()
        )
        since = state.counted_until
        rows, occurrences = _days(changed, since, max(until, since or until))
        AlertDayCount.objects.filter(rows if since is not None else Q()).delete()
        _count(occurrences, now)
        state.counted_until = max(until, since or until)
        state.checked_at = clock
        state.save()
    return state.counted_until


_refreshed: ContextVar[tuple[datetime, date] | None] = ContextVar("day_counts_refreshed", default=None)


@contextmanager
def refreshed(now: datetime):
    """Within the block, period_counts(now=now) relies on one refresh made on entry (a report reads
    the counts several times as of the same moment); nested blocks for the same `now` share it."""
    done = _refreshed.get()
    token = _refreshed.set(done if done and done[0] == now else (now, refresh(now)))
    try:
        yield
    finally:
        _refreshed.reset(token)


def period_counts(
    *, scope: Q, periods: Sequence[Period], dimensions: tuple[str, ...], now: datetime
) -> dict[tuple, dict[str, int]]:
    """The follow-up counts (selectors._aggregates without percentiles) of the occurrences matching
    `scope` (a condition on team, system or alertname, fields AlertDayCount shares) received in
    `periods` (back to back), per (index of the period, *the key of each of `dimensions`: team slug,
    system code, alert name). Settled days come from AlertDayCount, the rest from the occurrences:
    two queries whatever the data, one more per team or system dimension (their slugs and codes),
    after refresh()'s (none inside `refreshed(now)`)."""
    if any(d not in DIMENSIONS for d in dimensions):
        raise ValueError(f"dimensions must be among {', '.join(DIMENSIONS)}, not {dimensions!r}")
    done = _refreshed.get()
    counted_until = min(done[1] if done and done[0] == now else refresh(now), settled_until(now))
    first, last = periods[0].start, periods[-1].end
    cut_at_midnight = all(
        p.start == _midnight(_local_day(p.start)) and p.end == _midnight(_local_day(p.end)) for p in periods
    )
    if cut_at_midnight and _local_day(first) < counted_until:
        covered = (_local_day(first), min(counted_until, _local_day(last)))
    else:
        covered = (_local_day(first), _local_day(first))  # nothing read from the day counts
    aggregates = selectors._aggregates(selectors._rules(now), in_database_percentiles=False)
    totals: dict[tuple, dict[str, int]] = {}

    def add(bucket, row: dict) -> None:
        total = totals.setdefault((bucket, *(row[d] for d in dimensions)), dict.fromkeys(aggregates, 0))
        for name in aggregates:
            total[name] += row.get(name) or 0

    # Grouped by the ids (no join, narrow rows). Without dimensions, by day, each day's period found
    # here (a year's trend groups ~366 days rather than bucketing ~300,000 rows in the database); with
    # dimensions, by period in the database (a day per key would be many rows).
    sums = {name: Sum(column) for column, name in COUNTS.items() if name in aggregates}
    day_counts = AlertDayCount.objects.filter(scope, day__gte=covered[0], day__lt=covered[1]).order_by()
    if not dimensions:
        starts = [_local_day(p.start) for p in periods]
        for row in day_counts.values("day").annotate(**sums):
            add(bisect_right(starts, row["day"]) - 1, row)
    else:
        bucket = Case(
            *(
                When(day__gte=_local_day(p.start), day__lt=_local_day(p.end), then=Value(i))
                for i, p in enumerate(periods)
            )
        )
        for row in day_counts.annotate(bucket=bucket).values("bucket", *dimensions).annotate(**sums):
            add(row["bucket"], row)
    for row in (
        AlertOccurrence.objects.filter(scope, received_at__gte=first, received_at__lt=last)
        .exclude(received_at__gte=_midnight(covered[0]), received_at__lt=_midnight(covered[1]))
        .annotate(bucket=period_bucket("received_at", periods))
        .values("bucket", *dimensions)
        .annotate(**aggregates)
        .order_by()
    ):
        add(row["bucket"], row)
    return _named(totals, dimensions)


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
