"""Drills (演练): the services (plan, record the outcome, turn a finding into an item), drill coverage of P0
systems per quarter, the API (/api/v1/drills/) and the report's figures.

The clock is frozen at NOW = 2026-11-20 10:00 in Asia/Shanghai (02:00 UTC). 2026-Q4 in Asia/Shanghai is
[2026-09-30T16:00Z, 2026-12-31T16:00Z).
"""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from incidents import drills, periods
from incidents.models import ActionItem, Drill, TimelineEntry
from stability.reports import build_report
from tests.factories import SystemFactory, TeamFactory, UserFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
Q4_START = datetime(2026, 9, 30, 16, 0, tzinfo=UTC)
DRILLS = "/api/v1/drills/"


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def world():
    """payments: cashier P0, payout P0, gateway P1; risk: ledger P0, fx P0."""
    payments, risk = TeamFactory(slug="payments", name="Payments"), TeamFactory(slug="risk", name="Risk")
    systems = {
        code: SystemFactory(code=code, tier=tier, team=team)
        for code, tier, team in (
            ("cashier", "P0", payments),
            ("payout", "P0", payments),
            ("gateway", "P1", payments),
            ("ledger", "P0", risk),
            ("fx", "P0", risk),
        )
    }
    return {"payments": payments, "risk": risk, **systems}


def plan(team, systems, *, planned_at=NOW, **values) -> Drill:
    defaults = {"title": "Switch the bank channel", "scenario": Drill.Scenario.BANK_CHANNEL_SWITCH}
    return drills.drill_create(by=None, team=team, systems=systems, planned_at=planned_at, **{**defaults, **values})


def held(team, systems, at, result="passed") -> Drill:
    drill = plan(team, systems, planned_at=at)
    return drills.drill_hold(drill_id=drill.pk, held_at=at, result=result)


# -- services ---------------------------------------------------------------------------------------


def test_a_drill_is_planned_then_held_with_its_outcome(world):
    drill = plan(world["payments"], [world["cashier"], world["gateway"]], planned_at=NOW + timedelta(days=1))
    assert (drill.held_at, drill.result, list(drill.systems.order_by("code"))) == (
        None,
        "",
        [world["cashier"], world["gateway"]],
    )
    drills.drill_hold(
        drill_id=drill.pk,
        held_at=NOW - timedelta(hours=2),
        result="partly",
        switch_over_seconds=95,
        findings="备用通道切换后 3 笔交易重复回调",
    )
    drill.refresh_from_db()
    assert (drill.held_at, drill.result, drill.switch_over_seconds, drill.findings) == (
        NOW - timedelta(hours=2),
        "partly",
        95,
        "备用通道切换后 3 笔交易重复回调",
    )


@pytest.mark.parametrize(
    ("outcome", "field"),
    [
        ({"held_at": NOW + timedelta(minutes=1), "result": "passed"}, "held_at"),  # not yet happened
        ({"held_at": NOW, "result": ""}, "result"),
        ({"held_at": None, "result": "passed"}, "held_at"),
        ({"held_at": NOW, "result": "sort of"}, "result"),
    ],
)
def test_an_outcome_needs_a_past_time_and_a_result(world, outcome, field):
    drill = plan(world["payments"], [world["cashier"]])
    with pytest.raises(ValidationError) as error:
        drills.drill_hold(drill_id=drill.pk, **outcome)
    assert field in error.value.message_dict
    drill.refresh_from_db()
    assert (drill.held_at, drill.result) == (None, "")


def test_a_drill_names_what_it_exercises(world):
    with pytest.raises(ValidationError) as error:
        plan(world["payments"], [], title="  ")
    assert set(error.value.message_dict) == {"title", "systems"}
    assert not Drill.objects.exists()


def test_the_database_keeps_a_result_for_held_drills_only(world):
    drill = plan(world["payments"], [world["cashier"]])
    with pytest.raises(IntegrityError), transaction.atomic():
        Drill.objects.filter(pk=drill.pk).update(result="passed")
    with pytest.raises(IntegrityError), transaction.atomic():
        Drill.objects.filter(pk=drill.pk).update(held_at=NOW)


def test_a_finding_becomes_an_item_of_the_drills_team(world):
    drill = held(world["payments"], [world["cashier"]], NOW - timedelta(days=1), result="partly")
    owner = UserFactory(username="lei")
    item = drills.drill_finding_to_item(
        drill_id=drill.pk, by=owner, title="Dedupe callbacks on switch-over", owner=owner, due_at=NOW
    )
    assert (item.source, item.drill, item.team, item.incident) == ("drill", drill, world["payments"], None)
    assert list(drill.action_items.all()) == [item]
    assert not TimelineEntry.objects.exists()


# -- coverage ---------------------------------------------------------------------------------------


def test_drill_coverage_counts_p0_systems_with_a_drill_held_in_the_quarter(world, django_assert_num_queries):
    payments, risk = world["payments"], world["risk"]
    held(payments, [world["cashier"], world["gateway"]], datetime(2026, 11, 10, 2, 0, tzinfo=UTC))  # in Q4
    held(risk, [world["fx"]], Q4_START)  # exactly at the quarter's start: in it
    held(risk, [world["ledger"]], Q4_START - timedelta(seconds=1))  # Q3's last second
    plan(payments, [world["payout"]], planned_at=datetime(2026, 12, 10, 2, 0, tzinfo=UTC))  # planned only
    q4 = periods.quarter(2026, 4)
    assert (q4.start, q4.end) == (Q4_START, datetime(2026, 12, 31, 16, 0, tzinfo=UTC))

    with django_assert_num_queries(1):
        everyone = drills.drill_coverage(quarter_start=q4.start, quarter_end=q4.end)
    # P0: cashier, fx, ledger, payout (gateway is P1): cashier and fx drilled.
    assert everyone == {
        "rate": 0.5,
        "numerator": 2,
        "denominator": 4,
        "uncovered": [
            {"code": "ledger", "name": "Ledger", "team": "risk"},
            {"code": "payout", "name": "Payout", "team": "payments"},
        ],
    }
    of_payments = drills.drill_coverage(quarter_start=q4.start, quarter_end=q4.end, teams=[payments])
    assert (of_payments["numerator"], of_payments["denominator"], of_payments["rate"]) == (1, 2, 0.5)
    q3 = periods.quarter(2026, 3)
    assert drills.drill_coverage(quarter_start=q3.start, quarter_end=q3.end, teams=[risk])["numerator"] == 1
    nobody = drills.drill_coverage(quarter_start=q4.start, quarter_end=q4.end, teams=[TeamFactory()])
    assert (nobody["rate"], nobody["denominator"]) == (None, 0)


def test_the_monthly_and_weekly_reports_give_the_coverage_of_their_quarter(world):
    held(world["payments"], [world["cashier"]], datetime(2026, 11, 10, 2, 0, tzinfo=UTC))
    monthly = build_report(period=periods.month(2026, 11), now=NOW).closed_loop.figures["drill_coverage"]
    assert (monthly["quarter"], monthly["numerator"], monthly["denominator"]) == ("2026-Q4", 1, 4)
    weekly = build_report(period=periods.iso_week(2026, 40), team=world["payments"], now=NOW)
    coverage = weekly.closed_loop.figures["drill_coverage"]
    # Week 40 of 2026 starts on Monday 09-28: its quarter is Q3, when nothing was held.
    assert (coverage["quarter"], coverage["numerator"], coverage["denominator"]) == ("2026-Q3", 0, 2)
    tables = {table.key: table for table in weekly.closed_loop.tables() if table.key}
    assert [row["code"] for row in tables["drill_uncovered"].rows] == ["cashier", "payout"]


# -- the API ----------------------------------------------------------------------------------------


def test_engineers_plan_and_record_a_drill_through_the_api(engineer_client, world):
    answer = engineer_client.post(
        DRILLS,
        {
            "team": "payments",
            "title": "银行通道切换演练",
            "scenario": "bank_channel_switch",
            "systems": ["cashier", "payout"],
            "planned_at": "2026-11-18T02:00:00Z",
        },
        format="json",
    )
    assert answer.status_code == 201, answer.json()
    drill = answer.json()
    assert (drill["team"], sorted(drill["systems"]), drill["held_at"], drill["result"]) == (
        "payments",
        ["cashier", "payout"],
        None,
        "",
    )
    assert drill["created_by"] == "engineer"
    url = f"{DRILLS}{drill['id']}/"
    outcome = {"held_at": "2026-11-18T02:30:00Z", "result": "passed", "switch_over_seconds": 72}
    answer = engineer_client.patch(url, outcome, format="json")
    assert answer.status_code == 200, answer.json()
    assert {key: answer.json()[key] for key in outcome} == {**outcome, "held_at": "2026-11-18T10:30:00+08:00"}
    answer = engineer_client.patch(url, {"result": "failed", "held_at": None}, format="json")
    assert answer.status_code == 400 and "held_at" in answer.json()
    assert engineer_client.get(url).json()["result"] == "passed"


def test_managers_read_drills_but_do_not_write_them(manager_client, world):
    held(world["payments"], [world["cashier"]], NOW)
    assert manager_client.get(DRILLS).json()["count"] == 1
    body = {"team": "payments", "title": "x", "scenario": "other", "systems": ["cashier"], "planned_at": "2026-11-18"}
    assert manager_client.post(DRILLS, body, format="json").status_code == 403


def test_the_drill_list_takes_as_many_queries_for_many_drills(engineer_client, world):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert engineer_client.get(DRILLS, {"team__slug": "payments"}).status_code == 200
        return len(captured)

    drill = held(world["payments"], [world["cashier"]], NOW)
    drills.drill_finding_to_item(drill_id=drill.pk, by=None, title="x", owner=UserFactory(), due_at=NOW)
    queries()  # the first request of a token reads more (its last use)
    few = queries()
    for n in range(6):
        held(world["payments"], [world["cashier"], world["payout"]], NOW - timedelta(days=n))
    held(world["risk"], [world["fx"]], NOW)
    assert queries() == few
    listed = engineer_client.get(DRILLS, {"team__slug": "payments"}).json()
    assert listed["count"] == 7
    assert [row["action_items"] for row in listed["results"] if row["id"] == drill.pk] == [
        list(ActionItem.objects.values_list("pk", flat=True))
    ]
