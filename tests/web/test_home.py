"""The home pages say what needs attention: a manager's open A/B incidents, overdue items by team and each
team's follow-up rate this month against last; an engineer's alerts of their teams, the incidents they own
or command. Figures computed by hand, both languages, a bounded number of queries."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from incidents import services
from incidents.models import ActionItem
from stability.models import AlertOccurrence
from stability.services import integration_create
from tests.factories import ActionItemFactory, IncidentFactory, UserFactory
from tests.web.conftest import text_of

T0 = datetime(2026, 11, 22, 8, 30, tzinfo=UTC)  # 16:30 in Asia/Shanghai, November


@pytest.fixture(autouse=True)
def _at_t0():
    with time_machine.travel(T0, tick=False):
        yield


def alert(team, *, received_at, followed_after=None, name="PaymentLatencyHigh"):
    integration = getattr(alert, "integration", None)
    if integration is None or not type(integration).objects.filter(pk=integration.pk).exists():
        integration, _token = integration_create(kind="generic", name=f"prometheus-{AlertOccurrence.objects.count()}")
        alert.integration = integration
    return AlertOccurrence.objects.create(
        integration=integration,
        fingerprint=f"fp-{AlertOccurrence.objects.count()}",
        starts_at=received_at,
        alertname=name,
        severity="critical",
        team=team,
        received_at=received_at,
        last_received_at=received_at,
        followed_up_at=None if followed_after is None else received_at + followed_after,
    )


def major_and_minor_incidents(world):
    # P0 for 70 min: A; P0 for 40 min: B; P2 for 20 min: D. One A recovered: no longer open.
    a = IncidentFactory(title="Cashier down", systems=[world["cashier"]], occurred_at=T0 - timedelta(minutes=70))
    b = IncidentFactory(title="Payout slow", systems=[world["payout"]], occurred_at=T0 - timedelta(minutes=40))
    d = IncidentFactory(title="Portal blip", systems=[world["portal"]], occurred_at=T0 - timedelta(minutes=20))
    fixed = IncidentFactory(title="Cashier fixed", systems=[world["cashier"]], occurred_at=T0 - timedelta(hours=5))
    services.incident_transition(incident_id=fixed.pk, by=None, action="recover")
    return a, b, d, fixed


def overdue_items(world, incident_of):
    payments, accounts = incident_of["payments"], incident_of["accounts"]
    ActionItemFactory(incident=payments, due_at=T0 - timedelta(days=2))
    ActionItemFactory(incident=payments, due_at=T0 - timedelta(hours=1))
    ActionItemFactory(incident=accounts, due_at=T0 - timedelta(days=9))
    ActionItemFactory(incident=accounts, due_at=T0 + timedelta(days=1))  # not due yet
    ActionItemFactory(incident=accounts, due_at=T0 - timedelta(days=3), status=ActionItem.Status.DONE, completed_at=T0)


def follow_ups(world):
    minute = timedelta(minutes=1)
    november, october = datetime(2026, 11, 10, 2, tzinfo=UTC), datetime(2026, 10, 10, 2, tzinfo=UTC)
    # Payments, November: 3 of 4 within 5 min (75.0 %); October: 1 of 2 (50.0 %): +25.0 points.
    for after in (minute, 2 * minute, 5 * minute, 10 * minute):
        alert(world["payments"], received_at=november, followed_after=after)
    alert(world["payments"], received_at=october, followed_after=minute)
    alert(world["payments"], received_at=october)  # never followed up: missed
    # Accounts, November: 1 of 1 (100.0 %); October: nothing received (no data).
    alert(world["accounts"], received_at=november, followed_after=minute)


def test_a_manager_sees_what_needs_attention_with_figures_by_hand(manager, world):
    a, b, d, fixed = major_and_minor_incidents(world)
    overdue_items(world, {"payments": fixed, "accounts": d})
    follow_ups(world)

    html = manager.get("/").content.decode()
    text = text_of(html)

    assert f"Open A/B incidents 2 A #{a.pk} Cashier down Payments" in text
    assert f"B #{b.pk} Payout slow Payments" in text
    assert "Portal blip" not in text.split("Overdue items by team")[0].split("Open A/B incidents")[1]
    assert f'href="/incidents/{a.pk}/"' in html
    assert "Overdue items by team Accounts 1 overdue Payments 2 overdue" not in text  # most first
    assert "Overdue items by team Payments 2 overdue Accounts 1 overdue" in text
    assert 'href="/items/team/?team=payments&amp;overdue=1"' in html
    assert (
        "Alerts followed up within 5 minutes, by team "
        "Follow-up rate by team, this month and last Team 2026-11 2026-10 Change "
        "Accounts 100.0 % (1/1) no data (0/0) – "
        "Payments 75.0 % (3/4) 50.0 % (1/2) +25.0 pp"
    ) in text
    assert 'href="/reports/?period=2026-11&amp;team=payments"' in html
    # Recovered, its review not written: it waits for the review meeting (the others are still open).
    assert f"Incidents awaiting review 1 A #{fixed.pk} Cashier fixed Awaiting review" in text
    assert 'href="/reviews/"' in html
    assert "Incidents you own or command" not in text  # the engineer's part


def test_the_managers_home_in_chinese(manager, world):
    a, b, d, fixed = major_and_minor_incidents(world)
    overdue_items(world, {"payments": fixed, "accounts": d})
    follow_ups(world)
    text = text_of(manager.get("/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode())
    assert f"处理中的 A/B 级事件 2 A #{a.pk} Cashier down" in text
    assert "各团队逾期闭环项 Payments 2 项逾期 Accounts 1 项逾期" in text
    assert "Payments 75.0 % (3/4) 50.0 % (1/2) +25.0 个百分点" in text


def test_the_managers_home_costs_the_same_queries_whatever_the_data(manager, world):
    a, b, d, fixed = major_and_minor_incidents(world)
    overdue_items(world, {"payments": fixed, "accounts": d})
    follow_ups(world)
    manager.get("/")  # warm caches (sessions, settings)
    with CaptureQueriesContext(connection) as some:
        manager.get("/")
    for _ in range(3):
        a, b, d, fixed = major_and_minor_incidents(world)
        overdue_items(world, {"payments": fixed, "accounts": d})
        follow_ups(world)
    with CaptureQueriesContext(connection) as more:
        manager.get("/")
    assert len(more) == len(some)


def test_an_engineer_sees_their_teams_alerts_and_the_incidents_they_own_or_command(engineer, world):
    world["payments"].members.add(engineer.user)
    other = UserFactory(username="someone")
    commanded = IncidentFactory(
        title="Cashier down",
        systems=[world["cashier"]],
        occurred_at=T0 - timedelta(minutes=70),
        commander=engineer.user,
    )
    owned = IncidentFactory(
        title="Portal fixed", systems=[world["portal"]], occurred_at=T0 - timedelta(hours=3), owner=engineer.user
    )
    services.incident_transition(incident_id=owned.pk, by=None, action="recover")
    IncidentFactory(title="Someone else's", systems=[world["payout"]], owner=other)
    mine = alert(world["payments"], received_at=T0 - timedelta(seconds=100), name="CashierLatency")
    alert(world["accounts"], received_at=T0 - timedelta(seconds=100), name="PortalErrors")

    html = engineer.get("/").content.decode()
    text = text_of(html)

    assert "Alerts waiting for follow-up 1 3:20 left CashierLatency" in text
    assert "PortalErrors" not in text
    assert f'href="/alerts/{mine.pk}/"' in html
    assert "Your teams' alerts of the last 24 hours." in text
    mine_block = text.split("Incidents you own or command")[1].split("My items due soon")[0]
    assert mine_block.startswith(" 2 A ")
    assert f"#{commanded.pk} Cashier down Open" in mine_block
    assert f"#{owned.pk} Portal fixed Recovered" in mine_block
    assert "Someone else's" not in mine_block
    assert "Overdue items by team" not in text  # the manager's part


def test_the_engineers_home_in_chinese(engineer, world):
    IncidentFactory(title="Cashier down", systems=[world["cashier"]], commander=engineer.user)
    text = text_of(engineer.get("/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode())
    assert "你负责或指挥的事件 1" in text


def test_the_items_list_shows_only_overdue_items_when_asked(manager, world):
    incident = IncidentFactory(systems=[world["cashier"]])
    ActionItemFactory(incident=incident, title="Late one", due_at=T0 - timedelta(days=1))
    ActionItemFactory(incident=incident, title="Still in time", due_at=T0 + timedelta(days=1))
    text = text_of(manager.get("/items/team/?team=payments&overdue=1").content.decode())
    assert "Late one" in text and "Still in time" not in text
    text = text_of(manager.get("/items/team/?team=payments").content.decode())
    assert "Late one" in text and "Still in time" in text


def test_the_engineers_home_costs_the_same_queries_whatever_the_data(engineer, world):
    world["payments"].members.add(engineer.user)

    def some_data():
        IncidentFactory(systems=[world["cashier"]], commander=engineer.user, occurred_at=T0 - timedelta(minutes=70))
        IncidentFactory(systems=[world["portal"]], owner=engineer.user, occurred_at=T0 - timedelta(minutes=20))
        alert(world["payments"], received_at=T0 - timedelta(seconds=100))
        ActionItemFactory(incident=IncidentFactory(systems=[world["payout"]]), owner=engineer.user, due_at=T0)

    some_data()
    engineer.get("/")
    with CaptureQueriesContext(connection) as some:
        engineer.get("/")
    for _ in range(3):
        some_data()
    with CaptureQueriesContext(connection) as more:
        engineer.get("/")
    assert len(more) == len(some)
