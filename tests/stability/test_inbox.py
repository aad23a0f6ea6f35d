"""The on-call inbox's reads and writes (stability.selectors.inbox_*, stability.services
alert_group_acknowledge / system_silence) and their API: which alerts ask to act now, which are
missed, which the source resolved; a day later they leave the inbox and stay counted as missed.
Alerts arrive through the real generic webhook at fixed times, every figure computed by hand."""

from datetime import timedelta

import pytest
import time_machine
from django.core.cache import cache
from django.core.exceptions import ValidationError

from incidents import periods
from stability import selectors
from stability.models import AlertActivity, AlertOccurrence, MaintenanceWindow
from stability.selectors import InboxState
from stability.services import alert_group_acknowledge, integration_create, system_silence
from tests.factories import SystemFactory, TeamFactory, UserFactory
from tests.stability.test_follow_up import T0, fire, generic_alert, post_at

ALERTS = "/api/v1/alerts/"
SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)


@pytest.fixture(autouse=True)
def _fresh_rate_counters():
    cache.clear()


@pytest.fixture
def world(db):
    payments = TeamFactory(slug="payments", name="Payments")
    cashier = SystemFactory(code="cashier", team=payments)
    payout = SystemFactory(code="payout", team=payments)
    _hook, token = integration_create(kind="generic", name="g")
    return {"team": payments, "cashier": cashier, "payout": payout, "token": token}


def alert(name: str, fingerprint: str, **options) -> dict:
    """An alert of the generic format with its own fingerprint (several of one rule)."""
    return generic_alert(name, **options) | {"fingerprint": fingerprint}


def states_at(moment) -> dict[str, set[str]]:
    """The fingerprints of the inbox's alerts in each state at `moment`."""
    with time_machine.travel(moment, tick=False):
        return {
            state: set(selectors.inbox_alerts(now=moment, state=state).values_list("fingerprint", flat=True))
            for state in InboxState.CHOICES
        }


def test_act_now_until_the_window_closes_then_missed_then_gone_after_a_day(world):
    fire(world["token"], [generic_alert("CashierLatency")], at=T0)

    at_4_59 = states_at(T0 + 4 * MINUTE + 59 * SECOND)
    assert at_4_59[InboxState.ACT_NOW] == {"CashierLatency"}
    assert at_4_59[InboxState.MISSED] == set()
    # exactly one window after receipt it is decided, as the follow-up rate says (follow_up.rules)
    assert states_at(T0 + 5 * MINUTE)[InboxState.MISSED] == {"CashierLatency"}
    at_5_01 = states_at(T0 + 5 * MINUTE + SECOND)
    assert at_5_01[InboxState.ACT_NOW] == set()
    assert at_5_01[InboxState.MISSED] == {"CashierLatency"} == at_5_01[InboxState.ALL]

    # the last second of its day in the inbox, then gone from every state
    assert states_at(T0 + timedelta(hours=24))[InboxState.MISSED] == {"CashierLatency"}
    a_day_later = T0 + timedelta(hours=24, seconds=1)
    assert states_at(a_day_later) == {state: set() for state in InboxState.CHOICES}
    # ...and still counted: received, never followed up, missed
    rate = selectors.follow_up_rate(
        occurrences=AlertOccurrence.objects.all(), period=periods.this_month(T0), now=a_day_later
    )
    assert (rate["overall"]["missed"], rate["overall"]["denominator"]) == (1, 1)


def test_resolved_by_the_source_and_excluded_alerts_are_apart(world):
    fire(world["token"], [generic_alert("CashierLatency"), generic_alert("DiskFull")], at=T0)
    fire(world["token"], [generic_alert("DiskFull")], at=T0 + MINUTE, status="resolved")
    silenced = generic_alert("PayoutQueue", system="payout")
    silenced["silenced"] = True
    fire(world["token"], [silenced], at=T0 + MINUTE)

    states = states_at(T0 + 2 * MINUTE)
    assert states[InboxState.ACT_NOW] == {"CashierLatency"}
    assert states[InboxState.RESOLVED] == {"DiskFull"}
    assert states[InboxState.MISSED] == set()
    assert states[InboxState.ALL] == {"CashierLatency", "DiskFull", "PayoutQueue"}
    with time_machine.travel(T0 + 2 * MINUTE, tick=False):
        assert selectors.inbox_counts(now=T0 + 2 * MINUTE) == {
            "act_now": 1,
            "missed": 0,
            "resolved": 1,
            "all": 3,
        }


def test_followed_up_alerts_leave_the_inbox(world, engineer_client):
    (alert_id,) = fire(world["token"], [generic_alert("CashierLatency")], at=T0)
    post_at(engineer_client, T0 + MINUTE, f"{ALERTS}{alert_id}/acknowledge/")
    assert states_at(T0 + 2 * MINUTE)[InboxState.ALL] == set()


def test_groups_by_rule_and_system_with_counts_and_first_and_last(world):
    token = world["token"]
    fire(token, [alert("Latency", "c1")], at=T0)
    fire(token, [alert("Latency", "c2")], at=T0 + MINUTE)
    fire(token, [alert("Latency", "p1", system="payout")], at=T0 + 2 * MINUTE)
    now = T0 + 3 * MINUTE
    with time_machine.travel(now, tick=False):
        groups = selectors.inbox_groups(now=now, state=InboxState.ALL).groups

    assert [(g.alertname, g.system.code, g.count, g.first, g.last) for g in groups] == [
        ("Latency", "payout", 1, T0 + 2 * MINUTE, T0 + 2 * MINUTE),
        ("Latency", "cashier", 2, T0, T0 + MINUTE),
    ]
    assert [a.received_at for a in groups[1].alerts] == [T0 + MINUTE, T0]


def test_a_page_of_groups_takes_three_queries_however_many_alerts(world, django_assert_num_queries):
    token = world["token"]
    for count in (5, 50):
        AlertOccurrence.objects.all().delete()
        fire(
            token,
            [alert(f"Rule{n % 7}", f"{count}-{n}", system=("cashier", "payout")[n % 2]) for n in range(count)],
            at=T0,
        )
        with time_machine.travel(T0 + MINUTE, tick=False), django_assert_num_queries(3):
            inbox = selectors.inbox_groups(now=T0 + MINUTE, state=InboxState.ACT_NOW)
            # 7 rules x 2 systems: 14 groups (5 alerts: 5 groups); each lists its newest 5 at most
            groups = inbox.groups
            assert len(groups) == min(count, 14) and inbox.total == len(groups) and inbox.pages == 1
            assert [len(g.alerts) for g in groups] == [min(g.count, selectors.INBOX_GROUP_ALERTS) for g in groups]
            assert sum(g.count for g in groups) == count
            assert {g.system.team.slug for g in groups} == {"payments"}


def test_the_groups_are_paged_newest_first(world, settings, monkeypatch):
    """A busy day is paged: INBOX_GROUPS groups a page, the group whose last alert came last first."""
    monkeypatch.setattr(selectors, "INBOX_GROUPS", 2)
    token = world["token"]
    for n in range(5):
        fire(token, [alert(f"Rule{n}", f"r{n}")], at=T0 + n * timedelta(seconds=10))
    now = T0 + MINUTE
    with time_machine.travel(now, tick=False):
        pages = [selectors.inbox_groups(now=now, state=InboxState.ALL, page=number) for number in (1, 2, 3, 4, 0)]
    assert [[g.alertname for g in page.groups] for page in pages] == [
        ["Rule4", "Rule3"],
        ["Rule2", "Rule1"],
        ["Rule0"],
        ["Rule0"],  # past the last page: the last page
        ["Rule4", "Rule3"],  # before the first: the first
    ]
    assert {(page.total, page.pages) for page in pages} == {(5, 3)}
    assert [page.page for page in pages] == [1, 2, 3, 3, 1]


def test_a_group_is_acknowledged_once(world):
    token = world["token"]
    engineer = UserFactory(username="oncall", role="engineer")
    (first,) = fire(token, [alert("Latency", "c1")], at=T0)
    (second,) = fire(token, [alert("Latency", "c2")], at=T0 + MINUTE)
    (other,) = fire(token, [alert("Latency", "p1", system="payout")], at=T0)
    with time_machine.travel(T0 + 3 * MINUTE, tick=False):
        done = alert_group_acknowledge(
            by=engineer, alertname="Latency", system=world["cashier"], since=T0 - timedelta(hours=24)
        )
        again = alert_group_acknowledge(
            by=engineer, alertname="Latency", system=world["cashier"], since=T0 - timedelta(hours=24)
        )

    assert sorted(done) == sorted([first, second]) and again == []
    assert AlertActivity.objects.filter(kind="acknowledged").count() == 2
    cashier = AlertOccurrence.objects.filter(pk__in=done)
    # received T0 and T0+1, acknowledged T0+3: 180 s and 120 s, both in time
    assert sorted((o.followed_up_at - o.received_at).total_seconds() for o in cashier) == [120, 180]
    assert AlertOccurrence.objects.get(pk=other).followed_up_at is None


def test_a_silence_is_a_maintenance_window_that_excludes_the_systems_next_alerts(world):
    engineer = UserFactory(username="oncall", role="engineer")
    with time_machine.travel(T0, tick=False):
        window = system_silence(by=engineer, system=world["payout"], minutes=30, reason="PayoutQueue #1")
    assert (window.starts_at, window.ends_at, window.created_by) == (T0, T0 + 30 * MINUTE, engineer)

    (inside,) = fire(world["token"], [generic_alert("PayoutQueue", system="payout")], at=T0 + 29 * MINUTE)
    (elsewhere,) = fire(world["token"], [generic_alert("CashierLatency")], at=T0 + 29 * MINUTE)
    (after,) = fire(world["token"], [generic_alert("PayoutErrors", system="payout")], at=T0 + 30 * MINUTE)
    excluded = dict(AlertOccurrence.objects.values_list("pk", "excluded"))
    assert excluded == {inside: "maintenance", elsewhere: "", after: ""}
    assert states_at(T0 + 31 * MINUTE)[InboxState.ACT_NOW] == {"CashierLatency", "PayoutErrors"}

    with pytest.raises(ValidationError):
        system_silence(by=engineer, system=world["payout"], minutes=0, reason="x")


# --- the API ------------------------------------------------------------------------------------


def test_the_api_waiting_list_reads_the_last_day_unless_asked_for_more(world, manager_client):
    (old,) = fire(world["token"], [generic_alert("Old")], at=T0)
    (new,) = fire(world["token"], [generic_alert("New")], at=T0 + timedelta(hours=25))
    with time_machine.travel(T0 + timedelta(hours=25, minutes=1), tick=False):
        default = manager_client.get(ALERTS, {"followed_up": "false"}).json()
        asked = manager_client.get(ALERTS, {"followed_up": "false", "received_after": T0.isoformat()}).json()
        every = manager_client.get(ALERTS).json()
    assert [a["id"] for a in default["results"]] == [new]
    assert [a["id"] for a in asked["results"]] == [new, old]
    assert every["count"] == 2


def test_the_api_acknowledges_a_group_once_and_only_for_engineers(world, engineer_client, manager_client):
    ids = fire(world["token"], [generic_alert("Latency"), generic_alert("Disk")], at=T0)
    body = {"alertname": "Latency", "system": "cashier"}
    with time_machine.travel(T0 + MINUTE, tick=False):
        refused = manager_client.post(f"{ALERTS}acknowledge-group/", body, format="json")
        done = engineer_client.post(f"{ALERTS}acknowledge-group/", body, format="json")
        again = engineer_client.post(f"{ALERTS}acknowledge-group/", body, format="json")
        unknown = engineer_client.post(f"{ALERTS}acknowledge-group/", {**body, "system": "nope"}, format="json")
    assert refused.status_code == 403
    assert (done.status_code, done.json()) == (200, {"acknowledged": [ids[0]]})
    assert (again.status_code, again.json()) == (200, {"acknowledged": []})
    assert unknown.status_code == 400
    assert AlertActivity.objects.count() == 1


def test_the_api_silences_an_alerts_system(world, engineer_client, manager_client):
    (alert_id,) = fire(world["token"], [generic_alert("PayoutQueue", system="payout")], at=T0)
    with time_machine.travel(T0 + MINUTE, tick=False):
        refused = manager_client.post(f"{ALERTS}{alert_id}/silence/", {"minutes": 60}, format="json")
        answer = engineer_client.post(f"{ALERTS}{alert_id}/silence/", {"minutes": 60}, format="json")
        too_long = engineer_client.post(f"{ALERTS}{alert_id}/silence/", {"minutes": 20000}, format="json")
    assert refused.status_code == 403
    assert answer.status_code == 201, answer.content
    window = MaintenanceWindow.objects.get()
    assert answer.json()["system"] == "payout" and window.reason == f"PayoutQueue #{alert_id}"
    assert (window.starts_at, window.ends_at) == (T0 + MINUTE, T0 + 61 * MINUTE)
    assert too_long.status_code == 400
