"""The golden report: a small November 2026 worked out by hand, every figure of stability_report checked.

November 2026 in Asia/Shanghai (UTC+8) is [2026-10-31T16:00Z, 2026-11-30T16:00Z): 30 days = 2,592,000 s.
The report is taken at NOW = 2026-11-30T15:58Z (23:58 local, two minutes before November ends), so
one alert is still pending and the unrecovered incident runs until NOW. All times below are UTC.

Severity policy v1: P0 >= 60 min A, >= 30 B, >= 10 C; P1 >= 60 B, >= 30 C; P2 >= 60 C; else D.
Recovery targets: A 1,800 s, B 3,600 s, C 14,400 s, D 86,400 s. Every system's target is 99.99 %.

Teams and systems: payments (cashier P0, payout P1), risk (ledger P2), quiet (docs P3; no incident,
no alert, no item: null follow-up rate, full score terms).

Incidents (title, system, occurred -> recovered, level, detection, in November?):
  I0 "十月底的支付抖动"  cashier 10-31 15:50 -> 16:10 (20 min: C), monitoring; local 10-31 23:50: OCTOBER
  I1 "收银台支付失败"    cashier 10-31 16:00 -> 16:20 (20 min: C), customer; local 11-01 00:00: NOVEMBER;
                         detected 16:05 (300 s), responded 16:15 (600 s)
  I2 "代付通道超时"      payout  11-10 02:00 -> 03:01 (61 min: B, over its 3,600 s target),
                         impact 0.3, monitoring; responded 02:05 (300 s)
  I3 "代付重复回调"      payout  11-10 02:30 -> 02:45 (15 min: D), impact 1 (set), monitoring
  I4 "账务日终卡住"      ledger  11-30 14:58 -> not recovered (60 min at NOW: C), monitoring
  I5 "对账文件缺失236条" ledger  11-20 08:00 -> 08:40 (40 min: D), customer, cause "可空字段作为主键"
"""

import csv
import io
import zipfile
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import count

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from incidents import periods
from incidents.models import ActionItem, CauseCategory, DetectionSource, Tier
from stability.models import AlertOccurrence
from stability.reports import build_report, report_csv_tables, report_csv_zip, report_markdown, stability_report
from stability.selectors import follow_up_breakdown, follow_up_rate
from stability.services import integration_create
from tests.factories import ActionItemFactory, IncidentFactory, SystemFactory, TeamFactory, UserFactory

pytestmark = pytest.mark.django_db

NOVEMBER = periods.month(2026, 11)
NOW = datetime(2026, 11, 30, 15, 58, tzinfo=UTC)
_fingerprints = count(1)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def incident(system, occurred_at, minutes, **fields):
    with time_machine.travel(NOW, tick=False):
        return IncidentFactory(
            systems=[system],
            occurred_at=occurred_at,
            detected_at=fields.pop("detected_at", occurred_at),
            recovered_at=None if minutes is None else occurred_at + timedelta(minutes=minutes),
            **fields,
        )


def alerts(team, system, alertname, *delays, received_at, **fields):
    """One occurrence per delay (seconds to the follow-up; None: never), a minute apart."""
    integration, _token = integration_create(kind="generic", name=f"{team.slug}-{next(_fingerprints)}")
    for i, delay in enumerate(delays):
        received = received_at + timedelta(minutes=i)
        AlertOccurrence.objects.create(
            integration=integration,
            fingerprint=f"fp-{next(_fingerprints)}",
            starts_at=received - timedelta(seconds=30),
            received_at=received,
            last_received_at=received,
            alertname=alertname,
            team=team,
            system=system,
            followed_up_at=None if delay is None else received + timedelta(seconds=delay),
            **fields,
        )


@pytest.fixture
def golden():
    payments = TeamFactory(slug="payments", name="Payments")
    risk = TeamFactory(slug="risk", name="Risk")
    TeamFactory(slug="quiet", name="Quiet")
    cashier = SystemFactory(code="cashier", name="收银台", tier=Tier.P0, team=payments)
    payout = SystemFactory(code="payout", name="代付", tier=Tier.P1, team=payments)
    ledger = SystemFactory(code="ledger", name="账务", tier=Tier.P2, team=risk)
    SystemFactory(code="docs", name="Docs", tier=Tier.P3, team=TeamFactory(slug="quiet"))

    monitoring, customer = DetectionSource.MONITORING, DetectionSource.CUSTOMER
    i0 = incident(cashier, utc(2026, 10, 31, 15, 50), 20, title="十月底的支付抖动")
    i1 = incident(
        cashier,
        utc(2026, 10, 31, 16),
        20,
        title="收银台支付失败",
        detected_at=utc(2026, 10, 31, 16, 5),
        responded_at=utc(2026, 10, 31, 16, 15),
        detection_source=customer,
        handling="切换备用通道",
        cause="证书过期",
        cause_category=CauseCategory.CONFIG_CHANGE,
    )
    i2 = incident(
        payout,
        utc(2026, 11, 10, 2),
        61,
        title="代付通道超时",
        responded_at=utc(2026, 11, 10, 2, 5),
        availability_impact=Decimal("0.3"),
        cause_category=CauseCategory.THIRD_PARTY,
    )
    i3 = incident(payout, utc(2026, 11, 10, 2, 30), 15, title="代付重复回调", availability_impact=Decimal("1"))
    i4 = incident(ledger, utc(2026, 11, 30, 14, 58), None, title="账务日终卡住")
    i5 = incident(
        ledger,
        utc(2026, 11, 20, 8),
        40,
        title="对账文件缺失236条",
        detection_source=customer,
        handling="18:12 修复完毕，已同步资金平台。",
        cause="可空字段作为主键。",
        cause_category=CauseCategory.DATA,
    )
    assert [i.level for i in (i0, i1, i2, i3, i4, i5)] == ["C", "C", "B", "D", "C", "D"]
    assert i1.detection_source == customer and i2.detection_source == monitoring

    # Alerts. payments on cashier, "支付成功率下降", Nov 4 02:00: followed up after 60 s and 300 s (in
    # time, 300 inclusive), 301 s (late), never (missed); one silenced (excluded at receipt); one received
    # at 15:56, two minutes before NOW, not followed up: pending.
    rule_pay, rule_risk = "支付成功率下降", "风控延迟"
    alerts(payments, cashier, rule_pay, 60, 300, 301, None, received_at=utc(2026, 11, 4, 2))
    alerts(
        payments, cashier, rule_pay, None, received_at=utc(2026, 11, 5, 2), excluded=AlertOccurrence.Exclusion.SILENCED
    )
    alerts(payments, cashier, rule_pay, None, received_at=utc(2026, 11, 30, 15, 56))
    # risk on ledger, "风控延迟", Nov 6: 10, 20, 30 s in time, 400 s late.
    alerts(risk, ledger, rule_risk, 10, 20, 30, 400, received_at=utc(2026, 11, 6, 3))
    # October: payments one in time (Oct 20); risk one never followed up at 15:59:59 on Oct 31, one
    # second before November starts locally.
    alerts(payments, cashier, rule_pay, 100, received_at=utc(2026, 10, 20, 3))
    alerts(risk, ledger, rule_risk, None, received_at=utc(2026, 10, 31, 15, 59, 59))

    # Closed-loop items due in November, as of NOW (Nov 30 15:58).
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    verified, done, waived = ActionItem.Status.VERIFIED, ActionItem.Status.DONE, ActionItem.Status.WAIVED
    ActionItemFactory(
        incident=i1,
        owner=alice,
        title="证书到期监控",
        due_at=utc(2026, 11, 10),
        status=verified,
        completed_at=utc(2026, 11, 9),
    )  # on time
    ActionItemFactory(
        incident=i1,
        owner=alice,
        title="通道切换演练",
        due_at=utc(2026, 11, 12),
        status=done,
        completed_at=utc(2026, 11, 13),
    )  # late
    ActionItemFactory(incident=i1, owner=alice, title="补充监控报警", due_at=utc(2026, 11, 20))  # overdue
    ActionItemFactory(
        incident=i1, owner=alice, title="旧方案", due_at=utc(2026, 11, 15), status=waived, waive_reason="covered"
    )  # waived: not counted
    ActionItemFactory(incident=i1, owner=alice, title="十二月的", due_at=utc(2026, 12, 5))  # due in December
    ActionItemFactory(
        incident=i5, owner=bob, title="主键改为非空", due_at=utc(2026, 11, 25), status=ActionItem.Status.IN_PROGRESS
    )  # overdue
    ActionItemFactory(incident=i5, owner=bob, title="对账补数", due_at=utc(2026, 11, 30, 15, 59))  # not yet due
    return {"payments": payments, "risk": risk, "cashier": cashier}


@pytest.fixture
def report(golden):
    return stability_report(period=NOVEMBER, now=NOW)


@pytest.fixture
def built(golden):
    """The report as the presenters read it (report: as the JSON API gives it)."""
    return build_report(period=NOVEMBER, now=NOW)


def test_period_and_headline(report):
    assert report["period"] == {
        "label": "2026-11",
        "kind": "month",
        "start": "2026-11-01T00:00:00+08:00",
        "end": "2026-12-01T00:00:00+08:00",
        "previous": "2026-10",
    }
    assert report["scope"] == {"team": None, "system": None}
    head = report["headline"]
    # November: I1 C, I2 B, I3 D, I4 C, I5 D -> A/B 0 + 1 = 1, C/D 2 + 2 = 4; I4 unrecovered.
    assert (head["incidents"], head["a_b"], head["c_d"], head["unrecovered"]) == (5, 1, 4, 1)
    # MTTR over the recovered: (1,200 + 3,660 + 900 + 2,400) / 4 = 8,160 / 4 = 2,040 s. October: I0 alone,
    # 1,200 s. Change 2,040 - 1,200 = +840 s.
    assert (head["mttr_seconds"], head["previous_mttr_seconds"], head["mttr_change_seconds"]) == (2040, 1200, 840)
    # Follow-up: in time 2 (payments) + 3 (risk) = 5 of 4 + 4 = 8 -> 0.625. October: 1 in time of 2 -> 0.5.
    assert (head["follow_up_rate"], head["previous_follow_up_rate"], head["follow_up_rate_change"]) == (
        0.625,
        0.5,
        0.125,
    )
    # The only P0 system, cashier: 1,200 s down (below).
    assert (head["lowest_p0_system"], head["lowest_p0_availability"]) == ("cashier", "99.953703")
    # Items: 1 on time of 4 counted (below); 2 overdue.
    assert (head["on_time_completion_rate"], head["overdue_items"]) == (0.25, 2)


def test_incident_list_in_the_weekly_report_form(report):
    rows = report["incidents"]["list"]
    assert report["incidents"]["by_level"] == {"A": 0, "B": 1, "C": 2, "D": 2}
    assert [(r["title"], r["level"], r["detection_source"], r["time_to_recover_seconds"]) for r in rows] == [
        ("收银台支付失败", "C", "customer", 1200.0),  # 20 min; Nov 1 00:00 local
        ("代付通道超时", "B", "monitoring", 3660.0),  # 61 min
        ("代付重复回调", "D", "monitoring", 900.0),  # 15 min
        ("对账文件缺失236条", "D", "customer", 2400.0),  # 40 min
        ("账务日终卡住", "C", "monitoring", None),  # not recovered
    ]
    first = rows[0]
    assert (first["occurred_at"], first["recovered_at"]) == ("2026-10-31T16:00:00+00:00", "2026-10-31T16:20:00+00:00")
    assert (first["handling"], first["cause"], first["team"]) == ("切换备用通道", "证书过期", "payments")
    # I1's items: 5, of which the verified and the waived one close the loop: 2 of 5.
    assert (first["action_items"], first["action_items_closed"]) == (5, 2)
    # I5: 2 items, neither closed.
    assert (rows[3]["action_items"], rows[3]["action_items_closed"]) == (2, 0)


def test_recovery(report):
    recovery = report["recovery"]
    # Detect: I1 300 s, the others 0 -> [0, 0, 0, 0, 300]: mean 60, median 0, p90 at rank 4 x 0.9 = 3.6:
    # 0 + 0.6 x 300 = 180.
    assert recovery["time_to_detect"] == {"count": 5, "mean": 60.0, "median": 0.0, "p90": 180.0}
    # Respond: I1 600 s, I2 300 s: mean 450, median 450, p90 at rank 0.9: 300 + 0.9 x 300 = 570.
    assert recovery["time_to_respond"] == {"count": 2, "mean": 450.0, "median": 450.0, "p90": 570.0}
    # Recover: [900, 1,200, 2,400, 3,660]: mean 2,040; median (1,200 + 2,400) / 2 = 1,800; p90 at rank
    # 3 x 0.9 = 2.7: 2,400 + 0.7 x (3,660 - 2,400) = 2,400 + 882 = 3,282.
    assert recovery["time_to_recover"] == {"count": 4, "mean": 2040.0, "median": 1800.0, "p90": 3282.0}
    compliance = recovery["recovery_target_compliance"]
    # Within target: I1 (1,200 <= 14,400), I3 (900 <= 86,400), I5 (2,400 <= 86,400); I2 3,660 > 3,600.
    assert (compliance["rate"], compliance["within_target"], compliance["recovered"]) == (0.75, 3, 4)
    assert compliance["by_level"] == {
        "A": {"recovered": 0, "within_target": 0, "rate": None},
        "B": {"recovered": 1, "within_target": 0, "rate": 0.0},
        "C": {"recovered": 1, "within_target": 1, "rate": 1.0},  # I4 is not recovered: not counted
        "D": {"recovered": 2, "within_target": 2, "rate": 1.0},
    }


def test_trend_over_twelve_months(report):
    trend = report["trend"]
    assert trend["periods"][0] == "2025-12" and trend["periods"][-1] == "2026-11" and len(trend["periods"]) == 12
    assert [(row["period"], row["incidents"], row["by_level"]) for row in trend["incidents"][-2:]] == [
        ("2026-10", 1, {"A": 0, "B": 0, "C": 1, "D": 0}),
        ("2026-11", 5, {"A": 0, "B": 1, "C": 2, "D": 2}),
    ]
    assert [row["value"] for row in trend["mttr"]] == [None] * 10 + [1200.0, 2040.0]
    rates = [(row["period"], row["rate"], row["in_time"], row["denominator"]) for row in trend["follow_up_rate"]]
    assert rates[:10] == [(label, None, 0, 0) for label in trend["periods"][:10]]
    assert rates[10:] == [("2026-10", 0.5, 1, 2), ("2026-11", 0.625, 5, 8)]


def test_alerts(report):
    alerts = report["alerts"]
    overall = alerts["overall"]
    # Received 6 + 4 = 10; excluded 1 (silenced); pending 1 (15:56, 2 min < 5 min before NOW);
    # denominator 10 - 1 - 1 = 8; in time 5; missed 3 (301 s, never, 400 s); followed up 6 (60, 300,
    # 301, 10, 20, 30, 400 -> 7). Delays of the followed-up: 10, 20, 30, 60, 300, 301, 400: median 60;
    # p90 at rank 6 x 0.9 = 5.4: 301 + 0.4 x (400 - 301) = 340.6.
    assert {k: overall[k] for k in ("received", "excluded", "pending", "denominator", "in_time", "missed")} == {
        "received": 10,
        "excluded": 1,
        "pending": 1,
        "denominator": 8,
        "in_time": 5,
        "missed": 3,
    }
    assert (overall["followed_up"], overall["median_delay"], overall["p90_delay"]) == (7, 60.0, 340.6)
    # Per team, best first: risk 3/4, payments 2/4, quiet no alerts (null rate, last).
    assert [(g["key"], g["rate"], g["in_time"], g["denominator"]) for g in alerts["by_team"]] == [
        ("risk", 0.75, 3, 4),
        ("payments", 0.5, 2, 4),
        ("quiet", None, 0, 0),
    ]
    # Per system, every system of the scope (payout and docs without alerts).
    assert [(g["key"], g["rate"], g["denominator"]) for g in alerts["by_system"]] == [
        ("cashier", 0.5, 4),
        ("docs", None, 0),
        ("ledger", 0.75, 4),
        ("payout", None, 0),
    ]
    # Worst-missed rules: 支付成功率下降 2 missed of 4, 风控延迟 1 of 4.
    assert [(g["key"], g["missed"], g["denominator"]) for g in alerts["worst_missed_rules"]] == [
        ("支付成功率下降", 2, 4),
        ("风控延迟", 1, 4),
    ]


def test_availability(report):
    rows = {row["system"]: row for row in report["availability"]["systems"]}
    assert list(rows) == ["cashier", "payout", "ledger", "docs"]  # tier order
    expected = {
        # I0 covers 16:00-16:10 of November, I1 16:00-16:20: overlapping, counted once: 1,200 s.
        # 100 - 100 x 1,200 / 2,592,000 = 99.9537037 (rounded down to 1e-6). Budget 0.01 % of 2,592,000 =
        # 259.2 s; consumed 1,200 / 259.2 = 4.629630.
        "cashier": ("1200", "99.953703", "259.2", "4.629630", False),
        # I2 02:00-03:01 at 0.3, I3 02:30-02:45 at 1 (the larger impact while both run):
        # 1,800 x 0.3 + 900 x 1 + 960 x 0.3 = 540 + 900 + 288 = 1,728 s; 100 x 1,728 / 2,592,000 = 0.0666..
        # -> 99.933333; 1,728 / 259.2 = 6.666667.
        "payout": ("1728", "99.933333", "259.2", "6.666667", False),
        # I4 unrecovered since 14:58, counted to NOW: 3,600 s (I5 is level D: impact 0).
        # 100 x 3,600 / 2,592,000 = 0.138888.. -> 99.861111; 3,600 / 259.2 = 13.888889.
        "ledger": ("3600", "99.861111", "259.2", "13.888889", False),
        "docs": ("0", "100.000000", "259.2", "0.000000", True),
    }
    assert {
        code: (r["downtime_seconds"], r["availability"], r["error_budget_seconds"], r["budget_consumed"], r["met"])
        for code, r in rows.items()
    } == expected
    assert rows["cashier"]["incidents"] == 2 and rows["ledger"]["incidents"] == 2


def test_closed_loop(report):
    loop = report["closed_loop"]
    # Due in November: 证书到期监控, 通道切换演练, 补充监控报警, 旧方案, 主键改为非空, 对账补数 = 6.
    # Counted: completed or past due, not waived: 证书到期监控, 通道切换演练, 补充监控报警, 主键改为非空 = 4
    # (对账补数 is due at 15:59, after NOW). On time: 证书到期监控 only -> 1 / 4.
    assert loop["on_time_completion"] == {
        "rate": 0.25,
        "numerator": 1,
        "denominator": 4,
        "due_in_period": 6,
        "completed": 2,
        "completed_late": 1,
        "overdue": 2,
        "not_yet_due": 1,
        "waived": 1,
    }
    overdue = loop["overdue"]
    # 补充监控报警: NOW - Nov 20 00:00 = 10 d 15 h 58 min -> 10 days; 主键改为非空: 5 d 15 h 58 min -> 5.
    assert [(i["title"], i["owner"], i["team"], i["days_overdue"]) for i in overdue["items"]] == [
        ("补充监控报警", "alice", "payments", 10),
        ("主键改为非空", "bob", "risk", 5),
    ]
    assert overdue["by_owner"] == [{"owner": "alice", "count": 1}, {"owner": "bob", "count": 1}]
    assert overdue["by_team"] == [{"team": "payments", "count": 1}, {"team": "risk", "count": 1}]
    # No November incident is closed; 4 are recovered.
    assert loop["incident_closed_loop"] == {"rate": 0.0, "numerator": 0, "denominator": 4}


def test_health_scores(report):
    teams = {row["team"]: row for row in report["health"]["teams"]}
    points = {slug: {t: v["points"] for t, v in row["terms"].items()} for slug, row in teams.items()}
    # payments: I1 C 50 + I2 B 200 + I3 D 10 = 260 -> 400 - 260 = 140.0; follow-up 250 x 2/4 = 125.0;
    # closed loop 200 x 1/3 = 66.67 -> 66.7; recovery I1, I3 within of I1, I2, I3: 150 x 2/3 = 100.0.
    # Score 140 + 125 + 66.7 + 100 = 431.7.
    assert points["payments"] == {
        "incidents": "140.0",
        "follow_up": "125.0",
        "closed_loop": "66.7",
        "recovery": "100.0",
    }
    # risk: I4 C 50 + I5 D 10 -> 340.0; 250 x 3/4 = 187.5; 200 x 0/1 = 0.0 (对账补数 not yet due);
    # recovery I5 within of I5 -> 150.0. Score 677.5.
    assert points["risk"] == {"incidents": "340.0", "follow_up": "187.5", "closed_loop": "0.0", "recovery": "150.0"}
    # quiet: nothing at all: every term full, the follow-up rate null.
    assert points["quiet"] == {"incidents": "400.0", "follow_up": "250.0", "closed_loop": "200.0", "recovery": "150.0"}
    assert teams["quiet"]["terms"]["follow_up"]["rate"] is None
    # October: payments I0 C -> 350 + 250 (1/1) + 200 + 150 (I0 within) = 950.0, change 431.7 - 950 = -518.3;
    # risk 400 + 0 (0/1) + 200 + 150 = 750.0, change 677.5 - 750 = -72.5; quiet 1,000.0 both, 0.0.
    assert [
        (r["rank"], r["team"], r["score"], r["previous_score"], r["change"]) for r in report["health"]["teams"]
    ] == [
        (1, "quiet", "1000.0", "1000.0", "0.0"),
        (2, "risk", "677.5", "750.0", "-72.5"),
        (3, "payments", "431.7", "950.0", "-518.3"),
    ]


def test_detection(report):
    detection = report["detection"]
    # Monitoring found I2, I3, I4; customers I1, I5: 3 / 5 = 0.6.
    assert detection["monitoring_share"] == 0.6
    assert detection["by_detection_source"]["monitoring"] == 3
    assert detection["by_detection_source"]["customer"] == 2
    assert sum(detection["by_detection_source"].values()) == 5
    causes = {k: v for k, v in detection["by_cause_category"].items() if v}
    # I1 config change, I2 third party, I5 data; I3 and I4 not given: unknown.
    assert causes == {"config_change": 1, "third_party": 1, "data": 1, "unknown": 2}
    # Customers found I1 and I5: 2 / 5 = 0.4.
    assert detection["customer_share"] == 0.4
    # Per cause category (CauseCategory order): I1 config change by a customer; I2 third party by
    # monitoring; I5 data by a customer; I3 and I4 unknown, both by monitoring.
    assert [
        (row["cause_category"], row["incidents"], row["monitoring_share"], row["customer_share"])
        for row in detection["by_cause_category_and_source"]
    ] == [
        ("config_change", 1, 0.0, 1.0),
        ("third_party", 1, 1.0, 0.0),
        ("data", 1, 0.0, 1.0),
        ("unknown", 2, 1.0, 0.0),
    ]
    assert detection["by_cause_category_and_source"][3]["by_detection_source"] == {
        "monitoring": 2,
        "customer": 0,
        "inspection": 0,
        "third_party": 0,
        "other": 0,
    }


def test_team_and_system_scopes(golden):
    payments = stability_report(period=NOVEMBER, now=NOW, team=golden["payments"])
    # payments: I1, I2, I3; MTTR (1,200 + 3,660 + 900) / 3 = 1,920 s.
    assert (payments["headline"]["incidents"], payments["headline"]["mttr_seconds"]) == (3, 1920)
    assert [g["key"] for g in payments["alerts"]["by_team"]] == ["payments"]
    assert [row["system"] for row in payments["availability"]["systems"]] == ["cashier", "payout"]
    assert [row["team"] for row in payments["health"]["teams"]] == ["payments"]
    cashier = stability_report(period=NOVEMBER, now=NOW, system=golden["cashier"])
    # cashier: I1 only in November (I0 is October's); alerts of cashier 2 / 4.
    assert [row["title"] for row in cashier["incidents"]["list"]] == ["收银台支付失败"]
    assert cashier["headline"]["follow_up_rate"] == 0.5
    assert cashier["closed_loop"]["on_time_completion"]["denominator"] == 3


def test_markdown_in_both_languages(built):
    english = report_markdown(built, language="en")
    assert "- Incidents: A/B-level 1, C/D-level 4. 1 not yet recovered." in english
    assert "5-minute alert follow-up rate 62.5 % (5 of 8 alerts followed up in time)." in english
    # Names before codes, three decimals: 99.953703 -> 99.953 %.
    assert "- 收银台 (cashier): availability 99.953 %, below its target of 99.99 %" in english
    assert "- Items due in the period done on time: 1 of 4 (25.0 %)." in english
    assert "- Found by monitoring 60.0 %, by customers 40.0 %." in english
    assert "- Quiet (quiet): score 1000.0, rank 1 of 3." in english
    assert "对账文件缺失236条" in english and "Cause: 可空字段作为主键." in english
    chinese = report_markdown(built, language="zh-hans")
    assert "- 事故数：AB级 1 次，CD级 4 次。其中 1 起尚未恢复。" in chinese
    assert "- Payments（payments）：健康分 431.7，排名第 3（共 3 个团队）。" in chinese
    # The incident line: local time, title, handling and cause as the weekly report writes them.
    line = next(line for line in chinese.splitlines() if "对账文件缺失236条" in line)
    assert line.startswith("4. 11-20 16:00 对账文件缺失236条")
    assert "18:12 修复完毕，已同步资金平台" in line and "可空字段作为主键" in line


def test_csv_tables_and_zip(built):
    tables = report_csv_tables(built)
    incidents = list(csv.DictReader(io.StringIO(tables["incidents"])))
    assert [(r["title"], r["level"], r["time_to_recover_seconds"]) for r in incidents] == [
        ("收银台支付失败", "C", "1200.0"),
        ("代付通道超时", "B", "3660.0"),
        ("代付重复回调", "D", "900.0"),
        ("对账文件缺失236条", "D", "2400.0"),
        ("账务日终卡住", "C", ""),
    ]
    health = list(csv.DictReader(io.StringIO(tables["health_scores"])))
    assert list(health[0])[:6] == ["rank", "team", "name", "score", "previous_score", "change"]
    assert [(r["team"], r["score"], r["follow_up_points"]) for r in health] == [
        ("quiet", "1000.0", "250.0"),
        ("risk", "677.5", "187.5"),
        ("payments", "431.7", "125.0"),
    ]
    detection = list(csv.DictReader(io.StringIO(tables["detection_by_cause"])))
    assert list(detection[0]) == [
        "cause_category",
        "incidents",
        "monitoring",
        "customer",
        "inspection",
        "third_party",
        "other",
        "monitoring_share",
        "customer_share",
    ]
    assert [(r["cause_category"], r["monitoring"], r["customer"]) for r in detection] == [
        ("config_change", "0", "1"),
        ("third_party", "1", "0"),
        ("data", "0", "1"),
        ("unknown", "2", "0"),
    ]
    availability = list(csv.DictReader(io.StringIO(tables["availability"])))
    assert [(r["system"], r["availability"]) for r in availability][0] == ("cashier", "99.953703")
    archive = zipfile.ZipFile(io.BytesIO(report_csv_zip(built)))
    assert sorted(archive.namelist()) == sorted(f"{name}.csv" for name in tables)
    assert archive.read("incidents.csv").decode("utf-8-sig") == tables["incidents"]


def test_api_permissions_and_errors(golden, manager_client, engineer_client, admin_client_api):
    with time_machine.travel(NOW, tick=False):
        assert engineer_client.get("/api/v1/reports/stability/?period=2026-11").status_code == 403
        answer = manager_client.get("/api/v1/reports/stability/?period=2026-11")
        assert answer.status_code == 200 and answer.json()["headline"]["c_d"] == 4
        assert admin_client_api.get("/api/v1/reports/stability/?period=2026-11&team=risk").status_code == 200
        assert manager_client.get("/api/v1/reports/stability/?period=nonsense").status_code == 400
        assert manager_client.get("/api/v1/reports/stability/csv/?period=2026-11&table=nope").status_code == 400
        assert manager_client.get("/api/v1/reports/stability/markdown/?period=2026-11&lang=fr").status_code == 400


def test_queries_do_not_depend_on_the_data(golden):
    with CaptureQueriesContext(connection) as busy:
        stability_report(period=NOVEMBER, now=NOW)
    with CaptureQueriesContext(connection) as quiet:
        stability_report(period=periods.month(2025, 3), now=NOW)
    assert len(busy) == len(quiet)


def test_the_breakdown_in_one_scan_equals_follow_up_rate_per_dimension(golden):
    # November 1-29 are read as day counts (settled at NOW), November 30 from the occurrences.
    occurrences = AlertOccurrence.objects.all()
    breakdown = follow_up_breakdown(period=NOVEMBER, dimensions=("team", "system", "alertname"), now=NOW)
    for dimension in ("team", "system", "alertname"):
        alone = follow_up_rate(occurrences=occurrences, period=NOVEMBER, group_by=dimension, now=NOW, percentiles=False)
        assert breakdown[dimension] == alone["groups"]
    # payments' alerts: in time 60 s and 300 s; missed 301 s and never; the silenced and the pending one
    # are received but not counted.
    assert breakdown["team"][0] == {
        "key": "payments",
        "rate": 0.5,
        "in_time": 2,
        "missed": 2,
        "denominator": 4,
        "followed_up": 3,
        "received": 6,
        "excluded": 1,
        "pending": 1,
        "flapping_excluded": 0,
        "median_delay": None,
        "p90_delay": None,
    }
    with pytest.raises(ValueError):
        follow_up_breakdown(period=NOVEMBER, dimensions=("severity",), now=NOW)
