"""The weekly report (周报) delivered on Mondays at 09:00 local for the ISO week that just ended
(stability.reminders.send_reports("week"), beat "weekly-reports"), exactly as the monthly one is: one
notification per manager (email with the PDF) and per team channel (a summary with a link), recorded once
however often it runs, each destination choosing weekly and/or monthly; and what is sent is published.

Dates worked by hand with date.isocalendar(): Monday 2026-11-30 is 2026-W49 day 1, so the week that just
ended is 2026-W48 = Mon 2026-11-23 .. Sun 2026-11-29. 2026 begins on a Thursday, so it has 53 ISO weeks:
2026-W53 = Mon 2026-12-28 .. Sun 2027-01-03, reported on Mon 2027-01-04 (2027-W01 day 1); 2027-W01 =
2027-01-04 .. 2027-01-10, reported on Mon 2027-01-11. Monday 2026-06-01 is also the 1st: both the week
2026-W22 (05-25 .. 05-31) and the month 2026-05 go out that morning. Asia/Shanghai is UTC+8 all year:
09:00 local = 01:00 UTC."""

import shutil
import subprocess
import threading
from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest
import time_machine
from celery.schedules import crontab
from django.conf import settings
from django.core import mail
from django.db import connections

from stability import channels, delivery, reminders, tasks
from stability.channels import Reply
from stability.models import Event, Notification, NotificationChannel, ReminderPolicy
from tests.conftest import needs_postgres, seed_severity_policy
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


def incident_at(system, when: str, title: str):
    with time_machine.travel(local(when), tick=False):
        return IncidentFactory(title=title, systems=[system], occurred_at=local(when), detected_at=local(when))


@pytest.fixture
def teams(db, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.SITE_URL = "https://stability.example.com"
    payments = TeamFactory(slug="payments", name="支付平台")
    TeamFactory(slug="quiet", name="Quiet")  # no managers, no channels: nobody to send to
    luna = UserFactory(username="luna", role="manager", email="luna@example.com", language="en")
    mei = UserFactory(username="mei", role="manager", email="mei@example.com", language="zh-hans")
    gone = UserFactory(username="gone", role="manager", email="gone@example.com", is_active=False)
    payments.managers.add(luna, mei, gone)
    robot = NotificationChannel.objects.create(kind="wecom", name="payments group", target=WECOM_URL, team=payments)
    cashier = SystemFactory(code="cashier", name="收银台", team=payments)
    return {"payments": payments, "luna": luna, "mei": mei, "robot": robot, "cashier": cashier}


def run_at(when: str, kind: str = "week", handed: list | None = None) -> reminders.SweepResult:
    handed = [] if handed is None else handed
    with time_machine.travel(local(when), tick=False):
        return reminders.send_reports(kind, enqueue=lambda destinations: handed.append(destinations) or 0)


def keys(team, label: str, *suffixes: str) -> set[str]:
    return {f"report:team:{team.pk}:{label}:{suffix}" for suffix in suffixes}


# --- when -----------------------------------------------------------------------------------------


def test_the_beat_entry_runs_on_mondays_at_nine_local_and_expires():
    entry = settings.CELERY_BEAT_SCHEDULE["weekly-reports"]
    assert entry["task"] == tasks.send_weekly_reports.name == "stability.tasks.send_weekly_reports"
    assert entry["schedule"] == crontab(minute=0, hour=9, day_of_week=1)
    assert settings.CELERY_TIMEZONE == settings.TIME_ZONE == "Asia/Shanghai"
    assert 0 < entry["options"]["expires"] <= 24 * 3600
    # the monthly one is still there, under its old task name
    assert settings.CELERY_BEAT_SCHEDULE["monthly-reports"]["task"] == tasks.send_monthly_reports.name


@pytest.mark.parametrize(
    ("now", "slot"),
    [
        (datetime(2026, 11, 30, 0, 59, 59, tzinfo=UTC), None),  # Monday 08:59:59 local
        (datetime(2026, 11, 30, 1, 0, tzinfo=UTC), ("2026-W48", local("2026-11-30 09:00"))),
        (local("2026-11-30 23:59:59"), ("2026-W48", local("2026-11-30 09:00"))),
        (local("2026-11-29 23:59:59"), None),  # Sunday: the week has not ended
        (local("2026-12-01 09:00"), None),  # Tuesday: too late, a later run sends nothing
        (local("2027-01-04 09:00"), ("2026-W53", local("2027-01-04 09:00"))),
        (local("2027-01-11 09:00"), ("2027-W01", local("2027-01-11 09:00"))),
    ],
)
def test_the_weekly_slot_is_monday_from_nine_local_for_the_week_just_ended(now, slot):
    assert reminders.report_slot("week", now) == slot


def test_the_hour_is_a_setting(settings):
    settings.WEEKLY_REPORT_HOUR = 7
    assert reminders.report_slot("week", local("2026-11-30 06:59")) is None
    assert reminders.report_slot("week", local("2026-11-30 07:00")) == ("2026-W48", local("2026-11-30 07:00"))
    # the monthly hour is its own
    assert reminders.report_slot("month", local("2026-12-01 07:00")) is None


def test_monday_the_first_has_both_a_week_and_a_month():
    assert reminders.report_slot("week", local("2026-06-01 09:00")) == ("2026-W22", local("2026-06-01 09:00"))
    assert reminders.report_slot("month", local("2026-06-01 09:00")) == ("2026-05", local("2026-06-01 09:00"))


# --- what is recorded -----------------------------------------------------------------------------


def test_monday_nine_records_the_week_once_per_manager_and_channel(teams, django_capture_on_commit_callbacks):
    payments, luna, mei, robot = teams["payments"], teams["luna"], teams["mei"], teams["robot"]
    handed = []
    with django_capture_on_commit_callbacks(execute=True):
        assert run_at("2026-11-29 23:59", handed=handed).considered == 0
        assert run_at("2026-11-30 08:59:59", handed=handed).considered == 0
        first = run_at("2026-11-30 09:00", handed=handed)
    # Luna and Mei by email; Gone is deactivated; the robot by default; team "quiet" has nobody.
    assert first.considered == 3
    assert {n.key for n in Notification.objects.all()} == keys(
        payments, "2026-W48", f"user:{luna.pk}:email", f"user:{mei.pk}:email", f"channel:{robot.pk}"
    )
    rows = Notification.objects.all()
    assert {(n.event, n.step, n.team_id, n.fire_at) for n in rows} == {
        (Event.WEEKLY_REPORT, "2026-W48", payments.pk, local("2026-11-30 09:00"))
    }
    assert handed == [(f"channel:{robot.pk}", "email")]

    # beat twice, a late worker, the last second of Monday, then Tuesday: nothing new
    with django_capture_on_commit_callbacks(execute=True):
        assert run_at("2026-11-30 09:00").considered == 3
        assert run_at("2026-11-30 15:30").considered == 3
        assert run_at("2026-11-30 23:59:59").considered == 3
        assert run_at("2026-12-01 09:00").considered == 0
    assert Notification.objects.count() == 3


def test_across_the_year_boundary_week_53_then_week_1(teams, django_capture_on_commit_callbacks):
    payments, robot = teams["payments"], teams["robot"]
    NotificationChannel.objects.filter(pk=robot.pk).update(enabled=False)  # only the managers' emails
    with django_capture_on_commit_callbacks(execute=True):
        assert run_at("2027-01-03 23:59:59").considered == 0
        assert run_at("2027-01-04 09:00").considered == 2
        assert run_at("2027-01-11 09:00").considered == 2
    assert set(Notification.objects.values_list("step", flat=True)) == {"2026-W53", "2027-W01"}
    assert Notification.objects.filter(team=payments).count() == 4


def test_each_destination_chooses_weekly_and_or_monthly(teams, django_capture_on_commit_callbacks):
    """Monday 2026-06-01 is the 1st: the week 2026-W22 and the month 2026-05 both go out at 09:00."""
    payments, luna, mei, robot = teams["payments"], teams["luna"], teams["mei"], teams["robot"]
    # Luna's own email channel carries the monthly report only: no weekly one for her, by any way.
    own = NotificationChannel.objects.create(kind="email", name="luna", user=luna, events=[Event.MONTHLY_REPORT])
    # The robot carries the weekly report only; a webhook carries the defaults (both); a channel of alert
    # notices carries neither.
    NotificationChannel.objects.filter(pk=robot.pk).update(events=[Event.WEEKLY_REPORT])
    hook = NotificationChannel.objects.create(
        kind="webhook", name="hook", target="https://hooks.example.com/st", team=payments
    )
    NotificationChannel.objects.create(
        kind="webhook", name="alerts", target="https://hooks.example.com/a", team=payments, events=["alert_unfollowed"]
    )
    with django_capture_on_commit_callbacks(execute=True):
        weekly = run_at("2026-06-01 09:00", "week")
        monthly = run_at("2026-06-01 09:00", "month")
    assert (weekly.considered, monthly.considered) == (3, 3)
    assert set(Notification.objects.filter(event=Event.WEEKLY_REPORT).values_list("key", flat=True)) == keys(
        payments, "2026-W22", f"user:{mei.pk}:email", f"channel:{robot.pk}", f"channel:{hook.pk}"
    )
    assert set(Notification.objects.filter(event=Event.MONTHLY_REPORT).values_list("key", flat=True)) == keys(
        payments, "2026-05", f"user:{luna.pk}:channel:{own.pk}", f"user:{mei.pk}:email", f"channel:{hook.pk}"
    )


def test_an_administrator_sets_a_managers_choice_on_the_settings_page_or_the_api(
    teams, client, admin_client_api, django_capture_on_commit_callbacks
):
    """The channel form ticks the weekly report (in the reader's language); Luna's own email channel with
    only the weekly report ticked: weekly yes, monthly no. An event the tracker does not know: a 400."""
    payments, luna, mei = teams["payments"], teams["luna"], teams["mei"]
    admin = UserFactory(username="root", role="admin")
    client.force_login(admin)
    form = client.get("/settings/channels/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert 'value="weekly_report"' in form and "稳定性周报" in form
    saved = client.post(
        "/settings/channels/",
        {"kind": "email", "name": "Luna", "user": luna.pk, "events": ["weekly_report"], "enabled": "on"},
    )
    assert saved.status_code == 302
    assert NotificationChannel.objects.get(user=luna).events == [Event.WEEKLY_REPORT]

    refused = admin_client_api.post(
        "/api/v1/notification-channels/",
        {"kind": "email", "name": "Mei", "user": mei.username, "events": ["weekly"]},
        format="json",
    )
    assert refused.status_code == 400 and "events" in refused.json()
    assert not NotificationChannel.objects.filter(user=mei).exists()

    with django_capture_on_commit_callbacks(execute=True):
        run_at("2026-06-01 09:00", "week")
        run_at("2026-06-01 09:00", "month")
    luna_gets = Notification.objects.filter(recipient=luna).values_list("event", flat=True)
    assert list(luna_gets) == [Event.WEEKLY_REPORT]
    assert set(Notification.objects.filter(recipient=mei).values_list("event", flat=True)) == {
        Event.WEEKLY_REPORT,
        Event.MONTHLY_REPORT,
    }
    assert payments.pk == Notification.objects.filter(recipient=luna).get().team_id


def test_a_chat_report_waits_out_the_teams_quiet_hours_email_does_not(teams, django_capture_on_commit_callbacks):
    ReminderPolicy.objects.create(team=teams["payments"], quiet_hours_start=time(8), quiet_hours_end=time(10))
    with django_capture_on_commit_callbacks(execute=True):
        run_at("2026-11-30 09:00")
    after = {n.destination: n.deliver_after for n in Notification.objects.all()}
    assert after == {"email": local("2026-11-30 09:00"), f"channel:{teams['robot'].pk}": local("2026-11-30 10:00")}


def test_the_task_records_and_hands_over_after_the_commit(teams, django_capture_on_commit_callbacks, monkeypatch):
    handed = []
    monkeypatch.setattr(reminders, "enqueue_deliveries", lambda destinations: handed.append(tuple(destinations)))
    with time_machine.travel(local("2026-11-30 09:00"), tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            assert tasks.send_weekly_reports() == {"considered": 3, "destinations": 2}
        with django_capture_on_commit_callbacks(execute=True):
            assert tasks.send_monthly_reports() == {"considered": 0, "destinations": 0}  # not the 1st
    assert handed == [(f"channel:{teams['robot'].pk}", "email")]


# --- what is sent ---------------------------------------------------------------------------------


def test_managers_get_the_weekly_report_by_email_with_the_pdf_and_the_channel_a_summary(
    teams, robot_posts, django_capture_on_commit_callbacks
):
    cashier = teams["cashier"]
    incident_at(cashier, "2026-11-22 23:30", "上周日的事件")  # Sunday of W47: not in the report
    incident_at(cashier, "2026-11-25 10:00", "收银台支付超时")
    incident_at(cashier, "2026-11-30 00:10", "本周一的事件")  # Monday of W49: not in it either
    with django_capture_on_commit_callbacks(execute=True):
        run_at("2026-11-30 09:00")
    with time_machine.travel(local("2026-11-30 09:00:05"), tick=False):
        emails = delivery.deliver(destination="email")
        chat = delivery.deliver(destination=f"channel:{teams['robot'].pk}")
    assert (emails.sent, emails.failed, chat.sent) == (2, 0, 1)

    by_address = {message.to[0]: message for message in mail.outbox}
    assert set(by_address) == {"luna@example.com", "mei@example.com"}
    assert by_address["luna@example.com"].subject == (
        "Weekly stability report 2026-W48 (2026-11-23 to 2026-11-29): 支付平台"
    )
    assert by_address["mei@example.com"].subject == "稳定性周报 2026-W48（2026-11-23 至 2026-11-29）：支付平台"
    link = "https://stability.example.com/reports/?period=2026-W48&team=payments"
    for message in mail.outbox:
        assert link in message.body
        assert message.subject in message.body
        ((name, content, mimetype),) = message.attachments
        assert (name, mimetype) == ("stability-report-2026-W48-payments.pdf", "application/pdf")
        assert content.startswith(b"%PDF")

    ((url, payload),) = robot_posts
    assert url == WECOM_URL
    text = payload["markdown"]["content"]
    assert "Weekly stability report 2026-W48 (2026-11-23 to 2026-11-29): 支付平台" in text
    assert f"({link})" in text
    assert Notification.objects.filter(status=Notification.Status.SENT).count() == 3


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="needs pdftotext (apt-get install poppler-utils)")
def test_the_weekly_pdf_is_the_weeks_report(teams, django_capture_on_commit_callbacks, monkeypatch):
    """The attachment is drawn from the week's report: its label and the one incident of the week, not
    those of the Sunday before or the Monday after."""
    NotificationChannel.objects.filter(pk=teams["robot"].pk).update(enabled=False)
    teams["payments"].managers.remove(teams["mei"])
    cashier = teams["cashier"]
    incident_at(cashier, "2026-11-22 23:30", "Sunday before")
    incident_at(cashier, "2026-11-25 10:00", "Wednesday inside")
    incident_at(cashier, "2026-11-30 00:10", "Monday after")
    with django_capture_on_commit_callbacks(execute=True):
        run_at("2026-11-30 09:00")
    with time_machine.travel(local("2026-11-30 09:00:05"), tick=False):
        assert delivery.deliver(destination="email").sent == 1
    (message,) = mail.outbox
    text = subprocess.run(
        ["pdftotext", "-layout", "-", "-"], input=message.attachments[0][1], capture_output=True, check=True
    ).stdout.decode()
    assert "2026-W48" in text
    assert "Wednesday inside" in text
    assert "Sunday before" not in text and "Monday after" not in text


def test_the_monthly_report_says_monthly_with_its_dates(teams, robot_posts, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        run_at("2026-12-01 09:00", "month")
    with time_machine.travel(local("2026-12-01 09:00:05"), tick=False):
        assert delivery.deliver(destination="email").sent == 2
    assert sorted(m.subject for m in mail.outbox) == [
        "Monthly stability report 2026-11 (2026-11-01 to 2026-11-30): 支付平台",
        "稳定性月报 2026-11（2026-11-01 至 2026-11-30）：支付平台",
    ]
    assert {m.attachments[0][0] for m in mail.outbox} == {"stability-report-2026-11-payments.pdf"}


# --- concurrency ----------------------------------------------------------------------------------


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_two_report_sweeps_at_once_record_each_notification_once():
    seed_severity_policy()
    team = TeamFactory(slug="payments")
    for n in range(20):
        team.managers.add(UserFactory(username=f"manager-{n}", role="manager", email=f"m{n}@example.com"))
    barrier = threading.Barrier(2)
    results, errors = [], []

    def run():
        try:
            barrier.wait(timeout=10)
            results.append(reminders.send_reports("week", now=local("2026-11-30 09:00"), enqueue=lambda d: 0))
        except Exception as error:  # reported below: a thread's exception would be lost
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert [r.considered for r in results] == [20, 20]
    assert Notification.objects.filter(step="2026-W48").count() == 20
