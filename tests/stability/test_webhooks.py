"""The alert webhooks (contracts.md, "HTTP"; metrics.md, "Alerts and the 5-minute follow-up rate").

Posted through Django's test client, so every request passes the whole stack: the shared sample
payloads of ../shared/payloads, identity and repeats, resolution, routing, exclusions, every
refusal, partial rejection, the constant number of queries per notification and, on PostgreSQL,
concurrent deliveries of one alert.
"""

import copy
import hashlib
import json
import threading
from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path

import pytest
import time_machine
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils.dateparse import parse_datetime

from stability.models import AlertOccurrence, MaintenanceWindow, RejectedDelivery
from stability.services import integration_create
from tests.conftest import needs_postgres
from tests.factories import SystemFactory, TeamFactory

# The shared samples live beside the repository (../shared/payloads), wherever it is cloned.
PAYLOADS = Path(__file__).resolve().parents[3] / "shared" / "payloads"

T0 = datetime(2026, 9, 1, 2, 12, tzinfo=UTC)  # first receipt of the sample alerts

_names = count(1)


def payload(name: str) -> dict:
    return json.loads((PAYLOADS / f"{name}.json").read_text(encoding="utf-8"))


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def integration(kind: str = "alertmanager", **options):
    """(integration, token)"""
    return integration_create(kind=kind, name=f"{kind} {next(_names)}", **options)


def post(client, kind: str, body, token: str | None, **extra):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body, ensure_ascii=False)
    if token is not None:
        extra.setdefault("HTTP_AUTHORIZATION", f"Bearer {token}")
    return client.post(f"/api/v1/integrations/{kind}/", data, content_type="application/json", **extra)


def prometheus_alert(n: int | str, *, starts_at: str = "2026-09-01T02:00:00Z", **labels) -> dict:
    """An Alertmanager v4 / Grafana alert, with a fingerprint of its own."""
    return {
        "status": "firing",
        "labels": {"alertname": "DiskFull", "instance": f"host-{n}:9100", **labels},
        "annotations": {"summary": f"disk full on host-{n}"},
        "startsAt": starts_at,
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.example.com/graph",
        "fingerprint": f"fp{n}",
    }


def alertmanager_body(alerts: list[dict]) -> dict:
    return {"version": "4", "status": "firing", "receiver": "stability-tracker", "alerts": alerts}


def expected_label_fingerprint(labels: dict[str, str]) -> str:
    """Independently of the code: SHA-256 of the sorted label set, as stability/formats.py documents it."""
    canonical = json.dumps(sorted(labels.items()), ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@pytest.fixture
def payments(db):
    team = TeamFactory(slug="payments", name="Payments")
    return {
        "team": team,
        "cashier": SystemFactory(code="cashier", team=team),
        "bank-gateway": SystemFactory(code="bank-gateway", team=team),
    }


@pytest.fixture(autouse=True)
def _fresh_rate_counters():
    cache.clear()


# --- the shared samples ------------------------------------------------------------------------------


def test_the_shared_payloads_are_found():
    assert {p.name for p in PAYLOADS.glob("*.json")} >= {
        "alertmanager-firing.json",
        "alertmanager-resolved.json",
        "grafana-firing.json",
    }


def test_alertmanager_firing_creates_one_occurrence_per_alert(client, payments):
    hook, token = integration()
    with time_machine.travel(T0, tick=False):
        answer = post(client, "alertmanager", payload("alertmanager-firing"), token)

    assert answer.status_code == 200, answer.content
    assert answer.json() == {"accepted": 2, "new": 2, "repeated": 0, "rejected": []}
    first, second = AlertOccurrence.objects.order_by("starts_at")
    assert (first.fingerprint, first.starts_at) == ("7c1f0a6b2d9e4f11", utc(2026, 9, 1, 2, 10))
    assert (second.fingerprint, second.starts_at) == ("0d3b5e8a91c2f7a4", utc(2026, 9, 1, 2, 10, 30))
    for occurrence in (first, second):
        assert occurrence.integration == hook
        assert occurrence.team == payments["team"]
        assert occurrence.system == payments["cashier"]
        assert occurrence.status == AlertOccurrence.Status.FIRING
        assert occurrence.alertname == "PaymentLatencyHigh"
        assert occurrence.severity == "critical"
        assert occurrence.summary == "收银台支付耗时过高"
        assert occurrence.received_at == occurrence.last_received_at == T0
        assert occurrence.notifications == 1
        assert occurrence.excluded == AlertOccurrence.Exclusion.NONE
        assert occurrence.ends_at is None and occurrence.resolved_at is None
        assert occurrence.generator_url.startswith("http://prometheus.example.com:9090/graph")
    assert first.labels == {
        "alertname": "PaymentLatencyHigh",
        "instance": "cashier-01:9100",
        "job": "cashier",
        "severity": "critical",
        "team": "payments",
        "system": "cashier",
    }
    assert first.annotations["description"] == "p99 latency 2.4s > 2s for 3m on cashier-01"
    assert not RejectedDelivery.objects.exists()


def _snapshot() -> dict[int, dict]:
    return {row["id"]: row for row in AlertOccurrence.objects.values()}


def test_posting_the_same_notification_again_changes_only_the_counters(client, payments):
    _hook, token = integration()
    with time_machine.travel(T0, tick=False):
        post(client, "alertmanager", payload("alertmanager-firing"), token)
    before = _snapshot()

    later = T0 + timedelta(minutes=4)
    with time_machine.travel(later, tick=False):
        answer = post(client, "alertmanager", payload("alertmanager-firing"), token)

    assert answer.status_code == 200
    assert answer.json() == {"accepted": 2, "new": 0, "repeated": 2, "rejected": []}
    after = _snapshot()
    assert after.keys() == before.keys() and len(after) == 2
    for pk, row in after.items():
        assert row["notifications"] == 2
        assert row["last_received_at"] == later
        assert row["received_at"] == T0
        unchanged = {k: v for k, v in row.items() if k not in ("notifications", "last_received_at")}
        assert unchanged == {k: v for k, v in before[pk].items() if k not in ("notifications", "last_received_at")}


def test_alertmanager_resolved_closes_the_occurrence(client, payments):
    _hook, token = integration()
    with time_machine.travel(T0, tick=False):
        post(client, "alertmanager", payload("alertmanager-firing"), token)
    receipt = utc(2026, 9, 1, 2, 31, 20)
    with time_machine.travel(receipt, tick=False):
        answer = post(client, "alertmanager", payload("alertmanager-resolved"), token)

    assert answer.status_code == 200
    assert answer.json() == {"accepted": 1, "new": 0, "repeated": 1, "rejected": []}
    resolved = AlertOccurrence.objects.get(fingerprint="7c1f0a6b2d9e4f11")
    assert resolved.status == AlertOccurrence.Status.RESOLVED
    assert resolved.ends_at == utc(2026, 9, 1, 2, 31)
    assert resolved.resolved_at == receipt
    assert resolved.resolved_by is None
    assert resolved.received_at == T0
    assert resolved.notifications == 2
    still_firing = AlertOccurrence.objects.get(fingerprint="0d3b5e8a91c2f7a4")
    assert still_firing.status == AlertOccurrence.Status.FIRING
    assert still_firing.ends_at is None and still_firing.resolved_at is None

    # A late repeat of the firing notification never reopens it.
    with time_machine.travel(receipt + timedelta(seconds=5), tick=False):
        post(client, "alertmanager", payload("alertmanager-firing"), token)
    resolved.refresh_from_db()
    assert resolved.status == AlertOccurrence.Status.RESOLVED
    assert (resolved.ends_at, resolved.resolved_at) == (utc(2026, 9, 1, 2, 31), receipt)


def test_a_later_firing_with_a_new_starts_at_is_a_new_occurrence(client, payments):
    _hook, token = integration()
    with time_machine.travel(T0, tick=False):
        post(client, "alertmanager", payload("alertmanager-firing"), token)
    with time_machine.travel(utc(2026, 9, 1, 2, 31, 20), tick=False):
        post(client, "alertmanager", payload("alertmanager-resolved"), token)

    again = payload("alertmanager-firing")
    again["alerts"] = again["alerts"][:1]
    again["alerts"][0]["startsAt"] = "2026-09-01T03:00:00.000Z"
    with time_machine.travel(utc(2026, 9, 1, 3, 1), tick=False):
        answer = post(client, "alertmanager", again, token)

    assert answer.json()["new"] == 1
    old, new = AlertOccurrence.objects.filter(fingerprint="7c1f0a6b2d9e4f11").order_by("starts_at")
    assert old.status == AlertOccurrence.Status.RESOLVED
    assert (new.starts_at, new.status, new.received_at) == (
        utc(2026, 9, 1, 3),
        AlertOccurrence.Status.FIRING,
        utc(2026, 9, 1, 3, 1),
    )
    assert new.notifications == 1 and new.ends_at is None
    assert AlertOccurrence.objects.count() == 3


def test_grafana_firing(client, payments):
    hook, token = integration("grafana")
    with time_machine.travel(utc(2026, 8, 30, 2, 50), tick=False):
        answer = post(client, "grafana", payload("grafana-firing"), token)

    assert answer.status_code == 200, answer.content
    assert answer.json() == {"accepted": 1, "new": 1, "repeated": 0, "rejected": []}
    occurrence = AlertOccurrence.objects.get()
    assert occurrence.integration == hook
    assert occurrence.fingerprint == "a41e3c0f55d2b9e7"
    assert occurrence.starts_at == utc(2026, 8, 30, 2, 49)
    assert occurrence.system == payments["bank-gateway"]
    assert occurrence.team == payments["team"]
    assert (occurrence.alertname, occurrence.severity) == ("BankChannelTimeouts", "warning")
    assert occurrence.summary == "光大前置机流水获取超时"
    assert occurrence.generator_url == "http://grafana.example.com/alerting/grafana/ceb1/view"
    assert occurrence.received_at == utc(2026, 8, 30, 2, 50)


# --- the generic format ------------------------------------------------------------------------------


def test_generic_alert_without_fingerprint_gets_the_sha256_of_its_sorted_labels(client, payments):
    _hook, token = integration("generic")
    labels = {"system": "cashier", "alertname": "对账差异", "severity": "critical", "instance": "db-1"}
    body = {"alerts": [{"labels": labels, "starts_at": "2026-09-01T10:00:00+08:00"}]}
    with time_machine.travel(T0, tick=False):
        answer = post(client, "generic", body, token)

    assert answer.status_code == 200, answer.content
    occurrence = AlertOccurrence.objects.get()
    assert occurrence.fingerprint == expected_label_fingerprint(labels)
    assert len(occurrence.fingerprint) == 64
    assert occurrence.starts_at == utc(2026, 9, 1, 2)
    assert occurrence.system == payments["cashier"]

    # The same labels in another order are the same alert.
    reordered = dict(reversed(list(labels.items())))
    with time_machine.travel(T0 + timedelta(minutes=1), tick=False):
        body = {"alerts": [{"labels": reordered, "starts_at": "2026-09-01T02:00:00Z"}]}
        answer = post(client, "generic", body, token)
    assert answer.json()["repeated"] == 1
    assert AlertOccurrence.objects.get().notifications == 2


def test_generic_alert_with_its_own_fingerprint_keeps_it(client, db):
    _hook, token = integration("generic")
    body = {"alerts": [{"labels": {"alertname": "X"}, "fingerprint": "my-own-id", "starts_at": "2026-09-01T02:00:00Z"}]}
    post(client, "generic", body, token)
    assert AlertOccurrence.objects.get().fingerprint == "my-own-id"


def test_generic_alerts_without_starts_at_join_the_open_occurrence_else_start_a_new_one(client, db):
    _hook, token = integration("generic")
    labels = {"alertname": "QueueBacklog", "service": "settlement"}
    firing = {"alerts": [{"labels": labels, "annotations": {"summary": "backlog 12k"}}]}
    t1, t2, t3, t4 = (T0 + timedelta(minutes=m) for m in (0, 3, 9, 20))

    with time_machine.travel(t1, tick=False):
        assert post(client, "generic", firing, token).json()["new"] == 1
    with time_machine.travel(t2, tick=False):
        assert post(client, "generic", firing, token).json()["repeated"] == 1
    occurrence = AlertOccurrence.objects.get()
    assert (occurrence.starts_at, occurrence.received_at, occurrence.last_received_at) == (t1, t1, t2)
    assert occurrence.notifications == 2

    resolved = {"alerts": [{"labels": labels, "status": "resolved", "ends_at": "2026-09-01T02:20:00Z"}]}
    with time_machine.travel(t3, tick=False):
        assert post(client, "generic", resolved, token).json()["repeated"] == 1
    occurrence.refresh_from_db()
    assert occurrence.status == AlertOccurrence.Status.RESOLVED
    assert (occurrence.ends_at, occurrence.resolved_at) == (utc(2026, 9, 1, 2, 20), t3)

    # Nothing open any more: the next firing starts a new occurrence, now.
    with time_machine.travel(t4, tick=False):
        assert post(client, "generic", firing, token).json()["new"] == 1
    old, new = AlertOccurrence.objects.order_by("starts_at")
    assert old.pk == occurrence.pk and old.status == AlertOccurrence.Status.RESOLVED
    assert (new.starts_at, new.received_at, new.status) == (t4, t4, AlertOccurrence.Status.FIRING)
    assert new.fingerprint == old.fingerprint == expected_label_fingerprint(labels)


# --- routing -------------------------------------------------------------------------------------


@pytest.fixture
def routing_world(db):
    payments = TeamFactory(slug="payments")
    ops = TeamFactory(slug="ops")
    clearing = TeamFactory(slug="clearing")
    return {
        "payments": payments,
        "ops": ops,
        "clearing": clearing,
        "cashier": SystemFactory(code="cashier", team=payments),
        "payout": SystemFactory(code="payout", team=clearing),
        "fallback": SystemFactory(code="fallback", team=ops),
    }


@pytest.mark.parametrize(
    ("labels", "team", "system"),
    [
        # the team label names the team; the system labels, in order, the system
        ({"team": "ops", "system": "cashier"}, "ops", "cashier"),
        # no team label: the system's team
        ({"system": "payout"}, "clearing", "payout"),
        # "system" comes before "service"
        ({"system": "cashier", "service": "payout"}, "payments", "cashier"),
        ({"service": "payout"}, "clearing", "payout"),
        # an unknown value is skipped for the next label, then the integration's defaults
        ({"system": "nope", "service": "payout"}, "clearing", "payout"),
        ({"team": "nope", "system": "nope"}, "ops", "fallback"),
        ({}, "ops", "fallback"),
    ],
)
def test_routing_by_labels_then_the_integration_defaults(client, routing_world, labels, team, system):
    _hook, token = integration(default_team=routing_world["ops"], default_system=routing_world["fallback"])
    alert = prometheus_alert(1)
    alert["labels"].update(labels)
    assert post(client, "alertmanager", alertmanager_body([alert]), token).status_code == 200
    occurrence = AlertOccurrence.objects.get()
    assert (occurrence.team.slug, occurrence.system.code) == (team, system)


def test_unknown_label_values_without_defaults_leave_team_and_system_empty(client, routing_world):
    _hook, token = integration()
    alert = prometheus_alert(1, team="nope", system="nope", service="nope")
    post(client, "alertmanager", alertmanager_body([alert]), token)
    occurrence = AlertOccurrence.objects.get()
    assert (occurrence.team, occurrence.system) == (None, None)


def test_a_team_default_alone_with_an_unknown_system(client, routing_world):
    _hook, token = integration(default_team=routing_world["ops"])
    post(client, "alertmanager", alertmanager_body([prometheus_alert(1, system="nope")]), token)
    occurrence = AlertOccurrence.objects.get()
    assert (occurrence.team, occurrence.system) == (routing_world["ops"], None)


def test_the_integration_chooses_its_own_labels(client, routing_world):
    _hook, token = integration(team_label="owner", system_labels=["app", "system"], severity_label="priority")
    alert = prometheus_alert(1, owner="ops", app="payout", system="cashier", team="payments", priority="P1")
    post(client, "alertmanager", alertmanager_body([alert]), token)
    occurrence = AlertOccurrence.objects.get()
    assert (occurrence.team.slug, occurrence.system.code, occurrence.severity) == ("ops", "payout", "P1")


def test_a_new_system_is_routed_to_at_once(client, routing_world):
    _hook, token = integration()
    post(client, "alertmanager", alertmanager_body([prometheus_alert(1, system="wallet")]), token)
    wallet = SystemFactory(code="wallet", team=routing_world["payments"])
    post(client, "alertmanager", alertmanager_body([prometheus_alert(2, system="wallet")]), token)
    assert AlertOccurrence.objects.get(fingerprint="fp1").system is None
    assert AlertOccurrence.objects.get(fingerprint="fp2").system == wallet


# --- exclusions ----------------------------------------------------------------------------------


def test_alerts_of_a_test_integration_are_excluded_as_test(client, db):
    _hook, token = integration(is_test=True)
    post(client, "alertmanager", alertmanager_body([prometheus_alert(1)]), token)
    assert AlertOccurrence.objects.get().excluded == AlertOccurrence.Exclusion.TEST


def test_generic_silenced_alerts_are_excluded_as_silenced(client, db):
    _hook, token = integration("generic")
    body = {
        "alerts": [
            {"labels": {"alertname": "A"}, "silenced": True},
            {"labels": {"alertname": "B"}, "silenced": False},
            {"labels": {"alertname": "C"}},
        ]
    }
    assert post(client, "generic", body, token).json()["accepted"] == 3
    excluded = dict(AlertOccurrence.objects.values_list("alertname", "excluded"))
    assert excluded == {"A": "silenced", "B": "", "C": ""}


def test_a_maintenance_window_covering_the_receipt_excludes_the_alert(client, payments):
    _hook, token = integration()
    MaintenanceWindow.objects.create(
        system=payments["cashier"], starts_at=T0 - timedelta(hours=1), ends_at=T0 + timedelta(hours=1), reason="upgrade"
    )
    with time_machine.travel(T0, tick=False):
        post(client, "alertmanager", alertmanager_body([prometheus_alert(1, system="cashier")]), token)
        # another system is not in maintenance
        post(client, "alertmanager", alertmanager_body([prometheus_alert(2, system="bank-gateway")]), token)
    # the window is over: counted again
    with time_machine.travel(T0 + timedelta(hours=1), tick=False):
        post(client, "alertmanager", alertmanager_body([prometheus_alert(3, system="cashier")]), token)

    excluded = dict(AlertOccurrence.objects.values_list("fingerprint", "excluded"))
    assert excluded == {"fp1": "maintenance", "fp2": "", "fp3": ""}


def test_the_exclusion_is_decided_at_first_receipt(client, payments):
    _hook, token = integration()
    window_end = T0 + timedelta(minutes=10)
    MaintenanceWindow.objects.create(
        system=payments["cashier"], starts_at=T0 - timedelta(hours=1), ends_at=window_end, reason="upgrade"
    )
    body = alertmanager_body([prometheus_alert(1, system="cashier")])
    with time_machine.travel(T0, tick=False):
        post(client, "alertmanager", body, token)
    with time_machine.travel(window_end + timedelta(minutes=5), tick=False):
        post(client, "alertmanager", body, token)
    occurrence = AlertOccurrence.objects.get()
    assert (occurrence.excluded, occurrence.notifications) == ("maintenance", 2)


def test_a_maintenance_window_saved_now_applies_at_once(client, payments):
    _hook, token = integration()
    post(client, "alertmanager", alertmanager_body([prometheus_alert(1, system="cashier")]), token)  # warm routing
    MaintenanceWindow.objects.create(
        system=payments["cashier"],
        starts_at=datetime.now(UTC) - timedelta(minutes=1),
        ends_at=datetime.now(UTC) + timedelta(hours=1),
        reason="upgrade",
    )
    post(client, "alertmanager", alertmanager_body([prometheus_alert(2, system="cashier")]), token)
    assert AlertOccurrence.objects.get(fingerprint="fp2").excluded == "maintenance"


# --- refusals ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer st_i_not-a-real-token", "Basic dXNlcjpwYXNz", "Token st_i_whatever"],
)
def test_missing_or_unknown_token_is_401_with_www_authenticate(client, db, authorization):
    integration()
    extra = {} if authorization is None else {"HTTP_AUTHORIZATION": authorization}
    answer = post(client, "alertmanager", payload("alertmanager-firing"), None, **extra)
    assert answer.status_code == 401
    assert answer["WWW-Authenticate"].startswith("Bearer")
    assert answer.json()["detail"]
    assert not AlertOccurrence.objects.exists()


def test_refusals_are_in_the_language_of_the_request(client, db):
    hook, token = integration()
    answer = post(client, "alertmanager", payload("alertmanager-firing"), "nope", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert (answer.status_code, answer.json()["detail"]) == (401, "集成令牌无效或缺失。")
    hook.enabled = False
    hook.save()
    answer = post(client, "alertmanager", payload("alertmanager-firing"), token, HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9")
    assert (answer.status_code, answer.json()["detail"]) == (403, "该集成已停用。")
    answer = post(client, "alertmanager", payload("alertmanager-firing"), token)
    assert answer.json()["detail"] == "This integration is disabled."


def test_a_personal_api_token_is_not_an_integration_token(engineer_client, db):
    answer = engineer_client.post("/api/v1/integrations/alertmanager/", payload("alertmanager-firing"), format="json")
    assert answer.status_code == 401


def test_a_disabled_integration_is_403(client, db):
    hook, token = integration()
    hook.enabled = False
    hook.save()
    answer = post(client, "alertmanager", payload("alertmanager-firing"), token)
    assert answer.status_code == 403
    assert "disabled" in answer.json()["detail"]
    assert not AlertOccurrence.objects.exists()


@pytest.mark.parametrize(("kind", "endpoint"), [("grafana", "alertmanager"), ("alertmanager", "generic")])
def test_a_token_of_another_kind_is_403(client, db, kind, endpoint):
    _hook, token = integration(kind)
    answer = post(client, endpoint, payload("alertmanager-firing"), token)
    assert answer.status_code == 403
    assert f"/api/v1/integrations/{kind}/" in answer.json()["detail"]
    assert not AlertOccurrence.objects.exists()


def test_a_body_that_is_not_json_is_400_and_kept(client, db):
    hook, token = integration()
    answer = post(client, "alertmanager", "{bad", token)
    assert answer.status_code == 400
    assert "not valid JSON" in answer.json()["detail"]
    kept = RejectedDelivery.objects.get()
    assert (kept.integration, kept.body) == (hook, "{bad")
    assert "JSON" in kept.reason


@pytest.mark.parametrize("body", ['{"alerts": 5}', "{}", "[]", '"alerts"', '{"alerts": {"a": 1}}'])
def test_a_body_without_an_alert_list_is_400_and_kept(client, db, body):
    hook, token = integration()
    answer = post(client, "alertmanager", body, token)
    assert answer.status_code == 400
    assert "alerts" in answer.json()["detail"]
    kept = RejectedDelivery.objects.get()
    assert (kept.integration, kept.body) == (hook, body)
    assert not AlertOccurrence.objects.exists()


def test_a_body_that_is_not_utf8_is_400(client, db):
    _hook, token = integration()
    answer = post(client, "alertmanager", b'{"alerts": ["\xff\xfe"]}', token)
    assert answer.status_code == 400
    assert RejectedDelivery.objects.count() == 1


def test_an_empty_alert_list_is_fine(client, db):
    _hook, token = integration()
    answer = post(client, "alertmanager", alertmanager_body([]), token)
    assert answer.status_code == 200
    assert answer.json() == {"accepted": 0, "new": 0, "repeated": 0, "rejected": []}


def test_a_body_over_the_size_limit_is_413_and_stores_nothing(client, db, settings):
    settings.INGEST_MAX_BODY_BYTES = 400
    _hook, token = integration()
    body = json.dumps(alertmanager_body([prometheus_alert(1)]))
    assert len(body) < 400

    answer = post(client, "alertmanager", body.ljust(400), token)  # exactly the limit: fine
    assert answer.status_code == 200, answer.content
    big = alertmanager_body([prometheus_alert(2)])
    big["alerts"][0]["annotations"]["description"] = "x" * 400
    answer = post(client, "alertmanager", big, token)

    assert answer.status_code == 413
    assert "400 bytes" in answer.json()["detail"]
    assert list(AlertOccurrence.objects.values_list("fingerprint", flat=True)) == ["fp1"]
    # The refusal is recorded for admins, without the oversized body.
    assert list(RejectedDelivery.objects.values_list("body", flat=True)) == [""]


def test_a_sender_over_its_rate_gets_429_with_retry_after(client, db):
    hook, token = integration()
    hook.rate_limit_per_minute = 2
    hook.save()
    cache.clear()
    with time_machine.travel(utc(2026, 9, 1, 2, 12, 15), tick=False):
        for n in (1, 2):
            assert post(client, "alertmanager", alertmanager_body([prometheus_alert(n)]), token).status_code == 200
        answer = post(client, "alertmanager", alertmanager_body([prometheus_alert(3)]), token)

    assert answer.status_code == 429
    assert 1 <= int(answer["Retry-After"]) <= 60
    assert "2 notifications a minute" in answer.json()["detail"]
    assert sorted(AlertOccurrence.objects.values_list("fingerprint", flat=True)) == ["fp1", "fp2"]

    # After the wait it is accepted again.
    wait = int(answer["Retry-After"])
    with time_machine.travel(utc(2026, 9, 1, 2, 12, 15) + timedelta(seconds=wait), tick=False):
        assert post(client, "alertmanager", alertmanager_body([prometheus_alert(3)]), token).status_code == 200


def test_the_rate_limit_is_per_integration(client, db):
    hook, token = integration()
    hook.rate_limit_per_minute = 1
    hook.save()
    _other, other_token = integration()
    with time_machine.travel(utc(2026, 9, 1, 2, 12, 15), tick=False):
        assert post(client, "alertmanager", alertmanager_body([prometheus_alert(1)]), token).status_code == 200
        assert post(client, "alertmanager", alertmanager_body([prometheus_alert(2)]), token).status_code == 429
        assert post(client, "alertmanager", alertmanager_body([prometheus_alert(3)]), other_token).status_code == 200


# --- bad alerts inside a good body ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        (lambda a: a.pop("labels"), "labels"),
        (lambda a: a.update(labels={}), "labels"),
        (lambda a: a["labels"].update(port=9100), "labels"),
        (lambda a: a.update(startsAt="yesterday"), "startsAt"),
        (lambda a: a.update(startsAt="2026-09-01T02:00:00"), "time zone"),
        (lambda a: a.pop("startsAt"), "startsAt"),
        (lambda a: a.update(status="burning"), "status"),
        (lambda a: a.update(fingerprint="f" * 65), "fingerprint"),
    ],
    ids=[
        "no-labels",
        "empty-labels",
        "number-label",
        "startsAt-yesterday",
        "naive-startsAt",
        "no-startsAt",
        "bad-status",
        "long-fp",
    ],
)
def test_a_malformed_alert_is_rejected_and_the_others_stored(client, db, spoil, reason):
    hook, token = integration()
    alerts = [prometheus_alert(n) for n in range(3)]
    spoil(alerts[1])
    body = alertmanager_body(alerts)
    answer = post(client, "alertmanager", body, token)

    assert answer.status_code == 200, answer.content
    data = answer.json()
    assert (data["accepted"], data["new"]) == (2, 2)
    assert [r["index"] for r in data["rejected"]] == [1]
    assert reason in data["rejected"][0]["reason"]
    assert sorted(AlertOccurrence.objects.values_list("fingerprint", flat=True)) == ["fp0", "fp2"]
    kept = RejectedDelivery.objects.get()
    assert kept.integration == hook
    assert kept.reason.startswith("alert 1:") and reason in kept.reason
    assert json.loads(kept.body) == body


def test_an_alert_that_is_not_an_object_is_rejected_by_index(client, db):
    _hook, token = integration("generic")
    answer = post(client, "generic", {"alerts": [{"labels": {"a": "b"}}, "oops", 7, None]}, token)
    assert answer.status_code == 200
    assert answer.json()["accepted"] == 1
    assert [r["index"] for r in answer.json()["rejected"]] == [1, 2, 3]


def test_a_body_of_only_malformed_alerts_is_200_with_all_rejected(client, db):
    _hook, token = integration("generic")
    answer = post(client, "generic", {"alerts": [{"labels": {}}, {"labels": {"a": "b"}, "silenced": "yes"}]}, token)
    assert answer.status_code == 200
    assert answer.json()["accepted"] == 0
    assert [(r["index"], "silenced" in r["reason"]) for r in answer.json()["rejected"]] == [(0, False), (1, True)]
    assert not AlertOccurrence.objects.exists()


def test_duplicate_alerts_inside_one_body_are_stored_once(client, db):
    _hook, token = integration()
    alert = prometheus_alert(1)
    answer = post(client, "alertmanager", alertmanager_body([alert, copy.deepcopy(alert), prometheus_alert(2)]), token)
    assert answer.status_code == 200, answer.content
    assert answer.json()["new"] == 2 and answer.json()["rejected"] == []
    assert sorted(AlertOccurrence.objects.values_list("fingerprint", "notifications")) == [("fp1", 1), ("fp2", 1)]


def test_duplicate_generic_alerts_without_starts_at_inside_one_body_are_stored_once(client, db):
    _hook, token = integration("generic")
    alert = {"labels": {"alertname": "A"}}
    answer = post(client, "generic", {"alerts": [alert, alert]}, token)
    assert answer.status_code == 200, answer.content
    assert AlertOccurrence.objects.get().notifications == 1


# --- constant number of queries ------------------------------------------------------------------


def _queries_of(client, kind: str, body, token: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        answer = post(client, kind, body, token)
    assert answer.status_code == 200, answer.content
    return len(queries.captured_queries)


def test_a_notification_costs_the_same_queries_whatever_its_number_of_alerts(client, payments):
    _hook, token = integration()
    post(client, "alertmanager", alertmanager_body([prometheus_alert("warm-up")]), token)  # routing snapshot

    one = alertmanager_body([prometheus_alert("one", system="cashier")])
    fifty = alertmanager_body([prometheus_alert(n, system="cashier", team="payments") for n in range(50)])
    new_one = _queries_of(client, "alertmanager", one, token)
    new_fifty = _queries_of(client, "alertmanager", fifty, token)
    repeat_one = _queries_of(client, "alertmanager", one, token)
    repeat_fifty = _queries_of(client, "alertmanager", fifty, token)

    assert new_one == new_fifty == repeat_one == repeat_fifty
    assert new_one <= 2, new_one  # the upsert (1 today); the routing snapshot is cached
    assert AlertOccurrence.objects.count() == 52
    assert set(AlertOccurrence.objects.exclude(fingerprint="fpwarm-up").values_list("notifications", flat=True)) == {2}


def test_generic_alerts_without_starts_at_also_cost_constant_queries(client, db):
    _hook, token = integration("generic")
    post(client, "generic", {"alerts": [{"labels": {"alertname": "warm-up"}}]}, token)

    one = {"alerts": [{"labels": {"alertname": "one"}}]}
    fifty = {"alerts": [{"labels": {"alertname": f"a{n}"}} for n in range(50)]}
    counts = [_queries_of(client, "generic", body, token) for body in (one, fifty, one, fifty)]
    assert len(set(counts)) == 1, counts
    assert AlertOccurrence.objects.count() == 52


# --- concurrency (PostgreSQL) --------------------------------------------------------------------


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_deliveries_of_one_alert_make_one_occurrence():
    _hook, token = integration()
    body = json.dumps(alertmanager_body([prometheus_alert("concurrent")]))
    threads_count = 8
    barrier = threading.Barrier(threads_count)
    statuses: list[int] = []
    errors: list[BaseException] = []

    def deliver():
        try:
            barrier.wait(timeout=10)
            answer = post(Client(), "alertmanager", body, token)
            statuses.append(answer.status_code)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert not errors, errors
    assert statuses == [200] * threads_count
    occurrence = AlertOccurrence.objects.get()
    assert occurrence.notifications == threads_count
    assert occurrence.starts_at == parse_datetime("2026-09-01T02:00:00Z")
