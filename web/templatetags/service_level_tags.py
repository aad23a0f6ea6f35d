"""How service level figures read on the pages (docs/service-levels.md)."""

from decimal import ROUND_DOWN, Decimal

from django import template
from django.utils.formats import number_format
from django.utils.translation import gettext as _

register = template.Library()


@register.filter
def level_percent(value) -> str:
    """A service level in percent with 3 decimals, rounded down (99.9999 reads 99.999 %, never 100 %);
    None is "no data"."""
    if value is None:
        return _("no data")
    shown = Decimal(str(value)).quantize(Decimal("0.001"), rounding=ROUND_DOWN)
    return f"{number_format(shown, decimal_pos=3)} %"


@register.filter
def objective(value) -> str:
    """An objective as it was set: 99.99 %, 99.9 %, 100 %."""
    if value is None:
        return "–"
    number = Decimal(str(value))
    number = number.quantize(Decimal(1)) if number == number.to_integral_value() else number.normalize()
    return f"{number_format(number)} %"


@register.filter
def budget_left(value) -> str:
    """The error budget left, a share, in percent with one decimal (below 0 once overspent); None: "–"."""
    if value is None:
        return "–"
    return f"{number_format(round(Decimal(str(value)) * 100, 1), decimal_pos=1)} %"


@register.filter
def events(value) -> str:
    """An event count with grouping (12,345); Prometheus's extrapolated fractions rounded."""
    if value is None:
        return "–"
    return number_format(round(value), force_grouping=True)
