"""A/B incidents and commanders' updates reach the team's channels (stability.incident_messages), once per
level reached or update posted, in each channel's language, against a local server standing in for the
robots."""

from datetime import datetime

import pytest
import time_machine

from incidents import services
from incidents.models import Incident, Tier
from stability import delivery, reminders
from stability.channels import channel_create
from stability.models import Event, Notification
from tests.factories import IncidentFactory, SystemFactory, TeamFactory, UserFactory
from tests.stability.test_channels import ZONE, Robots

LOGGED = datetime(2026, 11, 27, 3, 10, tzinfo=ZONE)  # inside the default quiet hours: they must not wait


@pytest.fixture
def robots():
    server = Robots()
    yield server
    server.stop()


@pytest.fixture
def handed(monkeypatch):
    """The destinations handed to the delivery task after each commit."""
    calls: list[list[str]] = []
    monkeypatch.setattr("stability.incident_messages.enqueue_deliveries", lambda d: calls.append(list(d)) or 0)
    return calls


@pytest.fixture
def setup(db, robots):
    team = TeamFactory(slug="payments", name="Payments")
    other = TeamFactory(slug="cards", name="Cards")
    commander = UserFactory(username="li", first_name="Lei", last_name="Li")
    system = SystemFactory(code="pay-gw", tier=Tier.P2, team=team)
    major = [Event.INCIDENT_MAJOR, Event.INCIDENT_UPDATE]
    wecom = channel_create(
        kind="wecom", name="Payments EN", target=robots.url("/wecom/en"), team=team, events=major, language="en"
    )
    feishu = channel_create(
        kind="feishu", name="Payments ZH", target=robots.url("/feishu/zh"), team=team, events=major, language="zh-hans"
    )
    # Not subscribed (the default set), and another team's subscribed robot: neither hears of it.
    channel_create(kind="slack", name="Payments alerts", target=robots.url("/slack/x"), team=team, events=[])
    channel_create(kind="wecom", name="Cards", target=robots.url("/wecom/cards"), team=other, events=major)
    return {"team": team, "system": system, "commander": commander, "wecom": wecom, "feishu": feishu}


def deliver_all(moment: datetime) -> None:
    with time_machine.travel(moment, tick=False):
        for destination in reminders.ready_destinations(now=moment):
            delivery.deliver(destination=destination)


def log(setup, *, users: int, **values):
    return IncidentFactory(
        title="Card payments failing",
        systems=[setup["system"]],
        occurred_at=LOGGED,
        detected_at=LOGGED,
        affected_users=users,
        commander=setup["commander"],
        **values,
    )


def test_an_a_incident_logged_goes_to_each_subscribed_channel_of_its_team_in_its_language(
    setup, robots, handed, django_capture_on_commit_callbacks
):
    with time_machine.travel(LOGGED, tick=False), django_capture_on_commit_callbacks(execute=True):
        incident = log(setup, users=100_000)
    assert incident.level == "A"
    wecom, feishu = setup["wecom"], setup["feishu"]
    assert handed == [[f"channel:{wecom.pk}", f"channel:{feishu.pk}"]]
    assert sorted(Notification.objects.values_list("key", flat=True)) == [
        f"incident:{incident.pk}:level-A:channel:{wecom.pk}",
        f"incident:{incident.pk}:level-A:channel:{feishu.pk}",
    ]
    deliver_all(LOGGED)
    assert sorted(r["path"] for r in robots.requests) == ["/feishu/zh", "/wecom/en"]
    by_path = {r["path"]: r["json"] for r in robots.requests}
    url = f"http://127.0.0.1:8000/incidents/{incident.pk}/"
    assert by_path["/wecom/en"]["markdown"]["content"] == (
        "**Stability Tracker: 1 notification**\n"
        f"- [Incident #{incident.pk} is level A: Card payments failing]({url})\n"
        "  Team Payments, systems pay-gw, commander Lei Li, since 2026-11-27 03:10+08:00"
    )
    assert by_path["/feishu/zh"]["content"]["text"].splitlines()[1:] == [
        f"- 事件 #{incident.pk} 定为A级：Card payments failing",
        "  团队 Payments，系统 pay-gw，事件指挥 Lei Li，发生于 2026-11-27 03:10+08:00",
        f"  {url}",
    ]
    assert set(Notification.objects.values_list("status", flat=True)) == {"sent"}


def test_a_save_that_keeps_the_level_or_a_level_announced_before_sends_nothing_again(setup, robots, handed):
    with time_machine.travel(LOGGED, tick=False):
        incident = log(setup, users=100)  # D: nothing
        assert incident.level == "D"
        assert not Notification.objects.exists()

        def change(**changes):
            current = services.incident_update(incident_id=incident.pk, by=None, expected_version=None, changes=changes)
            return current.level, Notification.objects.filter(event=Event.INCIDENT_MAJOR).count()

        assert change(affected_users=1_000) == ("C", 0)
        assert change(affected_users=10_000) == ("B", 2)  # C -> B
        assert change(title="Card payments failing at the gateway") == ("B", 2)  # same level
        assert change(affected_users=20_000) == ("B", 2)  # still B
        assert change(affected_users=100_000) == ("A", 4)  # B -> A: a new level, new keys
        assert change(affected_users=10_000) == ("B", 4)  # lowered: nothing
        assert change(affected_users=100_000) == ("A", 4)  # back to A: announced already
    assert sorted(Notification.objects.values_list("step", flat=True)) == ["level-A"] * 2 + ["level-B"] * 2
    deliver_all(LOGGED)
    # Delivered together: one message per robot carrying its two entries, B's and A's.
    wecom = next(r for r in robots.requests if r["path"] == "/wecom/en")["json"]["markdown"]["content"]
    assert len(robots.requests) == 2
    assert wecom.splitlines()[0] == "**Stability Tracker: 2 notifications**"
    assert [line.split("]")[0] for line in wecom.splitlines() if line.startswith("- [")] == [
        f"- [Incident #{incident.pk} is level B: Card payments failing at the gateway",
        f"- [Incident #{incident.pk} is level A: Card payments failing at the gateway",
    ]


def test_an_incident_logged_after_the_fact_is_history_and_sends_nothing(setup, handed):
    with time_machine.travel(LOGGED, tick=False):
        log(setup, users=100_000, recovered_at=LOGGED, resolved_at=LOGGED)
    assert not Notification.objects.exists()
    assert handed == []


def test_a_resolved_incident_re_evaluated_to_b_under_a_new_policy_sends_nothing(setup, handed):
    with time_machine.travel(LOGGED, tick=False):
        incident = log(setup, users=5_000, recovered_at=LOGGED, resolved_at=LOGGED)  # C under version 1
        services.severity_policy_create(
            by=None,
            rules={"B": [{"kind": "affected_users", "at_least": 5_000}]},
            recovery_targets={"A": 1800, "B": 3600, "C": 14400, "D": 86400},
        )
        services.incidents_reevaluate(incidents=Incident.objects.filter(pk=incident.pk), by=None)
        incident.refresh_from_db()
    assert incident.level == "B"
    assert not Notification.objects.exists()


def test_an_override_to_a_sends_and_clearing_it_does_not(setup, handed):
    manager = UserFactory(username="boss", role="manager")
    with time_machine.travel(LOGGED, tick=False):
        incident = log(setup, users=1_000)  # C
        services.severity_override_set(incident_id=incident.pk, by=manager, level="A", reason="Regulator asked")
        services.severity_override_clear(incident_id=incident.pk, by=manager)
    assert sorted(Notification.objects.values_list("step", flat=True)) == ["level-A", "level-A"]


def test_the_commanders_update_is_sent_with_the_text_typed(setup, robots, handed):
    with time_machine.travel(LOGGED, tick=False):
        incident = log(setup, users=10_000)  # B
        entry = services.timeline_note_add(
            incident_id=incident.pk, by=setup["commander"], text="Switched traffic to the backup acquirer", update=True
        )
        services.timeline_note_add(incident_id=incident.pk, by=setup["commander"], text="A plain note")
    updates = Notification.objects.filter(event=Event.INCIDENT_UPDATE)
    assert sorted(updates.values_list("key", flat=True)) == [
        f"incident:{incident.pk}:update-{entry.pk}:channel:{setup['wecom'].pk}",
        f"incident:{incident.pk}:update-{entry.pk}:channel:{setup['feishu'].pk}",
    ]
    deliver_all(LOGGED)
    en = next(r for r in robots.requests if r["path"] == "/wecom/en")["json"]["markdown"]["content"]
    zh = next(r for r in robots.requests if r["path"] == "/feishu/zh")["json"]["content"]["text"]
    # The level message and the update go in one robot message, the update second.
    assert en.splitlines()[0] == "**Stability Tracker: 2 notifications**"
    assert en.splitlines()[3:6] == [
        f"- [Update on incident #{incident.pk} (level B): Card payments failing]"
        f"(http://127.0.0.1:8000/incidents/{incident.pk}/)",
        "  Switched traffic to the backup acquirer",
        "  Posted by Lei Li at 2026-11-27 03:10+08:00",
    ]
    assert f"- 事件 #{incident.pk}（B级）进展通报：Card payments failing" in zh.splitlines()
    assert "  Lei Li 发布于 2026-11-27 03:10+08:00" in zh.splitlines()


def test_a_broker_outage_loses_nothing_the_sweep_hands_it_over(setup, monkeypatch, django_capture_on_commit_callbacks):
    def refuse(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(reminders.current_app, "send_task", refuse)
    with time_machine.travel(LOGGED, tick=False), django_capture_on_commit_callbacks(execute=True):
        log(setup, users=100_000)
    assert Notification.objects.filter(status="pending").count() == 2
    with time_machine.travel(LOGGED, tick=False):
        result = reminders.sweep(enqueue=lambda destinations: 0)
    assert set(result.destinations) == {f"channel:{setup['wecom'].pk}", f"channel:{setup['feishu'].pk}"}
