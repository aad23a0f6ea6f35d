"""The report's charts (stability.report_charts): a trend starts at its first period with a figure, a chart
with nothing to draw is the words "No data", and no text of a chart is cut: each label's box, measured by
Chromium in the charts' own font, lies inside the SVG's viewBox, in English and in Chinese."""

import os
import shutil
from xml.etree import ElementTree

import pytest
from django.utils import translation

from stability import report_charts

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
TWELVE_MONTHS = [f"2025-{m:02d}" for m in range(12, 13)] + [f"2026-{m:02d}" for m in range(1, 12)]


SVG = "{http://www.w3.org/2000/svg}"


def texts(svg: str, group_class: str) -> list[str]:
    """The texts under pygal's <g class="`group_class` ...">, in order (the axes' labels: "axis x", "axis y")."""
    root = ElementTree.fromstring(svg)
    for group in root.iter(f"{SVG}g"):
        if group.get("class", "").startswith(group_class):
            return [text.text for text in group.iter(f"{SVG}text") if text.text]
    raise AssertionError(f"no {group_class} in the chart")


def x_labels(svg: str) -> list[str]:
    return texts(svg, "axis x")


def printed_values(svg: str) -> list[str]:
    root = ElementTree.fromstring(svg)
    return [text.text for text in root.iter(f"{SVG}text") if text.get("class", "").startswith("value")]


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("en", ["Nov", "W48", "Q4", "2026", "11-01"]),
        ("zh-hans", ["11月", "W48", "Q4", "2026", "11-01"]),
    ],
)
def test_a_period_on_the_x_axis_is_short(language, expected):
    with translation.override(language):
        labels = ["2026-11", "2026-W48", "2026-Q4", "2026", "2026-11-01..2026-11-30"]
        assert [report_charts.short_label(label) for label in labels] == expected


def test_a_trend_starts_at_its_first_period_with_a_figure_and_keeps_later_gaps():
    # Twelve months, the first eight without a recovered incident; December 2025 to July 2026 are not drawn.
    # August 7,200 s = 120 min, September none (a gap), October 90 s = 1.5 min, November 3,600 s = 60 min.
    points = [(label, None) for label in TWELVE_MONTHS[:8]]
    points += [("2026-08", 7200), ("2026-09", None), ("2026-10", 90), ("2026-11", 3600)]
    with translation.override("en"):
        svg = str(report_charts.mttr_trend(points))
    assert x_labels(svg) == ["Aug", "Sep", "Oct", "Nov"]
    assert "2026-08 – 2026-11" in svg  # the axis title gives the years
    assert printed_values(svg) == ["120", "1.5", "60"]  # September is a gap, not a zero


def test_the_follow_up_trend_prints_percent_from_its_first_counted_month():
    # 0.5 -> 50.0 %, 1 -> 100.0 %
    with translation.override("zh-hans"):
        svg = str(report_charts.follow_up_trend([("2026-W46", None), ("2026-W47", 0.5), ("2026-W48", 1)]))
    assert x_labels(svg) == ["W47", "W48"]
    assert printed_values(svg) == ["50.0 %", "100.0 %"]


@pytest.mark.parametrize(("language", "words"), [("en", "No data"), ("zh-hans", "暂无数据")])
def test_no_figure_at_all_is_no_chart_but_words(language, words):
    with translation.override(language):
        empty_months = [(label, None) for label in TWELVE_MONTHS]
        for drawn in (
            report_charts.mttr_trend(empty_months),
            report_charts.follow_up_trend(empty_months),
            report_charts.health_ranking([]),
        ):
            assert str(drawn) == f'<p class="chart-empty">{words}</p>'


def test_a_period_without_incidents_says_so_instead_of_four_empty_bars():
    with translation.override("zh-hans"):
        drawn = str(report_charts.level_counts({"A": 0, "B": 0, "C": 0, "D": 0}))
    assert drawn == '<p class="chart-empty">本周期内无事件。</p>'


def test_whole_incidents_on_the_level_axis():
    # top 3: a step of ceil(3 / 8) = 1, so the axis reads 0, 1, 2, 3
    svg = str(report_charts.level_counts({"A": 1, "B": 0, "C": 3, "D": 2}))
    assert texts(svg, "axis y") == ["0", "1", "2", "3"]


TEAMS = {
    "en": [("Risk & Compliance Engineering", 1000.0), ("Payments", 512.5), ("WWW", 0.0)],
    "zh-hans": [("支付清结算平台运营保障团队", 1000.0), ("风控", 512.5), ("账务", 0.0)],
}


def _hard_charts(language: str) -> dict[str, str]:
    """Charts with the widest text they meet: twelve months across a new year, a long MTTR at the last
    month, 100 % at the top right corner, long team names (Chinese ones twice as wide as pygal guesses), a
    zero bar."""
    months = list(zip(TWELVE_MONTHS, [3600 * 24 * 3 + 7, *[600] * 9, None, 99_999], strict=True))
    rates = list(zip(TWELVE_MONTHS, [0.0, *[0.5] * 10, 1.0], strict=True))
    return {
        "levels": str(report_charts.level_counts({"A": 0, "B": 12, "C": 1, "D": 1234})),
        "mttr": str(report_charts.mttr_trend(months)),
        "follow_up": str(report_charts.follow_up_trend(rates)),
        "ranking": str(report_charts.health_ranking(TEAMS[language])),
    }


# Each <text> with content: its box in the page against the SVG's (drawn at its viewBox's size).
_MEASURE = """() => [...document.querySelectorAll("svg")].map((svg) => {
  const frame = svg.getBoundingClientRect();
  return [...svg.querySelectorAll("text")]
    .filter((text) => text.textContent.trim() && !text.closest(".tooltip"))
    .map((text) => {
      const box = text.getBoundingClientRect();
      const axis = text.closest(".axis");
      return {text: text.textContent, left: box.left - frame.left, top: box.top - frame.top,
              right: frame.right - box.right, bottom: frame.bottom - box.bottom,
              box: [box.left - frame.left, box.top - frame.top, box.right - frame.left, box.bottom - frame.top],
              value: text.classList.contains("value"), y_label: Boolean(axis && axis.classList.contains("y"))};
    });
})"""


@pytest.mark.browser
@pytest.mark.skipif(not shutil.which(CHROMIUM), reason=f"needs Chromium at {CHROMIUM} (apt-get install chromium)")
@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_no_label_is_cut(language, monkeypatch):
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with translation.override(language):
        charts = _hard_charts(language)
    html = "".join(f'<div style="width:{report_charts.WIDTH}px">{svg}</div>' for svg in charts.values())
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        tab = browser.new_page(viewport={"width": 800, "height": 800})
        tab.set_content(f"<!doctype html><style>body {{ margin: 0 }} svg {{ display: block }}</style>{html}")
        measured = tab.evaluate(_MEASURE)
        browser.close()
    assert len(measured) == len(charts)
    for name, texts in zip(charts, measured, strict=True):
        assert len(texts) >= 4, (name, texts)
        cut = [text for text in texts if min(text["left"], text["top"], text["right"], text["bottom"]) < 0]
        assert not cut, (name, cut)
    for name in ("mttr", "follow_up"):
        texts = measured[list(charts).index(name)]
        values = [text for text in texts if text["value"]]
        y_labels = [text for text in texts if text["y_label"]]
        assert values and y_labels, name
        overlapping = [
            (value["text"], label["text"]) for value in values for label in y_labels if overlap(value, label)
        ]
        assert not overlapping, (name, overlapping)


def overlap(one: dict, other: dict) -> bool:
    """Whether two measured texts' boxes (left, top, right, bottom in the SVG) share any area."""
    (left, top, right, bottom), (left2, top2, right2, bottom2) = one["box"], other["box"]
    return left < right2 and left2 < right and top < bottom2 and top2 < bottom
