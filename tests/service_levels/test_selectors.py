"""The service level figures (service_levels.selectors), worked by hand in the comments."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from incidents import periods
from incidents.models import Tier
from service_levels import services
from service_levels.models import DailyValue
from service_levels.prometheus import Problem
from service_levels.selectors import (
    daily_values,
    error_budget_left,
    possible_unlogged_incidents,
    service_level_figures,
    service_levels_json,
)
from service_levels.services import Measurement
from tests.factories import IncidentFactory, SystemFactory

# Dec 2 10:00 in Asia/Shanghai: every day of November is over.
NOW = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)
NOVEMBER = periods.month(2026, 11)


def store(indicator, day: date, *, good=None, total=None, ratio=None, status="ok", problem=""):
    if status == "ok" and ratio is None:
        ratio = good / total
    measurement = Measurement(status, good=good, total=total, ratio=ratio, problem=problem)
    return services.daily_value_store(indicator=indicator, day=day, measurement=measurement, now=NOW)


@pytest.fixture
def offline_source(db):
    # Nothing is asked of it: the days are stored by hand.
    return services.source_create(name="offline", url="http://127.0.0.1:9", enabled=False)


def counted(system, source, *, objective="99.9", name="入金有效成功率"):
    return services.indicator_create(
        system=system,
        source=source,
        name=name,
        objective=Decimal(objective),
        good_query="sum(increase(ok_total[$window]))",
        total_query="sum(increase(all_total[$window]))",
        check=False,
    )


def ratio_only(system, source, *, objective="70", name="可用性"):
    return services.indicator_create(
        system=system,
        source=source,
        name=name,
        objective=Decimal(objective),
        ratio_query="avg(up[$window])",
        check=False,
    )


@pytest.fixture
def p0(db):
    return SystemFactory(code="collection", name="Collection (入金)", tier=Tier.P0)


def test_a_period_is_summed_good_over_summed_total_with_missing_days_counted(offline_source, p0):
    indicator = counted(p0, offline_source)
    store(indicator, date(2026, 10, 15), good=100_000, total=100_000)
    store(indicator, date(2026, 11, 1), good=9_990, total=10_000)
    store(indicator, date(2026, 11, 2), good=990, total=1_000)
    store(indicator, date(2026, 11, 3), status="missing", problem=Problem.NO_DATA)
    store(indicator, date(2026, 11, 4), status="failed", problem=Problem.TIMEOUT, good=None, total=None)
    (row,) = service_level_figures(NOVEMBER, now=NOW)

    # November: (9,990 + 990) / (10,000 + 1,000) = 10,980 / 11,000 = 0.9981818... -> 99.818181 % (rounded down);
    # the mean of the daily ratios, (0.999 + 0.99) / 2 = 99.45 %, would be wrong.
    assert row["value"] == Decimal("99.818181")
    assert (row["good"], row["total"]) == (10_980, 11_000)
    # 30 days counted (Nov 1 is after the first stored day, Oct 15); 2 measured; Nov 3, Nov 4 and the 26 days
    # never pulled are missing: 28.
    assert (row["days"], row["days_measured"], row["days_missing"]) == (30, 2, 28)
    # Budget left: 1 - (20 / 11,000) / (1 - 0.999) = 1 - 1.818181... = -0.818182 (overspent)
    assert row["error_budget_left"] == Decimal("-0.818182")
    assert row["met"] is False
    assert row["objective"] == Decimal("99.9")

    ytd = row["year_to_date"]
    # Oct 15 to Nov 30: 17 + 30 = 47 days counted, 3 measured, 44 missing;
    # (100,000 + 10,980) / (100,000 + 11,000) = 110,980 / 111,000 = 0.99981981... -> 99.981981 %
    assert (ytd["days"], ytd["days_measured"], ytd["days_missing"]) == (47, 3, 44)
    assert ytd["value"] == Decimal("99.981981")
    # 1 - (20 / 111,000) / 0.001 = 1 - 0.18018018 = 0.819820
    assert ytd["error_budget_left"] == Decimal("0.819820")
    assert ytd["met"] is True


def test_a_ratio_indicator_is_the_mean_of_its_measured_days(offline_source, p0):
    indicator = ratio_only(p0, offline_source, objective="70")
    store(indicator, date(2026, 11, 1), ratio=1.0)
    store(indicator, date(2026, 11, 2), ratio=0.75)
    store(indicator, date(2026, 11, 3), ratio=0.5)
    store(indicator, date(2026, 11, 4), status="missing", problem=Problem.NAN)
    (row,) = service_level_figures(NOVEMBER, now=NOW)
    # (1 + 0.75 + 0.5) / 3 = 0.75: 75 %; the missing day is not taken as 100 %.
    assert row["value"] == Decimal("75.000000")
    assert (row["good"], row["total"]) == (None, None)
    # 1 - 0.25 / 0.3 = 0.166667
    assert row["error_budget_left"] == Decimal("0.166667")
    assert (row["days"], row["days_measured"], row["days_missing"]) == (30, 3, 27)


def test_days_are_counted_from_the_first_stored_day_and_only_once_over(offline_source, p0):
    indicator = counted(p0, offline_source)
    store(indicator, date(2026, 11, 20), good=1, total=1)
    # On Nov 25 at 10:00 local, Nov 20..24 are over: 5 days counted, 1 measured.
    (row,) = service_level_figures(NOVEMBER, now=datetime(2026, 11, 25, 2, 0, tzinfo=UTC))
    assert (row["days"], row["days_measured"], row["days_missing"]) == (5, 1, 4)


def test_an_indicator_without_any_day_has_no_value_never_100(offline_source, p0):
    counted(p0, offline_source)
    (row,) = service_level_figures(NOVEMBER, now=NOW)
    assert (row["value"], row["error_budget_left"], row["met"], row["days"]) == (None, None, None, 0)


def test_an_objective_of_100_has_no_budget():
    assert error_budget_left(Decimal("0.999"), Decimal(100)) is None
    # 1 - 0.0002 / 0.001 = 0.8: 80 % of the budget left
    assert error_budget_left(Decimal("0.9998"), Decimal("99.9")) == Decimal("0.800000")


def test_the_scope_narrows_to_a_team_or_a_system(offline_source, p0):
    counted(p0, offline_source)
    other = SystemFactory(code="payout", tier=Tier.P0)
    counted(other, offline_source, name="出金有效成功率")
    assert [row["system"] for row in service_level_figures(NOVEMBER, now=NOW)] == ["collection", "payout"]
    assert [row["system"] for row in service_level_figures(NOVEMBER, system=other, now=NOW)] == ["payout"]
    assert [row["system"] for row in service_level_figures(NOVEMBER, team=p0.team, now=NOW)] == ["collection"]


def test_three_queries_whatever_the_number_of_indicators(offline_source, p0, django_assert_num_queries):
    for n in range(5):
        indicator = counted(p0, offline_source, name=f"i{n}")
        store(indicator, date(2026, 11, 1), good=9, total=10)
    with django_assert_num_queries(3):
        assert len(service_level_figures(NOVEMBER, now=NOW)) == 5


def test_daily_values_list_every_finished_day_with_why_a_day_has_no_value(offline_source, p0):
    indicator = counted(p0, offline_source)
    store(indicator, date(2026, 11, 1), good=9_990, total=10_000)
    store(indicator, date(2026, 11, 2), good=999, total=1_000)
    store(indicator, date(2026, 11, 3), status="failed", problem=Problem.TIMEOUT)
    days = daily_values(indicator, NOVEMBER, now=datetime(2026, 11, 5, 2, 0, tzinfo=UTC))
    # Nov 5 10:00 local: Nov 1 to 4 are over.
    assert [d["day"].day for d in days] == [1, 2, 3, 4]
    assert [d["status"] for d in days] == ["ok", "ok", "failed", "not_pulled"]
    # 9,990 / 10,000 = 99.9 % is the objective itself (not below); 999 / 1,000 = 99.9 % too
    assert [d["value"] for d in days[:2]] == [Decimal("99.900000"), Decimal("99.900000")]
    assert [d["below_objective"] for d in days] == [False, False, False, False]
    assert days[2]["problem"].startswith("Prometheus gave no answer within")


# --- possible unlogged incidents ------------------------------------------------------------------------


@pytest.fixture
def dipped(offline_source, p0):
    """Nov 1 at the objective (99.9 %), Nov 2 below it (990 / 1,000 = 99.0 %)."""
    indicator = counted(p0, offline_source)
    store(indicator, date(2026, 11, 1), good=9_990, total=10_000)
    store(indicator, date(2026, 11, 2), good=990, total=1_000)
    return indicator


def test_a_day_below_objective_with_no_incident_is_flagged(dipped, p0):
    (flag,) = possible_unlogged_incidents(NOVEMBER, now=NOW)
    assert flag == {
        "day": date(2026, 11, 2),
        "system": "collection",
        "system_name": "Collection (入金)",
        "tier": "P0",
        "team": p0.team.slug,
        "indicator": dipped.pk,
        "indicator_name": "入金有效成功率",
        "value": Decimal("99.000000"),
        "objective": Decimal("99.9"),
    }


def test_an_incident_that_occurred_that_local_day_explains_it(dipped, p0):
    # 2026-11-01T16:30Z is Nov 2 00:30 in Asia/Shanghai: that day's incident.
    IncidentFactory(
        systems=[p0],
        occurred_at=datetime(2026, 11, 1, 16, 30, tzinfo=UTC),
        detected_at=datetime(2026, 11, 1, 16, 30, tzinfo=UTC),
        recovered_at=datetime(2026, 11, 1, 16, 40, tzinfo=UTC),
    )
    assert possible_unlogged_incidents(NOVEMBER, now=NOW) == []


def test_an_incident_of_the_previous_local_day_does_not(dipped, p0):
    # 2026-11-01T15:30Z to 15:50Z is Nov 1 23:30 to 23:50 local: over before Nov 2 began.
    IncidentFactory(
        systems=[p0],
        occurred_at=datetime(2026, 11, 1, 15, 30, tzinfo=UTC),
        detected_at=datetime(2026, 11, 1, 15, 30, tzinfo=UTC),
        recovered_at=datetime(2026, 11, 1, 15, 50, tzinfo=UTC),
    )
    assert [flag["day"] for flag in possible_unlogged_incidents(NOVEMBER, now=NOW)] == [date(2026, 11, 2)]


def test_an_incident_still_unrecovered_into_the_day_explains_it(dipped, p0):
    # Nov 1 23:30 local until Nov 2 01:00 local.
    IncidentFactory(
        systems=[p0],
        occurred_at=datetime(2026, 11, 1, 15, 30, tzinfo=UTC),
        detected_at=datetime(2026, 11, 1, 15, 30, tzinfo=UTC),
        recovered_at=datetime(2026, 11, 1, 17, 0, tzinfo=UTC),
    )
    assert possible_unlogged_incidents(NOVEMBER, now=NOW) == []


def test_another_systems_incident_does_not(dipped):
    IncidentFactory(
        systems=[SystemFactory(code="other", tier=Tier.P0)],
        occurred_at=datetime(2026, 11, 2, 2, 0, tzinfo=UTC),
        detected_at=datetime(2026, 11, 2, 2, 0, tzinfo=UTC),
    )
    assert len(possible_unlogged_incidents(NOVEMBER, now=NOW)) == 1


@pytest.mark.parametrize(("tier", "flagged"), [(Tier.P1, 1), (Tier.P2, 0), (Tier.P3, 0)])
def test_only_p0_and_p1_systems_are_flagged(offline_source, tier, flagged):
    indicator = counted(SystemFactory(code="s", tier=tier), offline_source)
    store(indicator, date(2026, 11, 2), good=1, total=2)
    assert len(possible_unlogged_incidents(NOVEMBER, now=NOW)) == flagged


def test_the_json_of_the_api_and_the_report(dipped):
    figures = service_levels_json(NOVEMBER, now=NOW)
    assert figures["period"] == "2026-11"
    (row,) = figures["indicators"]
    # 10,980 / 11,000 as above
    assert (row["value"], row["objective"], row["year_to_date"]["value"]) == ("99.818181", "99.9", "99.818181")
    assert figures["possible_unlogged"][0]["day"] == "2026-11-02"
    assert DailyValue.objects.count() == 2


def test_two_queries_for_the_flags_with_or_without_days_below(dipped, django_assert_num_queries):
    with django_assert_num_queries(2):
        assert len(possible_unlogged_incidents(NOVEMBER, now=NOW)) == 1
    with django_assert_num_queries(2):
        assert possible_unlogged_incidents(periods.month(2026, 10), now=NOW) == []


def test_an_iso_week_is_its_seven_local_days(offline_source, p0):
    indicator = counted(p0, offline_source)
    store(indicator, date(2026, 11, 1), good=1, total=1_000)  # Sunday: week 44
    store(indicator, date(2026, 11, 2), good=999, total=1_000)  # Monday: week 45 begins
    store(indicator, date(2026, 11, 8), good=998, total=1_000)  # Sunday: week 45 ends
    store(indicator, date(2026, 11, 9), good=1, total=1_000)  # Monday: week 46
    (row,) = service_level_figures(periods.parse("2026-W45"), now=NOW)
    # Nov 2 to Nov 8: (999 + 998) / 2,000 = 1,997 / 2,000 = 99.85 %; 7 days, 2 measured, 5 missing
    assert (row["value"], row["days"], row["days_missing"]) == (Decimal("99.850000"), 7, 5)
