"""The reminder sweep (stability.reminders), walked through time with time-machine.

Times are local (Asia/Shanghai, UTC+8, no daylight saving). The item of the walk is due Wednesday
2026-11-25 21:30 local; with the default policy its owner hears 3 and 1 days before, at due, then daily;
its team's manager hears 3 days after due, then weekly; chat waits out quiet hours 22:00-08:00.
"""

import threading
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core import mail
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext

from incidents.models import ActionItem
from stability import channels, delivery, reminders
from stability.channels import Reply
from stability.models import AlertOccurrence, Notification, NotificationChannel, ReminderPolicy
from stability.services import alerts_follow_up, integration_create
from tests.conftest import needs_postgres, seed_severity_policy
from tests.factories import ActionItemFactory, IncidentFactory, SystemFactory, TeamFactory, UserFactory

ZONE = ZoneInfo("Asia/Shanghai")
WECOM_URL = "https://robot.example.com/cgi-bin/webhook/send?key=lei"


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZONE)


def shown(moment: datetime) -> str:
    return moment.astimezone(ZONE).strftime("%m-%d %H:%M")


@pytest.fixture
def robot_posts(monkeypatch):
    """Chat robots answer success; what they were sent is kept (bodies are checked in test_channels*)."""
    posts = []

    def post(url, payload, *, headers=None):
        posts.append((url, payload))
        return Reply(200, '{"errcode": 0, "errmsg": "ok", "code": 0}')  # WeCom, DingTalk and Feishu's "ok"

    monkeypatch.setattr(channels, "post_json", post)
    return posts


def deliver_all(destinations) -> int:
    for destination in destinations:
        delivery.deliver(destination=destination)
    return len(destinations)


def sweep_at(when: str, capture) -> list[tuple]:
    """Sweep (and deliver what it hands over) at a local time; the notifications it recorded."""
    with time_machine.travel(local(when), tick=False):
        known = set(Notification.objects.values_list("pk", flat=True))
        with capture(execute=True):
            reminders.sweep(enqueue=deliver_all)
    return rows(Notification.objects.exclude(pk__in=known))


def rows(notifications) -> list[tuple]:
    return sorted(
        (
            n.event,
            n.step,
            n.recipient.username if n.recipient else None,
            n.channel.name if n.channel else None,
            shown(n.deliver_after),
            n.status,
        )
        for n in notifications.select_related("recipient", "channel")
    )


@pytest.fixture
def world(db):
    """Team payments managed by Luna (Chinese, no channel: email); Lei owns the item and has a WeCom robot
    and an email channel of his own."""
    with time_machine.travel(local("2026-11-20 10:00"), tick=False):
        team = TeamFactory(slug="payments", name="Payments")
        luna = UserFactory(username="luna", email="luna@example.com", language="zh-hans")
        team.managers.add(luna)
        lei = UserFactory(username="lei", email="lei@example.com", first_name="Lei", last_name="Wang")
        channels.channel_create(kind="wecom", name="lei wecom", target=WECOM_URL, user=lei)
        channels.channel_create(kind="email", name="lei email", user=lei)
        incident = IncidentFactory(title="Cashier timeouts", systems=[SystemFactory(code="cashier", team=team)])
        item = ActionItemFactory(
            incident=incident, owner=lei, title="Add a timeout alarm", due_at=local("2026-11-25 21:30")
        )
    return {"team": team, "luna": luna, "lei": lei, "item": item, "incident": incident}


def test_one_item_from_three_days_before_due_to_done(world, robot_posts, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    item = world["item"]
    assert sweep_at("2026-11-20 10:00", capture) == []  # due in 5 days 11.5 h: nothing yet

    # due - 3 days, 21:30 is before quiet hours: both channels at once.
    before_3 = [
        ("item_before_due", "before-3", "lei", "lei email", "11-22 21:30", "sent"),
        ("item_before_due", "before-3", "lei", "lei wecom", "11-22 21:30", "sent"),
    ]
    assert sweep_at("2026-11-22 21:30", capture) == before_3
    assert sweep_at("2026-11-22 21:45", capture) == []  # recorded once, however many sweeps

    # Monday 09:00: the weekly digest of the people with open items.
    assert sweep_at("2026-11-23 09:00", capture) == [
        ("digest", "2026-W48", "lei", "lei email", "11-23 09:00", "sent"),
        ("digest", "2026-W48", "lei", "lei wecom", "11-23 09:00", "sent"),
    ]
    assert sweep_at("2026-11-24 21:30", capture) == [
        ("item_before_due", "before-1", "lei", "lei email", "11-24 21:30", "sent"),
        ("item_before_due", "before-1", "lei", "lei wecom", "11-24 21:30", "sent"),
    ]
    assert sweep_at("2026-11-25 21:30", capture) == [
        ("item_due", "due", "lei", "lei email", "11-25 21:30", "sent"),
        ("item_due", "due", "lei", "lei wecom", "11-25 21:30", "sent"),
    ]
    # Beat and workers down for two days: one overdue message (the latest, 2 days), not two. 22:40 is in
    # quiet hours: email goes now, the robot waits for 08:00.
    assert sweep_at("2026-11-27 22:40", capture) == [
        ("item_overdue", "overdue-2", "lei", "lei email", "11-27 22:40", "sent"),
        ("item_overdue", "overdue-2", "lei", "lei wecom", "11-28 08:00", "pending"),
    ]
    assert sweep_at("2026-11-28 07:59", capture) == []
    assert Notification.objects.get(step="overdue-2", channel__kind="wecom").status == "pending"
    assert sweep_at("2026-11-28 08:00", capture) == []
    assert Notification.objects.get(step="overdue-2", channel__kind="wecom").status == "sent"

    # 3 days overdue: the owner as every day, and the escalation to the manager (email, no channel).
    assert sweep_at("2026-11-28 21:30", capture) == [
        ("item_escalation", "escalation-0", "luna", None, "11-28 21:30", "sent"),
        ("item_overdue", "overdue-3", "lei", "lei email", "11-28 21:30", "sent"),
        ("item_overdue", "overdue-3", "lei", "lei wecom", "11-28 21:30", "sent"),
    ]
    assert sweep_at("2026-11-29 21:29", capture) == []
    assert sweep_at("2026-11-30 09:00", capture) == [
        ("digest", "2026-W49", "lei", "lei email", "11-30 09:00", "sent"),
        ("digest", "2026-W49", "lei", "lei wecom", "11-30 09:00", "sent"),
        # the overdue-4 of 11-29 21:30, missed by the sweeps above
        ("item_overdue", "overdue-4", "lei", "lei email", "11-30 09:00", "sent"),
        ("item_overdue", "overdue-4", "lei", "lei wecom", "11-30 09:00", "sent"),
    ]
    # Escalations are weekly: 11-28 21:30 + 7 days.
    assert sweep_at("2026-12-05 21:29", capture)[0][1] == "overdue-9"
    assert sweep_at("2026-12-05 21:30", capture) == [
        ("item_escalation", "escalation-1", "luna", None, "12-05 21:30", "sent"),
        ("item_overdue", "overdue-10", "lei", "lei email", "12-05 21:30", "sent"),
        ("item_overdue", "overdue-10", "lei", "lei wecom", "12-05 21:30", "sent"),
    ]

    # Done: nothing more, ever.
    ActionItem.objects.filter(pk=item.pk).update(status=ActionItem.Status.DONE, completed_at=local("2026-12-06 10:00"))
    assert sweep_at("2026-12-06 21:30", capture) == []
    assert sweep_at("2026-12-12 21:30", capture) == []

    # Everything recorded was delivered once: 10 times to each of Lei's channels, twice to Luna.
    sent = Notification.objects.filter(status="sent")
    assert sent.count() == Notification.objects.count() == 10 * 2 + 2
    # One post per WeCom notification, but on 11-30 the digest and overdue-4 went together.
    assert len(robot_posts) == 9
    assert [m.to for m in mail.outbox].count(["lei@example.com"]) == 10
    escalations = [m for m in mail.outbox if m.to == ["luna@example.com"]]
    # Luna reads Chinese: her escalations are in it.
    assert [m.subject for m in escalations] == [
        "升级提醒，已逾期 3 天：Add a timeout alarm",
        "升级提醒，已逾期 10 天：Add a timeout alarm",
    ]
    assert Notification.objects.filter(recipient__username="luna").values_list(
        "language", flat=True
    ).distinct().get() == ("zh-hans")
    assert f"http://127.0.0.1:8000/incidents/{item.incident_id}/#item-{item.pk}" in escalations[0].body
    assert "负责人 Lei Wang，截止 2026-11-25 21:30+08:00" in escalations[0].body


def test_an_item_created_two_days_before_due_gets_before_1_not_a_late_before_3(
    db, robot_posts, django_capture_on_commit_callbacks
):
    owner = UserFactory(username="fu", email="fu@example.com")
    with time_machine.travel(local("2026-11-20 10:00"), tick=False):
        ActionItemFactory(owner=owner, due_at=local("2026-11-22 10:00"))
    assert sweep_at("2026-11-20 10:01", django_capture_on_commit_callbacks) == []
    assert sweep_at("2026-11-21 10:00", django_capture_on_commit_callbacks) == [
        ("item_before_due", "before-1", "fu", None, "11-21 10:00", "sent")
    ]


def test_a_team_policy_changes_the_schedule_and_quiet_hours(db, robot_posts, django_capture_on_commit_callbacks):
    team = TeamFactory(slug="settlement")
    ReminderPolicy.objects.create(
        team=team,
        days_before=[5],
        escalate_after_days=1,
        escalate_every_days=2,
        quiet_hours_start=local("2026-01-01 12:00").time(),
        quiet_hours_end=local("2026-01-01 14:00").time(),
    )
    owner = UserFactory(username="yang", email="yang@example.com")
    channels.channel_create(
        kind="dingtalk", name="yang robot", target="https://oapi.example.com/robot/send", user=owner
    )
    with time_machine.travel(local("2026-11-01 10:00"), tick=False):
        incident = IncidentFactory(systems=[SystemFactory(team=team)])
        ActionItemFactory(incident=incident, owner=owner, due_at=local("2026-11-10 12:30"))

    def sweep_items_at(when: str) -> list[tuple]:
        return [r for r in sweep_at(when, django_capture_on_commit_callbacks) if r[0] != "digest"]

    assert sweep_items_at("2026-11-05 12:30") == [
        ("item_before_due", "before-5", "yang", "yang robot", "11-05 14:00", "pending")  # quiet 12:00-14:00
    ]
    assert sweep_items_at("2026-11-09 12:30") == []  # no before-1 in this policy
    assert sweep_items_at("2026-11-11 12:30") == [
        ("item_overdue", "overdue-1", "yang", "yang robot", "11-11 14:00", "pending"),
    ]
    # The team has no manager: escalations go to its channels, here none; a team robot added now gets them.
    channels.channel_create(kind="slack", name="settlement slack", target="https://hooks.example.com/T/B/x", team=team)
    assert sweep_items_at("2026-11-13 12:31") == [
        ("item_escalation", "escalation-1", None, "settlement slack", "11-13 14:00", "pending"),
        ("item_overdue", "overdue-3", "yang", "yang robot", "11-13 14:00", "pending"),
    ]
    # Every sweep here ran inside the quiet hours: before-5, handed over at 11-09 12:30, was held at delivery
    # (never posted inside them) until overdue-1 overtook it; overdue-1, waiting for 14:00 on 11-11, found no
    # sweep before overdue-3 overtook it. Both skipped, none sent late, nothing posted in quiet hours.
    before = Notification.objects.get(step="before-5")
    overdue_1 = Notification.objects.get(step="overdue-1")
    assert (before.status, overdue_1.status) == ("skipped", "skipped")
    assert overdue_1.last_error == "Superseded by a later reminder, or the recipients changed."
    # Only the weekly digest (the organisation's quiet hours, 22:00-08:00) reached the robot.
    assert [payload["markdown"]["title"] for _url, payload in robot_posts] == ["Stability Tracker: 1 notification"]
    assert "Your action items this week" in robot_posts[0][1]["markdown"]["text"]


def test_quiet_hours_end():
    policy = reminders.default_policy()  # 22:00-08:00 local
    assert reminders.quiet_hours_end(local("2026-11-27 21:59"), policy) is None
    assert reminders.quiet_hours_end(local("2026-11-27 22:00"), policy) == local("2026-11-28 08:00")
    assert reminders.quiet_hours_end(local("2026-11-28 00:30"), policy) == local("2026-11-28 08:00")
    assert reminders.quiet_hours_end(local("2026-11-28 07:59"), policy) == local("2026-11-28 08:00")
    assert reminders.quiet_hours_end(local("2026-11-28 08:00"), policy) is None
    same = reminders.Policy((1,), 3, 7, policy.quiet_hours_start, policy.quiet_hours_start)
    assert reminders.quiet_hours_end(local("2026-11-27 23:00"), same) is None  # start = end: none


def test_moving_the_due_date_makes_pending_reminders_stale_and_restarts_the_schedule(
    world, robot_posts, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    item = world["item"]
    # Recorded at 23:00 (quiet): the robot's copy waits for the morning.
    assert sweep_at("2026-11-22 23:00", capture)[1] == (
        "item_before_due",
        "before-3",
        "lei",
        "lei wecom",
        "11-23 08:00",
        "pending",
    )
    # The owner moves the due date a week out before the morning.
    ActionItem.objects.filter(pk=item.pk).update(due_at=local("2026-12-02 21:30"))
    # At delivery time the robot's copy is stale: skipped, with the reason.
    with time_machine.travel(local("2026-11-23 08:00"), tick=False):
        outcome = delivery.deliver(destination=Notification.objects.get(channel__kind="wecom").destination)
    assert (outcome.sent, outcome.skipped) == (0, 1)
    stale = Notification.objects.get(channel__kind="wecom")
    assert (stale.status, stale.last_error) == ("skipped", "Stale: the due date changed.")
    assert robot_posts == []
    # The new schedule starts over: before-3 of the new date.
    assert sweep_at("2026-11-29 21:30", capture) == [
        ("item_before_due", "before-3", "lei", "lei email", "11-29 21:30", "sent"),
        ("item_before_due", "before-3", "lei", "lei wecom", "11-29 21:30", "sent"),
    ]
    assert Notification.objects.filter(key__contains="due=2026-12-02T13:30:00Z").count() == 2


def test_a_sweep_skips_pending_reminders_of_an_item_done_meanwhile(world, django_capture_on_commit_callbacks):
    with time_machine.travel(local("2026-11-22 23:00"), tick=False):
        reminders.sweep(enqueue=lambda destinations: 0)  # the broker is away: nothing delivered
    assert Notification.objects.filter(status="pending").count() == 2
    ActionItem.objects.filter(pk=world["item"].pk).update(
        status=ActionItem.Status.DONE, completed_at=local("2026-11-23 07:00")
    )
    with time_machine.travel(local("2026-11-23 08:00"), tick=False):
        result = reminders.sweep(enqueue=lambda destinations: 0)
    assert (result.considered, result.skipped, result.destinations) == (0, 2, ())
    assert set(Notification.objects.values_list("status", "last_error")) == {
        ("skipped", "Stale: the action item is no longer open.")
    }


def test_the_digest_is_weekly_for_people_with_open_items(db, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    with time_machine.travel(local("2026-11-01 10:00"), tick=False):
        busy = UserFactory(username="busy", email="busy@example.com")
        idle = UserFactory(username="idle", email="idle@example.com")
        ActionItemFactory(owner=busy, title="Overdue one", due_at=local("2026-11-20 10:00"))
        ActionItemFactory(owner=busy, title="Later one", due_at=local("2026-12-31 10:00"))
        ActionItemFactory(owner=idle, status=ActionItem.Status.DONE, completed_at=local("2026-11-02 10:00"))
    assert sweep_at("2026-11-23 08:59", capture)[0][0] == "item_overdue"  # not yet Monday 09:00
    digest = [("digest", "2026-W48", "busy", None, "11-23 09:00", "sent")]
    assert [r for r in sweep_at("2026-11-23 09:00", capture) if r[0] == "digest"] == digest
    assert [r for r in sweep_at("2026-11-23 15:00", capture) if r[0] == "digest"] == []  # once a week
    email = next(m for m in mail.outbox if m.subject.startswith("Your action items"))
    assert email.subject == "Your action items this week: 2 open, 1 overdue"
    assert "Overdue one, due 2026-11-20 10:00+08:00 (overdue)" in email.body
    assert "Later one, due 2026-12-31 10:00+08:00:" in email.body
    # Catching up is for a day: a sweep first running on Tuesday 09:00 finds no digest to send.
    Notification.objects.filter(event="digest").delete()
    assert [r for r in sweep_at("2026-11-24 09:00", capture) if r[0] == "digest"] == []


def alert_at(received: str, *, team, **fields) -> AlertOccurrence:
    integration = AlertOccurrence._meta.get_field("integration").related_model.objects.first()
    if integration is None:
        integration, _token = integration_create(kind="generic", name="prometheus")
    moment = local(received)
    return AlertOccurrence.objects.create(
        integration=integration,
        fingerprint=f"fp-{AlertOccurrence.objects.count()}",
        starts_at=moment,
        alertname="PaymentLatencyHigh",
        severity="critical",
        summary="p99 over 2 s",
        team=team,
        received_at=moment,
        last_received_at=moment,
        **fields,
    )


def test_an_unfollowed_alert_is_told_to_the_team_once_and_escalated_once(db, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    team = TeamFactory(slug="payments")
    manager = UserFactory(username="luna", email="luna@example.com")
    team.managers.add(manager)
    channels.channel_create(kind="email", name="payments oncall", target="oncall@example.com", team=team)
    alert = alert_at("2026-11-27 23:00", team=team)
    alert_at("2026-11-27 23:00", team=None)  # no team: no one to tell
    alert_at("2026-11-27 23:00", team=team, excluded=AlertOccurrence.Exclusion.MAINTENANCE)
    alert_at("2026-11-26 22:59", team=team)  # more than a day old when the sweeps run: never paged

    assert sweep_at("2026-11-27 23:05", capture) == []  # exactly 300 s: a follow-up now is still in time
    with time_machine.travel(local("2026-11-27 23:05:01"), tick=False), capture(execute=True):
        reminders.sweep(enqueue=deliver_all)
    assert rows(Notification.objects.all()) == [
        ("alert_unfollowed", "unfollowed", None, "payments oncall", "11-27 23:05", "sent")  # no quiet hours
    ]
    assert sweep_at("2026-11-27 23:14", capture) == []
    assert sweep_at("2026-11-27 23:15", capture) == [
        ("alert_escalation", "escalation", "luna", None, "11-27 23:15", "sent")
    ]
    assert sweep_at("2026-11-27 23:50", capture) == []
    assert [(m.subject, m.to) for m in mail.outbox] == [
        ("Alert not followed up within 5 minutes: PaymentLatencyHigh", ["oncall@example.com"]),
        ("Escalation, alert not followed up for 15 minutes: PaymentLatencyHigh", ["luna@example.com"]),
    ]
    assert f"http://127.0.0.1:8000/alerts/{alert.pk}/" in mail.outbox[0].body
    assert "p99 over 2 s" in mail.outbox[0].body


def test_a_notice_of_an_alert_followed_up_before_delivery_is_skipped(db):
    team = TeamFactory(slug="payments")
    channels.channel_create(kind="email", name="payments oncall", target="oncall@example.com", team=team)
    alert = alert_at("2026-11-27 23:00", team=team)
    with time_machine.travel(local("2026-11-27 23:06"), tick=False):
        reminders.sweep(enqueue=lambda destinations: 0)
        alerts_follow_up(occurrence_ids=[alert.pk], by=UserFactory(), action="acknowledge")
        outcome = delivery.deliver(destination="email")
    assert (outcome.sent, outcome.skipped) == (0, 1)
    assert Notification.objects.get().last_error == "Stale: the alert was followed up."
    assert mail.outbox == []


def test_the_sweep_makes_the_same_number_of_queries_for_5_or_40_items(db):
    def world_of(count: int, slug: str):
        team = TeamFactory(slug=slug)
        team.managers.add(UserFactory(username=f"{slug}-manager"))
        channels.channel_create(
            kind="wecom", name=f"{slug} robot", target=WECOM_URL, team=team, events=["item_due", "alert_unfollowed"]
        )
        incident = IncidentFactory(systems=[SystemFactory(team=team)])
        for n in range(count):
            owner = UserFactory(username=f"{slug}-{n}")
            if n % 2:
                channels.channel_create(
                    kind="slack", name=f"{slug}-{n}", target="https://hooks.example.com/x", user=owner
                )
            due_at = local("2026-11-18 10:00") + timedelta(minutes=10 * n)  # 3 days overdue and more on 11-23
            ActionItemFactory(incident=incident, owner=owner, due_at=due_at)
            alert_at("2026-11-23 08:50", team=team)

    def queries(at: str) -> tuple[int, int, int]:
        """(queries other than the INSERT, INSERT statements, notifications considered)."""
        with time_machine.travel(local(at), tick=False), CaptureQueriesContext(connection) as captured:
            result = reminders.sweep(enqueue=lambda destinations: 0)
        inserts = sum(q["sql"].startswith("INSERT") for q in captured.captured_queries)
        return len(captured) - inserts, inserts, result.considered

    with time_machine.travel(local("2026-11-15 10:00"), tick=False):
        world_of(5, "small")
    few, few_inserts, considered = queries("2026-11-23 09:10")  # items overdue and escalated, the digest, alerts
    # Per item its owner and the manager, a digest per owner, per alert the team robot and the manager.
    assert considered == 5 * 2 + 5 + 5 * 2
    Notification.objects.all().delete()
    with time_machine.travel(local("2026-11-15 10:00"), tick=False):
        world_of(35, "large")
    many, many_inserts, considered = queries("2026-11-23 09:10")
    assert considered == 40 * 2 + 40 + 40 * 2
    assert many == few == 11  # savepoint, 6 reads, the stale check (a read, an update), destinations, release
    # One INSERT for the lot on PostgreSQL; SQLite splits it at its 999 parameters (20 a row).
    if connection.vendor == "postgresql":
        assert few_inserts == many_inserts == 1
    else:
        assert (few_inserts, many_inserts) == (1, -(-200 // (999 // 20)))


def test_when_the_broker_refuses_the_next_sweep_hands_over_again(
    world, monkeypatch, django_capture_on_commit_callbacks
):
    from celery import current_app
    from kombu.exceptions import OperationalError

    def broker_down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(current_app, "send_task", broker_down)
    with time_machine.travel(local("2026-11-22 21:30"), tick=False), django_capture_on_commit_callbacks(execute=True):
        result = reminders.sweep()  # the default hand-over: the delivery task, sent by name
    assert result.destinations == (f"channel:{NotificationChannel.objects.get(kind='wecom').pk}", "email")
    assert Notification.objects.filter(status="pending").count() == 2  # recorded, nothing lost

    handed = []

    def hand_over(name, args, **options):
        assert name == "stability.tasks.deliver_notifications"
        handed.extend(args)

    monkeypatch.setattr(current_app, "send_task", hand_over)
    with time_machine.travel(local("2026-11-22 21:31"), tick=False), django_capture_on_commit_callbacks(execute=True):
        reminders.sweep()
    assert sorted(handed) == sorted(result.destinations)
    wecom = NotificationChannel.objects.get(kind="wecom")
    monkeypatch.setattr(channels, "post_json", lambda url, payload, headers=None: Reply(200, '{"errcode": 0}'))
    with time_machine.travel(local("2026-11-22 21:31"), tick=False):
        for destination in handed:
            delivery.deliver(destination=destination)
    assert list(Notification.objects.values_list("status", flat=True)) == ["sent", "sent"]
    assert Notification.objects.filter(channel=wecom, status="sent").count() == 1
    # And once sent, nothing is handed over again.
    handed.clear()
    with time_machine.travel(local("2026-11-22 21:32"), tick=False), django_capture_on_commit_callbacks(execute=True):
        reminders.sweep()
    assert handed == []


def test_one_misconfigured_channel_stops_neither_the_sweep_nor_the_others(db, robot_posts):
    team = TeamFactory(slug="payments")
    owner = UserFactory(username="lei", email="lei@example.com")
    good = channels.channel_create(kind="wecom", name="team robot", target=WECOM_URL, team=team, events=["item_due"])
    # Written past validation (an old row, a hand edit): no URL, and events that are not a list.
    broken = NotificationChannel.objects.create(kind="dingtalk", name="broken", target="robot", team=team, events=[])
    odd = NotificationChannel.objects.create(
        kind="feishu", name="odd events", target=WECOM_URL, team=team, events="all"
    )
    incident = IncidentFactory(systems=[SystemFactory(team=team)])
    ActionItemFactory(incident=incident, owner=owner, due_at=local("2026-11-22 10:00"))
    alert_at("2026-11-22 09:58", team=team)
    with time_machine.travel(local("2026-11-22 10:05"), tick=False):
        result = reminders.sweep(enqueue=lambda destinations: 0)
        assert set(result.destinations) == {f"channel:{good.pk}", f"channel:{broken.pk}", f"channel:{odd.pk}", "email"}
        for destination in result.destinations:
            delivery.deliver(destination=destination)
    outcome = {
        (n.event, n.channel.name if n.channel else None): (n.status, n.last_error) for n in Notification.objects.all()
    }
    assert outcome == {
        ("item_due", None): ("sent", ""),  # the owner, by email
        ("item_due", "team robot"): ("sent", ""),
        ("alert_unfollowed", "broken"): ("failed", "The channel's target is not an http(s) URL; correct the channel."),
        ("alert_unfollowed", "odd events"): ("sent", ""),  # events not a list: read as empty, the defaults
    }
    assert len(robot_posts) == 2


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_two_sweeps_at_once_record_each_notification_once():
    seed_severity_policy()
    team = TeamFactory(slug="payments")
    team.managers.add(UserFactory(username="luna", email="luna@example.com"))
    incident = IncidentFactory(systems=[SystemFactory(team=team)])
    with time_machine.travel(local("2026-11-01 10:00"), tick=False):
        for n in range(60):
            ActionItemFactory(
                incident=incident, owner=UserFactory(username=f"owner-{n}"), due_at=local("2026-11-20 10:00")
            )
    barrier = threading.Barrier(2)
    results, errors = [], []

    def run():
        try:
            barrier.wait(timeout=10)
            results.append(reminders.sweep(now=local("2026-11-24 10:00"), enqueue=lambda destinations: 0))
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
    # Tuesday 11-24 10:00: 60 owners' overdue-4 by email, 60 escalation-0 to Luna (no digest on Tuesday).
    assert [r.considered for r in results] == [120, 120]
    assert Notification.objects.count() == 120
    assert Notification.objects.filter(recipient__username="luna", step="escalation-0").count() == 60


def test_the_hand_over_names_the_delivery_task_and_reaches_its_queue():
    """The sweep sends the delivery task by name (stability.tasks imports the sweep, never the reverse):
    the name is the registered task's, and routing by it picks the deliveries queue."""
    from config.celery import app
    from stability.tasks import deliver_notifications

    assert deliver_notifications.name == reminders.DELIVER_TASK
    assert app.amqp.router.route({}, reminders.DELIVER_TASK, (), {})["queue"].name == "deliveries"
