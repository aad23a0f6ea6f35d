"""Template helpers of the web app: times in the reader's zone, durations and rates in words, form
fields with their errors, list URLs that keep their filters."""

import math
from datetime import UTC, datetime, timedelta

from django import template
from django.conf import settings
from django.core.exceptions import FieldDoesNotExist
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.formats import number_format
from django.utils.html import conditional_escape, format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _

from incidents.durations import human_duration
from incidents.models import TIMESTAMP_FIELDS, Incident, Status

register = template.Library()


def _aware(value) -> datetime | None:
    if isinstance(value, str):
        try:
            value = parse_datetime(value) if value else None
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value if timezone.is_aware(value) else value.replace(tzinfo=UTC)


@register.filter
def when(value, style: str = ""):
    """A moment in the reader's zone: `2026-11-22 16:24 (Asia/Shanghai)`.

    style: "seconds" adds seconds; "short" leaves the zone out (a table says it once, in its head).
    Accepts ISO strings too (timeline rows keep old and new timestamps as text, in UTC).
    """
    moment = _aware(value)
    if moment is None:
        return value if isinstance(value, str) else ""
    local = timezone.localtime(moment)
    shown = local.strftime("%Y-%m-%d %H:%M:%S" if style == "seconds" else "%Y-%m-%d %H:%M")
    if style == "short":
        return format_html('<time datetime="{}">{}</time>', moment.isoformat(), shown)
    return format_html(
        '<time datetime="{}">{}</time> <span class="zone">({})</span>',
        moment.isoformat(),
        shown,
        timezone.get_current_timezone_name(),
    )


@register.filter
def local_input(value) -> str:
    """A moment as a datetime-local input value in the reader's zone."""
    moment = _aware(value)
    return timezone.localtime(moment).strftime("%Y-%m-%dT%H:%M:%S") if moment else ""


@register.filter
def duration(value) -> str:
    """Seconds or a timedelta in human units: 45 s, 12 min, 1 h 05 min, 3 d 4 h."""
    return human_duration(value)


@register.filter
def percent(value) -> str:
    """A rate as a percentage with one decimal; None is "no data", never 0 % or 100 %."""
    if value is None:
        return _("no data")
    # number_format cuts digits off; round first so 2/3 reads 66.7 %, not 66.6 %.
    return f"{number_format(round(value * 100, 1), decimal_pos=1)} %"


@register.filter
def count(value) -> str:
    return number_format(value, force_grouping=True) if value is not None else "–"


# --- the report's tables: a cell as the reader reads it ----------------------------------------------
# A busy month's appendix holds a few thousand cells: each is one call here, not a template include
# (an include per cell was a third of the report page's server time).


def _cell_text(cell: dict) -> str | SafeString:
    kind, value = cell["kind"], cell["value"]
    if kind == "duration":
        return duration(value)
    if kind == "rate":
        return percent(value)
    if kind == "moment":
        return when(value, "short")
    if kind == "number":
        return "–" if value is None else count(value)
    if value is None or value == "":
        return "–"
    if kind == "code":
        return format_html('<small class="code">{}</small>', value)
    return str(value)


@register.filter
def report_cell(cell: dict) -> SafeString:
    """One cell of a report table (stability.report_pdf.cell): durations, rates, moments and numbers in the
    reader's units, a missing value as "–", a code in small print; escaped."""
    return conditional_escape(_cell_text(cell))


@register.filter
def report_row(row: list[dict], table: dict) -> SafeString:
    """A row of a report table (stability.report_pdf.table_context), `<td class="cell-KIND">...</td>` each; in a
    table of pairs (label, value) the first cell is the row's header."""
    cells = iter(row)
    header = ""
    if table.get("pairs"):
        first = next(cells, None)
        if first is not None:
            header = format_html('<th scope="row">{}</th>', first["value"])
    rest = format_html_join("", '<td class="cell-{}">{}</td>', ((c["kind"], report_cell(c)) for c in cells))
    return mark_safe(header + rest)  # both parts escaped by format_html


@register.filter
def field_verbose_name(name: str, model) -> str:
    """The translated label of a model field, for timeline rows that name a field."""
    try:
        return str(model._meta.get_field(name).verbose_name)
    except FieldDoesNotExist:  # a timeline row may name a field that no longer exists
        return name


@register.simple_tag
def widget(bound_field, **attrs):
    """The field's input, tied to its help text and errors for screen readers."""
    described_by = []
    if bound_field.help_text:
        described_by.append(f"{bound_field.auto_id}-help")
    if bound_field.errors:
        described_by.append(f"{bound_field.auto_id}-errors")
        attrs["aria-invalid"] = "true"
    if described_by:
        attrs["aria-describedby"] = " ".join(described_by)
    return bound_field.as_widget(attrs=attrs)


@register.simple_tag(takes_context=True)
def query(context, **changes) -> str:
    """The current query string with some parameters replaced (None removes one)."""
    params = context["request"].GET.copy()
    for name, value in changes.items():
        if value is None or value == "":
            params.pop(name, None)
        else:
            params[name] = value
    encoded = params.urlencode()
    return f"?{encoded}" if encoded else "?"


@register.simple_tag(takes_context=True)
def sort_link(context, field_name: str) -> str:
    """The query that sorts a list by `field_name`, flipping the direction when it is sorted by it."""
    current = context["request"].GET.get("ordering", "")
    target = f"-{field_name}" if current == field_name else field_name
    return query(context, ordering=target, page=None)


@register.filter
def sort_state(current: str, field_name: str) -> str:
    """aria-sort of a column head."""
    if current == field_name:
        return "ascending"
    if current == f"-{field_name}":
        return "descending"
    return "none"


@register.filter
def seconds_left(alert, window_seconds: int) -> int:
    """Whole seconds until the alert's follow-up window closes (negative once it has)."""
    deadline = alert.received_at + timedelta(seconds=int(window_seconds))
    return math.floor((deadline - timezone.now()).total_seconds())


@register.simple_tag(takes_context=True)
def countdown(context, alert) -> SafeString:
    """The alert's follow-up countdown: "followed up", "3:12 left" or "late by 0:45" (app.js counts it down,
    from data-remaining, in the words of data-left and data-late). A tag rather than an include: the inbox
    shows one per group and per alert, at every refresh."""
    if alert.followed_up_at:
        return format_html('<span class="countdown done">{}</span>', _("followed up"))
    remaining = seconds_left(alert, context.get("window_seconds", settings.FOLLOW_UP_WINDOW_SECONDS))
    words = _("%(time)s left") if remaining >= 0 else _("late by %(time)s")
    return format_html(
        '<span class="countdown{}" data-remaining="{}" data-left="{}" data-late="{}">{}</span>',
        " late" if remaining < 0 else "",
        remaining,
        _("%(time)s left"),
        _("late by %(time)s"),
        words % {"time": clock(remaining)},
    )


@register.filter
def clock(seconds) -> str:
    """Seconds as m:ss (h:mm:ss past an hour), sign dropped: the words around it say which way."""
    seconds = abs(int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


@register.filter
def entry_value(value: str, field_name: str):
    """A value a timeline row recorded (text) as a reader wants it: a time in their zone, a choice's label."""
    if value in ("", None):
        return "∅"
    if field_name in (*TIMESTAMP_FIELDS, "closed_at"):
        return when(value)
    if field_name == "status":
        return Status(value).label if value in Status.values else value
    try:
        model_field = Incident._meta.get_field(field_name)
    except FieldDoesNotExist:  # level_override and other names that are not fields
        return value
    if getattr(model_field, "choices", None):
        return dict(model_field.choices).get(value, value)
    if value in ("True", "False"):
        return _("yes") if value == "True" else _("no")
    return value


@register.filter
def get_item(mapping, key):
    """mapping[key], or an empty list (for a dict of errors keyed by id)."""
    return (mapping or {}).get(key, [])


@register.filter
def points(value) -> str:
    """A change in percentage points, signed, one decimal: +5.0, −3.2, 0.0."""
    if value is None:
        return "–"
    sign = "+" if value > 0 else "−" if value < 0 else ""
    return f"{sign}{number_format(abs(value), decimal_pos=1)}"
