"""Following alerts up over the API (metrics.md, "Alerts and the 5-minute follow-up rate").

Alerts arrive through the real generic webhook with time_machine fixing received_at, so every
follow-up delay below is computed by hand: followed_up_at - received_at.
"""

import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.cache import cache
from django.test import Client
from django.utils.dateparse import parse_datetime

from incidents.models import Incident, TimelineEntry
from stability.models import AlertActivity, AlertOccurrence
from stability.services import integration_create
from tests.factories import IncidentFactory, SystemFactory, TeamFactory

T0 = datetime(2026, 11, 2, 8, 1, tzinfo=UTC)  # when the alerts below reach the tracker
ALERTS = "/api/v1/alerts/"


def generic_alert(
    name: str,
    *,
    starts_at: str = "2026-11-02T08:00:00Z",
    system: str = "cashier",
    team: str = "payments",
    severity: str = "critical",
    summary: str = "",
    **labels: str,
) -> dict:
    """One alert of the generic format; its fingerprint is its name, so tests can find it."""
    return {
        "labels": {"alertname": name, "system": system, "team": team, "severity": severity, **labels},
        "annotations": {"summary": summary or f"{name} on {system}"},
        "starts_at": starts_at,
        "fingerprint": name,
    }


def fire(token: str, alerts: list[dict], *, at: datetime, status: str = "firing") -> list[int]:
    """Post the alerts to the generic webhook at `at`; their occurrence ids, in the order given."""
    for alert in alerts:
        alert.setdefault("status", status)
    with time_machine.travel(at, tick=False):
        answer = Client().post(
            "/api/v1/integrations/generic/",
            json.dumps({"alerts": alerts}),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {token}",
        )
    assert answer.status_code == 200, answer.content
    assert answer.json()["rejected"] == []
    ids = dict(AlertOccurrence.objects.values_list("fingerprint", "pk"))
    return [ids[alert["fingerprint"]] for alert in alerts]


def post_at(client, at: datetime, url: str, data: dict | None = None):
    with time_machine.travel(at, tick=False):
        return client.post(url, data or {}, format="json")


@pytest.fixture(autouse=True)
def _fresh_rate_counters():
    cache.clear()


@pytest.fixture
def world(db):
    payments = TeamFactory(slug="payments", name="Payments")
    cashier = SystemFactory(code="cashier", team=payments)
    payout = SystemFactory(code="payout", team=payments)
    hook, token = integration_create(kind="generic", name="g")
    return {"team": payments, "cashier": cashier, "payout": payout, "integration": hook, "token": token}


def activities(occurrence_id: int) -> list[tuple]:
    return list(
        AlertActivity.objects.filter(occurrence_id=occurrence_id)
        .order_by("at", "id")
        .values_list("kind", "at", "by__username", "text", "incident_id")
    )


# --- the first action sets followed_up_at, and nothing moves it --------------------------------------


def test_the_first_action_is_the_follow_up_and_a_later_one_never_moves_it(world, engineer_client):
    (alert_id,) = fire(world["token"], [generic_alert("CashierLatency")], at=T0)

    acknowledged = post_at(engineer_client, T0 + timedelta(seconds=120), f"{ALERTS}{alert_id}/acknowledge/")
    assert acknowledged.status_code == 200, acknowledged.content
    body = acknowledged.json()
    assert parse_datetime(body["acknowledged_at"]) == T0 + timedelta(seconds=120)
    assert body["acknowledged_by"] == "engineer"
    assert parse_datetime(body["followed_up_at"]) == T0 + timedelta(seconds=120)
    assert body["followed_up_by"] == "engineer"
    assert body["follow_up_delay"] == 120

    commented = post_at(
        engineer_client, T0 + timedelta(seconds=400), f"{ALERTS}{alert_id}/comment/", {"text": " 渠道侧抖动，观察中 "}
    )
    assert commented.status_code == 200, commented.content
    assert parse_datetime(commented.json()["followed_up_at"]) == T0 + timedelta(seconds=120)
    assert commented.json()["follow_up_delay"] == 120

    occurrence = AlertOccurrence.objects.get(pk=alert_id)
    assert occurrence.received_at == T0
    assert occurrence.followed_up_at == T0 + timedelta(seconds=120)
    assert occurrence.followed_up_by == engineer_client.user
    assert activities(alert_id) == [
        ("acknowledged", T0 + timedelta(seconds=120), "engineer", "", None),
        ("commented", T0 + timedelta(seconds=400), "engineer", "渠道侧抖动，观察中", None),
    ]


def test_the_history_lists_what_people_did_in_order(world, engineer_client, manager_client):
    (alert_id,) = fire(world["token"], [generic_alert("CashierLatency")], at=T0)
    incident = IncidentFactory(systems=[world["cashier"]])
    post_at(engineer_client, T0 + timedelta(seconds=30), f"{ALERTS}{alert_id}/comment/", {"text": "looking"})
    post_at(engineer_client, T0 + timedelta(seconds=90), f"{ALERTS}{alert_id}/link/", {"incident": incident.pk})

    history = manager_client.get(f"{ALERTS}{alert_id}/history/")

    assert history.status_code == 200
    rows = history.json()
    assert [(r["kind"], parse_datetime(r["at"]), r["by"], r["text"], r["incident"]) for r in rows] == [
        ("commented", T0 + timedelta(seconds=30), "engineer", "looking", None),
        ("linked", T0 + timedelta(seconds=90), "engineer", "", incident.pk),
    ]


def test_acknowledging_twice_writes_one_activity_and_keeps_the_first_time(world, engineer_client, admin_client_api):
    (alert_id,) = fire(world["token"], [generic_alert("CashierLatency")], at=T0)

    post_at(engineer_client, T0 + timedelta(seconds=50), f"{ALERTS}{alert_id}/acknowledge/")
    again = post_at(admin_client_api, T0 + timedelta(seconds=70), f"{ALERTS}{alert_id}/acknowledge/")

    assert again.status_code == 200
    assert again.json()["acknowledged_by"] == "engineer"
    assert parse_datetime(again.json()["acknowledged_at"]) == T0 + timedelta(seconds=50)
    assert again.json()["follow_up_delay"] == 50
    assert activities(alert_id) == [("acknowledged", T0 + timedelta(seconds=50), "engineer", "", None)]


def test_resolving_by_hand_sets_status_resolved_by_and_the_follow_up(world, engineer_client):
    (alert_id,) = fire(world["token"], [generic_alert("CashierLatency")], at=T0)

    resolved = post_at(engineer_client, T0 + timedelta(seconds=240), f"{ALERTS}{alert_id}/resolve/")

    assert resolved.status_code == 200, resolved.content
    body = resolved.json()
    assert (body["status"], body["resolved_by"], body["follow_up_delay"]) == ("resolved", "engineer", 240)
    assert parse_datetime(body["resolved_at"]) == T0 + timedelta(seconds=240)
    assert body["acknowledged_at"] is None
    # A later firing notification of the same occurrence does not reopen it.
    fire(world["token"], [generic_alert("CashierLatency")], at=T0 + timedelta(seconds=300))
    occurrence = AlertOccurrence.objects.get(pk=alert_id)
    assert (occurrence.status, occurrence.resolved_by, occurrence.notifications) == (
        "resolved",
        engineer_client.user,
        2,
    )


def test_a_resolution_by_the_source_is_not_a_follow_up_and_resolving_it_again_changes_nothing(world, engineer_client):
    (alert_id,) = fire(world["token"], [generic_alert("CashierLatency")], at=T0)
    fire(world["token"], [generic_alert("CashierLatency")], at=T0 + timedelta(seconds=60), status="resolved")

    listed = engineer_client.get(f"{ALERTS}{alert_id}/").json()
    assert (listed["status"], listed["resolved_by"], listed["followed_up_at"]) == ("resolved", None, None)
    assert parse_datetime(listed["resolved_at"]) == T0 + timedelta(seconds=60)

    again = post_at(engineer_client, T0 + timedelta(seconds=90), f"{ALERTS}{alert_id}/resolve/")
    assert again.status_code == 200
    assert (again.json()["resolved_by"], again.json()["followed_up_at"]) == (None, None)
    assert activities(alert_id) == []


def test_linking_sets_the_incident_and_linking_again_to_it_changes_nothing(world, engineer_client):
    (alert_id,) = fire(world["token"], [generic_alert("CashierLatency")], at=T0)
    first, second = IncidentFactory(systems=[world["cashier"]]), IncidentFactory(systems=[world["cashier"]])

    linked = post_at(engineer_client, T0 + timedelta(seconds=10), f"{ALERTS}{alert_id}/link/", {"incident": first.pk})
    post_at(engineer_client, T0 + timedelta(seconds=20), f"{ALERTS}{alert_id}/link/", {"incident": first.pk})
    moved = post_at(engineer_client, T0 + timedelta(seconds=30), f"{ALERTS}{alert_id}/link/", {"incident": second.pk})

    assert linked.status_code == 200, linked.content
    assert (linked.json()["incident"], linked.json()["follow_up_delay"]) == (first.pk, 10)
    assert (moved.json()["incident"], moved.json()["follow_up_delay"]) == (second.pk, 10)
    assert activities(alert_id) == [
        ("linked", T0 + timedelta(seconds=10), "engineer", "", first.pk),
        ("linked", T0 + timedelta(seconds=30), "engineer", "", second.pk),
    ]


# --- many at once --------------------------------------------------------------------------------


def test_bulk_acknowledge_of_three_alerts_follows_all_three_up(world, engineer_client):
    ids = fire(world["token"], [generic_alert(n) for n in ("A", "B", "C")], at=T0)

    answer = post_at(
        engineer_client,
        T0 + timedelta(seconds=45),
        f"{ALERTS}follow-up/",
        {"ids": list(reversed(ids)), "action": "acknowledge"},
    )

    assert answer.status_code == 200, answer.content
    assert [a["id"] for a in answer.json()] == sorted(ids)
    for alert in answer.json():
        assert (alert["acknowledged_by"], alert["followed_up_by"], alert["follow_up_delay"]) == (
            "engineer",
            "engineer",
            45,
        )
    stored = AlertOccurrence.objects.filter(pk__in=ids)
    assert {(o.acknowledged_at, o.followed_up_at) for o in stored} == {(T0 + timedelta(seconds=45),) * 2}
    assert AlertActivity.objects.filter(occurrence_id__in=ids, kind="acknowledged").count() == 3


def test_bulk_action_changes_only_what_it_changes(world, engineer_client, admin_client_api):
    first, second = fire(world["token"], [generic_alert("A"), generic_alert("B")], at=T0)
    post_at(admin_client_api, T0 + timedelta(seconds=20), f"{ALERTS}{first}/acknowledge/")

    post_at(
        engineer_client,
        T0 + timedelta(seconds=400),
        f"{ALERTS}follow-up/",
        {"ids": [first, second], "action": "acknowledge"},
    )

    a, b = AlertOccurrence.objects.filter(pk__in=[first, second]).order_by("pk")
    assert (a.acknowledged_by.username, a.followed_up_at) == ("admin", T0 + timedelta(seconds=20))
    assert (b.acknowledged_by.username, b.followed_up_at) == ("engineer", T0 + timedelta(seconds=400))
    assert AlertActivity.objects.count() == 2


def test_bulk_comment_and_link(world, engineer_client):
    ids = fire(world["token"], [generic_alert("A"), generic_alert("B")], at=T0)
    incident = IncidentFactory(systems=[world["cashier"]])

    commented = post_at(
        engineer_client,
        T0 + timedelta(seconds=5),
        f"{ALERTS}follow-up/",
        {"ids": ids, "action": "comment", "text": "同一根因"},
    )
    linked = post_at(
        engineer_client,
        T0 + timedelta(seconds=9),
        f"{ALERTS}follow-up/",
        {"ids": ids, "action": "link", "incident": incident.pk},
    )

    assert commented.status_code == linked.status_code == 200
    assert {(a["incident"], a["follow_up_delay"]) for a in linked.json()} == {(incident.pk, 5)}
    assert sorted(AlertActivity.objects.values_list("kind", flat=True)) == ["commented"] * 2 + ["linked"] * 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"ids": [], "action": "acknowledge"}, "ids"),
        ({"action": "acknowledge"}, "ids"),
        ({"ids": ["x"], "action": "acknowledge"}, "ids"),
        ({"ids": [1], "action": "snooze"}, "action"),
        ({"ids": [1], "action": "comment"}, "text"),
        ({"ids": [1], "action": "comment", "text": "   "}, "text"),
        ({"ids": [1], "action": "link"}, "incident"),
        ({"ids": [1], "action": "link", "incident": 999999}, "incident"),
        ({"ids": [1], "action": "acknowledge", "note": "typo"}, "note"),
    ],
)
def test_bad_bulk_input_is_400_naming_the_field(world, engineer_client, body, field):
    (alert_id,) = fire(world["token"], [generic_alert("A")], at=T0)
    body = {**body, "ids": [alert_id if i == 1 else i for i in body["ids"]]} if "ids" in body else body

    answer = engineer_client.post(f"{ALERTS}follow-up/", body, format="json")

    assert answer.status_code == 400, answer.content
    assert field in answer.json()
    assert AlertOccurrence.objects.get(pk=alert_id).followed_up_at is None


def test_unknown_alert_ids_are_400_and_nothing_is_changed(world, engineer_client):
    (alert_id,) = fire(world["token"], [generic_alert("A")], at=T0)

    answer = engineer_client.post(
        f"{ALERTS}follow-up/", {"ids": [alert_id, alert_id + 1000], "action": "acknowledge"}, format="json"
    )

    assert answer.status_code == 400
    assert str(alert_id + 1000) in answer.json()["ids"][0]
    assert AlertOccurrence.objects.get(pk=alert_id).acknowledged_at is None
    assert not AlertActivity.objects.exists()


@pytest.mark.parametrize(
    ("action", "body", "field"),
    [("comment", {}, "text"), ("comment", {"text": ""}, "text"), ("link", {"incident": 999999}, "incident")],
)
def test_bad_single_input_is_400_naming_the_field(world, engineer_client, action, body, field):
    (alert_id,) = fire(world["token"], [generic_alert("A")], at=T0)
    answer = engineer_client.post(f"{ALERTS}{alert_id}/{action}/", body, format="json")
    assert answer.status_code == 400
    assert field in answer.json()


def test_an_unknown_alert_is_404(world, engineer_client):
    assert engineer_client.post(f"{ALERTS}999999/acknowledge/").status_code == 404
    assert engineer_client.get(f"{ALERTS}999999/history/").status_code == 404


# --- an incident from alerts ---------------------------------------------------------------------


def test_an_incident_from_alerts_is_prefilled_and_follows_them_up(world, engineer_client):
    later, earlier = fire(
        world["token"],
        [
            generic_alert("CashierLatency", starts_at="2026-11-02T08:00:00Z", summary="收银台支付耗时过高"),
            generic_alert("PayoutTimeouts", starts_at="2026-11-02T07:55:30Z", system="payout", summary="代付超时"),
        ],
        at=T0,
    )

    answer = post_at(
        engineer_client, T0 + timedelta(seconds=200), f"{ALERTS}create-incident/", {"ids": [later, earlier]}
    )

    assert answer.status_code == 201, answer.content
    body = answer.json()
    incident = Incident.objects.get(pk=body["id"])
    assert parse_datetime(body["occurred_at"]) == incident.occurred_at == datetime(2026, 11, 2, 7, 55, 30, tzinfo=UTC)
    assert parse_datetime(body["detected_at"]) == T0  # when the first of them reached people
    assert body["detection_source"] == "monitoring"
    assert sorted(body["systems"]) == ["cashier", "payout"]
    assert body["team"] == "payments"
    assert body["title"] == "代付超时"  # the earliest alert's summary
    assert body["summary"] == "CashierLatency: 收银台支付耗时过高\nPayoutTimeouts: 代付超时"
    assert incident.created_by == engineer_client.user
    assert incident.timeline.filter(kind=TimelineEntry.Kind.CREATED).count() == 1
    for occurrence in AlertOccurrence.objects.filter(pk__in=[later, earlier]):
        assert occurrence.incident_id == incident.pk
        assert occurrence.followed_up_at == T0 + timedelta(seconds=200)
        assert occurrence.followed_up_by == engineer_client.user
    assert activities(earlier) == [("linked", T0 + timedelta(seconds=200), "engineer", "", incident.pk)]


def test_an_incident_from_alerts_with_a_title_and_systems_given(world, engineer_client):
    (alert_id,) = fire(world["token"], [generic_alert("Unrouted", system="nowhere", team="nobody")], at=T0)

    refused = engineer_client.post(f"{ALERTS}create-incident/", {"ids": [alert_id]}, format="json")
    assert refused.status_code == 400
    assert "systems" in refused.json()

    answer = engineer_client.post(
        f"{ALERTS}create-incident/",
        {"ids": [alert_id], "title": "支付通道异常", "systems": ["payout"]},
        format="json",
    )
    assert answer.status_code == 201, answer.content
    assert (answer.json()["title"], answer.json()["systems"], answer.json()["team"]) == (
        "支付通道异常",
        ["payout"],
        "payments",
    )
    assert AlertOccurrence.objects.get(pk=alert_id).incident_id == answer.json()["id"]


def test_an_incident_from_an_alert_whose_source_clock_is_ahead(world, engineer_client):
    (alert_id,) = fire(world["token"], [generic_alert("Skewed", starts_at="2026-11-02T16:00:00Z")], at=T0)

    answer = post_at(engineer_client, T0 + timedelta(seconds=60), f"{ALERTS}create-incident/", {"ids": [alert_id]})

    assert answer.status_code == 201, answer.content
    assert parse_datetime(answer.json()["occurred_at"]) <= T0


@pytest.mark.parametrize(
    ("body", "field"),
    [({"ids": []}, "ids"), ({"ids": [999999]}, "ids"), ({"ids": [1], "systems": ["no-such"]}, "systems")],
)
def test_bad_incident_from_alerts_input_is_400(world, engineer_client, body, field):
    (alert_id,) = fire(world["token"], [generic_alert("A")], at=T0)
    body = {**body, "ids": [alert_id if i == 1 else i for i in body["ids"]]}
    answer = engineer_client.post(f"{ALERTS}create-incident/", body, format="json")
    assert answer.status_code == 400
    assert field in answer.json()
    assert not Incident.objects.exists()


# --- who may follow up ---------------------------------------------------------------------------

ACTIONS = [
    ("{id}/acknowledge/", {}),
    ("{id}/comment/", {"text": "x"}),
    ("{id}/resolve/", {}),
    ("follow-up/", {"ids": ["{id}"], "action": "acknowledge"}),
    ("create-incident/", {"ids": ["{id}"]}),
]


def _fill(path: str, body: dict, alert_id: int) -> tuple[str, dict]:
    filled = {k: [alert_id] if v == ["{id}"] else v for k, v in body.items()}
    return ALERTS + path.format(id=alert_id), filled


@pytest.mark.parametrize(("path", "body"), ACTIONS)
def test_managers_may_read_but_not_follow_up(world, manager_client, path, body):
    (alert_id,) = fire(world["token"], [generic_alert("A")], at=T0)
    url, data = _fill(path, body, alert_id)

    assert manager_client.post(url, data, format="json").status_code == 403
    assert manager_client.get(f"{ALERTS}{alert_id}/").status_code == 200
    assert AlertOccurrence.objects.get(pk=alert_id).followed_up_at is None
    assert not Incident.objects.exists()


@pytest.mark.parametrize(("path", "body"), ACTIONS)
def test_anonymous_requests_are_401(world, anonymous_client, path, body):
    (alert_id,) = fire(world["token"], [generic_alert("A")], at=T0)
    url, data = _fill(path, body, alert_id)
    assert anonymous_client.post(url, data, format="json").status_code == 401
    assert AlertOccurrence.objects.get(pk=alert_id).followed_up_at is None


@pytest.mark.parametrize(("path", "body"), ACTIONS)
def test_an_integration_token_cannot_follow_up(world, anonymous_client, path, body):
    """An integration's actions are never follow-ups: its token is not a person's token."""
    (alert_id,) = fire(world["token"], [generic_alert("A")], at=T0)
    url, data = _fill(path, body, alert_id)
    anonymous_client.credentials(HTTP_AUTHORIZATION=f"Bearer {world['token']}")

    answer = anonymous_client.post(url, data, format="json")

    assert answer.status_code == 401
    assert AlertOccurrence.objects.get(pk=alert_id).followed_up_at is None
