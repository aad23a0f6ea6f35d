"""Incident figures of metrics.md on a small dataset worked out by hand."""

from datetime import UTC, datetime

import pytest
import time_machine

from incidents import periods
from incidents.models import Incident
from incidents.selectors import in_period, incident_metrics, percentile
from tests.factories import IncidentFactory, SystemFactory, TeamFactory

pytestmark = pytest.mark.django_db


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
def november():
    """Five November incidents (Asia/Shanghai), one just before and one just after the month.

    id   occurred (UTC)      systems          TTD    TTA    TTR    level  source       in target
    I1   10-31 17:00         cashier P0       300    300    1200   C      monitoring   yes (4 h)
    I2   11-05 02:00         bill P1          1800   -      7200   B      customer     no  (1 h)
    I3   11-10 08:00         gateway+bill P1  60     120    600    D      third_party  yes (24 h)
    I4   11-15 00:00         cashier P0       120    120    -      A      monitoring   (unrecovered)
    I7   11-20 10:00         cashier P0       0      60     2700   B      monitoring   yes (1 h)
    """
    payments, bank = TeamFactory(slug="payments", name="Payments"), TeamFactory(slug="bank", name="Bank")
    cashier = SystemFactory(code="cashier", tier="P0", team=payments)
    bill = SystemFactory(code="bill", tier="P1", team=payments)
    gateway = SystemFactory(code="gateway", tier="P1", team=bank)
    with time_machine.travel(utc(2026, 12, 10), tick=False):
        made = {
            "I1": IncidentFactory(
                systems=[cashier],
                occurred_at=utc(2026, 10, 31, 17),
                detected_at=utc(2026, 10, 31, 17, 5),
                responded_at=utc(2026, 10, 31, 17, 10),
                recovered_at=utc(2026, 10, 31, 17, 20),
                detection_source="monitoring",
                cause_category="code_change",
            ),
            "I2": IncidentFactory(
                systems=[bill],
                occurred_at=utc(2026, 11, 5, 2),
                detected_at=utc(2026, 11, 5, 2, 30),
                recovered_at=utc(2026, 11, 5, 4),
                detection_source="customer",
                cause_category="data",
            ),
            "I3": IncidentFactory(
                systems=[gateway, bill],
                team=bank,
                occurred_at=utc(2026, 11, 10, 8),
                detected_at=utc(2026, 11, 10, 8, 1),
                responded_at=utc(2026, 11, 10, 8, 3),
                recovered_at=utc(2026, 11, 10, 8, 10),
                detection_source="third_party",
                cause_category="third_party",
            ),
            "I4": IncidentFactory(
                systems=[cashier],
                occurred_at=utc(2026, 11, 15),
                detected_at=utc(2026, 11, 15, 0, 2),
                responded_at=utc(2026, 11, 15, 0, 4),
                detection_source="monitoring",
                cause_category="infrastructure",
            ),
            "I7": IncidentFactory(
                systems=[cashier],
                occurred_at=utc(2026, 11, 20, 10),
                detected_at=utc(2026, 11, 20, 10),
                responded_at=utc(2026, 11, 20, 10, 1),
                recovered_at=utc(2026, 11, 20, 10, 45),
                detection_source="monitoring",
                cause_category="config_change",
            ),
            # 23:59:59 on Oct 31 and 00:00:00 on Dec 1 in Shanghai: outside November.
            "October": IncidentFactory(
                systems=[cashier],
                occurred_at=utc(2026, 10, 31, 15, 59, 59),
                detected_at=utc(2026, 10, 31, 15, 59, 59),
                recovered_at=utc(2026, 10, 31, 16, 30),
            ),
            "December": IncidentFactory(
                systems=[cashier],
                occurred_at=utc(2026, 11, 30, 16),
                detected_at=utc(2026, 11, 30, 16),
                recovered_at=utc(2026, 11, 30, 16, 1),
            ),
        }
    return made


def test_levels_follow_the_policy(november):
    assert {name: i.level for name, i in november.items() if name.startswith("I")} == {
        "I1": "C",
        "I2": "B",
        "I3": "D",
        "I4": "A",
        "I7": "B",
    }


def test_november_figures(november):
    metrics = incident_metrics(incidents=in_period(Incident.objects.all(), periods.parse("2026-11")))

    assert metrics["incidents"] == 5
    assert (metrics["recovered"], metrics["unrecovered"]) == (4, 1)
    assert metrics["by_level"] == {"A": 1, "B": 2, "C": 1, "D": 1}
    assert metrics["by_detection_source"] == {
        "monitoring": 3,
        "customer": 1,
        "inspection": 0,
        "third_party": 1,
        "other": 0,
    }
    assert metrics["by_cause_category"]["code_change"] == 1
    assert metrics["by_cause_category"]["unknown"] == 0
    assert metrics["by_team"] == [
        {"team": "payments", "name": "Payments", "count": 4},
        {"team": "bank", "name": "Bank", "count": 1},
    ]
    # I3 impacts two systems: once for each system, once in the total.
    assert [(s["system"], s["count"]) for s in metrics["by_system"]] == [("cashier", 3), ("bill", 2), ("gateway", 1)]

    # TTR over the 4 recovered: 600, 1200, 2700, 7200 (I4 excluded).
    # mean 11700/4 = 2925; median at rank 1.5: 1200 + 0.5*1500 = 1950; p90 at rank 2.7: 2700 + 0.7*4500 = 5850.
    assert metrics["time_to_recover"] == {"count": 4, "mean": 2925.0, "median": 1950.0, "p90": 5850.0}
    # TTD over all 5: 0, 60, 120, 300, 1800. mean 2280/5 = 456; median 120; p90 at rank 3.6: 300 + 0.6*1500 = 1200.
    assert metrics["time_to_detect"] == {"count": 5, "mean": 456.0, "median": 120.0, "p90": 1200.0}
    # TTA over the 4 with responded_at: 60, 120, 120, 300. mean 150; median 120; p90 at 2.7: 120 + 0.7*180 = 246.
    assert metrics["time_to_respond"] == {"count": 4, "mean": 150.0, "median": 120.0, "p90": 246.0}
    assert metrics["time_to_resolve"] == {"count": 0, "mean": None, "median": None, "p90": None}

    # Within target: I1 (1200 <= 14400), I3 (600 <= 86400), I7 (2700 <= 3600); I2 missed (7200 > 3600).
    compliance = metrics["recovery_target_compliance"]
    assert (compliance["within_target"], compliance["recovered"], compliance["rate"]) == (3, 4, 0.75)
    assert compliance["by_level"]["B"] == {"recovered": 2, "within_target": 1, "rate": 0.5}
    assert compliance["by_level"]["A"] == {"recovered": 0, "within_target": 0, "rate": None}
    assert metrics["detected_by_monitoring"] == {"rate": 0.6, "monitoring": 3, "with_source": 5}


def test_a_filter_across_systems_counts_each_incident_once(november):
    bill = Incident.objects.filter(systems__code__in=["bill", "gateway"])  # I3 matches twice in this join
    metrics = incident_metrics(incidents=in_period(bill, periods.parse("2026-11")))
    assert metrics["incidents"] == 2
    # I2 7200 and I3 600: mean 3900.
    assert metrics["time_to_recover"]["mean"] == 3900.0


def test_recovery_exactly_at_target_is_within():
    cashier = SystemFactory(code="cashier", tier="P0")
    with time_machine.travel(utc(2026, 11, 2), tick=False):
        # 59:59 on a P0 is B, whose target is 3600 s; 3599 s is within. A second incident at exactly 60:00
        # is A (target 1800): missed.
        IncidentFactory(
            systems=[cashier],
            occurred_at=utc(2026, 11, 1, 1),
            detected_at=utc(2026, 11, 1, 1),
            recovered_at=utc(2026, 11, 1, 1, 59, 59),
        )
        IncidentFactory(
            systems=[cashier],
            occurred_at=utc(2026, 11, 1, 3),
            detected_at=utc(2026, 11, 1, 3),
            recovered_at=utc(2026, 11, 1, 4),
        )
    metrics = incident_metrics(incidents=Incident.objects.all())
    assert metrics["by_level"]["A"] == 1 and metrics["by_level"]["B"] == 1
    assert metrics["recovery_target_compliance"]["by_level"]["B"]["rate"] == 1.0
    assert metrics["recovery_target_compliance"]["by_level"]["A"]["rate"] == 0.0


def test_empty_set_gives_null_rates_not_zero():
    metrics = incident_metrics(incidents=Incident.objects.none())
    assert metrics["incidents"] == 0
    assert metrics["recovery_target_compliance"]["rate"] is None
    assert metrics["detected_by_monitoring"]["rate"] is None
    assert metrics["time_to_recover"]["mean"] is None


@pytest.mark.parametrize(
    ("values", "fraction", "expected"),
    [([], 0.5, None), ([7.0], 0.9, 7.0), ([1.0, 2.0], 0.5, 1.5), ([10.0, 20.0, 30.0, 40.0], 0.9, 37.0)],
)
def test_percentile_interpolates_linearly(values, fraction, expected):
    assert (
        percentile(values, fraction) == pytest.approx(expected)
        if expected is not None
        else percentile(values, fraction) is None
    )
