"""A channel's test message: sent now through the channel's own sender, the outcome in words (delivered,
the receiver's error, a timeout), logged as a test, at most one per channel every 10 s; on the settings
page and over the API."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core import mail

from stability import delivery, reminders
from stability.channels import channel_create
from stability.models import Event, Notification, OutboundMessage
from tests.factories import TeamFactory, UserFactory
from tests.stability.test_channels import Robots
from tests.web.conftest import text_of

T0 = datetime(2026, 11, 22, 8, 30, tzinfo=UTC)  # 16:30 in Asia/Shanghai


@pytest.fixture
def robots():
    server = Robots()
    yield server
    server.stop()


@pytest.fixture
def team(db):
    return TeamFactory(slug="payments", name="Payments")


def wecom(team, robots, *, path="/wecom/test", language="en", name="Payments robot"):
    return channel_create(kind="wecom", name=name, target=robots.url(path), team=team, language=language)


def test_a_delivered_test_message_is_logged_as_sent(team, robots):
    admin = UserFactory(username="ada", first_name="Ada", last_name="Admin", role="admin")
    channel = wecom(team, robots)
    with time_machine.travel(T0, tick=False):
        outcome = delivery.channel_test_send(channel_id=channel.pk, by=admin)
    assert outcome.delivered
    assert outcome.reason == "Delivered: WeCom group robot accepted the test message."
    (request,) = robots.requests
    assert request["json"]["markdown"]["content"] == (
        "**Stability Tracker: 1 notification**\n"
        "- [Test message from Stability Tracker](http://127.0.0.1:8000/notifications/)\n"
        "  Channel Payments robot (WeCom group robot) works. Sent by Ada Admin at 2026-11-22 16:30:00+08:00."
    )
    row = Notification.objects.get()
    assert (row.event, row.status, row.channel_id, row.attempts, row.last_error) == (
        Event.CHANNEL_TEST,
        "sent",
        channel.pk,
        1,
        "",
    )
    message = OutboundMessage.objects.get()
    assert (message.ok, message.finished_at is not None) == (True, True)  # counted in the robot's budget


def test_a_receivers_error_is_said_in_words_and_logged_as_failed(team, robots):
    channel = wecom(team, robots, path="/wecom/broken")
    robots.answer("/wecom/broken", (500, "upstream exploded"))
    outcome = delivery.channel_test_send(channel_id=channel.pk, by=None)
    assert not outcome.delivered
    assert outcome.reason == "HTTP 500: upstream exploded"
    row = Notification.objects.get()
    assert (row.status, row.last_error) == ("failed", "HTTP 500: upstream exploded")


def test_a_robots_error_code_is_said_too_in_the_channels_language(team, robots):
    channel = wecom(team, robots, path="/wecom/bad-key", language="zh-hans")
    robots.answer("/wecom/bad-key", (200, '{"errcode":93000,"errmsg":"invalid webhook url"}'))
    outcome = delivery.channel_test_send(channel_id=channel.pk, by=None)
    # Said in the channel's language, as every delivery's reason is: the robot's group reads that one.
    assert outcome.reason == "WeCom 返回错误 93000：invalid webhook url"
    assert "- [来自稳定性跟踪平台的测试消息](http://127.0.0.1:8000/notifications/)" in (
        robots.requests[0]["json"]["markdown"]["content"].splitlines()
    )


def test_a_receiver_that_does_not_answer_in_time_is_an_unknown_outcome(team, robots, settings):
    settings.CHANNEL_TEST_TIMEOUT_SECONDS = 0.3
    answer = threading.Event()
    original = robots.server.RequestHandlerClass.do_POST

    def slow(handler):
        answer.wait(5)
        original(handler)

    robots.server.RequestHandlerClass.do_POST = slow
    channel = wecom(team, robots)
    try:
        outcome = delivery.channel_test_send(channel_id=channel.pk, by=None)
    finally:
        answer.set()
    assert not outcome.delivered
    assert outcome.reason == "Outcome unknown: the request was sent but no answer came (timed out)."
    assert Notification.objects.get().status == "unknown"


def test_one_test_per_channel_every_10_seconds(team, robots):
    channel = wecom(team, robots)
    other = wecom(team, robots, path="/wecom/other", name="Other robot")
    with time_machine.travel(T0, tick=False):
        delivery.channel_test_send(channel_id=channel.pk, by=None)
    with time_machine.travel(T0 + timedelta(seconds=7), tick=False):
        with pytest.raises(delivery.TestTooSoon) as refused:
            delivery.channel_test_send(channel_id=channel.pk, by=None)
        assert refused.value.messages == ["A test message went to this channel moments ago; try again in 3 s."]
        assert delivery.channel_test_send(channel_id=other.pk, by=None).delivered  # another channel may
    with time_machine.travel(T0 + timedelta(seconds=10), tick=False):
        assert delivery.channel_test_send(channel_id=channel.pk, by=None).delivered
    assert len(robots.requests) == 3


def test_an_email_channel_is_tested_by_email(team):
    channel = channel_create(kind="email", name="Payments list", target="pay@example.com", team=team)
    outcome = delivery.channel_test_send(channel_id=channel.pk, by=None)
    assert outcome.delivered
    (message,) = mail.outbox
    assert (message.to, message.subject) == (["pay@example.com"], "Test message from Stability Tracker")


def test_a_test_left_pending_by_a_dead_process_is_never_swept_out_later(team, robots):
    channel = wecom(team, robots)
    with time_machine.travel(T0, tick=False):
        channel, notification, _row = delivery._open_test(channel.pk, now=T0)  # died before sending
    with time_machine.travel(T0 + timedelta(minutes=5), tick=False):
        for destination in reminders.ready_destinations(now=T0 + timedelta(minutes=5)):
            delivery.deliver(destination=destination)
    notification.refresh_from_db()
    # Its request may have gone out (attempted_at was stamped first): unknown, and never sent again.
    assert notification.status == "unknown"
    assert robots.requests == []


def test_the_settings_page_button_says_how_it_went(team, robots, client):
    admin = UserFactory(username="ada", role="admin")
    client.force_login(admin)
    channel = wecom(team, robots, path="/wecom/broken")
    robots.answer("/wecom/broken", (500, "upstream exploded"))
    page = client.get(f"/settings/channels/{channel.pk}/")
    assert "Send a test message" in text_of(page.content.decode())
    response = client.post(f"/settings/channels/{channel.pk}/", {"test": "1"}, follow=True)
    assert "The test message was not delivered: HTTP 500: upstream exploded" in text_of(response.content.decode())
    response = client.post(f"/settings/channels/{channel.pk}/", {"test": "1"}, follow=True)
    assert "try again in" in text_of(response.content.decode())
    assert len(robots.requests) == 1


def test_the_settings_page_in_chinese(team, robots, client):
    client.force_login(UserFactory(username="ada", role="admin"))
    channel = wecom(team, robots)
    response = client.post(
        f"/settings/channels/{channel.pk}/", {"test": "1"}, follow=True, HTTP_ACCEPT_LANGUAGE="zh-hans"
    )
    text = text_of(response.content.decode())
    assert "发送测试消息" in text
    assert "已送达：企业微信群机器人接收了测试消息。" in text


def test_the_api_action(team, robots, client):
    channel = wecom(team, robots)
    client.force_login(UserFactory(username="ada", role="admin"))
    answer = client.post(f"/api/v1/notification-channels/{channel.pk}/test/")
    assert answer.status_code == 200
    row = Notification.objects.get()
    assert answer.json() == {
        "delivered": True,
        "status": "sent",
        "reason": "Delivered: WeCom group robot accepted the test message.",
        "notification": row.pk,
    }
    assert client.post(f"/api/v1/notification-channels/{channel.pk}/test/").status_code == 429
    client.force_login(UserFactory(username="mgr", role="manager"))
    assert client.post(f"/api/v1/notification-channels/{channel.pk}/test/").status_code == 403


def test_a_channel_cannot_subscribe_to_test_messages(team, robots):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as refused:
        channel_create(kind="wecom", name="x", target=robots.url("/wecom/x"), team=team, events=["channel_test"])
    assert "Unknown events: channel_test" in refused.value.message_dict["events"][0]
