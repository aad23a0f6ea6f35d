"""What is sent is published: a delivered weekly report is published (stability.published.publish_delivered)
as the very report the message carried, once however many destinations get it; a report not sent is not;
a publishing failure holds no delivery back. Dates as in test_weekly_report: Monday 2026-11-30 09:00 local
sends 2026-W48 (2026-11-23 .. 2026-11-29)."""

import json
import threading
from datetime import datetime

import pytest
import time_machine
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connections

from stability import channels, delivery, reminders
from stability.channels import Reply
from stability.models import Notification, NotificationChannel, PublishedReport
from stability.reports import report_json
from tests.conftest import needs_postgres, seed_severity_policy
from tests.factories import SystemFactory, TeamFactory, UserFactory
from tests.stability.test_weekly_report import WECOM_URL, incident_at, local, robot_posts, run_at, teams

__all__ = ["robot_posts", "teams"]  # the fixtures of test_weekly_report, used here too


# --- what is sent is published --------------------------------------------------------------------


@pytest.fixture
def drawn(monkeypatch):
    """The reports the emails' PDFs are drawn from (a stub PDF: test_weekly_report draws the real one)."""
    from stability import report_pdf

    reports = []
    monkeypatch.setattr(report_pdf, "report_pdf_bytes", lambda report, **kwargs: reports.append(report) or b"%PDF-")
    return reports


def stored(snapshot: dict) -> dict:
    return json.loads(json.dumps(snapshot, cls=DjangoJSONEncoder))


def test_a_delivered_weekly_report_is_published_once_as_it_was_sent(
    teams, robot_posts, drawn, django_capture_on_commit_callbacks
):
    payments, cashier = teams["payments"], teams["cashier"]
    incident_at(cashier, "2026-11-22 23:30", "Sunday before")
    inside = incident_at(cashier, "2026-11-25 10:00", "Wednesday inside")
    with django_capture_on_commit_callbacks(execute=True):
        run_at("2026-11-30 09:00")
    with time_machine.travel(local("2026-11-30 09:00:05"), tick=False):
        assert delivery.deliver(destination="email").sent == 2
    # Two emails, one report computed: one revision, its snapshot that very report.
    (report,) = {id(r): r for r in drawn}.values()
    (published,) = PublishedReport.objects.all()
    assert (published.period, published.period_kind, published.team, published.revision) == (
        "2026-W48",
        "week",
        payments,
        1,
    )
    assert (published.reason, published.published_by) == (PublishedReport.Reason.DELIVERY, None)
    assert (published.period_start, published.period_end) == (local("2026-11-23 00:00"), local("2026-11-30 00:00"))
    assert published.snapshot == stored(report_json(report))
    assert [row["id"] for row in published.snapshot["incidents"]["list"]] == [inside.pk]
    assert datetime.fromisoformat(published.snapshot["generated_at"]) == local("2026-11-30 09:00")

    # The robot's summary later, the same figures: the same revision, nothing new.
    with time_machine.travel(local("2026-11-30 09:10"), tick=False):
        assert delivery.deliver(destination=f"channel:{teams['robot'].pk}").sent == 1
    assert PublishedReport.objects.count() == 1


def test_a_report_not_sent_is_not_published(teams, drawn, monkeypatch, django_capture_on_commit_callbacks):
    busy = Reply(200, '{"errcode": 45009, "errmsg": "api freq out of limit"}')
    monkeypatch.setattr(channels, "post_json", lambda url, payload, *, headers=None: busy)
    teams["payments"].managers.clear()
    with django_capture_on_commit_callbacks(execute=True):
        run_at("2026-11-30 09:00")
    with time_machine.travel(local("2026-11-30 09:00:05"), tick=False):
        outcome = delivery.deliver(destination=f"channel:{teams['robot'].pk}")
    assert (outcome.sent, PublishedReport.objects.count()) == (0, 0)
    assert Notification.objects.get().status == Notification.Status.PENDING  # retried later


def test_a_publishing_failure_holds_no_delivery_back(
    teams, drawn, monkeypatch, caplog, django_capture_on_commit_callbacks
):
    from stability import published

    def broken(report):
        raise RuntimeError("publishing is down")

    monkeypatch.setattr(published, "publish_delivered", broken)
    with django_capture_on_commit_callbacks(execute=True):
        run_at("2026-11-30 09:00")
    with time_machine.travel(local("2026-11-30 09:00:05"), tick=False):
        outcome = delivery.deliver(destination="email")
    assert (outcome.sent, outcome.failed) == (2, 0)
    assert set(Notification.objects.filter(destination="email").values_list("status", flat=True)) == {"sent"}
    assert "Cannot publish the delivered report 2026-W48" in caplog.text
    assert PublishedReport.objects.count() == 0


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_two_destinations_delivered_at_once_publish_one_revision(settings, monkeypatch):
    """The emails and the robot's message go out from two workers at the same moment, each with the report
    it computed: the figures are the same, so the week is published once."""
    from stability import report_pdf

    seed_severity_policy()
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    monkeypatch.setattr(report_pdf, "report_pdf_bytes", lambda report, **kwargs: b"%PDF-")
    monkeypatch.setattr(channels, "post_json", lambda url, payload, *, headers=None: Reply(200, '{"errcode": 0}'))
    team = TeamFactory(slug="payments")
    team.managers.add(UserFactory(username="luna", role="manager", email="luna@example.com"))
    robot = NotificationChannel.objects.create(kind="wecom", name="group", target=WECOM_URL, team=team)
    incident_at(SystemFactory(code="cashier", team=team), "2026-11-25 10:00", "inside")
    reminders.send_reports("week", now=local("2026-11-30 09:00"), enqueue=lambda d: 0)
    barrier = threading.Barrier(2)
    outcomes, errors = [], []

    def run(destination):
        try:
            barrier.wait(timeout=10)
            outcomes.append(delivery.deliver(destination=destination, now=local("2026-11-30 09:00:05")).sent)
        except Exception as error:  # reported below: a thread's exception would be lost
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(d,)) for d in ("email", f"channel:{robot.pk}")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert sorted(outcomes) == [1, 1]
    assert list(PublishedReport.objects.values_list("period", "team__slug", "revision")) == [
        ("2026-W48", "payments", 1)
    ]
