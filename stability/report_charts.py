"""The monthly report's charts, drawn on the server by pygal as inline SVG: the same markup serves the
page and the PDF (WeasyPrint draws SVG itself), with no script and nothing fetched from elsewhere.

Each chart shows figures the report already holds (stability.reports.build_report); nothing is
computed here but units (seconds -> minutes, rates -> percent). A missing figure (no data) is a gap,
never a zero.
"""

import re
from collections.abc import Sequence

import pygal
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _
from pygal.style import Style

# Level colours of the web app (web/static/web/app.css), so the chart reads like the badges.
LEVEL_COLOURS = {"A": "#b3261e", "B": "#c04f00", "C": "#8a6100", "D": "#4a5361"}
ACCENT = "#0b57c2"
FONT = "'Noto Sans CJK SC', 'Noto Sans SC', 'PingFang SC', 'Microsoft YaHei', system-ui, sans-serif"
WIDTH, HEIGHT = 640, 300
SCRIPT = re.compile(r"<script\b.*?</script>", re.S)


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
        label_font_size=13,
        major_label_font_size=13,
        value_font_size=13,
        legend_font_size=13,
        title_font_size=15,
        colors=colours or (ACCENT,),
        opacity="1",
        opacity_hover="1",
        transition="0s",
    )


def _config(chart_class, *, colours: Sequence[str] = (), height: int = HEIGHT, **options):
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
        margin=12,
        truncate_label=-1,
        no_data_text=_("No data"),
        **options,
    )


def _svg(chart) -> SafeString:
    # pygal writes its config for the tooltip script as an inline script even without the script: drop it.
    # pygal escapes the labels and values it writes; the rest of the markup is its own.
    return mark_safe(SCRIPT.sub("", chart.render(is_unicode=True)))


def level_counts(counts: dict[str, int]) -> SafeString:
    """Incidents by level A-D, one bar each in the level's colour."""
    levels = sorted(counts)
    chart = _config(pygal.Bar, colours=[LEVEL_COLOURS.get(level, ACCENT) for level in levels], range=(0, None))
    chart.x_labels = [_("Level %(level)s") % {"level": level} for level in levels]
    # Whole incidents: no 0.1 steps on the axis of a small month.
    top = max(counts.values(), default=0)
    chart.config.y_labels = list(range(0, max(top, 1) + 1, max(1, -(-top // 8))))
    for index, level in enumerate(levels):
        chart.add(level, [None] * index + [counts[level]] + [None] * (len(levels) - index - 1))
    chart.config.formatter = lambda value: f"{value:.0f}"
    return _svg(chart)


def mttr_trend(points: Sequence[tuple[str, float | None]]) -> SafeString:
    """MTTR per month in minutes (seconds in the report); a month with no recovered incident is a gap."""
    chart = _config(pygal.Line, y_title=_("minutes"), allow_interruptions=True, dots_size=4, range=(0, None))
    chart.x_labels = [label for label, _seconds in points]
    chart.add(_("MTTR"), [None if seconds is None else round(seconds / 60, 1) for _label, seconds in points])
    chart.config.formatter = lambda value: f"{value:g}"
    return _svg(chart)


def follow_up_trend(points: Sequence[tuple[str, float | None]]) -> SafeString:
    """The 5-minute follow-up rate per month in percent; a month with no counted alert is a gap."""
    chart = _config(pygal.Line, y_title="%", allow_interruptions=True, dots_size=4, range=(0, 100))
    chart.x_labels = [label for label, _rate in points]
    chart.add(_("Follow-up rate"), [None if rate is None else round(rate * 100, 1) for _label, rate in points])
    chart.config.formatter = lambda value: f"{value:.1f} %"
    return _svg(chart)


def health_ranking(rows: Sequence[tuple[str, float]]) -> SafeString:
    """Teams by health score, best on top, 0..1000."""
    height = max(140, 44 * len(rows) + 60)
    chart = _config(pygal.HorizontalBar, height=height, range=(0, 1000))
    # pygal draws the first label at the bottom of a horizontal bar chart.
    ordered = list(reversed(rows))
    chart.x_labels = [name for name, _score in ordered]
    chart.add(_("Health score"), [float(score) for _name, score in ordered])
    chart.config.formatter = lambda value: f"{value:.1f}"
    return _svg(chart)
