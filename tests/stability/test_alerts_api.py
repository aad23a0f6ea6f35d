"""Reading alerts over the API (list, filters, query counts, who may see them), maintenance windows,
rejected deliveries, and the stability admin. Alerts arrive through the real generic webhook."""

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.messages import get_messages
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils.dateparse import parse_datetime

from accounts.models import Role
from accounts.tokens import digest_of
from stability.models import AlertActivity, AlertOccurrence, Integration, MaintenanceWindow, RejectedDelivery
from stability.services import integration_create
from tests.factories import SystemFactory, TeamFactory, UserFactory
from tests.stability.test_follow_up import T0, fire, generic_alert, post_at

ALERTS = "/api/v1/alerts/"
WINDOWS = "/api/v1/maintenance-windows/"
REJECTED = "/api/v1/rejected-deliveries/"


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


def ids_of(response) -> set[int]:
    assert response.status_code == 200, response.content
    return {alert["id"] for alert in response.json()["results"]}


# --- one alert as read ---------------------------------------------------------------------------


def test_an_alert_as_read(world, engineer_client, manager_client):
    alert = generic_alert("CashierLatency", summary="收银台支付耗时过高", instance="cashier-01")
    alert["annotations"]["runbook"] = "https://wiki.example.com/cashier"
    alert["source_url"] = "https://grafana.example.com/d/cashier"
    (alert_id,) = fire(world["token"], [alert], at=T0)
    fire(world["token"], [generic_alert("CashierLatency", instance="cashier-01")], at=T0 + timedelta(seconds=30))
    post_at(engineer_client, T0 + timedelta(seconds=75), f"{ALERTS}{alert_id}/acknowledge/")

    listed = manager_client.get(ALERTS)
    assert listed.status_code == 200
    assert listed.json()["count"] == 1
    body = listed.json()["results"][0]
    assert body == manager_client.get(f"{ALERTS}{alert_id}/").json()
    times = {name: parse_datetime(body.pop(name)) for name in ("starts_at", "received_at", "last_received_at")}
    times |= {name: parse_datetime(body.pop(name)) for name in ("acknowledged_at", "followed_up_at")}
    assert times == {
        "starts_at": datetime(2026, 11, 2, 8, 0, tzinfo=UTC),
        "received_at": T0,
        "last_received_at": T0 + timedelta(seconds=30),
        "acknowledged_at": T0 + timedelta(seconds=75),
        "followed_up_at": T0 + timedelta(seconds=75),
    }
    assert body == {
        "id": alert_id,
        "integration": "g",
        "fingerprint": "CashierLatency",
        "alertname": "CashierLatency",
        "severity": "critical",
        # a repeat notification refreshes what the source says now
        "summary": "CashierLatency on cashier",
        "status": "firing",
        "labels": {
            "alertname": "CashierLatency",
            "system": "cashier",
            "team": "payments",
            "severity": "critical",
            "instance": "cashier-01",
        },
        "annotations": {"summary": "CashierLatency on cashier"},
        "generator_url": "https://grafana.example.com/d/cashier",
        "team": "payments",
        "system": "cashier",
        "ends_at": None,
        "notifications": 2,
        "excluded": "",
        "acknowledged_by": "engineer",
        "followed_up_by": "engineer",
        "follow_up_delay": 75,
        "resolved_at": None,
        "resolved_by": None,
        "incident": None,
    }


# --- filters -------------------------------------------------------------------------------------


@pytest.fixture
def four_alerts(world, engineer_client):
    """A (cashier, critical, followed up), B (payout, warning), C (cashier, warning, label in=yes),
    D (payout, critical, silenced at the source), received 10 minutes apart from T0."""
    token = world["token"]
    (a,) = fire(token, [generic_alert("CashierLatency", summary="收银台支付耗时过高")], at=T0)
    (b,) = fire(
        token, [generic_alert("PayoutTimeouts", system="payout", severity="warning")], at=T0 + timedelta(minutes=10)
    )
    (c,) = fire(
        token,
        [generic_alert("CashierErrors", severity="warning", starts_at="2026-11-02T07:00:00Z", **{"in": "yes"})],
        at=T0 + timedelta(minutes=20),
    )
    silenced = generic_alert("PayoutQueue", system="payout", summary="queue a=b")
    silenced["silenced"] = True
    (d,) = fire(token, [silenced], at=T0 + timedelta(minutes=30))
    post_at(engineer_client, T0 + timedelta(seconds=60), f"{ALERTS}{a}/acknowledge/")
    return {"A": a, "B": b, "C": c, "D": d}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, "ABCD"),
        ({"followed_up": "false", "received_after": T0}, "BCD"),
        ({"followed_up": "true"}, "A"),
        ({"label": "severity=critical"}, "AD"),
        ({"label": ["severity=warning", "system=payout"]}, "B"),
        ({"label": "in=yes"}, "C"),  # a label named like a lookup is still a label
        ({"label": "severity="}, ""),
        ({"system": "cashier"}, "AC"),
        ({"system": "payout", "followed_up": "false", "received_after": T0}, "BD"),
        ({"team": "payments"}, "ABCD"),
        ({"team": "nobody"}, ""),
        ({"severity": "warning"}, "BC"),
        ({"status": "firing"}, "ABCD"),
        ({"status": "resolved"}, ""),
        ({"received_after": T0 + timedelta(minutes=5), "received_before": T0 + timedelta(minutes=20)}, "B"),
        ({"received_after": T0 + timedelta(minutes=20)}, "CD"),
        ({"received_before": T0 + timedelta(minutes=10)}, "A"),
        ({"excluded": "true"}, "D"),
        ({"excluded": "false"}, "ABC"),
        ({"excluded": "silenced"}, "D"),
        ({"excluded": "maintenance"}, ""),
        ({"q": "payout"}, "BD"),
        ({"q": "耗时"}, "A"),
    ],
)
def test_filters(four_alerts, manager_client, query, expected):
    query = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in query.items()}
    assert ids_of(manager_client.get(ALERTS, query)) == {four_alerts[name] for name in expected}


def test_a_repeat_that_raises_the_severity_is_found_by_both_severity_filters(world, manager_client):
    (alert_id,) = fire(world["token"], [generic_alert("Queue", severity="warning")], at=T0)
    fire(world["token"], [generic_alert("Queue", severity="critical")], at=T0 + timedelta(seconds=60))

    assert ids_of(manager_client.get(ALERTS, {"label": "severity=critical"})) == {alert_id}
    assert ids_of(manager_client.get(ALERTS, {"severity": "critical"})) == {alert_id}


def test_filter_by_integration(four_alerts, world, manager_client):
    other, _token = integration_create(kind="generic", name="other")
    assert ids_of(manager_client.get(ALERTS, {"integration": world["integration"].pk})) == set(four_alerts.values())
    assert ids_of(manager_client.get(ALERTS, {"integration": other.pk})) == set()


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"label": "severity"}, "label"),
        ({"label": "=critical"}, "label"),
        ({"label": "sev-erity=critical"}, "label"),
        ({"label": "a b=1"}, "label"),
        ({"excluded": "sometimes"}, "excluded"),
        ({"followed_up": "perhaps"}, "followed_up"),
        ({"received_after": "yesterday"}, "received_after"),
    ],
)
def test_bad_filters_are_400_naming_the_filter(four_alerts, manager_client, query, field):
    answer = manager_client.get(ALERTS, query)
    assert answer.status_code == 400
    assert field in answer.json()


def test_default_order_is_newest_first_and_ordering_can_change_it(four_alerts, manager_client):
    newest_first = [a["id"] for a in manager_client.get(ALERTS).json()["results"]]
    assert newest_first == [four_alerts[n] for n in "DCBA"]
    by_start = [a["id"] for a in manager_client.get(ALERTS, {"ordering": "starts_at"}).json()["results"]]
    assert by_start[0] == four_alerts["C"]  # the only one that started at 07:00


def test_the_list_costs_the_same_queries_for_3_and_for_30_alerts(world, engineer_client):
    first_three = fire(world["token"], [generic_alert(f"A{n}") for n in range(3)], at=T0)
    # every user column filled: resolved_by and followed_up_by are joined, not fetched one by one
    engineer_client.post(f"{ALERTS}follow-up/", {"ids": first_three, "action": "resolve"}, format="json")
    engineer_client.post(f"{ALERTS}follow-up/", {"ids": first_three, "action": "acknowledge"}, format="json")
    engineer_client.get(ALERTS)  # the token's last_used_at is written on the first request of a minute

    with CaptureQueriesContext(connection) as three:
        assert engineer_client.get(ALERTS).json()["count"] == 3
    fire(world["token"], [generic_alert(f"B{n}", system="payout") for n in range(27)], at=T0 + timedelta(minutes=1))
    with CaptureQueriesContext(connection) as thirty:
        assert engineer_client.get(ALERTS).json()["count"] == 30

    # the token, the count, the page with everything it names
    assert len(three) == len(thirty) == 3, [q["sql"] for q in thirty.captured_queries]


def test_the_history_costs_constant_queries(world, engineer_client):
    (alert_id,) = fire(world["token"], [generic_alert("A")], at=T0)
    for n in range(5):
        engineer_client.post(f"{ALERTS}{alert_id}/comment/", {"text": f"note {n}"}, format="json")
    with CaptureQueriesContext(connection) as queries:
        assert len(engineer_client.get(f"{ALERTS}{alert_id}/history/").json()) == 5
    assert len(queries) == 3  # the token, the alert, its activities with their authors


# --- who may read --------------------------------------------------------------------------------


def test_every_role_reads_alerts(world, engineer_client, manager_client, admin_client_api):
    (alert_id,) = fire(world["token"], [generic_alert("A")], at=T0)
    for client in (engineer_client, manager_client, admin_client_api):
        assert ids_of(client.get(ALERTS)) == {alert_id}
        assert client.get(f"{ALERTS}{alert_id}/history/").status_code == 200


def test_anonymous_reads_are_401(world, anonymous_client):
    (alert_id,) = fire(world["token"], [generic_alert("A")], at=T0)
    assert anonymous_client.get(ALERTS).status_code == 401
    assert anonymous_client.get(f"{ALERTS}{alert_id}/").status_code == 401


def test_an_integration_token_is_401_on_the_alerts_api(world, anonymous_client):
    fire(world["token"], [generic_alert("A")], at=T0)
    anonymous_client.credentials(HTTP_AUTHORIZATION=f"Bearer {world['token']}")
    answer = anonymous_client.get(ALERTS)
    assert answer.status_code == 401
    assert answer["WWW-Authenticate"].startswith("Bearer")


def test_alerts_are_read_only(world, admin_client_api):
    (alert_id,) = fire(world["token"], [generic_alert("A")], at=T0)
    assert admin_client_api.post(ALERTS, {}, format="json").status_code == 405
    assert admin_client_api.patch(f"{ALERTS}{alert_id}/", {"status": "resolved"}, format="json").status_code == 405
    assert admin_client_api.delete(f"{ALERTS}{alert_id}/").status_code == 405


# --- maintenance windows -------------------------------------------------------------------------


def window_body(**changes) -> dict:
    return {
        "system": "cashier",
        "starts_at": "2026-11-02T08:00:00Z",
        "ends_at": "2026-11-02T09:00:00Z",
        "reason": "收银台发布 v2.3",
        **changes,
    }


def test_an_engineer_sets_a_window_and_alerts_received_in_it_are_excluded(world, engineer_client, manager_client):
    created = engineer_client.post(WINDOWS, window_body(), format="json")

    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["system"], body["reason"], body["created_by"]) == ("cashier", "收银台发布 v2.3", "engineer")
    window = MaintenanceWindow.objects.get(pk=body["id"])
    assert (window.starts_at, window.ends_at) == (
        datetime(2026, 11, 2, 8, tzinfo=UTC),
        datetime(2026, 11, 2, 9, tzinfo=UTC),
    )
    assert window.created_by == engineer_client.user
    assert manager_client.get(WINDOWS).json()["results"][0]["id"] == window.pk

    inside, other_system = fire(world["token"], [generic_alert("A"), generic_alert("B", system="payout")], at=T0)
    (after,) = fire(world["token"], [generic_alert("C")], at=datetime(2026, 11, 2, 9, tzinfo=UTC))
    excluded = dict(AlertOccurrence.objects.values_list("pk", "excluded"))
    assert excluded == {inside: "maintenance", other_system: "", after: ""}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"ends_at": "2026-11-02T08:00:00Z"}, "ends_at"),  # ends when it starts
        ({"ends_at": "2026-11-02T07:00:00Z"}, "ends_at"),
        ({"system": "no-such"}, "system"),
        ({"reason": ""}, "reason"),
        ({"starts_at": "tomorrow"}, "starts_at"),
        ({"owner": "someone"}, "owner"),
    ],
)
def test_a_bad_window_is_400_naming_the_field(world, engineer_client, changes, field):
    answer = engineer_client.post(WINDOWS, window_body(**changes), format="json")
    assert answer.status_code == 400
    assert field in answer.json()
    assert not MaintenanceWindow.objects.exists()


def test_changing_a_window(world, engineer_client):
    window_id = engineer_client.post(WINDOWS, window_body(), format="json").json()["id"]

    too_early = engineer_client.patch(f"{WINDOWS}{window_id}/", {"ends_at": "2026-11-02T07:59:00Z"}, format="json")
    assert too_early.status_code == 400
    assert "ends_at" in too_early.json()

    moved = engineer_client.patch(
        f"{WINDOWS}{window_id}/", {"ends_at": "2026-11-02T10:30:00Z", "reason": "发布延长"}, format="json"
    )
    assert moved.status_code == 200, moved.content
    window = MaintenanceWindow.objects.get(pk=window_id)
    assert (window.ends_at, window.reason) == (datetime(2026, 11, 2, 10, 30, tzinfo=UTC), "发布延长")

    replaced = engineer_client.put(f"{WINDOWS}{window_id}/", window_body(system="payout"), format="json")
    assert replaced.status_code == 200
    assert replaced.json()["system"] == "payout"
    assert replaced.json()["created_by"] == "engineer"


def test_managers_read_windows_but_do_not_set_them(world, engineer_client, manager_client, anonymous_client):
    window_id = engineer_client.post(WINDOWS, window_body(), format="json").json()["id"]
    assert manager_client.post(WINDOWS, window_body(), format="json").status_code == 403
    assert manager_client.patch(f"{WINDOWS}{window_id}/", {"reason": "x"}, format="json").status_code == 403
    assert manager_client.get(f"{WINDOWS}{window_id}/").status_code == 200
    assert anonymous_client.get(WINDOWS).status_code == 401
    assert engineer_client.delete(f"{WINDOWS}{window_id}/").status_code == 405


def test_windows_filtered_by_system_and_end(world, engineer_client):
    cashier = engineer_client.post(WINDOWS, window_body(), format="json").json()["id"]
    payout = engineer_client.post(
        WINDOWS, window_body(system="payout", ends_at="2026-11-02T12:00:00Z"), format="json"
    ).json()["id"]
    assert ids_of(engineer_client.get(WINDOWS, {"system": "payout"})) == {payout}
    assert ids_of(engineer_client.get(WINDOWS, {"ends_after": "2026-11-02T09:00:00Z"})) == {payout}
    assert ids_of(engineer_client.get(WINDOWS)) == {cashier, payout}


# --- rejected deliveries -------------------------------------------------------------------------


def test_rejected_deliveries_are_for_administrators_only(
    world, admin_client_api, engineer_client, manager_client, anonymous_client
):
    refused = Client().post(
        "/api/v1/integrations/generic/",
        "{bad",
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {world['token']}",
    )
    assert refused.status_code == 400

    listed = admin_client_api.get(REJECTED)
    assert listed.status_code == 200
    (row,) = listed.json()["results"]
    assert (row["integration"], row["body"], row["remote_addr"]) == ("g", "{bad", "127.0.0.1")
    assert "not valid JSON" in row["reason"]
    assert admin_client_api.get(f"{REJECTED}{row['id']}/").json() == row
    for client in (engineer_client, manager_client):
        assert client.get(REJECTED).status_code == 403
        assert client.get(f"{REJECTED}{row['id']}/").status_code == 403
    assert anonymous_client.get(REJECTED).status_code == 401
    assert admin_client_api.delete(f"{REJECTED}{row['id']}/").status_code == 405


# --- the admin -----------------------------------------------------------------------------------


@pytest.fixture
def admin_browser(client):
    admin = UserFactory(username="root", role=Role.ADMIN, is_staff=True, is_superuser=True)
    client.force_login(admin)
    client.admin = admin
    return client


@pytest.mark.parametrize("model", [Integration, MaintenanceWindow, AlertOccurrence, AlertActivity, RejectedDelivery])
def test_every_stability_model_has_a_working_changelist_and_detail(world, admin_browser, engineer_client, model):
    (alert_id,) = fire(world["token"], [generic_alert("A")], at=T0)
    engineer_client.post(f"{ALERTS}{alert_id}/comment/", {"text": "x"}, format="json")
    engineer_client.post(WINDOWS, window_body(), format="json")
    Client().post("/api/v1/integrations/generic/", "{bad", content_type="application/json",
                  HTTP_AUTHORIZATION=f"Bearer {world['token']}")  # fmt: skip
    prefix = f"admin:{model._meta.app_label}_{model._meta.model_name}"

    assert admin_browser.get(reverse(f"{prefix}_changelist")).status_code == 200
    assert admin_browser.get(reverse(f"{prefix}_change", args=[model.objects.first().pk])).status_code == 200


def test_adding_an_integration_in_the_admin_shows_its_token_once(world, admin_browser):
    response = admin_browser.post(
        reverse("admin:stability_integration_add"),
        {
            "kind": "generic",
            "name": "zabbix",
            "enabled": "on",
            "default_team": world["team"].pk,
            "default_system": "",
            "team_label": "team",
            "system_labels": '["system", "service"]',
            "severity_label": "severity",
            "rate_limit_per_minute": "",
        },
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    integration = Integration.objects.get(name="zabbix")
    assert (integration.created_by, integration.default_team) == (admin_browser.admin, world["team"])
    (token,) = [str(m).rsplit(": ", 1)[1] for m in get_messages(response.wsgi_request) if "shown this once" in str(m)]
    assert integration.token_digest == digest_of(token)
    assert token.startswith(f"st_i_{integration.token_prefix}")
    (alert_id,) = fire(token, [generic_alert("FromZabbix", system="nowhere", team="nowhere")], at=T0)
    occurrence = AlertOccurrence.objects.get(pk=alert_id)
    assert (occurrence.integration, occurrence.team) == (integration, world["team"])


def test_rotating_a_token_in_the_admin_shows_the_new_one_and_the_old_one_stops(world, admin_browser):
    response = admin_browser.post(
        reverse("admin:stability_integration_changelist"),
        {"action": "rotate_token", "_selected_action": [world["integration"].pk]},
    )

    assert response.status_code == 302
    (token,) = [str(m).rsplit(": ", 1)[1] for m in get_messages(response.wsgi_request) if "shown this once" in str(m)]
    world["integration"].refresh_from_db()
    assert world["integration"].token_digest == digest_of(token)
    refused = Client().post(
        "/api/v1/integrations/generic/",
        "{}",
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {world['token']}",
    )
    assert refused.status_code == 401
    fire(token, [generic_alert("A")], at=T0)


@pytest.mark.parametrize("system_labels", ['"system"', "[]", '["system", 5]', "{}"])
def test_the_admin_wants_system_labels_as_a_list_of_names(world, admin_browser, system_labels):
    response = admin_browser.post(
        reverse("admin:stability_integration_change", args=[world["integration"].pk]),
        {
            "name": "g",
            "enabled": "on",
            "team_label": "team",
            "system_labels": system_labels,
            "severity_label": "severity",
        },
    )
    assert response.status_code == 200
    assert "system_labels" in response.context["adminform"].form.errors
    world["integration"].refresh_from_db()
    assert world["integration"].system_labels == ["system", "service"]


def test_alerts_and_their_history_cannot_be_changed_or_deleted_in_the_admin(world, admin_browser):
    (alert_id,) = fire(world["token"], [generic_alert("A")], at=T0)
    assert admin_browser.get(reverse("admin:stability_alertoccurrence_add")).status_code == 403
    assert admin_browser.get(reverse("admin:stability_alertoccurrence_delete", args=[alert_id])).status_code == 403
    assert (
        admin_browser.post(
            reverse("admin:stability_alertoccurrence_change", args=[alert_id]), {"status": "resolved"}
        ).status_code
        == 403
    )
    assert AlertOccurrence.objects.get(pk=alert_id).status == "firing"


def test_a_maintenance_window_added_in_the_admin(world, admin_browser):
    def add(ends: str):
        return admin_browser.post(
            reverse("admin:stability_maintenancewindow_add"),
            {
                "system": world["cashier"].pk,
                "starts_at_0": "2026-11-02",
                "starts_at_1": "16:00:00",
                "ends_at_0": "2026-11-02",
                "ends_at_1": ends,
                "reason": "发布",
            },
        )

    refused = add("15:00:00")
    assert refused.status_code == 200
    assert "ends_at" in refused.context["adminform"].form.errors
    assert not MaintenanceWindow.objects.exists()

    assert add("17:00:00").status_code == 302
    window = MaintenanceWindow.objects.get()
    assert window.created_by == admin_browser.admin
    # the admin's fields are in the organisation's zone, Asia/Shanghai
    assert window.ends_at == datetime(2026, 11, 2, 9, tzinfo=UTC)


def test_the_integration_page_shows_the_token_prefix_only(world, admin_browser):
    page = admin_browser.get(reverse("admin:stability_integration_change", args=[world["integration"].pk]))
    text = page.content.decode()
    assert world["integration"].token_prefix in text
    assert world["token"] not in text and world["integration"].token_digest not in text
