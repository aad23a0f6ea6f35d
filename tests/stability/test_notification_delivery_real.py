"""End to end with a real Celery worker on the real Redis and PostgreSQL, and a local HTTP server standing in
for the WeCom, DingTalk, Feishu and Slack robots and a generic webhook.

The worker (`celery -A config worker`, a subprocess) uses the test database. The test sends the sweep task
to it, as beat would; the worker records the notifications, hands each destination to a delivery task,
and posts. Every body is checked exactly, and the DingTalk and Feishu signatures and the webhook's HMAC are
recomputed here from the vendors' rules, independently of stability.channels. Email goes to files
(EMAIL_URL=filemail://...).
"""

import base64
import hashlib
import hmac
import os
import subprocess
import time
import urllib.parse
from datetime import datetime, timedelta
from email import message_from_bytes
from email.policy import default as email_policy
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from config.celery import app
from stability import channels
from stability.models import AlertOccurrence, Notification, ReminderPolicy
from stability.services import integration_create
from stability.tasks import sweep_reminders
from tests.conftest import needs_postgres, needs_redis, seed_severity_policy
from tests.factories import ActionItemFactory, IncidentFactory, SystemFactory, TeamFactory, UserFactory
from tests.stability.test_channels import Robots

pytestmark = [needs_postgres, needs_redis, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
DEADLINE = 60.0


def database_url() -> str:
    db = settings.DATABASES["default"]
    credentials = urllib.parse.quote(db["USER"] or "postgres")
    if db.get("PASSWORD"):
        credentials += ":" + urllib.parse.quote(db["PASSWORD"])
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class Worker:
    """`celery -A config worker` on the test database. By default it consumes both queues (the periodic
    one and deliveries); the layout of README's Deployment, a worker per queue, is `queues=` apart."""

    def __init__(
        self,
        directory: Path,
        mail_directory: Path,
        *,
        queues: str = "celery,deliveries",
        name: str = "reminders-test",
        concurrency: int = 4,
        env: dict[str, str] | None = None,
    ):
        self.log_path = directory / f"{name}.log"
        self._log = self.log_path.open("wb")
        env = {
            **os.environ,
            "DATABASE_URL": database_url(),  # the test database pytest made
            "CONN_MAX_AGE": "0",
            "EMAIL_URL": f"filemail:///{mail_directory}",  # four slashes: an absolute path
            # No weekly digest today, whatever day the test runs.
            "REMINDER_DIGEST_WEEKDAY": str((timezone.localtime().isoweekday() + 2) % 7 + 1),
            "DJANGO_SETTINGS_MODULE": "config.settings",
            **(env or {}),
        }
        self.process = subprocess.Popen(
            [
                str(ROOT / ".venv" / "bin" / "celery"),
                "-A",
                "config",
                "worker",
                "--pool",
                "threads",
                "--concurrency",
                str(concurrency),
                "--loglevel",
                "INFO",
                "--queues",
                queues,
                "--without-heartbeat",
                "--without-gossip",
                "--without-mingle",
                "-n",
                f"{name}-{os.getpid()}@%h",
            ],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-6000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()


def wait_for(condition, what: str, worker: Worker):
    deadline = time.monotonic() + DEADLINE
    while True:
        result = condition()
        if result:
            return result
        if worker.process.poll() is not None:
            pytest.fail(f"the worker exited with {worker.process.returncode}:\n{worker.log()}")
        if time.monotonic() > deadline:
            rows = list(Notification.objects.values_list("key", "status", "attempts", "last_error"))
            pytest.fail(f"after {DEADLINE} s still waiting for {what}; notifications: {rows}\n{worker.log()}")
        time.sleep(0.2)


def when(moment: datetime) -> str:
    return timezone.localtime(moment).isoformat(timespec="minutes").replace("T", " ")


def test_a_real_worker_delivers_to_every_kind_of_robot_and_by_email(tmp_path):
    seed_severity_policy()
    robots = Robots()
    mail_directory = tmp_path / "mail"
    mail_directory.mkdir()
    now = timezone.now().replace(microsecond=0)
    team = TeamFactory(slug="payments", name="Payments")
    # Whatever the hour the test runs at: no quiet hours for this team.
    ReminderPolicy.objects.create(team=team, quiet_hours_start="00:00", quiet_hours_end="00:00")
    lei = UserFactory(username="lei", first_name="Lei", last_name="Wang", email="lei@example.com")
    targets = {
        "wecom": ("/wecom/cgi-bin/webhook/send?key=wk", ""),
        "dingtalk": ("/dingtalk/robot/send?access_token=dt", "SECdingtalk-secret"),
        "feishu": ("/feishu/open-apis/bot/v2/hook/fs", "feishu-secret"),
        "slack": ("/slack/services/T0/B0/xyz", ""),
        "webhook": ("/webhook/stability", "hook-key"),
    }
    for kind, (path, secret) in targets.items():
        channels.channel_create(kind=kind, name=kind, target=robots.url(path), secret=secret, team=team)
    integration, _token = integration_create(kind="generic", name="prometheus")
    received = now - timedelta(minutes=6)
    alert = AlertOccurrence.objects.create(
        integration=integration,
        fingerprint="f1",
        starts_at=received,
        alertname="PaymentLatencyHigh",
        severity="critical",
        summary="p99 over 2 s",
        team=team,
        system=SystemFactory(code="cashier", team=team),
        received_at=received,
        last_received_at=received,
    )
    incident = IncidentFactory(title="Cashier timeouts", systems=[alert.system])
    due_at = now - timedelta(days=1, hours=1)
    item = ActionItemFactory(incident=incident, owner=lei, title="Add a timeout alarm", due_at=due_at)

    app.control.purge()  # nothing left over in this Redis database from an earlier run
    worker = Worker(tmp_path, mail_directory)
    try:
        sweep_reminders.delay()  # as beat does every minute
        wait_for(
            lambda: Notification.objects.count() == 6 and not Notification.objects.exclude(status="sent").exists(),
            "six notifications sent",
            worker,
        )
        # Beat again: nothing new, nothing sent twice.
        sweep_reminders.delay()
        time.sleep(3)
        assert Notification.objects.count() == 6
        assert len(robots.requests) == 5
    finally:
        worker.stop()
        robots.stop()

    alert_url = f"http://127.0.0.1:8000/alerts/{alert.pk}/"
    title = "Alert not followed up within 5 minutes: PaymentLatencyHigh"
    details = ["p99 over 2 s", f"Team Payments, system cashier, severity critical, received {when(received)}"]
    heading = "Stability Tracker: 1 notification"
    by_path = {r["path"]: r for r in robots.requests}

    wecom = by_path["/wecom/cgi-bin/webhook/send"]
    assert wecom["query"] == "key=wk"
    markdown = "\n".join([f"**{heading}**", f"- [{title}]({alert_url})", *(f"  {d}" for d in details)])
    assert wecom["json"] == {"msgtype": "markdown", "markdown": {"content": markdown}}

    dingtalk = by_path["/dingtalk/robot/send"]
    query = urllib.parse.parse_qs(dingtalk["query"])
    timestamp = int(query["timestamp"][0])
    assert abs(timestamp / 1000 - time.time()) < DEADLINE + 10
    secret = "SECdingtalk-secret"
    sign = base64.b64encode(hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest())
    assert query == {"access_token": ["dt"], "timestamp": [str(timestamp)], "sign": [sign.decode()]}
    assert dingtalk["json"] == {"msgtype": "markdown", "markdown": {"title": heading, "text": markdown}}

    feishu = by_path["/feishu/open-apis/bot/v2/hook/fs"]["json"]
    timestamp = int(feishu["timestamp"])
    assert abs(timestamp - time.time()) < DEADLINE + 10
    sign = base64.b64encode(hmac.new(f"{timestamp}\nfeishu-secret".encode(), b"", hashlib.sha256).digest())
    text = "\n".join([heading, f"- {title}", *(f"  {d}" for d in details), f"  {alert_url}"])
    assert feishu == {"timestamp": str(timestamp), "sign": sign.decode(), "msg_type": "text", "content": {"text": text}}

    slack = by_path["/slack/services/T0/B0/xyz"]["json"]
    assert slack == {"text": "\n".join([f"*{heading}*", f"• <{alert_url}|{title}>", *(f"    {d}" for d in details)])}

    webhook = by_path["/webhook/stability"]
    notification = Notification.objects.get(channel__kind="webhook")
    assert webhook["json"] == {
        "key": f"alert:{alert.pk}:unfollowed:channel:{notification.channel_id}",
        "event": "alert_unfollowed",
        "step": "unfollowed",
        "title": title,
        "text": "\n".join(details),
        "url": alert_url,
        "language": "en",
        "ids": {
            "notification": notification.pk,
            "action_item": None,
            "incident": None,
            "alert": alert.pk,
            "team": None,  # set on monthly reports only
            "recipient": None,
        },
    }
    signature = "sha256=" + hmac.new(b"hook-key", webhook["raw"], hashlib.sha256).hexdigest()
    assert webhook["headers"]["X-Stability-Signature"] == signature

    # The overdue item's owner has no channel: one email to his address.
    (mail_file,) = list(mail_directory.iterdir())
    email = message_from_bytes(mail_file.read_bytes().split(b"\n" + b"-" * 79 + b"\n")[0], policy=email_policy)
    assert email["To"] == "lei@example.com"
    assert email["Subject"] == "Overdue by 1 day: Add a timeout alarm"
    assert email.get_content().splitlines() == [
        "Overdue by 1 day: Add a timeout alarm",
        f"Action item #{item.pk} of incident #{incident.pk} Cashier timeouts",
        f"Owner Lei Wang, due {when(due_at)}",
        f"http://127.0.0.1:8000/incidents/{incident.pk}/#item-{item.pk}",
    ]
    assert set(Notification.objects.values_list("attempts", "status")) == {(1, "sent")}
