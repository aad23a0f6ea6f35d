"""An incident's durations, defined once, and how people read them.

INCIDENT_DURATIONS says what each duration of metrics.md is measured between; the model's properties
(Incident.time_to_recover ...), the selectors' SQL (incidents.selectors), the API's descriptions and the
report's rows are built from it. Durations are exact seconds in the records and the API; people read
them in human units (metrics.md: "the API returns seconds, the UI shows human units"), written one way
for the pages and the exported reports alike."""

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from django.utils.translation import gettext as _

# name: (from, to), two timestamps of an incident; the duration is to - from, and missing (None) while
# either is missing.
INCIDENT_DURATIONS = {
    "time_to_detect": ("occurred_at", "detected_at"),
    "time_to_respond": ("detected_at", "responded_at"),
    "time_to_recover": ("occurred_at", "recovered_at"),
    "time_to_resolve": ("occurred_at", "resolved_at"),
}


def incident_duration(name: str, incident: Any) -> timedelta | None:
    """INCIDENT_DURATIONS[name] of an incident, or of a row of its timestamps (a mapping, such as a
    values() row); None while either timestamp is missing."""
    start_field, end_field = INCIDENT_DURATIONS[name]
    if isinstance(incident, Mapping):
        start, end = incident.get(start_field), incident.get(end_field)
    else:
        start, end = getattr(incident, start_field), getattr(incident, end_field)
    return _between(start, end)


def _between(start: datetime | None, end: datetime | None) -> timedelta | None:
    return end - start if start is not None and end is not None else None


def described(name: str) -> str:
    """A duration's definition in the API's words: "recovered_at - occurred_at, seconds"."""
    start_field, end_field = INCIDENT_DURATIONS[name]
    return f"{end_field} - {start_field}, seconds"


def human_duration(value: float | int | timedelta | None) -> str:
    """Seconds or a timedelta in the two largest units that matter: 45 s, 12 min 30 s, 1 h 5 min, 3 d 4 h."""
    if value is None or value == "":
        return "–"
    seconds = int(value.total_seconds() if isinstance(value, timedelta) else float(value))
    sign, seconds = ("-", -seconds) if seconds < 0 else ("", seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    units = [
        (days, _("%(count)d d")),
        (hours, _("%(count)d h")),
        (minutes, _("%(count)d min")),
        (secs, _("%(count)d s")),
    ]
    first = next((i for i, (amount, _label) in enumerate(units) if amount), len(units) - 1)
    shown = [label % {"count": amount} for amount, label in units[first : first + 2] if amount]
    return sign + (" ".join(shown) or units[-1][1] % {"count": 0})
