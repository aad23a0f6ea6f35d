"""Channels (stability.channels) and delivery (stability.delivery) against a local HTTP server standing in
for the robots: exact bodies, signatures computed here independently of the code, batching, the
per-minute budget, failures with their reasons, retries."""

import base64
import hashlib
import hmac
import json
import threading
import urllib.parse
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core import mail

from stability import channels, delivery, reminders
from stability.models import AlertOccurrence, Notification, OutboundMessage
from stability.services import integration_create
from tests.factories import ActionItemFactory, IncidentFactory, SystemFactory, TeamFactory, UserFactory

ZONE = ZoneInfo("Asia/Shanghai")
RECEIVED = datetime(2026, 11, 27, 23, 0, tzinfo=ZONE)
SWEEP = RECEIVED + timedelta(minutes=6)  # past the 5-minute window, before the 15-minute escalation


class Robots:
    """A local HTTP server: records every request and answers like the vendor at that path, or as told."""

    OK = {
        "wecom": (200, '{"errcode":0,"errmsg":"ok"}'),
        "dingtalk": (200, '{"errcode":0,"errmsg":"ok"}'),
        "feishu": (200, '{"code":0,"msg":"success","data":{}}'),
        "slack": (200, "ok"),
        "webhook": (204, ""),
    }

    def __init__(self):
        self.requests: list[dict] = []
        self.answers: dict[str, list[tuple[int, str]]] = {}
        robots = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                parts = urllib.parse.urlsplit(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                robots.requests.append(
                    {
                        "path": parts.path,
                        "query": parts.query,
                        "headers": dict(self.headers),
                        "raw": body,
                        "json": json.loads(body) if body else None,
                    }
                )
                queued = robots.answers.get(parts.path)
                status, text = queued.pop(0) if queued else robots.OK[parts.path.strip("/").split("/")[0]]
                self.send_response(status)
                self.send_header("Content-Type", "application/json" if text.startswith("{") else "text/plain")
                self.send_header("Content-Length", str(len(text.encode())))
                self.end_headers()
                self.wfile.write(text.encode())

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def answer(self, path: str, *replies: tuple[int, str]) -> None:
        self.answers[path] = list(replies)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def robots():
    server = Robots()
    yield server
    server.stop()


@pytest.fixture
def team(db):
    return TeamFactory(slug="payments", name="Payments")


def unfollowed_alerts(team, count: int = 1, *, name: str = "PaymentLatencyHigh") -> list[AlertOccurrence]:
    integration, _token = integration_create(kind="generic", name=f"prometheus-{AlertOccurrence.objects.count()}")
    return [
        AlertOccurrence.objects.create(
            integration=integration,
            fingerprint=f"fp-{n}",
            starts_at=RECEIVED,
            alertname=name if count == 1 else f"{name}{n}",
            severity="critical",
            summary="p99 over 2 s",
            team=team,
            received_at=RECEIVED,
            last_received_at=RECEIVED,
        )
        for n in range(count)
    ]


def sweep_and_deliver(at: datetime = SWEEP) -> list[delivery.DeliveryOutcome]:
    with time_machine.travel(at, tick=False):
        result = reminders.sweep(enqueue=lambda destinations: 0)
        return [delivery.deliver(destination=d) for d in result.destinations]


def entry_md(alert: AlertOccurrence, minutes: int = 5) -> str:
    return (
        f"- [Alert not followed up within {minutes} minutes: {alert.alertname}](http://127.0.0.1:8000/alerts/{alert.pk}/)\n"
        "  p99 over 2 s\n"
        "  Team Payments, system -, severity critical, received 2026-11-27 23:00+08:00"
    )


def test_wecom_gets_one_markdown_message(team, robots):
    channels.channel_create(kind="wecom", name="payments wecom", target=robots.url("/wecom/send?key=abc"), team=team)
    (alert,) = unfollowed_alerts(team)
    (outcome,) = sweep_and_deliver()
    assert (outcome.sent, outcome.failed, outcome.retry_after) == (1, 0, None)
    (request,) = robots.requests
    assert (request["path"], request["query"]) == ("/wecom/send", "key=abc")
    assert request["headers"]["Content-Type"] == "application/json; charset=utf-8"
    assert request["json"] == {
        "msgtype": "markdown",
        "markdown": {"content": "**Stability Tracker: 1 notification**\n" + entry_md(alert)},
    }
    notification = Notification.objects.get()
    assert (notification.status, notification.attempts, notification.sent_at) == ("sent", 1, SWEEP)
    assert OutboundMessage.objects.get().ok is True


def test_dingtalk_is_signed_in_the_url(team, robots):
    secret = "SEC1234567890abcdef"
    channels.channel_create(
        kind="dingtalk", name="dd", target=robots.url("/dingtalk/robot/send?access_token=tok"), secret=secret, team=team
    )
    (alert,) = unfollowed_alerts(team)
    sweep_and_deliver()
    (request,) = robots.requests
    query = urllib.parse.parse_qs(request["query"])
    timestamp = int(SWEEP.timestamp() * 1000)  # ms, the frozen clock
    # DingTalk's rule, written out here: HMAC-SHA256 keyed with the secret over "timestamp\nsecret", base64.
    expected = base64.b64encode(
        hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    ).decode()
    assert query == {"access_token": ["tok"], "timestamp": [str(timestamp)], "sign": [expected]}
    # URL-encoded in the query string ("+", "/" and "=" escaped).
    assert request["query"].endswith("&sign=" + urllib.parse.quote(expected, safe=""))
    assert request["json"] == {
        "msgtype": "markdown",
        "markdown": {
            "title": "Stability Tracker: 1 notification",
            "text": "**Stability Tracker: 1 notification**\n" + entry_md(alert),
        },
    }


def test_feishu_is_signed_in_the_body(team, robots):
    secret = "feishu-secret"
    channels.channel_create(kind="feishu", name="fs", target=robots.url("/feishu/hook/abc"), secret=secret, team=team)
    (alert,) = unfollowed_alerts(team)
    sweep_and_deliver()
    (request,) = robots.requests
    timestamp = int(SWEEP.timestamp())  # seconds
    # Feishu's rule: HMAC-SHA256 keyed with "timestamp\nsecret" over an empty message, base64.
    expected = base64.b64encode(hmac.new(f"{timestamp}\n{secret}".encode(), b"", hashlib.sha256).digest()).decode()
    assert request["json"] == {
        "timestamp": str(timestamp),
        "sign": expected,
        "msg_type": "text",
        "content": {
            "text": "Stability Tracker: 1 notification\n"
            f"- Alert not followed up within 5 minutes: {alert.alertname}\n"
            "  p99 over 2 s\n"
            "  Team Payments, system -, severity critical, received 2026-11-27 23:00+08:00\n"
            f"  http://127.0.0.1:8000/alerts/{alert.pk}/"
        },
    }


def test_slack_gets_mrkdwn_and_must_answer_ok(team, robots):
    channels.channel_create(kind="slack", name="slack", target=robots.url("/slack/T1/B2/xyz"), team=team)
    (alert,) = unfollowed_alerts(team, name="Latency <p99> & errors")
    robots.answer("/slack/T1/B2/xyz", (400, "invalid_payload"))
    sweep_and_deliver()
    notification = Notification.objects.get()
    assert (notification.status, notification.last_error) == ("pending", "HTTP 400: invalid_payload")
    sweep_and_deliver(SWEEP + timedelta(seconds=30))  # the first retry waits 30 s
    assert Notification.objects.get().status == "sent"
    assert robots.requests[1]["json"] == {
        "text": "*Stability Tracker: 1 notification*\n"
        f"• <http://127.0.0.1:8000/alerts/{alert.pk}/|Alert not followed up within 5 minutes: "
        "Latency &lt;p99&gt; &amp; errors>\n"
        "    p99 over 2 s\n"
        "    Team Payments, system -, severity critical, received 2026-11-27 23:00+08:00"
    }


def test_the_generic_webhook_gets_one_signed_json_per_notification(team, robots):
    channels.channel_create(kind="webhook", name="hook", target=robots.url("/webhook/in"), secret="k3y", team=team)
    first, second = unfollowed_alerts(team, 2)
    (outcome,) = sweep_and_deliver()
    assert outcome.sent == 2
    bodies = {r["json"]["ids"]["alert"]: r for r in robots.requests}
    request = bodies[first.pk]
    notification = Notification.objects.get(alert=first)
    assert request["json"] == {
        "key": f"alert:{first.pk}:unfollowed:channel:{notification.channel_id}",
        "event": "alert_unfollowed",
        "step": "unfollowed",
        "title": "Alert not followed up within 5 minutes: PaymentLatencyHigh0",
        "text": "p99 over 2 s\nTeam Payments, system -, severity critical, received 2026-11-27 23:00+08:00",
        "url": f"http://127.0.0.1:8000/alerts/{first.pk}/",
        "language": "en",
        "ids": {
            "notification": notification.pk,
            "action_item": None,
            "incident": None,
            "alert": first.pk,
            "team": None,  # set on monthly reports only
            "recipient": None,
        },
    }
    expected = "sha256=" + hmac.new(b"k3y", request["raw"], hashlib.sha256).hexdigest()
    assert request["headers"]["X-Stability-Signature"] == expected
    # The same on every attempt: a receiver keeping the keys it processed drops a retry's repeat.
    assert request["headers"]["Idempotency-Key"] == notification.key
    assert second.pk in bodies


def test_45_notices_for_one_robot_make_three_messages_of_20_20_and_5(team, robots):
    channels.channel_create(kind="wecom", name="payments wecom", target=robots.url("/wecom/send"), team=team)
    alerts = unfollowed_alerts(team, 45)
    (outcome,) = sweep_and_deliver()
    assert (outcome.sent, outcome.retry_after) == (45, None)
    contents = [r["json"]["markdown"]["content"] for r in robots.requests]
    assert [c.splitlines()[0] for c in contents] == ["**Stability Tracker: 20 notifications**"] * 2 + [
        "**Stability Tracker: 5 notifications**"
    ]
    # In order of recording, each alert once.
    assert contents[0] == "\n".join(["**Stability Tracker: 20 notifications**", *(entry_md(a) for a in alerts[:20])])
    assert contents[2] == "\n".join(["**Stability Tracker: 5 notifications**", *(entry_md(a) for a in alerts[40:])])
    assert list(OutboundMessage.objects.order_by("id").values_list("entries", flat=True)) == [20, 20, 5]


def test_a_robot_never_gets_more_than_its_messages_a_minute(team, robots):
    channel = channels.channel_create(
        kind="wecom", name="slow robot", target=robots.url("/wecom/send"), team=team, messages_per_minute=2
    )
    unfollowed_alerts(team, 45)
    (outcome,) = sweep_and_deliver()
    assert (outcome.sent, outcome.retry_after) == (40, 60.0)  # 2 messages of 20; the next slot in 60 s
    with time_machine.travel(SWEEP + timedelta(seconds=30), tick=False):
        outcome = delivery.deliver(destination=f"channel:{channel.pk}")
    assert (outcome.sent, outcome.retry_after) == (0, 30.0)  # the budget is spent until SWEEP + 60 s
    with time_machine.travel(SWEEP + timedelta(seconds=60), tick=False):
        outcome = delivery.deliver(destination=f"channel:{channel.pk}")
    assert (outcome.sent, outcome.retry_after) == (5, None)
    assert len(robots.requests) == 3
    assert Notification.objects.filter(status="sent").count() == 45


def test_long_entries_are_split_to_fit_wecom_4096_bytes(team, robots):
    channels.channel_create(kind="wecom", name="payments wecom", target=robots.url("/wecom/send"), team=team)
    unfollowed_alerts(team, 20, name="支付延迟过高" * 25)  # 150 characters, 450 bytes, per alert name
    (outcome,) = sweep_and_deliver()
    assert outcome.sent == 20
    sizes = [len(r["json"]["markdown"]["content"].encode()) for r in robots.requests]
    assert all(size <= 4096 for size in sizes)
    # Each entry takes about 620 bytes: 6 and the heading fit in 4,096 bytes, a 7th would not.
    assert list(OutboundMessage.objects.order_by("id").values_list("entries", flat=True)) == [6, 6, 6, 2]
    assert min(sizes[:3]) > 4096 - 620


def test_a_failure_is_recorded_with_its_reason_and_retried_after_a_backoff(team, robots):
    channel = channels.channel_create(kind="wecom", name="wecom", target=robots.url("/wecom/send"), team=team)
    unfollowed_alerts(team)
    robots.answer(
        "/wecom/send", (502, "<html>Bad gateway</html>"), (200, '{"errcode":45009,"errmsg":"api freq out of limit"}')
    )
    (outcome,) = sweep_and_deliver()
    notification = Notification.objects.get()
    assert (notification.status, notification.attempts) == ("pending", 1)
    assert notification.last_error == "HTTP 502: <html>Bad gateway</html>"
    assert notification.deliver_after == SWEEP + timedelta(seconds=30)
    assert outcome.retry_after == 30.0
    assert OutboundMessage.objects.get().error == "HTTP 502: <html>Bad gateway</html>"
    destination = f"channel:{channel.pk}"
    with time_machine.travel(SWEEP + timedelta(seconds=29), tick=False):
        assert delivery.deliver(destination=destination).sent == 0  # not yet
    with time_machine.travel(SWEEP + timedelta(seconds=30), tick=False):
        outcome = delivery.deliver(destination=destination)
    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == ("pending", 2)
    assert notification.last_error == "WeCom error 45009: api freq out of limit"
    assert notification.deliver_after == SWEEP + timedelta(seconds=30 + 60)  # doubled
    with time_machine.travel(SWEEP + timedelta(seconds=90), tick=False):
        assert delivery.deliver(destination=destination).sent == 1
    notification.refresh_from_db()
    assert (notification.status, notification.attempts, notification.claimed_at) == ("sent", 3, None)
    assert list(OutboundMessage.objects.order_by("id").values_list("ok", flat=True)) == [False, False, True]


def test_after_the_last_attempt_the_notification_fails(team, robots, settings):
    settings.REMINDER_MAX_ATTEMPTS = 2
    channels.channel_create(kind="dingtalk", name="dd", target=robots.url("/dingtalk/send"), secret="s", team=team)
    unfollowed_alerts(team)
    robots.answer(
        "/dingtalk/send",
        (200, '{"errcode":310000,"errmsg":"sign not match"}'),
        (200, '{"errcode":310000,"errmsg":"sign not match"}'),
    )
    sweep_and_deliver()
    (outcome,) = sweep_and_deliver(SWEEP + timedelta(seconds=30))
    assert (outcome.sent, outcome.failed, outcome.retry_after) == (0, 1, None)
    notification = Notification.objects.get()
    assert (notification.status, notification.attempts) == ("failed", 2)
    assert notification.last_error == "DingTalk error 310000: sign not match"
    assert sweep_and_deliver(SWEEP + timedelta(minutes=4)) == []  # failed stays failed: nothing handed over


def test_an_unreachable_robot_is_a_reason_too(team):
    channels.channel_create(kind="feishu", name="fs", target="http://127.0.0.1:9/hook", team=team)
    unfollowed_alerts(team)
    sweep_and_deliver()
    notification = Notification.objects.get()
    assert notification.status == "pending"
    assert notification.last_error == "No answer from the server: [Errno 111] Connection refused"


def test_email_goes_to_each_recipient_in_their_language_with_a_link(db):
    with time_machine.travel(datetime(2026, 11, 20, 10, tzinfo=ZONE), tick=False):
        owner = UserFactory(username="mei", email="mei@example.com", language="zh-hans")
        nobody = UserFactory(username="ghost", email="")
        item = ActionItemFactory(owner=owner, title="加超时告警", due_at=datetime(2026, 11, 21, 10, tzinfo=ZONE))
        ActionItemFactory(
            incident=item.incident, owner=nobody, title="orphan", due_at=datetime(2026, 11, 21, 10, tzinfo=ZONE)
        )
    (outcome,) = sweep_and_deliver(datetime(2026, 11, 20, 10, 1, tzinfo=ZONE))
    assert (outcome.sent, outcome.failed) == (1, 1)
    (message,) = mail.outbox
    assert message.to == ["mei@example.com"]
    assert message.from_email == "Stability Tracker <stability@localhost>"
    assert f"http://127.0.0.1:8000/incidents/{item.incident_id}/#item-{item.pk}" in message.body
    assert Notification.objects.get(recipient=owner).language == "zh-hans"
    failed = Notification.objects.get(recipient=nobody)
    assert (failed.status, failed.last_error) == (
        "failed",
        "Failed: the recipient has no email address and no channel.",
    )


def test_a_disabled_channel_gets_nothing(team, robots):
    channel = channels.channel_create(kind="wecom", name="wecom", target=robots.url("/wecom/send"), team=team)
    unfollowed_alerts(team)
    with time_machine.travel(SWEEP, tick=False):
        reminders.sweep(enqueue=lambda destinations: 0)
        channels.channel_update(channel_id=channel.pk, changes={"enabled": False})
        outcome = delivery.deliver(destination=f"channel:{channel.pk}")
    assert (outcome.sent, outcome.skipped) == (0, 1)
    assert Notification.objects.get().last_error == "Skipped: the channel is disabled."
    assert robots.requests == []


@pytest.mark.parametrize(
    ("values", "errors"),
    [
        ({"kind": "wecom", "name": "x", "target": "not a url"}, {"target"}),
        ({"kind": "email", "name": "x", "target": "oncall@example.com, nope"}, {"target"}),
        ({"kind": "email", "name": "x", "target": ""}, {"target"}),  # a team's email channel needs addresses
        ({"kind": "slack", "name": "x", "target": "https://hooks.example.com/x", "events": ["nope"]}, {"events"}),
    ],
)
def test_channels_are_checked(team, values, errors):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as caught:
        channels.channel_create(team=team, **values)
    assert set(caught.value.message_dict) == errors


def test_a_channel_belongs_to_a_team_or_a_person(team):
    from django.core.exceptions import ValidationError

    person = UserFactory()
    with pytest.raises(ValidationError) as caught:
        channels.channel_create(kind="email", name="x", target="a@example.com", team=team, user=person)
    assert caught.value.message_dict == {"team": ["A channel belongs to a team or to a person: choose exactly one."]}
    with pytest.raises(ValidationError):
        channels.channel_create(kind="email", name="x", target="a@example.com")
    assert channels.channel_create(kind="email", name="mine", user=person).target == ""  # their own address


def test_the_escalation_of_an_item_of_a_team_without_managers_goes_to_its_robot(db, robots):
    team = TeamFactory(slug="settlement", name="Settlement")
    channels.channel_create(kind="wecom", name="settlement", target=robots.url("/wecom/send"), team=team)
    with time_machine.travel(datetime(2026, 11, 1, 10, tzinfo=ZONE), tick=False):
        incident = IncidentFactory(title="Batch late", systems=[SystemFactory(team=team)])
        item = ActionItemFactory(
            incident=incident,
            owner=UserFactory(username="yang", first_name="Jie", last_name="Yang", email="y@example.com"),
            title="Split the batch",
            due_at=datetime(2026, 11, 10, 15, tzinfo=ZONE),
        )
    sweep_and_deliver(datetime(2026, 11, 13, 15, 0, tzinfo=ZONE))
    (request,) = robots.requests
    assert request["json"]["markdown"]["content"] == (
        "**Stability Tracker: 1 notification**\n"
        f"- [Escalation, overdue by 3 days: Split the batch](http://127.0.0.1:8000/incidents/{incident.pk}/#item-{item.pk})\n"
        f"  Action item #{item.pk} of incident #{incident.pk} Batch late\n"
        "  Owner Jie Yang, due 2026-11-10 15:00+08:00"
    )


def test_a_claim_that_outlives_its_lease_before_its_messages_open_is_the_next_workers_alone(team, robots, monkeypatch):
    """Rendering holds no lock: a worker that takes longer than the lease between its claim and opening its
    messages finds the notifications taken over, and sends none of them (the other worker sends each once)."""
    from stability import notices

    channel = channels.channel_create(kind="wecom", name="wecom", target=robots.url("/wecom/send"), team=team)
    unfollowed_alerts(team, 3)
    destination = f"channel:{channel.pk}"
    render, taken_over = notices.render, []

    def slow_render(rows, *, now):
        if not taken_over:  # the first worker, still rendering a lease later: a second one claims
            taken_over.append(None)
            taken_over[0] = delivery.deliver(destination=destination, now=now + timedelta(seconds=61))
        return render(rows, now=now)

    monkeypatch.setattr(notices, "render", slow_render)
    with time_machine.travel(SWEEP, tick=False):
        reminders.sweep(enqueue=lambda destinations: 0)
        late = delivery.deliver(destination=destination, now=SWEEP)
    assert (taken_over[0].sent, late.sent) == (3, 0)
    assert len(robots.requests) == 1
    assert set(Notification.objects.values_list("status", "attempts")) == {("sent", 1)}
    assert OutboundMessage.objects.count() == 1


def test_a_claim_of_a_worker_that_died_before_posting_comes_free_after_the_lease_and_is_sent_once(team, robots):
    channel = channels.channel_create(kind="wecom", name="wecom", target=robots.url("/wecom/send"), team=team)
    unfollowed_alerts(team, 3)
    destination = f"channel:{channel.pk}"
    with time_machine.travel(SWEEP, tick=False):
        reminders.sweep(enqueue=lambda destinations: 0)
        dead = delivery._prepare(destination, now=SWEEP)  # claimed, then the worker died: nothing posted
    assert len(dead.messages) == 1
    with time_machine.travel(SWEEP + timedelta(seconds=59), tick=False):
        assert delivery.deliver(destination=destination).sent == 0  # the lease (60 s) still holds
    with time_machine.travel(SWEEP + timedelta(seconds=61), tick=False):
        assert delivery.deliver(destination=destination).sent == 3
    assert len(robots.requests) == 1
    closed = OutboundMessage.objects.get(pk=dead.messages[0].row.pk)
    assert (closed.ok, closed.attempted_at, closed.error) == (
        None,
        None,
        "The worker stopped before sending it; sent again.",
    )
    assert closed.finished_at == SWEEP + timedelta(seconds=61)
    assert set(Notification.objects.values_list("status", "attempts")) == {("sent", 2)}


def test_a_read_timeout_is_an_unknown_outcome_and_a_refused_connection_is_not(settings):
    settings.REMINDER_HTTP_TIMEOUT_SECONDS = 0.3
    robots = Robots()
    answer = threading.Event()
    original = robots.server.RequestHandlerClass.do_POST

    def slow(handler):
        answer.wait(5)  # reads nothing yet, answers after the sender gave up
        original(handler)

    robots.server.RequestHandlerClass.do_POST = slow
    try:
        with pytest.raises(channels.DeliveryError) as raised:
            channels.post_json(robots.url("/wecom/send"), {"msgtype": "text"})
        assert raised.value.unknown
        assert raised.value.reason == "Outcome unknown: the request was sent but no answer came (timed out)."
    finally:
        answer.set()
        robots.stop()
    with pytest.raises(channels.DeliveryError) as raised:
        channels.post_json("http://127.0.0.1:9/hook", {})
    assert not raised.value.unknown


def test_an_unknown_notification_may_be_retried_by_an_administrator(team):
    alert = unfollowed_alerts(team)[0]
    notification = Notification.objects.create(
        key="k",
        event="alert_unfollowed",
        step="unfollowed",
        alert=alert,
        destination="email",
        language="en",
        fire_at=SWEEP,
        created_at=SWEEP,
        deliver_after=SWEEP,
        status="unknown",
        attempts=1,
    )
    delivery.notification_retry(notification_id=notification.pk)
    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == ("pending", 0)
