"""The service levels in the stability report: its JSON's `service_levels` (indicators, possible_unlogged), a
line per indicator in the narrative's 系统运行数据, the appendix tables, and published reports of before them."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.utils import translation

from incidents import periods
from incidents.models import Tier
from service_levels import services
from service_levels.services import Measurement
from stability import report_narrative
from stability.reports import build_report, report_json
from tests.factories import SystemFactory

NOW = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)  # Dec 2 10:00 local
NOVEMBER = periods.month(2026, 11)


@pytest.fixture
def collection(db):
    source = services.source_create(name="offline", url="http://127.0.0.1:9", enabled=False)
    system = SystemFactory(code="collection", name="收款入金", tier=Tier.P0)
    indicator = services.indicator_create(
        system=system,
        source=source,
        name="入金有效成功率",
        objective=Decimal("99.99"),
        good_query="sum(increase(ok_total[$window]))",
        total_query="sum(increase(all_total[$window]))",
        check=False,
    )
    for day, good, total in ((1, 499_990, 500_000), (2, 99_990, 100_000)):
        measurement = Measurement("ok", good=good, total=total, ratio=good / total)
        services.daily_value_store(indicator=indicator, day=date(2026, 11, day), measurement=measurement, now=NOW)
    services.daily_value_store(
        indicator=indicator, day=date(2026, 11, 3), measurement=Measurement("missing", problem="no_data"), now=NOW
    )
    return indicator


def _operation_lines(report, language: str) -> list[str]:
    with translation.override(language):
        paragraphs = report_narrative.narrative(report)
        return [line.plain() for line in paragraphs[0].lines]


def test_the_json_carries_the_service_levels(collection):
    figures = report_json(build_report(period=NOVEMBER, now=NOW))["service_levels"]
    (row,) = figures["indicators"]
    # (499,990 + 99,990) / (500,000 + 100,000) = 599,980 / 600,000 = 1 - 20 / 600,000 = 0.9999666... -> 99.996666 %
    assert (row["name"], row["value"], row["objective"]) == ("入金有效成功率", "99.996666", "99.99")
    # Nov 2: 99,990 / 100,000 = 99.99 %, the objective itself: not below, nothing flagged
    assert figures["possible_unlogged"] == []
    # 30 days from the first stored day (Nov 1), 2 measured
    assert (row["days"], row["days_measured"], row["days_missing"]) == (30, 2, 28)


def test_the_narrative_says_each_indicator_as_the_weekly_report_does(collection):
    report = build_report(period=NOVEMBER, now=NOW)
    chinese = _operation_lines(report, "zh-hans")
    assert "入金有效成功率 99.996 %（目标 99.99 %），28 天无数据。" in chinese
    english = _operation_lines(report, "en")
    assert "入金有效成功率 99.996 % (objective 99.99 %), 28 days without data." in english


def test_a_day_below_objective_without_an_incident_is_said_and_listed(collection):
    services.daily_value_store(
        indicator=collection,
        day=date(2026, 11, 4),
        measurement=Measurement("ok", good=9_900, total=10_000, ratio=0.99),
        now=NOW,
    )
    report = build_report(period=NOVEMBER, now=NOW)
    flagged = report_json(report)["service_levels"]["possible_unlogged"]
    # 9,900 / 10,000 = 99 % < 99.99 %
    assert [(f["day"], f["system"], f["value"]) for f in flagged] == [("2026-11-04", "collection", "99.000000")]
    (line,) = [line for line in _operation_lines(report, "en") if "possible unlogged incident" in line]
    assert line.startswith("On 2026-11-04 入金有效成功率 of 收款入金 was 99.000 %, below its objective of 99.99 %")
    tables = {table.key: table for table in report.service_levels.tables()}
    assert [row["indicator_name"] for row in tables["possible_unlogged"].rows] == ["入金有效成功率"]
    assert [row["year_to_date"] for row in tables["service_levels"].rows] == [
        report_json(report)["service_levels"]["indicators"][0]["year_to_date"]["value"]
    ]


def test_a_scope_without_indicators_says_nothing_of_them(db):
    report = build_report(period=NOVEMBER, now=NOW)
    assert report_json(report)["service_levels"] == {"indicators": [], "possible_unlogged": []}
    assert not [line for line in _operation_lines(report, "en") if "objective" in line]


def test_a_published_report_of_before_the_service_levels_reads_as_none(collection):
    from stability.reports import Report

    built = build_report(period=NOVEMBER, now=NOW)
    values = {name: getattr(built, name) for name in Report.__dataclass_fields__ if name != "service_levels"}
    older = Report(**values)
    assert older.service_levels.figures == {} and older.service_levels.tables()[0].rows == []
    assert not [line for line in _operation_lines(older, "en") if "objective 99.99" in line]
