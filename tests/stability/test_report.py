"""The stability report (stability.reports) and its API, on a small dataset worked out by hand.

November 2026 in Asia/Shanghai is [2026-10-31T16:00Z, 2026-11-30T16:00Z). `now` is 2026-12-10.
"""

import csv
import io
import zipfile

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from incidents import periods
from incidents.models import Tier
from stability.reports import build_report, report_csv_tables, report_json, report_markdown, stability_report
from tests.factories import ActionItemFactory, SystemFactory, TeamFactory
from tests.stability.test_health_score import AFTER, alerts, incident, utc

pytestmark = pytest.mark.django_db
NOVEMBER = periods.month(2026, 11)


@pytest.fixture
def dataset():
    payments = TeamFactory(slug="payments", name="Payments")
    quiet = TeamFactory(slug="quiet", name="Quiet")
    cashier = SystemFactory(code="cashier", tier=Tier.P0, team=payments)
    wiki = SystemFactory(code="wiki", tier=Tier.P3, team=quiet)
    # October 31 17:00Z is November 1 01:00 local: November. TTR 60 min on a P0 system: level A.
    first = incident(cashier, utc(2026, 10, 31, 17), 60, title="收银台支付失败")
    # 20 min on P3: level D. TTR 1,200 s.
    incident(wiki, utc(2026, 11, 10, 2), 20, title="Wiki slow")
    # October 31 15:00Z is October 31 23:00 local: October, not in the report. TTR 30 min.
    incident(cashier, utc(2026, 10, 31, 15), 30, title="October one")
    # Payments: 4 alerts, followed up after 60 s, 300 s (in time, inclusive), 301 s (late), never.
    alerts(payments, 60, 300, 301, None)
    ActionItemFactory(incident=first, due_at=utc(2026, 11, 20), completed_at=utc(2026, 11, 19), status="verified")
    ActionItemFactory(incident=first, due_at=utc(2026, 11, 25), title="补充监控报警")  # open, overdue
    return payments, quiet


def test_the_report_of_november_by_hand(dataset):
    report = stability_report(period=NOVEMBER, now=AFTER)
    head = report["headline"]
    # Two incidents in November: A (cashier) and D (wiki).
    assert (head["incidents"], head["a_b"], head["c_d"], head["unrecovered"]) == (2, 1, 1, 0)
    # MTTR = (3,600 + 1,200) / 2 = 2,400 s; October: 1 incident of 1,800 s; change +600 s.
    assert (head["mttr_seconds"], head["previous_mttr_seconds"], head["mttr_change_seconds"]) == (2400, 1800, 600)
    # Follow-up: 2 of 4 in time.
    assert head["follow_up_rate"] == 0.5
    assert report["alerts"]["overall"]["in_time"] == 2 and report["alerts"]["overall"]["denominator"] == 4
    # Items due in November: one done on time, one overdue -> 1 / 2.
    assert head["on_time_completion_rate"] == 0.5 and head["overdue_items"] == 1
    # Cashier down 60 min (impact 1, level A) of November's 2,592,000 s: 100 - 100 x 3,600 / 2,592,000.
    assert head["lowest_p0_system"] == "cashier"
    assert head["lowest_p0_availability"] == "99.861111"
    # The list, oldest first, in the weekly-report form.
    assert [(row["title"], row["level"], row["time_to_recover_seconds"]) for row in report["incidents"]["list"]] == [
        ("收银台支付失败", "A", 3600.0),
        ("Wiki slow", "D", 1200.0),
    ]
    assert report["incidents"]["list"][0]["action_items"] == 2
    assert report["incidents"]["list"][0]["action_items_closed"] == 1
    # Trend: 12 months ending with November; October holds the 30-minute incident.
    assert report["trend"]["periods"][-2:] == ["2026-10", "2026-11"]
    assert report["trend"]["mttr"][-2:] == [
        {"period": "2026-10", "value": 1800.0},
        {"period": "2026-11", "value": 2400.0},
    ]
    assert report["trend"]["follow_up_rate"][-1]["rate"] == 0.5
    # Worst-missed rule: 2 of 4 missed.
    assert [(r["key"], r["missed"], r["denominator"]) for r in report["alerts"]["worst_missed_rules"]] == [
        ("支付成功率下降", 2, 4)
    ]
    # Health: payments 400 - 400 (A) = 0, 250 x 0.5 = 125.0, 200 x 0.5 = 100.0, 150 x 0/1 = 0.0 -> 225.0;
    # quiet 400 - 10 = 390, no alerts 250, no items 200, 150 x 1/1 = 150 -> 990.0, ranked first.
    assert [(row["team"], row["score"], row["rank"]) for row in report["health"]["teams"]] == [
        ("quiet", "990.0", 1),
        ("payments", "225.0", 2),
    ]


def test_a_team_report_and_the_exports(dataset):
    payments, _quiet = dataset
    built = build_report(period=NOVEMBER, now=AFTER, team=payments)
    report = report_json(built)
    assert report["headline"]["incidents"] == 1
    tables = report_csv_tables(built)
    rows = list(csv.DictReader(io.StringIO(tables["incidents"])))
    assert [(r["title"], r["level"]) for r in rows] == [("收银台支付失败", "A")]
    english = report_markdown(built, language="en")
    assert "Incidents: A/B-level 1, C/D-level 0." in english
    assert "5-minute alert follow-up rate 50.0 % (2 of 4 alerts followed up in time)." in english
    assert "补充监控报警" in english  # the overdue item


def test_the_query_count_does_not_grow_with_the_data(dataset):
    with CaptureQueriesContext(connection) as quiet_month:
        stability_report(period=periods.month(2026, 1), now=AFTER)
    with CaptureQueriesContext(connection) as busy_month:
        stability_report(period=NOVEMBER, now=AFTER)
    assert len(quiet_month) == len(busy_month)


def test_the_api_and_its_downloads(dataset, manager_client, engineer_client):
    with time_machine.travel(AFTER, tick=False):
        assert engineer_client.get("/api/v1/reports/stability/?period=2026-11").status_code == 403
        answer = manager_client.get("/api/v1/reports/stability/?period=2026-11")
        assert answer.status_code == 200 and answer.json()["headline"]["a_b"] == 1
        # Default: the previous month (December 10 -> November).
        assert manager_client.get("/api/v1/reports/stability/").json()["period"]["label"] == "2026-11"
        assert manager_client.get("/api/v1/reports/stability/?period=2026-13").status_code == 400
        assert manager_client.get("/api/v1/reports/stability/?team=nope").status_code == 404
        table = manager_client.get("/api/v1/reports/stability/csv/?period=2026-11&table=health_scores")
        assert table["Content-Type"].startswith("text/csv")
        assert table.content.decode("utf-8-sig").splitlines()[0].startswith("rank,team,name,score")
        archive = zipfile.ZipFile(
            io.BytesIO(manager_client.get("/api/v1/reports/stability/zip/?period=2026-11").content)
        )
        assert "incidents.csv" in archive.namelist() and "availability.csv" in archive.namelist()
        chinese = manager_client.get("/api/v1/reports/stability/markdown/?period=2026-11&lang=zh-hans")
        assert chinese["Content-Type"].startswith("text/markdown")
        assert "收银台支付失败" in chinese.content.decode()


def test_grouped_counts_add_up_to_the_overall_figures(dataset):
    from stability.models import AlertOccurrence
    from stability.selectors import follow_up_rate

    occurrences = AlertOccurrence.objects.all()
    whole = follow_up_rate(occurrences=occurrences, period=NOVEMBER, now=AFTER)["overall"]
    summed = follow_up_rate(occurrences=occurrences, period=NOVEMBER, now=AFTER, group_by="team", percentiles=False)
    assert {k: v for k, v in summed["overall"].items() if k not in ("median_delay", "p90_delay")} == {
        k: v for k, v in whole.items() if k not in ("median_delay", "p90_delay")
    }
    # Delays of the followed-up ones: 60, 300, 301 s. Median 300 s; p90 at rank (3 - 1) x 0.9 = 1.8:
    # 300 + 0.8 x (301 - 300) = 300.8 s. The summed figures carry none.
    assert (whole["median_delay"], whole["p90_delay"]) == (300.0, 300.8)
    assert (summed["overall"]["median_delay"], summed["overall"]["p90_delay"]) == (None, None)


def test_availability_in_the_report_merges_overlaps_weights_partial_impact_and_runs_unrecovered_to_the_end():
    from decimal import Decimal

    from incidents.models import Tier
    from tests.factories import IncidentFactory

    payments = TeamFactory(slug="payments", name="Payments")
    payout = SystemFactory(code="payout", tier=Tier.P0, team=payments)
    # Nov 10 02:00-03:00Z fully down, and 02:30-04:00Z 30 % of requests failing: the overlap counts once,
    # at the larger impact: 3,600 s x 1 + 3,600 s x 0.3 = 3,600 + 1,080 = 4,680 s.
    incident(payout, utc(2026, 11, 10, 2), 60, availability_impact=Decimal("1"))
    incident(payout, utc(2026, 11, 10, 2, 30), 90, availability_impact=Decimal("0.3"))
    # Not recovered by December 10, half the requests failing since Nov 30 15:00Z: counted to the end of
    # November (Nov 30 16:00Z, midnight local): 3,600 s x 0.5 = 1,800 s.
    with time_machine.travel(AFTER, tick=False):
        IncidentFactory(
            systems=[payout],
            occurred_at=utc(2026, 11, 30, 15),
            detected_at=utc(2026, 11, 30, 15),
            availability_impact=Decimal("0.5"),
        )
    report = stability_report(period=NOVEMBER, now=AFTER)
    (row,) = report["availability"]["systems"]
    # Downtime 4,680 + 1,800 = 6,480 s of 2,592,000 s: 100 - 100 x 6,480 / 2,592,000 = 99.75 %.
    assert Decimal(row["downtime_seconds"]) == 6480
    assert Decimal(row["availability"]) == Decimal("99.75")
    # Error budget at 99.99 %: 2,592,000 x 0.0001 = 259.2 s, consumed 6,480 / 259.2 = 25 times over.
    assert Decimal(row["error_budget_seconds"]) == Decimal("259.2")
    assert Decimal(row["budget_consumed"]) == 25
    assert row["met"] is False
    assert report["headline"]["lowest_p0_system"] == "payout"
    assert report["headline"]["unrecovered"] == 1
