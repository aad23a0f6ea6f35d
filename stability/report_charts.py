"""The report's charts, drawn on the server by pygal as inline SVG: the same markup serves the page and the
PDF (WeasyPrint draws SVG itself), with no script and nothing fetched from elsewhere.

Each chart shows figures the report already holds (stability.reports.build_report); nothing is
computed here but units (seconds -> minutes, rates -> percent). A missing figure (no data) is a gap,
never a zero. A trend starts at its first period with a figure; a chart with no figure at all is not
drawn: it is the words "No data" (or "No incident in this period.").

No text is cut: pygal sizes its margins by guessing a text's width as 0.6 of the font size per
character, which is a little over half the width of a Chinese character; the margins here are sized from
the font's own widths instead (stability.report_fonts), so the last x label, the value printed above the
last point and a Chinese team name all fit inside the SVG (tests/stability/test_report_charts.py measures
them in Chromium).
"""

import math
import re
from collections.abc import Callable, Sequence

import pygal
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import pgettext, pgettext_lazy
from pygal.style import Style

from stability import report_fonts

# Level colours of the web app (web/static/web/app.css), so the chart reads like the badges.
LEVEL_COLOURS = {"A": "#b3261e", "B": "#c04f00", "C": "#8a6100", "D": "#4a5361"}
ACCENT = "#0b57c2"
FONT = "'Noto Sans CJK SC', 'Noto Sans SC', 'PingFang SC', 'Microsoft YaHei', system-ui, sans-serif"
WIDTH, HEIGHT = 640, 300
FONT_SIZE = 13
MARGIN = 12
SCRIPT = re.compile(r"<script\b.*?</script>", re.S)

# A month on the trend's x axis, short enough for twelve of them side by side ("Nov", "11月").
MONTHS = (
    pgettext_lazy("short month", "Jan"),
    pgettext_lazy("short month", "Feb"),
    pgettext_lazy("short month", "Mar"),
    pgettext_lazy("short month", "Apr"),
    pgettext_lazy("short month", "May"),
    pgettext_lazy("short month", "Jun"),
    pgettext_lazy("short month", "Jul"),
    pgettext_lazy("short month", "Aug"),
    pgettext_lazy("short month", "Sep"),
    pgettext_lazy("short month", "Oct"),
    pgettext_lazy("short month", "Nov"),
    pgettext_lazy("short month", "Dec"),
)
_MONTH = re.compile(r"^\d{4}-(\d{2})$")
_WEEK_OR_QUARTER = re.compile(r"^\d{4}-([WQ]\d+)$")
_RANGE = re.compile(r"^\d{4}-(\d{2}-\d{2})\.\.")


def text_width(text: str, size: float = FONT_SIZE) -> float:
    """How wide `text` is drawn at `size` px in the charts' font (stability.report_fonts)."""
    return report_fonts.text_width(text, size)


def _pygal_width(text: str, size: float = FONT_SIZE) -> float:
    """pygal's own guess (pygal.util.text_len), which its margins are made of."""
    return len(text) * 0.6 * size


def short_label(period: str) -> str:
    """A period's label on a trend's x axis: a month by its name ("Nov", "11月"), a week or quarter by its
    number ("W48", "Q4"), a range by its first day ("11-01"); the axis title gives the years."""
    if found := _MONTH.match(period):
        return str(MONTHS[int(found.group(1)) - 1])
    if found := _WEEK_OR_QUARTER.match(period) or _RANGE.match(period):
        return found.group(1)
    return period


def no_data(text: str | None = None) -> SafeString:
    """What stands in a chart's place when it has nothing to draw."""
    return format_html('<p class="chart-empty">{}</p>', text or pgettext("chart", "No data"))


def _style(*colours: str) -> Style:
    return Style(
        background="#ffffff",
        plot_background="#ffffff",
        foreground="#15191f",
        foreground_strong="#15191f",
        foreground_subtle="#c9d0da",
        font_family=FONT,
        label_font_family=FONT,
        major_label_font_family=FONT,
        value_font_family=FONT,
        title_font_family=FONT,
        legend_font_family=FONT,
        label_font_size=FONT_SIZE,
        major_label_font_size=FONT_SIZE,
        value_font_size=FONT_SIZE,
        legend_font_size=FONT_SIZE,
        title_font_size=15,
        colors=colours or (ACCENT,),
        opacity="1",
        opacity_hover="1",
        transition="0s",
    )


def _config(chart_class, *, colours: Sequence[str] = (), height: int = HEIGHT, **options):
    options.setdefault("margin", MARGIN)
    return chart_class(
        style=_style(*colours),
        width=WIDTH,
        height=height,
        js=[],  # pygal's tooltip script comes from a CDN: the figures are printed on the chart instead
        disable_xml_declaration=True,
        explicit_size=False,
        show_legend=False,
        print_values=True,
        print_zeroes=True,
        truncate_label=-1,
        no_data_text=_("No data"),
        **options,
    )


def _svg(chart) -> SafeString:
    # pygal writes its config for the tooltip script as an inline script even without the script: drop it.
    # pygal escapes the labels and values it writes; the rest of the markup is its own.
    return mark_safe(SCRIPT.sub("", chart.render(is_unicode=True)))


class _Line(pygal.Line):
    """A line whose printed values sit above their dots, centred, but moved in from the plot's edges so the
    first and last stay clear of the y labels and inside the chart. pygal (3.1.3, pinned) writes them below
    and to the right, over the line to the next point and past the plot's right edge."""

    def _static_value(self, serie_node, value, x, y, metadata, align_text="left", classes=None):
        size = self.style.value_font_size
        # pygal passes the dot's position moved by one font size right and down.
        half = text_width(value, size) / 2
        centre = min(max(x - size, half), self.view.width - half)
        super()._static_value(serie_node, value, centre, y - 2 * size, metadata, "middle", classes)


def level_counts(counts: dict[str, int]) -> SafeString:
    """Incidents by level A-D, one bar each in the level's colour; a period without incidents says so."""
    if not any(counts.values()):
        return no_data(_("No incident in this period."))
    levels = sorted(counts)
    chart = _config(pygal.Bar, colours=[LEVEL_COLOURS.get(level, ACCENT) for level in levels], range=(0, None))
    chart.x_labels = [_("Level %(level)s") % {"level": level} for level in levels]
    # Whole incidents: no 0.1 steps on the axis of a small month.
    top = max(counts.values())
    chart.config.y_labels = list(range(0, top + 1, max(1, -(-top // 8))))
    for index, level in enumerate(levels):
        chart.add(level, [None] * index + [counts[level]] + [None] * (len(levels) - index - 1))
    chart.config.formatter = lambda value: f"{value:.0f}"
    return _svg(chart)


def _from_first_figure(points: Sequence[tuple[str, float | None]]) -> list[tuple[str, float | None]]:
    """The points from the first that has a figure on: the months before the data began are not drawn."""
    for index, (_label, value) in enumerate(points):
        if value is not None:
            return list(points[index:])
    return []


def _trend(
    points: Sequence[tuple[str, float | None]],
    *,
    title: str,
    unit: Callable[[float], float],
    formatter: Callable[[float], str],
    **options,
) -> SafeString:
    shown = _from_first_figure(points)
    if not shown:
        return no_data()
    values = [None if value is None else unit(value) for _label, value in shown]
    labels = [short_label(label) for label, _value in shown]
    # The last label is centred on the plot's right edge: half of it must fit in the right margin; the value
    # above the highest point in the top margin.
    right = max(MARGIN, math.ceil(text_width(labels[-1]) / 2) + 4)
    chart = _config(
        _Line,
        x_title=f"{shown[0][0]} – {shown[-1][0]}" if len(shown) > 1 else shown[0][0],
        allow_interruptions=True,
        dots_size=4,
        margin_right=right,
        margin_top=MARGIN + 2 * FONT_SIZE,
        **options,
    )
    chart.x_labels = labels
    chart.add(title, values)
    chart.config.formatter = formatter
    return _svg(chart)


def mttr_trend(points: Sequence[tuple[str, float | None]]) -> SafeString:
    """MTTR per period in minutes (seconds in the report), from the first period with a recovered incident;
    a later period with none is a gap."""
    return _trend(
        points,
        title=_("MTTR"),
        unit=lambda seconds: round(seconds / 60, 1),
        formatter=lambda value: f"{value:g}",
        y_title=_("minutes"),
        range=(0, None),
    )


def follow_up_trend(points: Sequence[tuple[str, float | None]]) -> SafeString:
    """The 5-minute follow-up rate per period in percent, from the first period with a counted alert; a later
    period with none is a gap."""
    return _trend(
        points,
        title=_("Follow-up rate"),
        unit=lambda rate: round(rate * 100, 1),
        formatter=lambda value: f"{value:.1f} %",
        y_title="%",
        range=(0, 100),
    )


def health_ranking(rows: Sequence[tuple[str, float]]) -> SafeString:
    """Teams by health score, best on top, 0..1000; no team with a score: no chart."""
    if not rows:
        return no_data()
    height = max(140, 44 * len(rows) + 60)
    names = [name for name, _score in rows]
    # The names stand left of the bars in a margin pygal sizes by its guess of the widest: add what it missed.
    missed = max(text_width(name) for name in names) - max(_pygal_width(name) for name in names)
    # The score axis ends at 1000, centred on the plot's right edge.
    right = max(MARGIN, math.ceil(text_width("1000") / 2) + 4)
    chart = _config(
        pygal.HorizontalBar,
        height=height,
        range=(0, 1000),
        margin_left=MARGIN + max(0, math.ceil(missed)),
        margin_right=right,
    )
    # pygal draws the first label at the bottom of a horizontal bar chart.
    ordered = list(reversed(rows))
    chart.x_labels = [name for name, _score in ordered]
    chart.add(_("Health score"), [float(score) for _name, score in ordered])
    chart.config.formatter = lambda value: f"{value:.1f}"
    return _svg(chart)
