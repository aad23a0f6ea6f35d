"""Closed-loop items through the pages (web/views/items.py): add, assign, the steps, and the lists of
my items and a team's items with overdue ones highlighted."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from incidents import services
from incidents.models import ActionItem, TimelineEntry
from tests.factories import IncidentFactory, UserFactory
from tests.web.conftest import field_errors, text_of

T0 = datetime(2026, 11, 22, 8, 30, tzinfo=UTC)  # 16:30 in Asia/Shanghai


@pytest.fixture(autouse=True)
def _at_t0():
    with time_machine.travel(T0, tick=False):
        yield


@pytest.fixture
def incident(engineer, world):
    found = IncidentFactory(
        by=engineer.user, title="Cashier timeouts", systems=[world["cashier"]], occurred_at=T0 - timedelta(hours=3)
    )
    world["payments"].members.add(engineer.user)
    return found


def add_item(client, incident, **changes):
    data = {
        "title": "Alert on pool exhaustion",
        "owner": client.user.pk,
        "due_at": "2026-11-29T18:00:00",
        "kind": "monitoring",
        "priority": "high",
        "ticket_url": "jira.example.com/PAY-1",
        **changes,
    }
    return client.post(f"/incidents/{incident.pk}/items/", data)


def test_adding_an_item_from_the_incident_page(engineer, incident):
    response = add_item(engineer, incident)

    item = ActionItem.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/incidents/{incident.pk}/#item-{item.pk}"
    # 18:00 in Asia/Shanghai is 10:00Z
    assert item.due_at == datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
    assert (item.owner, item.kind, item.priority) == (engineer.user, "monitoring", "high")
    assert item.ticket_url == "https://jira.example.com/PAY-1"
    assert incident.timeline.filter(kind=TimelineEntry.Kind.ACTION_ITEM, action_item=item).count() == 1
    page = text_of(engineer.get(f"/incidents/{incident.pk}/").content.decode())
    assert f"#{item.pk} Alert on pool exhaustion Open" in page
    assert "due 2026-11-29 18:00 (Asia/Shanghai)" in page


def test_an_item_with_errors_is_not_added(engineer, incident):
    response = add_item(engineer, incident, title="", verifier=engineer.user.pk)

    assert response.status_code == 400
    assert field_errors(response, "id_title") == ["This field is required."]
    assert not ActionItem.objects.exists()

    response = add_item(engineer, incident, verifier=engineer.user.pk)
    assert response.status_code == 400
    assert field_errors(response, "id_verifier") == [
        "The owner cannot verify their own item: choose someone else, or no one (then a manager verifies)."
    ]
    assert not ActionItem.objects.exists()


def test_completing_and_verifying_an_item(engineer, manager, incident):
    add_item(engineer, incident)
    item = ActionItem.objects.get()

    done = engineer.post(f"/items/{item.pk}/step/", {"action": "complete", "expected_version": item.version})
    item.refresh_from_db()
    assert done.status_code == 302
    assert item.status == ActionItem.Status.DONE
    assert item.completed_at == T0

    # the owner cannot verify their own item: the page says why
    refused = engineer.post(f"/items/{item.pk}/step/", {"action": "verify", "expected_version": item.version})
    assert refused.status_code == 403
    assert "The owner cannot verify their own action item; the verifier or a manager does." in text_of(
        refused.content.decode()
    )

    # managers verify (and only take the managers' steps)
    assert (
        manager.post(f"/items/{item.pk}/step/", {"action": "start", "expected_version": item.version}).status_code
        == 403
    )
    verified = manager.post(f"/items/{item.pk}/step/", {"action": "verify", "expected_version": item.version})
    item.refresh_from_db()
    assert verified.status_code == 302
    assert (item.status, item.verified_by) == (ActionItem.Status.VERIFIED, manager.user)


def test_waiving_needs_a_manager_and_a_reason(engineer, manager, incident):
    add_item(engineer, incident)
    item = ActionItem.objects.get()

    by_engineer = engineer.post(
        f"/items/{item.pk}/step/", {"action": "waive", "reason": "not worth it", "expected_version": item.version}
    )
    assert by_engineer.status_code == 403
    no_reason = manager.post(f"/items/{item.pk}/step/", {"action": "waive", "expected_version": item.version})
    assert no_reason.status_code == 400
    assert "Say why the item is waived; the reason is what the manager approves." in text_of(no_reason.content.decode())
    item.refresh_from_db()
    assert item.status == ActionItem.Status.OPEN


def test_a_stale_step_is_refused(engineer, incident):
    add_item(engineer, incident)
    item = ActionItem.objects.get()
    services.action_item_update(item_id=item.pk, by=None, expected_version=item.version, title="Renamed")

    response = engineer.post(f"/items/{item.pk}/step/", {"action": "start", "expected_version": item.version})

    assert response.status_code == 409
    item.refresh_from_db()
    assert item.status == ActionItem.Status.OPEN


def test_assigning_to_someone_else_with_a_new_due_date(engineer, incident):
    add_item(engineer, incident)
    item = ActionItem.objects.get()
    colleague = UserFactory(username="zhangpeng")

    response = engineer.post(
        f"/items/{item.pk}/assign/",
        {"owner": colleague.pk, "due_at": "2026-12-01T12:00:00", "expected_version": item.version},
    )

    item.refresh_from_db()
    assert response.status_code == 302
    assert item.owner == colleague
    assert item.due_at == datetime(2026, 12, 1, 4, 0, tzinfo=UTC)
    changes = incident.timeline.filter(action_item=item, field__in=["owner", "due_at"]).values_list("field", flat=True)
    assert sorted(changes) == ["due_at", "owner"]


def test_my_items_and_team_items_with_overdue_highlighted(engineer, manager, incident, world):
    add_item(engineer, incident, title="Late one", due_at="2026-11-19T16:00:00")  # 3 days and 30 min ago
    add_item(engineer, incident, title="Soon one", due_at="2026-11-24T16:00:00")
    other = IncidentFactory(systems=[world["portal"]], occurred_at=T0 - timedelta(days=1))
    services.action_item_create(incident_id=other.pk, by=None, title="Accounts' own", owner=manager.user, due_at=T0)

    mine = engineer.get("/items/mine/")
    assert mine.status_code == 200
    text = text_of(mine.content.decode())
    # due 16:00 three days and 30 minutes ago: 3 whole days overdue
    assert "Late one High · Monitoring alert Open overdue 3 days" in text
    assert "Soon one" in text and "Accounts' own" not in text
    assert mine.content.decode().count('<tr class="overdue">') == 1

    team = engineer.get("/items/team/")  # the reader's team by default: payments
    team_text = text_of(team.content.decode())
    assert "Action items of Payments" in team_text
    assert "Late one" in team_text and "Accounts' own" not in team_text
    accounts = text_of(engineer.get("/items/team/?team=accounts").content.decode())
    assert "Accounts' own" in accounts and "Late one" not in accounts


def test_the_item_lists_in_a_constant_number_of_queries(engineer, incident, world):
    for n in range(2):
        add_item(engineer, incident, title=f"first {n}")
    with CaptureQueriesContext(connection) as few:
        engineer.get("/items/team/?team=payments")
    for n in range(8):
        add_item(engineer, incident, title=f"more {n}")
    with CaptureQueriesContext(connection) as many:
        response = engineer.get("/items/team/?team=payments")
    assert len(response.context["page"].object_list) == 10
    assert len(many) == len(few)
