"""Channels and the notification log over the API: who may do what, write-only secrets, filters, retry."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from stability import reminders
from stability.models import Notification, NotificationChannel
from tests.factories import ActionItemFactory, TeamFactory, UserFactory

ZONE = ZoneInfo("Asia/Shanghai")
CHANNELS = "/api/v1/notification-channels/"
NOTIFICATIONS = "/api/v1/notifications/"


@pytest.fixture
def team(db):
    return TeamFactory(slug="payments", name="Payments")


def test_only_administrators_see_or_change_channels(team, engineer_client, manager_client, anonymous_client):
    NotificationChannel.objects.create(kind="wecom", name="w", target="https://robot.example.com/?key=1", team=team)
    assert anonymous_client.get(CHANNELS).status_code == 401
    assert engineer_client.get(CHANNELS).status_code == 403
    assert manager_client.get(CHANNELS).status_code == 403  # robot URLs carry their access token
    body = {"kind": "slack", "name": "s", "target": "https://hooks.example.com/x", "team": "payments"}
    assert manager_client.post(CHANNELS, body, format="json").status_code == 403


def test_an_administrator_creates_a_signed_robot_whose_secret_is_never_read_back(team, admin_client_api):
    response = admin_client_api.post(
        CHANNELS,
        {
            "kind": "dingtalk",
            "name": "payments dingtalk",
            "target": "https://oapi.dingtalk.com/robot/send?access_token=abc",
            "secret": "SECxyz",
            "team": "payments",
            "events": ["alert_unfollowed", "item_overdue"],
            "language": "zh-hans",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    data = response.json()
    assert "secret" not in data
    assert data["has_secret"] is True
    assert (data["team"], data["user"], data["events"], data["enabled"]) == (
        "payments",
        None,
        ["alert_unfollowed", "item_overdue"],
        True,
    )
    channel = NotificationChannel.objects.get(pk=data["id"])
    assert channel.secret == "SECxyz"
    url = f"{CHANNELS}{channel.pk}/"
    # Left out: kept. Given empty: cleared.
    assert admin_client_api.patch(url, {"name": "renamed"}, format="json").json()["has_secret"] is True
    channel.refresh_from_db()
    assert (channel.name, channel.secret) == ("renamed", "SECxyz")
    assert "SECxyz" not in admin_client_api.get(url).content.decode()
    assert admin_client_api.patch(url, {"secret": ""}, format="json").json()["has_secret"] is False
    assert admin_client_api.delete(url).status_code == 204


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "wecom", "name": "w", "target": "ftp://x", "team": "payments"}, "target"),
        ({"kind": "email", "name": "e", "target": "a@example.com", "team": "payments", "user": "admin"}, "team"),
        ({"kind": "email", "name": "e", "target": "a@example.com"}, "team"),
        (
            {"kind": "slack", "name": "s", "target": "https://h.example.com", "team": "payments", "events": ["x"]},
            "events",
        ),
        ({"kind": "pager", "name": "p", "target": "https://h.example.com", "team": "payments"}, "kind"),
        (
            {"kind": "slack", "name": "s", "target": "https://h.example.com", "team": "payments", "colour": "red"},
            "colour",
        ),
    ],
)
def test_a_channel_that_cannot_work_is_a_400_naming_the_field(team, admin_client_api, body, field):
    response = admin_client_api.post(CHANNELS, body, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert not NotificationChannel.objects.exists()


@pytest.fixture
def log(team):
    """Three owners' reminders: one sent, one failed, one pending."""
    with time_machine.travel(datetime(2026, 11, 20, 10, tzinfo=ZONE), tick=False):
        items = [
            ActionItemFactory(
                owner=UserFactory(username=name, email=f"{name}@example.com"),
                due_at=datetime(2026, 11, 21, 10, tzinfo=ZONE),
            )
            for name in ("lei", "mei", "jie")
        ]
    channel = NotificationChannel.objects.create(
        kind="wecom", name="mei", target="https://r.example.com", user=items[1].owner
    )
    with time_machine.travel(datetime(2026, 11, 20, 10, 1, tzinfo=ZONE), tick=False):
        reminders.sweep(enqueue=lambda destinations: 0)
    Notification.objects.filter(recipient__username="lei").update(status="sent")
    Notification.objects.filter(recipient__username="mei").update(
        status="failed", attempts=5, last_error="WeCom error 93000: invalid webhook url"
    )
    return {"items": items, "channel": channel}


def test_managers_read_the_log_with_each_failure_and_filter_it(log, manager_client, engineer_client):
    assert engineer_client.get(NOTIFICATIONS).status_code == 403
    response = manager_client.get(NOTIFICATIONS, {"status": "failed"})
    assert response.status_code == 200
    (failed,) = response.json()["results"]
    item = log["items"][1]
    assert failed == {
        **failed,
        "event": "item_before_due",
        "step": "before-1",
        "status": "failed",
        "action_item": item.pk,
        "incident": item.incident_id,
        "alert": None,
        "recipient": "mei",
        "channel": log["channel"].pk,
        "destination": f"channel:{log['channel'].pk}",
        "attempts": 5,
        "last_error": "WeCom error 93000: invalid webhook url",
        "sent_at": None,
    }

    def usernames(**params):
        return sorted(n["recipient"] for n in manager_client.get(NOTIFICATIONS, params).json()["results"])

    assert usernames() == ["jie", "lei", "mei"]
    assert usernames(recipient="jie") == ["jie"]
    assert usernames(channel=log["channel"].pk) == ["mei"]
    assert usernames(event="item_before_due", status=["sent", "pending"]) == ["jie", "lei"]
    assert usernames(event="digest") == []
    assert manager_client.get(NOTIFICATIONS, {"status": "lost"}).status_code == 400


def test_the_log_reads_in_the_same_number_of_queries_for_3_or_30(log, manager_client):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert manager_client.get(NOTIFICATIONS).status_code == 200
        return len(captured)

    manager_client.get(NOTIFICATIONS)  # the token's last use is written at most once a minute
    few = queries()
    assert few == 3  # the token, the count, the page with recipients and items joined
    with time_machine.travel(datetime(2026, 11, 20, 10, tzinfo=ZONE), tick=False):
        for n in range(27):
            ActionItemFactory(owner=UserFactory(username=f"o{n}"), due_at=datetime(2026, 11, 21, 10, tzinfo=ZONE))
    with time_machine.travel(datetime(2026, 11, 20, 10, 2, tzinfo=ZONE), tick=False):
        reminders.sweep(enqueue=lambda destinations: 0)
    assert Notification.objects.count() == 30
    assert queries() == few


def test_an_administrator_retries_a_failed_notification(
    log, admin_client_api, manager_client, monkeypatch, django_capture_on_commit_callbacks
):
    handed = []
    monkeypatch.setattr(reminders, "enqueue_deliveries", lambda destinations: handed.extend(destinations))
    failed = Notification.objects.get(status="failed")
    url = f"{NOTIFICATIONS}{failed.pk}/retry/"
    assert manager_client.post(url).status_code == 403
    now = datetime(2026, 11, 20, 11, tzinfo=ZONE)
    with time_machine.travel(now, tick=False), django_capture_on_commit_callbacks(execute=True):
        response = admin_client_api.post(url)
    assert response.status_code == 200
    data = response.json()
    assert (data["status"], data["attempts"], data["last_error"]) == (
        "pending",
        0,
        "WeCom error 93000: invalid webhook url",  # kept until the next attempt tells more
    )
    assert datetime.fromisoformat(data["deliver_after"]) == now
    assert handed == [failed.destination]
    sent = Notification.objects.get(status="sent")
    response = admin_client_api.post(f"{NOTIFICATIONS}{sent.pk}/retry/")
    assert response.status_code == 400
    assert response.json() == {"status": ["Only a failed notification can be retried."]}


@pytest.fixture
def admin_browser(client):
    client.force_login(UserFactory(username="root", role="admin", is_staff=True, is_superuser=True))
    return client


def test_the_admin_lists_the_log_and_keeps_a_channel_secret_unless_replaced(log, admin_browser):
    from django.urls import reverse

    response = admin_browser.get(reverse("admin:stability_notification_changelist"), {"status__exact": "failed"})
    assert response.status_code == 200
    assert "WeCom error 93000: invalid webhook url" in response.content.decode()
    assert "before-1" in response.content.decode()
    failed = Notification.objects.get(status="failed")
    assert admin_browser.get(reverse("admin:stability_notification_change", args=[failed.pk])).status_code == 200
    assert admin_browser.get(reverse("admin:stability_outboundmessage_changelist")).status_code == 200
    assert admin_browser.get(reverse("admin:stability_reminderpolicy_add")).status_code == 200

    form = {
        "kind": "dingtalk",
        "name": "payments robot",
        "target": "https://oapi.dingtalk.com/robot/send?access_token=abc",
        "secret": "SECfirst",
        "team": TeamFactory(slug="ops").pk,
        "user": "",
        "events": "[]",
        "language": "",
        "messages_per_minute": "",
        "enabled": "on",
    }
    response = admin_browser.post(reverse("admin:stability_notificationchannel_add"), form)
    assert response.status_code == 302, response.content.decode()[:2000]
    channel = NotificationChannel.objects.get(name="payments robot")
    assert channel.secret == "SECfirst"
    change = reverse("admin:stability_notificationchannel_change", args=[channel.pk])
    assert "SECfirst" not in admin_browser.get(change).content.decode()
    assert admin_browser.post(change, {**form, "secret": "", "name": "renamed"}).status_code == 302
    channel.refresh_from_db()
    assert (channel.name, channel.secret) == ("renamed", "SECfirst")
    # Both a team and a person: refused with the reason.
    response = admin_browser.post(change, {**form, "user": UserFactory(username="x").pk})
    assert response.status_code == 200
    assert "A channel belongs to a team or to a person: choose exactly one." in response.content.decode()

    # Retry from the admin: the failed one goes back to pending.
    response = admin_browser.post(
        reverse("admin:stability_notification_changelist"),
        {"action": "retry", "_selected_action": [failed.pk]},
    )
    assert response.status_code == 302
    failed.refresh_from_db()
    assert (failed.status, failed.attempts) == ("pending", 0)
