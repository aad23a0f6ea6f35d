"""The monthly report's delivery (stability.reminders.send_reports("month"), beat on the 1st at 09:00 local):
one notification per manager (email with the PDF) and per team chat channel (a summary linking to the
page), recorded once however often it runs, through the reminders' own delivery."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine
from celery.schedules import crontab
from django.conf import settings
from django.core import mail

from stability import channels, delivery, reminders
from stability.channels import Reply
from stability.models import Event, Notification, NotificationChannel
from tests.factories import IncidentFactory, SystemFactory, TeamFactory, UserFactory

ZONE = ZoneInfo("Asia/Shanghai")
WECOM_URL = "https://robot.example.com/cgi-bin/webhook/send?key=payments"


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZONE)


@pytest.fixture
def robot_posts(monkeypatch):
    posts = []

    def post(url, payload, *, headers=None):
        posts.append((url, payload))
        return Reply(200, '{"errcode": 0, "errmsg": "ok"}')

    monkeypatch.setattr(channels, "post_json", post)
    return posts


@pytest.fixture
def teams(db, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.SITE_URL = "https://stability.example.com"
    payments = TeamFactory(slug="payments", name="Payments")
    quiet = TeamFactory(slug="quiet", name="Quiet")  # no managers, no channels: nobody to send to
    luna = UserFactory(username="luna", role="manager", email="luna@example.com", language="en")
    mei = UserFactory(username="mei", role="manager", email="mei@example.com", language="zh-hans")
    payments.managers.add(luna, mei)
    robot = NotificationChannel.objects.create(kind="wecom", name="payments group", target=WECOM_URL, team=payments)
    cashier = SystemFactory(code="cashier", name="Cashier", team=payments)
    with time_machine.travel(local("2026-11-10 10:00"), tick=False):
        IncidentFactory(
            title="收银台支付超时",
            systems=[cashier],
            occurred_at=local("2026-11-10 09:00"),
            detected_at=local("2026-11-10 09:02"),
        )
    return {"payments": payments, "quiet": quiet, "luna": luna, "mei": mei, "robot": robot}


def run_at(when: str, handed: list) -> reminders.SweepResult:
    with time_machine.travel(local(when), tick=False):
        return reminders.send_reports("month", enqueue=lambda destinations: handed.append(destinations) or 0)


def test_the_beat_entry_runs_on_the_first_at_nine_local_and_expires():
    entry = settings.CELERY_BEAT_SCHEDULE["monthly-reports"]
    assert entry["task"] == "stability.tasks.send_monthly_reports"
    assert entry["schedule"] == crontab(minute=0, hour=9, day_of_month=1)
    assert settings.CELERY_TIMEZONE == settings.TIME_ZONE == "Asia/Shanghai"
    assert 0 < entry["options"]["expires"] <= 24 * 3600


def test_nothing_before_nine_on_the_first_nor_on_other_days(teams, django_capture_on_commit_callbacks):
    handed = []
    with django_capture_on_commit_callbacks(execute=True):
        assert run_at("2026-12-01 08:59:59", handed).considered == 0
        assert run_at("2026-11-30 09:00", handed).considered == 0
        assert run_at("2026-12-02 09:00", handed).considered == 0  # the day after is too late
    assert Notification.objects.count() == 0
    assert handed == []


def test_once_per_manager_and_team_channel_at_nine_and_a_second_run_records_nothing(
    teams, django_capture_on_commit_callbacks
):
    handed = []
    payments, luna, mei, robot = teams["payments"], teams["luna"], teams["mei"], teams["robot"]
    with django_capture_on_commit_callbacks(execute=True):
        first = run_at("2026-12-01 09:00", handed)
    prefix = f"report:team:{payments.pk}:2026-11"
    expected = {
        f"{prefix}:user:{luna.pk}:email",
        f"{prefix}:user:{mei.pk}:email",
        f"{prefix}:channel:{robot.pk}",
    }
    rows = Notification.objects.all()
    assert {n.key for n in rows} == expected
    assert first.considered == 3
    assert {(n.event, n.step, n.team_id) for n in rows} == {(Event.MONTHLY_REPORT, "2026-11", payments.pk)}
    assert {n.key: n.language for n in rows} == {
        f"{prefix}:user:{luna.pk}:email": "en",
        f"{prefix}:user:{mei.pk}:email": "zh-hans",
        f"{prefix}:channel:{robot.pk}": "en",
    }
    assert handed == [("channel:" + str(robot.pk), "email")]

    # beat twice, or a late worker: the same keys, nothing new
    with django_capture_on_commit_callbacks(execute=True):
        run_at("2026-12-01 09:00", handed)
        run_at("2026-12-01 15:30", handed)
    assert Notification.objects.count() == 3


def test_managers_get_an_email_with_the_pdf_and_the_channel_a_summary_with_a_link(
    teams, robot_posts, django_capture_on_commit_callbacks
):
    handed = []
    with django_capture_on_commit_callbacks(execute=True):
        run_at("2026-12-01 09:00", handed)
    with time_machine.travel(local("2026-12-01 09:00:05"), tick=False):
        sent_email = delivery.deliver(destination="email")
        sent_chat = delivery.deliver(destination=f"channel:{teams['robot'].pk}")
    assert (sent_email.sent, sent_email.failed, sent_chat.sent) == (2, 0, 1)

    assert sorted(message.to[0] for message in mail.outbox) == ["luna@example.com", "mei@example.com"]
    for message in mail.outbox:
        ((name, content, mimetype),) = message.attachments
        assert (name, mimetype) == ("stability-report-2026-11-payments.pdf", "application/pdf")
        assert content.startswith(b"%PDF")
        assert "2026-11" in message.subject and "Payments" in message.subject
        assert "https://stability.example.com/reports/?period=2026-11&team=payments" in message.body

    ((url, payload),) = robot_posts
    assert url == WECOM_URL
    text = payload["markdown"]["content"]
    assert "2026-11" in text and "Payments" in text
    assert "(https://stability.example.com/reports/?period=2026-11&team=payments)" in text
    assert Notification.objects.filter(status=Notification.Status.SENT).count() == 3


def test_the_report_is_computed_once_per_delivery_outside_any_transaction(
    teams, robot_posts, monkeypatch, django_capture_on_commit_callbacks
):
    """Two managers' emails carry one computation of the team's report (their summaries and both PDFs),
    made after the claim committed: no row or channel lock is held while it runs."""
    from django.db import connection

    from stability import reports

    build_report, calls = reports.build_report, []
    outside = len(connection.atomic_blocks)  # the test's own transaction

    def counted(**kwargs):
        calls.append(len(connection.atomic_blocks) - outside)
        return build_report(**kwargs)

    monkeypatch.setattr(reports, "build_report", counted)
    with django_capture_on_commit_callbacks(execute=True):
        run_at("2026-12-01 09:00", [])
    with time_machine.travel(local("2026-12-01 09:00:05"), tick=False):
        assert delivery.deliver(destination="email").sent == 2
    assert calls == [0]
    assert len(mail.outbox) == 2 and all(m.attachments[0][1].startswith(b"%PDF") for m in mail.outbox)
