"""Reporting periods, cut in the organisation's time zone (settings.TIME_ZONE), half-open.

"2026-11" is [Nov 1 00:00, Dec 1 00:00) local time, so an incident at 2026-10-31T17:00Z
(01:00 on Nov 1 in Asia/Shanghai) belongs to November.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext as _


@dataclass(frozen=True)
class Period:
    kind: str  # month, week, quarter, year, range
    start: datetime
    end: datetime  # exclusive

    @property
    def label(self) -> str:
        local_start = _organisation_time(self.start)
        if self.kind == "month":
            return f"{local_start:%Y-%m}"
        if self.kind == "week":
            year, week, _day = local_start.isocalendar()
            return f"{year}-W{week:02d}"
        if self.kind == "quarter":
            return f"{local_start.year}-Q{(local_start.month - 1) // 3 + 1}"
        if self.kind == "year":
            return f"{local_start.year}"
        last_day = _organisation_time(self.end) - timedelta(days=1)
        return f"{local_start:%Y-%m-%d}..{last_day:%Y-%m-%d}"

    @property
    def seconds(self) -> int:
        return int((self.end - self.start).total_seconds())

    def previous(self) -> "Period":
        """The period of the same kind just before (a range: the same number of days before)."""
        local_start = _organisation_time(self.start).date()
        if self.kind == "month":
            prev = (local_start.replace(day=1) - timedelta(days=1)).replace(day=1)
            return month(prev.year, prev.month)
        if self.kind == "quarter":
            prev = local_start.replace(day=1)
            for _step in range(3):
                prev = (prev - timedelta(days=1)).replace(day=1)
            return quarter(prev.year, (prev.month - 1) // 3 + 1)
        if self.kind == "year":
            return year(local_start.year - 1)
        days = (_organisation_time(self.end).date() - local_start).days
        return Period(self.kind, _local_midnight(local_start - timedelta(days=days)), self.start)


def _organisation_time(moment: datetime) -> datetime:
    """Periods are cut in the organisation's zone (TIME_ZONE), whatever zone a page shows times in."""
    return timezone.localtime(moment, timezone.get_default_timezone())


def _local_midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=timezone.get_default_timezone())


def month(y: int, m: int) -> Period:
    first = date(y, m, 1)
    following = date(y + (m == 12), m % 12 + 1, 1)
    return Period("month", _local_midnight(first), _local_midnight(following))


def quarter(y: int, q: int) -> Period:
    first = date(y, 3 * (q - 1) + 1, 1)
    following = date(y + (q == 4), (3 * q) % 12 + 1, 1)
    return Period("quarter", _local_midnight(first), _local_midnight(following))


def year(y: int) -> Period:
    return Period("year", _local_midnight(date(y, 1, 1)), _local_midnight(date(y + 1, 1, 1)))


def iso_week(y: int, w: int) -> Period:
    monday = date.fromisocalendar(y, w, 1)
    return Period("week", _local_midnight(monday), _local_midnight(monday + timedelta(days=7)))


def date_range(first: date, last: date) -> Period:
    """Whole local days from `first` to `last`, both included."""
    return Period("range", _local_midnight(first), _local_midnight(last + timedelta(days=1)))


def containing(kind: str, moment: datetime) -> Period:
    local = _organisation_time(moment).date()
    if kind == "month":
        return month(local.year, local.month)
    if kind == "week":
        y, w, _day = local.isocalendar()
        return iso_week(y, w)
    if kind == "quarter":
        return quarter(local.year, (local.month - 1) // 3 + 1)
    if kind == "year":
        return year(local.year)
    raise ValueError(kind)


_PATTERNS = (
    (re.compile(r"^(\d{4})-(\d{2})$"), lambda m: month(int(m[1]), int(m[2]))),
    (re.compile(r"^(\d{4})-W(\d{2})$"), lambda m: iso_week(int(m[1]), int(m[2]))),
    (re.compile(r"^(\d{4})-Q([1-4])$"), lambda m: quarter(int(m[1]), int(m[2]))),
    (re.compile(r"^(\d{4})$"), lambda m: year(int(m[1]))),
    (
        re.compile(r"^(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})$"),
        lambda m: date_range(date.fromisoformat(m[1]), date.fromisoformat(m[2])),
    ),
)


def parse(text: str) -> Period:
    """`2026-11`, `2026-W36`, `2026-Q4`, `2026`, or `2026-11-01..2026-11-15` (both days included)."""
    for pattern, build in _PATTERNS:
        found = pattern.match(text.strip())
        if found:
            try:
                period = build(found)
                # Past Python's calendar (year 1, 9999) a period's arithmetic overflows: no period there.
                if period.end <= period.start or period.previous().start.year < 1000 or period.end.year > 9000:
                    break
            except (ValueError, OverflowError):
                break
            return period
    raise ValueError(
        _("Not a period: %(text)r. Use 2026-11, 2026-W36, 2026-Q4, 2026 or 2026-11-01..2026-11-15.") % {"text": text}
    )


def this_month(now: datetime) -> Period:
    """The default of the figures' endpoints and pages: the month that is running."""
    return containing("month", now)


def last_complete_month(now: datetime) -> Period:
    """The default of the report: the month before this one, the last complete month."""
    return containing("month", now).previous()


def requested(
    text: str | None, *, default: Callable[[datetime], Period] | None = this_month, now: datetime | None = None
) -> Period | None:
    """The one place a period is read from what a person typed (a query parameter, a form field, a
    request body): the period `text` names, or, when it is absent or empty, `default(now)` (None without
    a default). A text that names no period is a ValidationError carrying parse's translated message."""
    if not text:
        return default(now or timezone.now()) if default is not None else None
    try:
        return parse(text)
    except ValueError as exc:
        raise ValidationError(str(exc), code="invalid_period") from None


def requested_parameter(
    text: str | None, *, name: str = "period", default: Callable[[datetime], Period] | None = this_month
) -> Period | None:
    """requested() for an API parameter or a filter: the error keyed by the parameter's name, which the
    API answers as a 400 naming it (config.api.exception_handler) and a page puts next to the field."""
    try:
        return requested(text, default=default)
    except ValidationError as exc:
        raise ValidationError({name: exc.messages}) from None
