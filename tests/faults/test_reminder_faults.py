"""Faults of the reminders (issue #11, part RELIABLE-REMINDERS), each forced deterministically:

- two sweeps whose reads and commits interleave (a sweep paused between its read and its commit by a
  patched hook), an item edited or reopened in between;
- a slow receiver while a second worker keeps trying to claim; a real Celery worker killed with SIGKILL
  in the middle of a post;
- a receiver that processes the request and answers after the HTTP timeout;
- a retry falling at 22:00; a worker whose batch is still in flight while another claims the robot;
- a slow robot with the sweep and deliveries on the worker layout of README's Deployment;
- Ctrl-C on scripts/run.sh.

Threads and processes each use their own database connection, so the tests that need them run on
PostgreSQL (and Redis for a real worker) and are skipped elsewhere, with the reason.
"""

import json
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import connections
from django.utils import timezone

from config.celery import app
from incidents.models import ActionItem
from stability import channels, delivery, reminders
from stability.models import AlertOccurrence, Notification, OutboundMessage, ReminderPolicy
from stability.services import integration_create
from stability.tasks import sweep_reminders
from tests.conftest import needs_postgres, needs_redis, seed_severity_policy
from tests.factories import ActionItemFactory, IncidentFactory, SystemFactory, TeamFactory, UserFactory
from tests.stability.test_notification_delivery_real import Worker

ZONE = ZoneInfo("Asia/Shanghai")
ROOT = Path(__file__).resolve().parents[2]
DEADLINE = 30.0  # seconds any condition below may take on a busy 2-core machine


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZONE)


def poll(condition, what: str, deadline: float = DEADLINE):
    """Wait for a condition that the code under test makes true, failing with `what` after `deadline`."""
    end = time.monotonic() + deadline
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > end:
            pytest.fail(f"after {deadline} s still waiting for {what}")
        time.sleep(0.05)


class Receiver:
    """A local HTTP server for robots and webhooks: records each request (path, headers, body, arrival
    time) and answers success, after `delay` seconds, or after `hold` is set, or as `answers` say."""

    def __init__(self, *, delay: float = 0.0, on_request=None):
        self.requests: list[dict] = []
        self.delay = delay
        self.hold = threading.Event()
        self.hold.set()
        self.answers: list[tuple[int, str]] = []
        self.on_request = on_request
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "body": body, "at": timezone.now()}
                )
                if receiver.on_request is not None:
                    receiver.on_request()
                receiver.hold.wait(60)
                if receiver.delay:
                    time.sleep(receiver.delay)
                status, text = receiver.answers.pop(0) if receiver.answers else (200, '{"errcode":0,"errmsg":"ok"}')
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(text)))
                    self.end_headers()
                    self.wfile.write(text.encode())
                except OSError:
                    pass  # the sender gave up (a timeout) or was killed

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def stop(self) -> None:
        self.hold.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.stop()


# --- two sweeps interleaved -----------------------------------------------------------------------------


class PausedSweep:
    """A sweep in a thread of its own (its own connection), stopped after it read the state and before it
    writes or commits, until `resume()`: the older sweep that commits last."""

    def __init__(self, monkeypatch, *, now: datetime):
        self.read = threading.Event()
        self.go = threading.Event()
        self.errors: list[Exception] = []
        self.result = None
        original = reminders.record_due_notifications
        paused = self

        def record_then_wait(*, now):
            answer = original(now=now)
            if threading.current_thread() is paused.thread:
                paused.read.set()
                assert paused.go.wait(DEADLINE), "the paused sweep was never resumed"
            return answer

        monkeypatch.setattr(reminders, "record_due_notifications", record_then_wait)

        def run():
            try:
                self.result = reminders.sweep(now=now, enqueue=lambda destinations: 0)
            except Exception as error:  # reported by resume(): a thread's exception would be lost
                self.errors.append(error)
            finally:
                connections.close_all()

        self.thread = threading.Thread(target=run)
        self.thread.start()
        assert self.read.wait(DEADLINE), f"the sweep never read the state: {self.errors}"

    def resume(self):
        self.go.set()
        self.thread.join(DEADLINE)
        assert not self.thread.is_alive() and self.errors == []
        return self.result


def other_sweep(now: datetime):
    """A sweep on a connection of its own that runs to its commit while the paused one waits."""
    result = []

    def run():
        try:
            result.append(reminders.sweep(now=now, enqueue=lambda destinations: 0))
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(DEADLINE)
    assert len(result) == 1
    return result[0]


@pytest.mark.postgres
@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_an_older_sweep_committing_last_never_skips_what_the_newer_one_recorded(monkeypatch):
    """Issue: 150 reminders lost when the older of two sweeps a second apart committed last."""
    seed_severity_policy()
    newer = local("2026-11-24 10:00:00")
    older = newer - timedelta(seconds=1)
    incident = IncidentFactory(systems=[SystemFactory(team=TeamFactory(slug="payments"))])
    with time_machine.travel(local("2026-11-01 10:00"), tick=False):
        # Due exactly two days before the newer sweep: overdue-1 for the older one, overdue-2 for the newer.
        for n in range(30):
            ActionItemFactory(
                incident=incident,
                owner=UserFactory(username=f"owner-{n}", email=f"owner-{n}@example.com"),
                due_at=newer - 2 * reminders.DAY,
            )

    paused = PausedSweep(monkeypatch, now=older)  # read the state at 09:59:59, then waits
    assert other_sweep(newer).considered == 30  # records the 30 overdue-2, commits
    paused.resume()  # records the 30 overdue-1 and cleans up, commits last

    statuses = Counter(Notification.objects.values_list("step", "status"))
    assert statuses == {("overdue-2", "pending"): 30, ("overdue-1", "pending"): 30}
    # The next sweep judges the older rows with a newer view: overdue-1 overtaken, overdue-2 goes.
    result = reminders.sweep(now=newer + timedelta(minutes=1), enqueue=lambda destinations: 0)
    assert result.skipped == 30
    statuses = Counter(Notification.objects.values_list("step", "status"))
    assert statuses == {("overdue-2", "pending"): 30, ("overdue-1", "skipped"): 30}
    assert delivery.deliver(destination="email", now=newer + timedelta(minutes=1)).sent == 30


@pytest.mark.postgres
@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_an_item_edited_between_two_sweeps_reads_keeps_all_four_reminders(monkeypatch, receiver):
    """Issue: an item edited between two sweeps' reads lost all 4 of its reminders."""
    seed_severity_policy()
    team = TeamFactory(slug="payments")
    team.managers.add(UserFactory(username="luna", email="luna@example.com"))
    lei = UserFactory(username="lei", email="lei@example.com")
    channels.channel_create(kind="wecom", name="lei robot", target=receiver.url("/wecom/lei"), user=lei)
    channels.channel_create(kind="email", name="lei email", user=lei)
    channels.channel_create(
        kind="wecom", name="team robot", target=receiver.url("/wecom/team"), team=team, events=["item_overdue"]
    )
    ReminderPolicy.objects.create(team=team, quiet_hours_start="00:00", quiet_hours_end="00:00")
    now = local("2026-11-24 10:00:00")
    with time_machine.travel(local("2026-11-01 10:00"), tick=False):
        item = ActionItemFactory(
            incident=IncidentFactory(systems=[SystemFactory(team=team)]), owner=lei, due_at=local("2026-12-20 10:00")
        )
    # The older sweep reads the item due in December: nothing is due.
    paused = PausedSweep(monkeypatch, now=now - timedelta(seconds=1))
    # Meanwhile the due date is corrected to three days ago: overdue-3 to the owner's robot and email and to the
    # team robot, escalation-0 to the manager. The newer sweep records the four.
    ActionItem.objects.filter(pk=item.pk).update(due_at=now - 3 * reminders.DAY)
    assert other_sweep(now).considered == 4
    paused.resume()

    assert sorted(Notification.objects.values_list("step", "status")) == [
        ("escalation-0", "pending"),
        ("overdue-3", "pending"),
        ("overdue-3", "pending"),
        ("overdue-3", "pending"),
    ]
    destinations = reminders.sweep(now=now + timedelta(minutes=1), enqueue=lambda destinations: 0).destinations
    for destination in destinations:
        delivery.deliver(destination=destination, now=now + timedelta(minutes=1))
    assert Counter(Notification.objects.values_list("status", flat=True)) == {"sent": 4}
    assert sorted(r["path"] for r in receiver.requests) == ["/wecom/lei", "/wecom/team"]


@pytest.mark.postgres
@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_an_item_reopened_after_a_sweep_read_it_done_keeps_its_pending_reminders(monkeypatch):
    """The skip is decided on the state as the UPDATE finds it, not as the sweep read it."""
    seed_severity_policy()
    now = local("2026-11-24 10:00:00")
    with time_machine.travel(local("2026-11-01 10:00"), tick=False):
        item = ActionItemFactory(owner=UserFactory(username="lei", email="lei@example.com"), due_at=now - reminders.DAY)
    reminders.sweep(now=now, enqueue=lambda destinations: 0)  # overdue-1 recorded; the broker is away
    assert list(Notification.objects.values_list("step", "status")) == [("overdue-1", "pending")]
    ActionItem.objects.filter(pk=item.pk).update(status=ActionItem.Status.DONE, completed_at=now)
    paused = PausedSweep(monkeypatch, now=now + timedelta(minutes=1))  # reads the item done
    ActionItem.objects.filter(pk=item.pk).update(status=ActionItem.Status.OPEN, completed_at=None)  # reopened
    assert paused.resume().skipped == 0
    assert list(Notification.objects.values_list("step", "status")) == [("overdue-1", "pending")]
    assert delivery.deliver(destination="email", now=now + timedelta(minutes=2)).sent == 1


# --- delivery: leases, dead workers, timeouts -------------------------------------------------------------


def unfollowed_alert(team, *, received: datetime, name: str = "PaymentLatencyHigh") -> AlertOccurrence:
    integration = AlertOccurrence._meta.get_field("integration").related_model.objects.first()
    if integration is None:
        integration, _token = integration_create(kind="generic", name="prometheus")
    return AlertOccurrence.objects.create(
        integration=integration,
        fingerprint=uuid.uuid4().hex,
        starts_at=received,
        alertname=name,
        severity="critical",
        team=team,
        received_at=received,
        last_received_at=received,
    )


@pytest.mark.postgres
@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_a_slow_receiver_never_lets_a_second_worker_send_again(settings):
    """Issue: a claim never renewed let a second worker send 21 of 220 again to a robot answering in 2 s.
    Here the lease is 2 s, the receiver takes 0.8 s a call, six calls take about 5 s: the heartbeat keeps
    the claim while a second worker tries to claim every 0.2 s."""
    seed_severity_policy()
    settings.REMINDER_CLAIM_LEASE_SECONDS = 2
    settings.REMINDER_CLAIM_HEARTBEAT_SECONDS = 0.4
    receiver = Receiver(delay=0.8)
    try:
        team = TeamFactory(slug="payments")
        hook = channels.channel_create(kind="webhook", name="hook", target=receiver.url("/hook"), team=team)
        for n in range(6):
            unfollowed_alert(team, received=timezone.now() - timedelta(minutes=6), name=f"Alert{n}")
        reminders.sweep(enqueue=lambda destinations: 0)
        destination = f"channel:{hook.pk}"
        first_done = threading.Event()
        outcomes, errors = [], []

        def first():
            try:
                outcomes.append(delivery.deliver(destination=destination))
            except Exception as error:
                errors.append(error)
            finally:
                first_done.set()
                connections.close_all()

        def second():
            try:
                while not first_done.is_set():
                    outcomes.append(delivery.deliver(destination=destination))
                    time.sleep(0.2)
            except Exception as error:
                errors.append(error)
            finally:
                connections.close_all()

        threads = [threading.Thread(target=first), threading.Thread(target=second)]
        threads[0].start()
        poll(lambda: receiver.requests, "the first worker to claim and post")
        threads[1].start()  # the second worker tries while the first one is sending
        for thread in threads:
            thread.join(DEADLINE)
        assert errors == []
        assert len(outcomes) >= 10  # the second worker did try, again and again
        keys = Counter(json.loads(r["body"])["key"] for r in receiver.requests)
        assert len(receiver.requests) == 6 and set(keys.values()) == {1}
        assert sum(o.sent for o in outcomes) == 6
        assert Counter(Notification.objects.values_list("status", "attempts")) == {("sent", 1): 6}
    finally:
        receiver.stop()


@pytest.mark.postgres
@needs_postgres
@pytest.mark.redis
@needs_redis
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_send_frees_its_claims_and_never_posts_a_robot_twice(settings, tmp_path):
    """A real worker is killed with SIGKILL while its posts to a WeCom robot and to a webhook are in flight.
    A lease (3 s here, a minute by default) after its last heartbeat, the next delivery closes its messages:
    the robot's notice is unknown and not posted again; the webhook's goes again with the same key."""
    seed_severity_policy()
    lease = 3
    settings.REMINDER_CLAIM_LEASE_SECONDS = lease
    receiver = Receiver()
    receiver.hold.clear()  # nothing is answered until the worker is dead
    team = TeamFactory(slug="payments")
    robot = channels.channel_create(kind="wecom", name="robot", target=receiver.url("/wecom"), team=team)
    hook = channels.channel_create(kind="webhook", name="hook", target=receiver.url("/hook"), team=team)
    alert = unfollowed_alert(team, received=timezone.now() - timedelta(minutes=6))
    app.control.purge()
    worker = Worker(
        tmp_path,
        tmp_path,
        name="ha-killed",
        env={
            "REMINDER_CLAIM_LEASE_SECONDS": str(lease),
            "REMINDER_CLAIM_HEARTBEAT_SECONDS": "0.5",
            "REMINDER_HTTP_TIMEOUT_SECONDS": "60",
        },
    )
    try:
        sweep_reminders.delay()
        poll(lambda: len(receiver.requests) == 2, "both posts in flight")
        worker.process.kill()  # SIGKILL: no clean-up of any kind
        worker.process.wait(10)
        killed = time.monotonic()
        receiver.hold.set()
    finally:
        worker.stop()
    try:
        assert Counter(Notification.objects.values_list("status", flat=True)) == {"pending": 2}
        assert OutboundMessage.objects.filter(finished_at__isnull=True, attempted_at__isnull=False).count() == 2

        def taken_over() -> bool:
            for channel in (robot, hook):
                delivery.deliver(destination=f"channel:{channel.pk}")
            return not Notification.objects.filter(status="pending").exists()

        poll(taken_over, "the dead worker's claims to come free")
        # Not before the lease lapsed (the claim was the dead worker's), and well within a minute.
        assert lease - 1 <= time.monotonic() - killed <= lease + 10
        robot_notice = Notification.objects.get(channel=robot)
        assert robot_notice.status == "unknown"
        assert robot_notice.last_error.startswith("Outcome unknown: the worker sending it stopped")
        assert Notification.objects.get(channel=hook).status == "sent"
        paths = Counter(r["path"] for r in receiver.requests)
        assert paths == {"/wecom": 1, "/hook": 2}
        keys = {r["headers"].get("Idempotency-Key") for r in receiver.requests if r["path"] == "/hook"}
        assert keys == {f"alert:{alert.pk}:unfollowed:channel:{hook.pk}"}
        messages = {(m.destination, m.ok, m.error) for m in OutboundMessage.objects.all() if m.finished_at is not None}
        stopped = "The worker sending it stopped after the request went out: outcome unknown."
        assert messages == {
            (f"channel:{robot.pk}", None, stopped),
            (f"channel:{hook.pk}", None, stopped),
            (f"channel:{hook.pk}", True, ""),
        }
        assert OutboundMessage.objects.count() == 3
    finally:
        receiver.stop()


def test_a_timed_out_post_is_unknown_for_a_robot_and_retried_with_its_key_for_a_webhook(db, settings):
    """Issue: a POST timing out after the receiver processed it was retried: 42 of 42 arrived twice."""
    settings.REMINDER_HTTP_TIMEOUT_SECONDS = 0.5
    processed: list[str] = []
    receiver = Receiver(delay=1.5)  # processes at once, answers after the sender gave up

    def process():
        request = receiver.requests[-1]
        key = request["headers"].get("Idempotency-Key") or request["body"].decode()
        if key not in processed:  # what a receiver honouring Idempotency-Key does
            processed.append(key)

    receiver.on_request = process
    try:
        team = TeamFactory(slug="payments")
        robot = channels.channel_create(kind="wecom", name="robot", target=receiver.url("/wecom"), team=team)
        hook = channels.channel_create(kind="webhook", name="hook", target=receiver.url("/hook"), team=team)
        unfollowed_alert(team, received=timezone.now() - timedelta(minutes=6))
        now = timezone.now()
        for destination in reminders.sweep(now=now, enqueue=lambda destinations: 0).destinations:
            delivery.deliver(destination=destination, now=now)
        robot_notice, hook_notice = (Notification.objects.get(channel=c) for c in (robot, hook))
        assert (robot_notice.status, hook_notice.status) == ("unknown", "pending")
        assert robot_notice.last_error.startswith("Outcome unknown: the request was sent but no answer came")
        assert hook_notice.deliver_after >= now + timedelta(seconds=30)
        assert list(OutboundMessage.objects.values_list("ok", flat=True)) == [None, None]

        receiver.delay = 0
        later = now + timedelta(minutes=1)
        for destination in reminders.sweep(now=later, enqueue=lambda destinations: 0).destinations:
            delivery.deliver(destination=destination, now=later)
        delivery.deliver(destination=f"channel:{robot.pk}", now=later)
        hook_notice.refresh_from_db()
        assert (hook_notice.status, hook_notice.attempts) == ("sent", 2)
        assert Counter(r["path"] for r in receiver.requests) == {"/wecom": 1, "/hook": 2}
        hook_keys = [r["headers"]["Idempotency-Key"] for r in receiver.requests if r["path"] == "/hook"]
        assert hook_keys == [hook_notice.key] * 2
        assert len(processed) == 2  # one robot message, one webhook notification: each processed once
    finally:
        receiver.stop()


# --- quiet hours and the robot's budget --------------------------------------------------------------------


def test_a_retry_falling_at_22_00_waits_for_the_morning(db, receiver):
    """Issue: a chat reminder that failed at 21:58 was retried and posted at 22:00:01."""
    lei = UserFactory(username="lei", email="lei@example.com")
    channels.channel_create(kind="wecom", name="lei robot", target=receiver.url("/wecom"), user=lei)
    failed_at = local("2026-11-24 21:59:31")
    with time_machine.travel(local("2026-11-01 10:00"), tick=False):
        ActionItemFactory(owner=lei, due_at=failed_at)
    receiver.answers = [(502, "bad gateway")]
    with time_machine.travel(failed_at, tick=False):
        (destination,) = reminders.sweep(enqueue=lambda destinations: 0).destinations
        morning = local("2026-11-25 08:00")
        assert delivery.deliver(destination=destination).retry_after == (morning - failed_at).total_seconds()
    notice = Notification.objects.get()
    assert (notice.status, notice.deliver_after) == ("pending", morning)
    for moment in ("2026-11-24 22:00:01", "2026-11-25 03:00", "2026-11-25 07:59:59"):
        with time_machine.travel(local(moment), tick=False):
            reminders.sweep(enqueue=lambda destinations: 0)
            assert delivery.deliver(destination=destination).sent == 0
    assert len(receiver.requests) == 1  # the failed one
    with time_machine.travel(local("2026-11-25 08:00"), tick=False):
        assert delivery.deliver(destination=destination).sent == 1
    assert [timezone.localtime(r["at"], ZONE).strftime("%H:%M:%S") for r in receiver.requests] == [
        "21:59:31",
        "08:00:00",
    ]


def most_in_a_minute(arrivals: list[datetime]) -> int:
    arrivals = sorted(arrivals)
    return max(
        sum(1 for later in arrivals[i:] if later - first < timedelta(seconds=60)) for i, first in enumerate(arrivals)
    )


def test_a_batch_still_in_flight_counts_against_the_robots_minute(db, receiver, settings):
    """Issue: 35 messages reached one robot within 60 s (limit 20). Worker A claims 4 messages (the limit)
    and posts 2; 61 s later, its other 2 still in flight (its heartbeat renewing the claim), worker B claims
    the robot; then A posts its last 2. No 60 s window may hold more than 4."""
    settings.REMINDER_CHAT_ENTRIES_PER_MESSAGE = 1
    team = TeamFactory(slug="payments")
    robot = channels.channel_create(
        kind="wecom", name="robot", target=receiver.url("/wecom"), team=team, messages_per_minute=4
    )
    destination = f"channel:{robot.pk}"
    start = local("2026-11-24 10:00")
    for n in range(12):
        unfollowed_alert(team, received=start - timedelta(minutes=6), name=f"Alert{n}")
    with time_machine.travel(start, tick=False) as clock:
        reminders.sweep(enqueue=lambda destinations: 0)
        worker_a = delivery._prepare(destination, now=start)
        assert len(worker_a.messages) == 4
        delivery._send_all(delivery._Plan(messages=worker_a.messages[:2]), destination, None)
        clock.move_to(start + timedelta(seconds=61))
        in_flight = [m.row.pk for m in worker_a.messages[2:]]
        Notification.objects.filter(message__in=in_flight).update(claimed_at=timezone.now())  # A's heartbeat
        worker_b = delivery.deliver(destination=destination)
        clock.move_to(start + timedelta(seconds=62))
        delivery._send_all(delivery._Plan(messages=worker_a.messages[2:]), destination, None)
    assert worker_b.sent == 2  # the 2 in flight counted: 4 - 2
    assert most_in_a_minute([r["at"] for r in receiver.requests]) == 4
    assert len(receiver.requests) == 6


# --- worker layout: a slow robot never holds the sweep back ----------------------------------------------


@pytest.mark.postgres
@needs_postgres
@pytest.mark.redis
@needs_redis
@pytest.mark.django_db(transaction=True)
def test_a_slow_robot_never_delays_the_sweep_on_the_documented_worker_layout(tmp_path):
    """Issue: with a slow channel no sweep ran for 6 minutes. The workers of README's Deployment: one for the
    periodic queue, one for deliveries (each with one slot, the worst case). Four deliveries of 3 s each are
    queued when the next sweep is sent: it must run at once, not after them."""
    seed_severity_policy()
    receiver = Receiver(delay=3)
    team = TeamFactory(slug="payments")
    for n in range(4):
        channels.channel_create(kind="wecom", name=f"robot {n}", target=receiver.url(f"/wecom/{n}"), team=team)
    unfollowed_alert(team, received=timezone.now() - timedelta(minutes=6))
    app.control.purge()
    periodic = Worker(tmp_path, tmp_path, queues="celery", name="ha-periodic", concurrency=1)
    deliveries = Worker(tmp_path, tmp_path, queues="deliveries", name="ha-deliveries", concurrency=1)
    try:
        sweep_reminders.delay()
        poll(lambda: receiver.requests, "the first slow post")
        late = unfollowed_alert(team, received=timezone.now() - timedelta(minutes=6), name="Late")
        sent = time.monotonic()
        sweep_reminders.delay()
        # The second sweep records the late alert's four notices while the deliveries still crawl.
        poll(lambda: Notification.objects.filter(alert=late).count() == 4, "the second sweep", deadline=6)
        assert time.monotonic() - sent < 6
        assert len(receiver.requests) < 4  # the slow deliveries were indeed still going on
    finally:
        periodic.stop()
        deliveries.stop()
        receiver.stop()


# --- make run: Ctrl-C stops everything ----------------------------------------------------------------------


def free_port() -> int:
    """A port nothing listens on now, picked by the system (two runs of the suite at once never collide)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def processes_with(marker: str) -> list[int]:
    """Every process whose environment carries the marker: the script and all it started, however deep."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


class SilentSmtp:
    """A mail server that accepts connections and never says a word: a delivery task stays in smtplib's
    greeting for ever (Django's default EMAIL_TIMEOUT is none), as a Celery worker once hung at Ctrl-C."""

    def __init__(self):
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(8)
        self.port = self.socket.getsockname()[1]
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                self.connections.append(self.socket.accept()[0])
            except OSError:
                return

    def stop(self):
        for conn in self.connections:
            conn.close()
        self.socket.close()


@pytest.mark.skipif(not Path("/proc").exists(), reason="reads /proc to find every process the script started")
def test_ctrl_c_on_make_run_stops_every_process_within_10_seconds(tmp_path):
    """Ctrl-C while a delivery hangs on a mail server that never answers: the worker's warm shutdown would
    wait for it for ever; the script kills what has not stopped by its deadline."""
    from celery import Celery

    marker = f"HA_RUN_MARKER={uuid.uuid4().hex}"
    smtp = SilentSmtp()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")}
    var = tmp_path / "var"
    env.update(
        VAR_DIR=str(var),
        HOST="127.0.0.1",
        PORT=str(free_port()),
        LOG_LEVEL="WARNING",
        EMAIL_URL=f"smtp://127.0.0.1:{smtp.port}",
    )
    env[marker.split("=")[0]] = marker.split("=")[1]
    log = (tmp_path / "run.log").open("wb")
    script = subprocess.Popen(
        ["bash", str(ROOT / "scripts" / "run.sh")],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, as a terminal gives it
    )
    try:
        poll(lambda: b"Press Ctrl-C" in (tmp_path / "run.log").read_bytes(), "the script to start", deadline=120)
        # What beat does every minute, now: the demo's overdue items become emails, and their delivery hangs.
        folder = str(var / "broker" / "queue")
        broker = Celery(
            broker="filesystem://",
            broker_transport_options={
                "data_folder_in": folder,
                "data_folder_out": folder,
                "control_folder": str(var / "broker" / "control"),
            },
        )
        broker.send_task("stability.tasks.sweep_reminders", queue="celery")
        poll(lambda: smtp.connections, "a delivery to hang on the silent mail server", deadline=60)
        assert len(processes_with(marker)) >= 5  # the script, two workers, beat, the server (and pools)
        os.killpg(script.pid, signal.SIGINT)  # what Ctrl-C does: the terminal's process group
        stopped = time.monotonic()
        poll(lambda: not processes_with(marker), "every process to stop", deadline=10)
        assert time.monotonic() - stopped < 10
        assert script.wait(1) is not None
    finally:
        for pid in processes_with(marker):
            os.kill(pid, signal.SIGKILL)
        log.close()
        smtp.stop()
