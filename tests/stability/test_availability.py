"""Availability of metrics.md (stability.selectors.system_availability) on incidents worked out by hand.

November 2026 in Asia/Shanghai is [2026-10-31T16:00Z, 2026-11-30T16:00Z): 30 days = 2,592,000 s.
Incidents are made through the service (IncidentFactory), so their level, and with it the default
availability impact (0 for level D, 1 otherwise), is the policy's.
"""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from incidents import periods
from incidents.models import System
from stability.selectors import system_availability
from tests.factories import IncidentFactory, SystemFactory, TeamFactory

pytestmark = pytest.mark.django_db

NOVEMBER = periods.month(2026, 11)
OCTOBER = periods.month(2026, 10)
AFTER = datetime(2026, 12, 10, tzinfo=UTC)  # November is over


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def by_system(rows: list[dict]) -> dict[str, dict]:
    return {row["system"]: row for row in rows}


@pytest.fixture
def november():
    """
    id  systems          [occurred, recovered) UTC          level  impact       in November
    I1  cashier          11-03 02:00 - 02:10                C      1 (default)  600 s at 1
    I2  cashier+payout   11-03 02:05 - 02:25                C      0.3          overlaps I1 on cashier
    I3  cashier          11-10 00:00 - 00:40                B      0.25         2,400 s at 0.25
    I4  cashier          11-12 00:00 - 00:05                D      0 (default)  nothing
    I5  cashier          10-31 15:50 - 16:20                B      1 (default)  16:00 - 16:20 only
    I6  ops              11-20 00:00 - 00:01:40             D      0.1          100 s at 0.1
    """
    payments = TeamFactory(slug="payments", name="Payments")
    cashier = SystemFactory(code="cashier", tier="P0", team=payments, availability_target=Decimal("99.99"))
    payout = SystemFactory(code="payout", tier="P0", team=payments, availability_target=Decimal("99.95"))
    ops = SystemFactory(code="ops", tier="P3", team=payments, availability_target=Decimal("100"))
    SystemFactory(code="quiet", tier="P1", team=payments, availability_target=Decimal("99.9"))
    with time_machine.travel(AFTER, tick=False):
        made = {
            "I1": IncidentFactory(
                systems=[cashier], occurred_at=utc(2026, 11, 3, 2), recovered_at=utc(2026, 11, 3, 2, 10)
            ),
            "I2": IncidentFactory(
                systems=[cashier, payout],
                occurred_at=utc(2026, 11, 3, 2, 5),
                recovered_at=utc(2026, 11, 3, 2, 25),
                availability_impact=Decimal("0.3"),
            ),
            "I3": IncidentFactory(
                systems=[cashier],
                occurred_at=utc(2026, 11, 10),
                recovered_at=utc(2026, 11, 10, 0, 40),
                availability_impact=Decimal("0.25"),
            ),
            "I4": IncidentFactory(
                systems=[cashier], occurred_at=utc(2026, 11, 12), recovered_at=utc(2026, 11, 12, 0, 5)
            ),
            "I5": IncidentFactory(
                systems=[cashier], occurred_at=utc(2026, 10, 31, 15, 50), recovered_at=utc(2026, 10, 31, 16, 20)
            ),
            "I6": IncidentFactory(
                systems=[ops],
                occurred_at=utc(2026, 11, 20),
                recovered_at=utc(2026, 11, 20, 0, 1, 40),
                availability_impact=Decimal("0.1"),
            ),
        }
    assert {name: i.level for name, i in made.items()} == {
        "I1": "C",  # P0 impacted 10 min (>= 10)
        "I2": "C",  # P0 impacted 20 min
        "I3": "B",  # P0 impacted 40 min (>= 30)
        "I4": "D",  # P0 impacted 5 min: nothing matches
        "I5": "B",  # P0 impacted 30 min
        "I6": "D",  # P3: no tier rule
    }
    return made


def test_november_availability_worked_by_hand(november):
    rows = by_system(system_availability(period=NOVEMBER, now=AFTER))
    assert list(rows) == ["cashier", "payout", "quiet", "ops"]  # tier, then code

    cashier = rows["cashier"]
    # 02:00-02:10 max(1, 0.3 from 02:05) = 1: 600 s; 02:10-02:25 only I2: 900 x 0.3 = 270 s
    # (added up, I1 and I2 would give 600 + 1,200 x 0.3 = 960 s: overlaps are never counted twice);
    # I3 2,400 x 0.25 = 600 s; I4 level D, default impact 0: 0 s;
    # I5 from the month's start 10-31 16:00Z (Nov 1 00:00 local) to 16:20: 1,200 s at 1.
    # 600 + 270 + 600 + 0 + 1,200 = 2,670 s
    assert cashier["downtime_seconds"] == Decimal(2670)
    assert cashier["incidents"] == 5
    assert cashier["period_seconds"] == 2_592_000  # 30 x 86,400
    assert cashier["measured_seconds"] == Decimal(2_592_000)
    # 100 - 100 x 2,670 / 2,592,000 = 100 - 0.1030092592... = 99.8969907407..., rounded down to 1e-6
    assert cashier["availability"] == Decimal("99.896990")
    assert cashier["target"] == Decimal("99.99")
    # error budget (1 - 99.99 %) x 2,592,000 s = 0.0001 x 2,592,000 = 259.2 s
    assert cashier["error_budget_seconds"] == Decimal("259.2")
    # 2,670 / 259.2 = 10.30092592...
    assert cashier["budget_consumed"] == Decimal("10.300926")
    assert cashier["met"] is False
    assert (cashier["tier"], cashier["team"]) == ("P0", "payments")

    payout = rows["payout"]
    # I2 alone: 1,200 s x 0.3 = 360 s; budget 0.0005 x 2,592,000 = 1,296 s; 360 / 1,296 = 0.27777...
    assert payout["downtime_seconds"] == Decimal(360)
    assert payout["availability"] == Decimal("99.986111")  # 100 - 0.013888...
    assert payout["error_budget_seconds"] == Decimal("1296")
    assert payout["budget_consumed"] == Decimal("0.277778")
    assert payout["met"] is True

    quiet = rows["quiet"]
    assert (quiet["downtime_seconds"], quiet["availability"], quiet["incidents"]) == (0, Decimal("100"), 0)
    assert quiet["error_budget_seconds"] == Decimal("2592")  # 0.001 x 2,592,000
    assert (quiet["budget_consumed"], quiet["met"]) == (0, True)

    ops = rows["ops"]
    # 100 s x 0.1 = 10 s against a target of 100 %: no budget, so no share of it, and missed
    assert ops["downtime_seconds"] == Decimal(10)
    assert ops["error_budget_seconds"] == 0
    assert (ops["budget_consumed"], ops["met"]) == (None, False)


def test_an_incident_across_the_month_boundary_counts_in_both_months(november):
    october = by_system(system_availability(period=OCTOBER, now=AFTER))["cashier"]
    # I5 from 10-31 15:50Z to the end of October in Shanghai, 16:00Z: 600 s; October has 31 days
    assert october["downtime_seconds"] == Decimal(600)
    assert october["incidents"] == 1
    assert october["period_seconds"] == 2_678_400
    # 100 - 100 x 600 / 2,678,400 = 100 - 0.02240143... = 99.97759856...
    assert october["availability"] == Decimal("99.977598")
    # budget 0.0001 x 2,678,400 = 267.84 s; 600 / 267.84 = 2.24014336...
    assert october["error_budget_seconds"] == Decimal("267.84")
    assert october["budget_consumed"] == Decimal("2.240143")


def test_an_unrecovered_incident_runs_until_now_over_the_full_period_length():
    cashier = SystemFactory(code="cashier", tier="P0", availability_target=Decimal("99.99"))
    with time_machine.travel(utc(2026, 11, 29, 15, 30), tick=False):
        incident = IncidentFactory(systems=[cashier], occurred_at=utc(2026, 11, 29, 15))
    assert (incident.level, incident.recovered_at) == ("B", None)  # P0 impacted 30 min: default impact 1

    row = system_availability(period=NOVEMBER, now=utc(2026, 11, 29, 15, 30))[0]
    assert row["downtime_seconds"] == Decimal(1800)  # 15:00 -> now
    # November is not over: downtime up to now, over the whole month, not over the part elapsed
    # (measured: 10-31 16:00Z -> 11-29 15:30Z = 29 days - 30 min = 2,505,600 - 1,800 = 2,503,800 s)
    assert row["measured_seconds"] == Decimal(2_503_800)
    assert row["availability"] == Decimal("99.930555")  # 100 - 100 x 1,800 / 2,592,000 = 99.9305555...
    assert row["budget_consumed"] == Decimal("6.944444")  # 1,800 / 259.2

    later = system_availability(period=NOVEMBER, now=utc(2026, 11, 29, 15, 40, 0, 500_000))[0]
    assert later["downtime_seconds"] == Decimal("2400.5")  # exact to the microsecond of now

    # A period that has not started yet has no downtime.
    december = system_availability(period=periods.month(2026, 12), now=utc(2026, 11, 29, 15, 30))[0]
    assert (december["downtime_seconds"], december["measured_seconds"], december["availability"]) == (
        0,
        0,
        Decimal("100"),
    )


def test_recovered_exactly_at_the_period_start_is_outside_it():
    cashier = SystemFactory(code="cashier", tier="P0")
    with time_machine.travel(AFTER, tick=False):
        # [10-31 15:00Z, 10-31 16:00Z) ends where November starts: half-open, nothing in November
        IncidentFactory(systems=[cashier], occurred_at=utc(2026, 10, 31, 15), recovered_at=utc(2026, 10, 31, 16))
        # starts where November ends: December's
        IncidentFactory(systems=[cashier], occurred_at=utc(2026, 11, 30, 16), recovered_at=utc(2026, 11, 30, 17))
    row = system_availability(period=NOVEMBER, now=AFTER)[0]
    assert (row["incidents"], row["downtime_seconds"]) == (0, 0)


def test_systems_filter_and_constant_queries():
    def build(n_systems: int, n_incidents: int, prefix: str):
        team = TeamFactory(slug=f"{prefix}-team", name=f"{prefix} team")
        made = [SystemFactory(code=f"{prefix}-{i}", tier="P1", team=team) for i in range(n_systems)]
        with time_machine.travel(AFTER, tick=False):
            for i in range(n_incidents):
                start = utc(2026, 11, 2 + i, 1)
                IncidentFactory(
                    systems=made[i % n_systems : i % n_systems + 2],
                    occurred_at=start,
                    recovered_at=start.replace(hour=3),
                )
        return System.objects.filter(team=team)

    small, large = build(1, 1, "small"), build(6, 12, "large")
    with CaptureQueriesContext(connection) as few:
        small_rows = system_availability(period=NOVEMBER, now=AFTER, systems=small)
    with CaptureQueriesContext(connection) as many:
        large_rows = system_availability(period=NOVEMBER, now=AFTER, systems=large)
    assert len(few) == len(many) == 2  # the systems, then every incident interval at once
    assert [row["system"] for row in small_rows] == ["small-0"]
    assert len(large_rows) == 6
    # P1 impacted 2 h: B, default impact 1; each large system has 2 or 4 incidents of 7,200 s
    # (incident i impacts systems i % 6 and i % 6 + 1): large-0 i = 0, 6; large-1 i = 0, 1, 6, 7 ...
    downtime = {row["system"]: row["downtime_seconds"] for row in large_rows}
    assert downtime == {
        "large-0": 14400,
        "large-1": 28800,
        "large-2": 28800,
        "large-3": 28800,
        "large-4": 28800,
        "large-5": 28800,
    }
