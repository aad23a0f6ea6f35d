"""The notification log page (web/views/notifications.py): who reads it, its filters, each failure's
reason, the retry through stability.delivery.notification_retry, and a constant number of queries."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from stability import reminders
from stability.models import Notification, NotificationChannel
from tests.factories import ActionItemFactory, IncidentFactory, UserFactory
from tests.web.conftest import text_of

ZONE = ZoneInfo("Asia/Shanghai")
LOG = "/notifications/"


def _items(systems, names):
    incident = IncidentFactory(systems=systems)
    return [
        ActionItemFactory(
            incident=incident,
            owner=UserFactory(username=name, email=f"{name}@example.com"),
            due_at=datetime(2026, 11, 21, 10, tzinfo=ZONE),
        )
        for name in names
    ]


@pytest.fixture
def log(world):
    """Reminders one day before due: lei (payments, sent), mei (payments, failed on her WeCom robot),
    jie (accounts, pending)."""
    with time_machine.travel(datetime(2026, 11, 20, 10, tzinfo=ZONE), tick=False):
        lei, mei = _items([world["cashier"]], ["lei", "mei"])
        (jie,) = _items([world["portal"]], ["jie"])
    channel = NotificationChannel.objects.create(
        kind="wecom", name="Mei's robot", target="https://r.example.com", user=mei.owner
    )
    with time_machine.travel(datetime(2026, 11, 20, 10, 1, tzinfo=ZONE), tick=False):
        reminders.sweep(enqueue=lambda destinations: 0)
    Notification.objects.filter(recipient__username="lei").update(
        status="sent", sent_at=datetime(2026, 11, 20, 10, 2, tzinfo=ZONE)
    )
    Notification.objects.filter(recipient__username="mei").update(
        status="failed", attempts=5, last_error="WeCom error 93000: invalid webhook url"
    )
    return {"lei": lei, "mei": mei, "jie": jie, "channel": channel}


def _owners(response) -> list[str]:
    return sorted(n.recipient.username for n in response.context["page"].object_list)


def test_managers_and_administrators_read_the_log_engineers_do_not(log, engineer, manager, administrator):
    assert engineer.get(LOG).status_code == 403
    page = manager.get(LOG)
    assert page.status_code == 200
    assert _owners(page) == ["jie", "lei", "mei"]
    text = text_of(page.content.decode())
    assert "WeCom error 93000: invalid webhook url" in text
    assert "Mei's robot" in text  # where it went
    assert log["mei"].title in text  # what it is about
    assert "Retry" not in text  # a manager reads; an administrator retries
    assert "Retry" in text_of(administrator.get(LOG).content.decode())


def test_a_manager_finds_the_log_in_the_main_navigation(manager, engineer):
    # Managers have no Settings; the log is linked from the main navigation instead.
    home = manager.get("/").content.decode()
    assert f'href="{LOG}"' in home
    assert f'href="{LOG}"' not in engineer.get("/").content.decode()


def test_the_log_filters_by_status_event_and_team(log, manager):
    assert _owners(manager.get(LOG, {"status": "failed"})) == ["mei"]
    assert _owners(manager.get(LOG, {"status": ["sent", "pending"]})) == ["jie", "lei"]
    assert _owners(manager.get(LOG, {"event": "item_before_due", "team": "accounts"})) == ["jie"]
    assert _owners(manager.get(LOG, {"team": "payments"})) == ["lei", "mei"]
    assert _owners(manager.get(LOG, {"event": "digest"})) == []
    wrong = manager.get(LOG, {"status": "lost"})
    assert wrong.status_code == 400
    assert "Select a valid choice" in text_of(wrong.content.decode())


def test_an_administrator_retries_a_failed_notification_as_the_api_does(
    log, manager, administrator, monkeypatch, django_capture_on_commit_callbacks
):
    handed = []
    monkeypatch.setattr(reminders, "enqueue_deliveries", lambda destinations: handed.extend(destinations))
    failed = Notification.objects.get(status="failed")
    url = f"{LOG}{failed.pk}/retry/"
    assert manager.post(url).status_code == 403
    assert Notification.objects.get(pk=failed.pk).status == "failed"

    now = datetime(2026, 11, 20, 11, tzinfo=ZONE)
    with time_machine.travel(now, tick=False), django_capture_on_commit_callbacks(execute=True):
        response = administrator.post(url, {"next": "/notifications/?status=failed"})
    assert (response.status_code, response["Location"]) == (302, "/notifications/?status=failed")
    failed.refresh_from_db()
    assert (failed.status, failed.attempts, failed.deliver_after) == ("pending", 0, now)
    assert handed == [f"channel:{log['channel'].pk}"]

    sent = Notification.objects.get(status="sent")
    refused = administrator.post(f"{LOG}{sent.pk}/retry/", follow=True)
    assert "Only a failed notification can be retried." in text_of(refused.content.decode())
    assert Notification.objects.get(pk=sent.pk).status == "sent"
    # Elsewhere than the log is not a place to go back to.
    assert administrator.post(f"{LOG}{failed.pk}/retry/", {"next": "https://evil.example/"})["Location"] == LOG


def test_the_log_reads_in_the_same_number_of_queries_for_3_or_30(log, manager, world):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert manager.get(LOG).status_code == 200
        return len(captured)

    few = queries()
    with time_machine.travel(datetime(2026, 11, 20, 10, tzinfo=ZONE), tick=False):
        _items([world["payout"]], [f"o{n}" for n in range(27)])
    with time_machine.travel(datetime(2026, 11, 20, 10, 2, tzinfo=ZONE), tick=False):
        reminders.sweep(enqueue=lambda destinations: 0)
    assert Notification.objects.count() == 30
    assert queries() == few
