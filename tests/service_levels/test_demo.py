"""The demo's service levels (demo/service_levels.py): an indicator per P0 system, a year of days made without
a Prometheus, and exactly the two dips below objective that no incident explains."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from demo import service_levels as demo
from incidents import periods
from incidents.models import System, Tier
from service_levels.models import DailyValue, Indicator
from service_levels.selectors import local_days, possible_unlogged_incidents, service_level_figures
from service_levels.services import local_today

pytestmark = pytest.mark.django_db


@pytest.fixture
def loaded() -> str:
    out = StringIO()
    call_command("load_demo", stdout=out, stderr=StringIO())
    return out.getvalue()


def test_every_p0_system_has_an_indicator_with_a_year_of_days(loaded):
    p0 = set(System.objects.filter(tier=Tier.P0).values_list("code", flat=True))
    assert set(Indicator.objects.values_list("system__code", flat=True)) == p0
    assert DailyValue.objects.count() == len(demo.INDICATORS) * demo.DAYS
    assert (
        f"Created {len(demo.INDICATORS)} service level indicators with {len(demo.INDICATORS) * demo.DAYS} daily values"
        in loaded
    )
    # One day of payout has no data: missing, never 100 %.
    assert list(DailyValue.objects.exclude(status="ok").values_list("indicator__system__code", "status")) == [
        ("payout", "missing")
    ]


def test_the_only_unexplained_dips_are_the_two_the_demo_makes(loaded):
    today = local_today(timezone.now())
    year = periods.date_range(today - timedelta(days=demo.DAYS), today - timedelta(days=1))
    flagged = possible_unlogged_incidents(year)
    assert sorted(f["system"] for f in flagged) == ["collection", "payout"]
    recent = next(f for f in flagged if f["system"] == "collection")
    assert today - recent["day"] >= timedelta(days=demo.UNLOGGED_DAYS_AGO)
    # Last month's report shows payout's dip (the 12th), and collection's when three days ago was last month.
    last_month = periods.last_complete_month(timezone.now())
    first, last = local_days(last_month)
    expected = {"payout"} | ({"collection"} if first <= recent["day"] <= last else set())
    assert {f["system"] for f in possible_unlogged_incidents(last_month)} == expected


def test_a_second_load_adds_nothing(loaded):
    assert demo.load({}) == 0


def test_the_figures_read_like_the_weekly_report(loaded):
    figures = {row["name"]: row for row in service_level_figures(periods.last_complete_month(timezone.now()))}
    assert set(figures) == {"入金有效成功率", "出金有效成功率", "一次支付成功率", "记账可用性"}
    for row in figures.values():
        assert row["value"] is not None and row["days"] == row["days_measured"] + row["days_missing"]
