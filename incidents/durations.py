"""Durations are exact seconds in the records and the API; people read them in human units
(metrics.md: "the API returns seconds, the UI shows human units"). One way to write them, for the
pages and the exported reports alike."""

from datetime import timedelta

from django.utils.translation import gettext as _


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
