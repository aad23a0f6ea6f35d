"""Writes of the service-levels app: Prometheus sources, indicators, and the daily values pulled from
Prometheus (docs/service-levels.md). The settings pages, the API and the admin all call these.

A day D is [D 00:00, D+1 00:00) in settings.TIME_ZONE. Its value is pulled once the day is over: each
expression is asked at the day's end with `$window` written as the day's length (`86400s`), so
`sum(increase(requests_total[$window]))` is the day's count.
"""

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from incidents.models import System
from incidents.services import configuration_write
from service_levels.models import WINDOW, DailyValue, Indicator, PrometheusSource
from service_levels.prometheus import Answer, Problem, QueryFailed, instant_query, problem_text

SOURCE_FIELDS = (
    "name",
    "team",
    "url",
    "auth",
    "bearer_token",
    "username",
    "password",
    "verify_tls",
    "timeout_seconds",
    "enabled",
)
# Write-only: an empty value on a change keeps the stored one.
SOURCE_SECRETS = ("bearer_token", "password")
INDICATOR_FIELDS = (
    "system",
    "source",
    "name",
    "kind",
    "good_query",
    "total_query",
    "ratio_query",
    "objective",
    "enabled",
)
QUERY_FIELDS = ("good_query", "total_query", "ratio_query")
# Values a little over the possible (good above total, a ratio above 1) by this share are rounding, not
# a wrong expression: Prometheus extrapolates increase() per series.
_ROUNDING = 1e-9


# --- days --------------------------------------------------------------------------------------------


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """[day 00:00, next day 00:00) in the organisation's zone (settings.TIME_ZONE)."""
    zone = timezone.get_default_timezone()
    return datetime.combine(day, time.min, tzinfo=zone), datetime.combine(
        day + timedelta(days=1), time.min, tzinfo=zone
    )


def local_today(now: datetime) -> date:
    return timezone.localtime(now, timezone.get_default_timezone()).date()


def finished_days(*, days: int, now: datetime) -> list[date]:
    """The `days` local days before today, oldest first (today is not over)."""
    today = local_today(now)
    return [today - timedelta(days=n) for n in range(days, 0, -1)]


def windowed(expression: str, seconds: int) -> str:
    return expression.replace(WINDOW, f"{seconds}s")


# --- sources -----------------------------------------------------------------------------------------


def check_source(source: PrometheusSource) -> None:
    """Credentials follow the authentication chosen: a bearer token or a user name is needed, and what
    the other choices would use is dropped."""
    errors: dict[str, list[str]] = {}
    if source.auth != PrometheusSource.Auth.BEARER:
        source.bearer_token = ""
    if source.auth != PrometheusSource.Auth.BASIC:
        source.username, source.password = "", ""
    if source.auth == PrometheusSource.Auth.BEARER and not source.bearer_token:
        errors["bearer_token"] = [_("Give the bearer token.")]
    if source.auth == PrometheusSource.Auth.BASIC and not source.username:
        errors["username"] = [_("Give the user name.")]
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def source_create(*, name: str, url: str, **optional: Any) -> PrometheusSource:
    """A Prometheus server to pull indicators from; `optional`: the other SOURCE_FIELDS."""
    values = {"name": name, "url": url, **optional}
    return configuration_write(record=PrometheusSource(), values=values, fields=SOURCE_FIELDS, check=check_source)


@transaction.atomic
def source_update(*, source_id: int, changes: Mapping[str, Any]) -> PrometheusSource:
    """Change a source (SOURCE_FIELDS). An empty bearer token or password leaves the stored one as it is:
    they are never shown, so a form cannot send them back."""
    changes = {name: value for name, value in changes.items() if not (name in SOURCE_SECRETS and not value)}
    source = PrometheusSource.objects.select_for_update().get(pk=source_id)
    return configuration_write(record=source, values=changes, fields=SOURCE_FIELDS, check=check_source)


@transaction.atomic
def source_delete(*, source_id: int) -> None:
    """Delete a source no indicator uses (disable it otherwise)."""
    source = PrometheusSource.objects.select_for_update().get(pk=source_id)
    if source.indicators.exists():
        raise ValidationError(_("Indicators read from this source: disable it instead, or move them first."))
    source.delete()


# --- indicators --------------------------------------------------------------------------------------


def check_indicator_shape(indicator: Indicator) -> None:
    """Good and total, or a ratio; a source of the system's team or of the whole installation."""
    for name in QUERY_FIELDS:
        setattr(indicator, name, (getattr(indicator, name) or "").strip())
    errors: dict[str, list[str]] = {}
    good, total, ratio = indicator.good_query, indicator.total_query, indicator.ratio_query
    if ratio and (good or total):
        errors["ratio_query"] = [_("Give either good and all events, or a ratio; not both.")]
    elif not ratio:
        if not good:
            errors["good_query"] = [_("Give the good events' expression (or a ratio instead).")]
        if not total:
            errors["total_query"] = [_("Give the all events' expression (or a ratio instead).")]
    source, system = getattr(indicator, "source", None), getattr(indicator, "system", None)
    if source is not None and system is not None and source.team_id not in (None, system.team_id):
        errors["source"] = [_("This source belongs to another team than the system's.")]
    if errors:
        raise ValidationError(errors)


def check_expressions(indicator: Indicator, *, now: datetime | None = None) -> None:
    """Ask the indicator's Prometheus about each expression (over the last 24 hours): one it refuses is a
    ValidationError on that field with Prometheus's own words. A Prometheus that cannot be asked (down,
    credentials refused) refuses nothing: the test query and the pulls show that."""
    now = now or timezone.now()
    errors: dict[str, list[str]] = {}
    for name in QUERY_FIELDS:
        expression = getattr(indicator, name)
        if not expression:
            continue
        try:
            instant_query(indicator.source, windowed(expression, 86400), at=now)
        except QueryFailed as failure:
            if failure.problem in (Problem.BAD_QUERY, Problem.MANY_SERIES, Problem.NOT_A_NUMBER):
                errors[name] = [str(failure)]
    if errors:
        raise ValidationError(errors)


def _merge(errors: dict[str, list[str]], error: ValidationError) -> None:
    found = error.message_dict if hasattr(error, "error_dict") else {NON_FIELD_ERRORS: error.messages}
    for name, messages in found.items():
        known = errors.setdefault(name, [])
        known.extend(message for message in messages if message not in known)


def _checked(record: Indicator, values: Mapping[str, Any], *, ask: bool) -> None:
    """Every check of an indicator with `values`, all errors at once: its shape, the model's rules and,
    when the expressions or the source change (`ask`) and they are otherwise fine, Prometheus's word on
    them. Runs before the write's transaction: no lock or connection is held while Prometheus answers."""
    unknown = set(values) - set(INDICATOR_FIELDS)
    if unknown:
        raise TypeError(f"unknown indicator fields: {sorted(unknown)}")
    for name, value in values.items():
        setattr(record, name, value)
    errors: dict[str, list[str]] = {}
    try:
        check_indicator_shape(record)
    except ValidationError as error:
        _merge(errors, error)
    try:
        record.full_clean()
    except ValidationError as error:
        _merge(errors, error)
    asked = ask and any(name in values for name in (*QUERY_FIELDS, "source"))
    if asked and not {*QUERY_FIELDS, "source"} & set(errors):
        try:
            check_expressions(record)
        except ValidationError as error:
            _merge(errors, error)
    if errors:
        raise ValidationError(errors)


def indicator_create(
    *, system: System, source: PrometheusSource, name: str, objective, check: bool = True, **optional: Any
) -> Indicator:
    """A new indicator of `system` read from `source`; `optional`: kind, the expressions, enabled. With
    `check`, Prometheus is asked whether it takes the expressions (check_expressions); the demo, which has
    no Prometheus, leaves it out."""
    values = {"system": system, "source": source, "name": name, "objective": objective, **optional}
    _checked(Indicator(), values, ask=check)
    with transaction.atomic():
        return configuration_write(
            record=Indicator(), values=values, fields=INDICATOR_FIELDS, check=check_indicator_shape
        )


def indicator_update(*, indicator_id: int, changes: Mapping[str, Any], check: bool = True) -> Indicator:
    """Change an indicator (INDICATOR_FIELDS); changed expressions are checked as on creation. Its stored
    days stay: re-pull them (backfill_service_levels) after changing what it measures."""
    _checked(Indicator.objects.select_related("source", "system").get(pk=indicator_id), changes, ask=check)
    with transaction.atomic():
        indicator = Indicator.objects.select_for_update().get(pk=indicator_id)
        return configuration_write(
            record=indicator, values=changes, fields=INDICATOR_FIELDS, check=check_indicator_shape
        )


# --- measuring ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measurement:
    """What one pull found: a value (status ok), no data (missing), or a failure; `problem` and `detail`
    say why there is no value."""

    status: str
    good: float | None = None
    total: float | None = None
    ratio: float | None = None
    problem: str = ""
    detail: str = ""

    @property
    def text(self) -> str:
        return problem_text(self.problem, self.detail) if self.problem else ""


def _missing(answer: Answer) -> Measurement:
    return Measurement(DailyValue.Status.MISSING, problem=answer.problem)


def _failed(problem: str, detail: str) -> Measurement:
    return Measurement(DailyValue.Status.FAILED, problem=problem, detail=detail)


def _counted(good: float, total: float) -> Measurement:
    if good < 0 or total < 0:
        return _failed(Problem.NEGATIVE, f"{good:g} / {total:g}")
    if total == 0:
        return Measurement(DailyValue.Status.MISSING, good=good, total=total, problem=Problem.NO_EVENTS)
    if good > total * (1 + _ROUNDING):
        return _failed(Problem.GOOD_ABOVE_TOTAL, f"{good:g} > {total:g}")
    return Measurement(DailyValue.Status.OK, good=good, total=total, ratio=min(good / total, 1.0))


def _ratio(value: float) -> Measurement:
    if not -_ROUNDING <= value <= 1 + _ROUNDING:
        return _failed(Problem.RATIO_RANGE, f"{value:g}")
    return Measurement(DailyValue.Status.OK, ratio=min(max(value, 0.0), 1.0))


def measure(indicator: Indicator, *, start: datetime, end: datetime) -> Measurement:
    """The indicator over [start, end): its expressions asked at `end` with `$window` = end - start.

    Good and total: no total (or a total of 0) is a day without data; no good while there is a total is
    a failure (a good-events expression that gives nothing instead of 0). A ratio: its value, 0 to 1."""
    seconds = int((end - start).total_seconds())

    def ask(expression: str) -> Answer:
        return instant_query(indicator.source, windowed(expression, seconds), at=end)

    try:
        if not indicator.counts_events:
            answer = ask(indicator.ratio_query)
            return _missing(answer) if answer.value is None else _ratio(answer.value)
        total = ask(indicator.total_query)
        if total.value is None:
            return _missing(total)
        if total.value == 0:
            return _counted(0.0, 0.0)
        good = ask(indicator.good_query)
        if good.value is None:
            if good.problem == Problem.NAN:
                return _missing(good)
            return _failed(Problem.GOOD_MISSING, f"{total.value:g}")
        return _counted(good.value, total.value)
    except QueryFailed as failure:
        return Measurement(DailyValue.Status.FAILED, problem=failure.problem, detail=failure.detail)


@dataclass(frozen=True)
class Trial:
    measurement: Measurement
    start: datetime
    end: datetime


def measure_last_24_hours(indicator: Indicator, *, now: datetime | None = None) -> Trial:
    """The indicator over the last 24 hours up to `now`, nothing stored: what the "test query" button shows."""
    end = (now or timezone.now()).replace(microsecond=0)
    start = end - timedelta(hours=24)
    return Trial(measure(indicator, start=start, end=end), start, end)


# --- daily values ------------------------------------------------------------------------------------


def _measured_fields(measurement: Measurement) -> dict:
    return {
        "status": measurement.status,
        "good": measurement.good,
        "total": measurement.total,
        "ratio": measurement.ratio,
        "problem": measurement.problem,
        "detail": measurement.detail[:2000],
    }


@transaction.atomic
def daily_value_store(*, indicator: Indicator, day: date, measurement: Measurement, now: datetime) -> DailyValue:
    """Record a pull of (indicator, day), once per pair (a unique constraint; a concurrent first pull
    re-reads the winner's row). A new value, or no data, replaces what was stored; a failure never
    replaces a measured value (it counts as an attempt)."""
    fields = _measured_fields(measurement)
    stored = DailyValue.objects.select_for_update().filter(indicator=indicator, day=day).first()
    if stored is None:
        try:
            with transaction.atomic():
                return DailyValue.objects.create(indicator=indicator, day=day, attempts=1, pulled_at=now, **fields)
        except IntegrityError:
            stored = DailyValue.objects.select_for_update().get(indicator=indicator, day=day)
    stored.attempts += 1
    if measurement.status == DailyValue.Status.FAILED and stored.status == DailyValue.Status.OK:
        stored.save(update_fields=["attempts"])
        return stored
    for name, value in fields.items():
        setattr(stored, name, value)
    stored.pulled_at = now
    stored.save()
    return stored


def pull_day(*, indicator: Indicator, day: date, now: datetime | None = None) -> tuple[DailyValue, Measurement]:
    """Pull one finished day of an indicator from Prometheus and record it (daily_value_store)."""
    now = now or timezone.now()
    start, end = day_bounds(day)
    if end > now:
        raise ValueError(f"{day} is not over yet")
    measurement = measure(indicator, start=start, end=end)
    return daily_value_store(indicator=indicator, day=day, measurement=measurement, now=now), measurement


# A source that did not answer one query is not asked again in the same run: each of its other days is
# recorded with the same problem (tried again next run) rather than waiting out the timeout again.
_SOURCE_DOWN = frozenset({Problem.UNREACHABLE, Problem.TIMEOUT, Problem.AUTH})


@dataclass
class Pull:
    """One (indicator, day) of a run, and what was recorded."""

    indicator: Indicator
    day: date
    value: DailyValue
    measurement: Measurement


@dataclass
class _Run:
    now: datetime
    down: dict[int, Measurement] = field(default_factory=dict)

    def pull(self, indicator: Indicator, day: date) -> Pull:
        measurement = self.down.get(indicator.source_id)
        if measurement is None:
            start, end = day_bounds(day)
            measurement = measure(indicator, start=start, end=end)
            if measurement.problem in _SOURCE_DOWN:
                self.down[indicator.source_id] = measurement
        value = daily_value_store(indicator=indicator, day=day, measurement=measurement, now=self.now)
        return Pull(indicator, day, value, measurement)


def pulls(plan: Iterable[tuple[Indicator, date]], *, now: datetime | None = None) -> Iterator[Pull]:
    """Pull each (indicator, day) of `plan` in turn, yielding what was recorded (the backfill command
    prints it as it goes). Days not over yet are left out."""
    run = _Run(now=now or timezone.now())
    for indicator, day in plan:
        if day_bounds(day)[1] <= run.now:
            yield run.pull(indicator, day)


def pullable_indicators() -> Iterable[Indicator]:
    return Indicator.objects.filter(enabled=True, source__enabled=True).select_related("source", "system")


def pull_due(*, days: int, now: datetime | None = None) -> list[Pull]:
    """The beat task's run: each enabled indicator's last `days` finished days that have no measured value
    yet (never pulled, no data so far, or failed) are pulled again; measured days are left alone."""
    now = now or timezone.now()
    window = finished_days(days=days, now=now)
    indicators = list(pullable_indicators())
    measured = set(
        DailyValue.objects.filter(indicator__in=indicators, day__in=window, status=DailyValue.Status.OK).values_list(
            "indicator_id", "day"
        )
    )
    plan = [(indicator, day) for indicator in indicators for day in window if (indicator.pk, day) not in measured]
    return list(pulls(plan, now=now))


@transaction.atomic
def daily_values_load(*, indicator: Indicator, values: Iterable[DailyValue]) -> int:
    """Bulk load of past days made elsewhere (the demo's year of values, made without a Prometheus):
    replaces the indicator's stored days in the values' range. Values are taken as given, so the caller
    makes them as a pull would (ratio = good / total, 0 to 1, on measured days)."""
    values = list(values)
    if not values:
        return 0
    days = [value.day for value in values]
    DailyValue.objects.filter(indicator=indicator, day__gte=min(days), day__lte=max(days)).delete()
    for value in values:
        value.indicator = indicator
    DailyValue.objects.bulk_create(values, batch_size=1000)
    return len(values)
