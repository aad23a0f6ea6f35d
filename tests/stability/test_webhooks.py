"""The alert webhooks (contracts.md, "HTTP"; metrics.md, "Alerts and the 5-minute follow-up rate").

Posted through Django's test client, so every request passes the whole stack: the sample bodies of
tests/fixtures/payloads, identity and repeats, resolution, routing, exclusions, every refusal,
partial rejection, what no body can break (timestamps out of range, NUL and lone surrogates, deep
nesting; read_body checked with hypothesis), the constant number of queries per notification and,
on PostgreSQL, concurrent deliveries of one alert. Reproductions through a real gunicorn are in
tests/faults/test_webhook_faults.py.
"""

import copy
import hashlib
import json
import threading
import time
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
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from accounts.tokens import digest_of
from stability.formats import CLOCK_SKEW, EARLIEST_TIMESTAMP, BodyError, RejectedAlert, read_body
from stability.ingest_routing import routing
from stability.ingestion import Received, Refusal, Refused, alerts_ingest, occurrence_columns, receive
from stability.models import AlertOccurrence, MaintenanceWindow, RejectedDelivery
from stability.services import integration_create
from tests.conftest import needs_postgres
from tests.factories import SystemFactory, TeamFactory

# Realistic bodies as Alertmanager 0.27 (webhook v4) and Grafana 11 unified alerting send them.
PAYLOADS = Path(__file__).resolve().parents[1] / "fixtures" / "payloads"

T0 = datetime(2026, 10, 14, 6, 23, tzinfo=UTC)  # first receipt of the sample alerts

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
        "payout": SystemFactory(code="payout", team=team),
        "bank-channel": SystemFactory(code="bank-channel", team=team),
    }


@pytest.fixture(autouse=True)
def _fresh_rate_counters():
    cache.clear()


# --- the sample bodies -------------------------------------------------------------------------------


def test_the_sample_payloads_are_found():
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
    assert (first.fingerprint, first.starts_at) == ("5e2a91d04c7b8f36", utc(2026, 10, 14, 6, 21))
    assert (second.fingerprint, second.starts_at) == ("b18c06e7a3d25f90", utc(2026, 10, 14, 6, 21, 45))
    for occurrence in (first, second):
        assert occurrence.integration == hook
        assert occurrence.team == payments["team"]
        assert occurrence.system == payments["payout"]
        assert occurrence.status == AlertOccurrence.Status.FIRING
        assert occurrence.alertname == "PayoutQueueStuck"
        assert occurrence.severity == "critical"
        assert occurrence.summary == "代付队列积压"
        assert occurrence.received_at == occurrence.last_received_at == T0
        assert occurrence.notifications == 1
        assert occurrence.excluded == AlertOccurrence.Exclusion.NONE
        assert occurrence.ends_at is None and occurrence.resolved_at is None
        assert occurrence.generator_url.startswith("http://prometheus.pay.example.org:9090/graph")
    assert first.labels == {
        "alertname": "PayoutQueueStuck",
        "instance": "payout-worker-3:8080",
        "job": "payout-worker",
        "severity": "critical",
        "team": "payments",
        "system": "payout",
    }
    assert first.annotations["description"] == "payout queue depth 4812 > 1000 for 5m on payout-worker-3"
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
    receipt = utc(2026, 10, 14, 6, 47, 50)
    with time_machine.travel(receipt, tick=False):
        answer = post(client, "alertmanager", payload("alertmanager-resolved"), token)

    assert answer.status_code == 200
    assert answer.json() == {"accepted": 1, "new": 0, "repeated": 1, "rejected": []}
    resolved = AlertOccurrence.objects.get(fingerprint="5e2a91d04c7b8f36")
    assert resolved.status == AlertOccurrence.Status.RESOLVED
    assert resolved.ends_at == utc(2026, 10, 14, 6, 47, 30)
    assert resolved.resolved_at == receipt
    assert resolved.resolved_by is None
    assert resolved.received_at == T0
    assert resolved.notifications == 2
    still_firing = AlertOccurrence.objects.get(fingerprint="b18c06e7a3d25f90")
    assert still_firing.status == AlertOccurrence.Status.FIRING
    assert still_firing.ends_at is None and still_firing.resolved_at is None

    # A late repeat of the firing notification never reopens it.
    with time_machine.travel(receipt + timedelta(seconds=5), tick=False):
        post(client, "alertmanager", payload("alertmanager-firing"), token)
    resolved.refresh_from_db()
    assert resolved.status == AlertOccurrence.Status.RESOLVED
    assert (resolved.ends_at, resolved.resolved_at) == (utc(2026, 10, 14, 6, 47, 30), receipt)


def test_a_later_firing_with_a_new_starts_at_is_a_new_occurrence(client, payments):
    _hook, token = integration()
    with time_machine.travel(T0, tick=False):
        post(client, "alertmanager", payload("alertmanager-firing"), token)
    with time_machine.travel(utc(2026, 10, 14, 6, 47, 50), tick=False):
        post(client, "alertmanager", payload("alertmanager-resolved"), token)

    again = payload("alertmanager-firing")
    again["alerts"] = again["alerts"][:1]
    again["alerts"][0]["startsAt"] = "2026-10-14T07:10:00.000Z"
    with time_machine.travel(utc(2026, 10, 14, 7, 11), tick=False):
        answer = post(client, "alertmanager", again, token)

    assert answer.json()["new"] == 1
    old, new = AlertOccurrence.objects.filter(fingerprint="5e2a91d04c7b8f36").order_by("starts_at")
    assert old.status == AlertOccurrence.Status.RESOLVED
    assert (new.starts_at, new.status, new.received_at) == (
        utc(2026, 10, 14, 7, 10),
        AlertOccurrence.Status.FIRING,
        utc(2026, 10, 14, 7, 11),
    )
    assert new.notifications == 1 and new.ends_at is None
    assert AlertOccurrence.objects.count() == 3


def test_grafana_firing(client, payments):
    hook, token = integration("grafana")
    with time_machine.travel(utc(2026, 10, 15, 1, 35), tick=False):
        answer = post(client, "grafana", payload("grafana-firing"), token)

    assert answer.status_code == 200, answer.content
    assert answer.json() == {"accepted": 1, "new": 1, "repeated": 0, "rejected": []}
    occurrence = AlertOccurrence.objects.get()
    assert occurrence.integration == hook
    assert occurrence.fingerprint == "f03d7c2b19e8a456"
    assert occurrence.starts_at == utc(2026, 10, 15, 1, 34)
    assert occurrence.system == payments["bank-channel"]
    assert occurrence.team == payments["team"]
    assert (occurrence.alertname, occurrence.severity) == ("BankChannelErrorRate", "warning")
    assert occurrence.summary == "工行渠道交易失败率升高"
    assert occurrence.generator_url == "http://grafana.pay.example.org/alerting/grafana/icbc7/view"
    assert occurrence.received_at == utc(2026, 10, 15, 1, 35)


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


def test_a_body_of_thousands_of_alerts_is_one_statement_stored_whole(client, payments):
    """One JSON parameter whatever the number of rows: no chunking at a backend's parameter limit."""
    _hook, token = integration()
    post(client, "alertmanager", alertmanager_body([prometheus_alert("warm-up")]), token)  # routing snapshot
    many = alertmanager_body([prometheus_alert(n, system="cashier") for n in range(2_000)])
    assert _queries_of(client, "alertmanager", many, token) == 1
    assert AlertOccurrence.objects.filter(system=payments["cashier"]).count() == 2_000
    assert _queries_of(client, "alertmanager", many, token) == 1
    assert set(AlertOccurrence.objects.filter(system__isnull=False).values_list("notifications", flat=True)) == {2}


def test_the_occurrence_columns_are_every_column_of_the_model_but_its_id():
    """The upsert and the bulk writers of history name their columns from the model: a new column is
    written by both without another list to edit."""
    columns = [f.column for f in occurrence_columns()]
    assert columns == [f.column for f in AlertOccurrence._meta.concrete_fields if f.column != "id"]
    assert {"integration_id", "fingerprint", "starts_at", "labels", "changed_at", "receipt_started"} <= set(columns)


def _never_read(limit: int) -> bytes:
    raise AssertionError("the body of a refused sender is read")


def test_receive_refuses_before_reading_the_body_and_says_why(rf, db):
    hook, token = integration()
    sender = rf.post("/api/v1/integrations/alertmanager/")
    refused = receive(kind="alertmanager", token="st_i_nope", sender=sender, body_up_to=_never_read)
    assert refused == Refused(Refusal.UNAUTHORISED, "Unknown or missing integration token.")
    refused = receive(kind="grafana", token=token, sender=sender, body_up_to=_never_read)
    assert (refused.reason, refused.retry_after) == (Refusal.WRONG_KIND, None)
    hook.enabled = False
    hook.save()
    refused = receive(kind="alertmanager", token=token, sender=sender, body_up_to=_never_read)
    assert refused.reason == Refusal.DISABLED
    assert not RejectedDelivery.objects.exists()


def test_receive_stores_the_good_alerts_and_keeps_the_rejected_delivery(rf, db, settings):
    hook, token = integration()
    body = json.dumps(alertmanager_body([prometheus_alert(1), {"labels": {}}])).encode()
    sender = rf.post("/api/v1/integrations/alertmanager/", REMOTE_ADDR="192.0.2.7")
    limits = []

    def body_up_to(limit: int) -> bytes:
        limits.append(limit)
        return body

    received = receive(kind="alertmanager", token=token, sender=sender, body_up_to=body_up_to)
    assert received == Received(
        accepted=1, new=1, repeated=0, rejected=(RejectedAlert(index=1, reason="labels must be a non-empty object"),)
    )
    assert limits == [settings.INGEST_MAX_BODY_BYTES]
    kept = RejectedDelivery.objects.get()
    assert (kept.integration, kept.reason, kept.remote_addr) == (
        hook,
        "alert 1: labels must be a non-empty object",
        "192.0.2.7",
    )
    too_large = receive(kind="alertmanager", token=token, sender=sender, body_up_to=lambda limit: None)
    assert too_large.reason == Refusal.TOO_LARGE
    assert AlertOccurrence.objects.count() == 1


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


# --- what no body can break (issue #11) ------------------------------------------------------------


def test_the_sample_bodies_belong_to_the_repository():
    """The suite passes wherever the repository is cloned: nothing is read from beside it."""
    root = Path(__file__).resolve().parents[2]
    assert PAYLOADS.is_relative_to(root)
    assert (root / "manage.py").exists()


@pytest.mark.parametrize(
    ("starts_at", "reason"),
    [
        ("9999-12-31T23:59:59-14:00", "more than a day ahead"),  # past datetime.max once in UTC
        ("2026-10-15T06:23:01Z", "more than a day ahead"),  # a day and a second ahead of the receipt
        ("1999-12-31T23:59:59Z", "before 2000-01-01"),
        ("0001-01-02T00:00:00Z", "before 2000-01-01"),
    ],
)
def test_a_timestamp_out_of_range_rejects_that_alert_alone_and_every_read_still_works(
    client, engineer_client, payments, starts_at, reason
):
    _hook, token = integration()
    alerts = [prometheus_alert(n, starts_at="2026-10-14T06:00:00Z") for n in range(3)]
    alerts[1]["startsAt"] = starts_at
    with time_machine.travel(T0, tick=False):
        answer = post(client, "alertmanager", alertmanager_body(alerts), token)

    assert answer.status_code == 200, answer.content
    assert answer.json()["accepted"] == 2
    [rejected] = answer.json()["rejected"]
    assert rejected["index"] == 1 and rejected["reason"].startswith("startsAt is ") and reason in rejected["reason"]
    assert sorted(AlertOccurrence.objects.values_list("fingerprint", flat=True)) == ["fp0", "fp2"]
    listed = engineer_client.get("/api/v1/alerts/")
    assert listed.status_code == 200
    assert listed.json()["count"] == 2


@pytest.mark.parametrize(
    ("starts_at", "stored"),
    [
        ("2026-10-14T14:23:00Z", utc(2026, 10, 14, 14, 23)),  # Beijing local time written as UTC: 8 h "ahead"
        ("2026-10-15T06:22:59+14:00", utc(2026, 10, 14, 16, 22, 59)),  # 9:59:59 h ahead, written in UTC+14
        ("2026-10-15T06:23:00Z", utc(2026, 10, 15, 6, 23)),  # exactly a day ahead: the bound is inclusive
    ],
)
def test_a_sender_clock_up_to_a_day_ahead_is_accepted_and_stored_in_utc(client, db, starts_at, stored):
    _hook, token = integration()
    with time_machine.travel(T0, tick=False):
        answer = post(client, "alertmanager", alertmanager_body([prometheus_alert(1, starts_at=starts_at)]), token)
    assert answer.json()["accepted"] == 1, answer.content
    assert AlertOccurrence.objects.get().starts_at == stored


def test_a_resolved_alert_needs_its_end_in_range_too_and_zero_time_means_no_end(client, db):
    _hook, token = integration()
    late, zero = prometheus_alert(1), prometheus_alert(2)
    for alert, ends_at in ((late, "9999-12-31T23:59:59-14:00"), (zero, "0001-01-01T00:00:00Z")):
        alert.update(status="resolved", endsAt=ends_at)
    with time_machine.travel(T0, tick=False):
        answer = post(client, "alertmanager", alertmanager_body([late, zero]), token)
    assert answer.json()["accepted"] == 1
    assert [(r["index"], r["reason"][:12]) for r in answer.json()["rejected"]] == [(0, "endsAt is mo")]
    stored = AlertOccurrence.objects.get()
    assert (stored.fingerprint, stored.status, stored.ends_at) == ("fp2", "resolved", None)


@pytest.mark.parametrize("field", ["starts_at", "ends_at"])
def test_the_database_refuses_an_instant_no_reader_could_show(db, field):
    from django.db import IntegrityError, transaction

    hook, _token = integration()
    values = {"starts_at": T0, "ends_at": None, field: datetime(9500, 1, 1, tzinfo=UTC)}
    with pytest.raises(IntegrityError), transaction.atomic():
        AlertOccurrence.objects.create(
            integration=hook, fingerprint="x", received_at=T0, last_received_at=T0, labels={"a": "b"}, **values
        )


# NUL and lone surrogates: JSON allows both, PostgreSQL stores neither (text, jsonb), so they were a 500
# and the whole batch was lost. Each such character becomes U+FFFD; the alert is kept.
UNSTORABLE_BODY = (
    '{"alerts": ['
    '{"labels": {"alertname": "Payout\\u0000Stuck", "system": "payout"}, "starts_at": "2026-10-14T06:00:00Z"},'
    '{"labels": {"alertname": "Cashier", "sys\\u0000tem": "cashier"}, "annotations": {"summary": "bad \\ud800 half"},'
    ' "starts_at": "2026-10-14T06:00:00Z", "fingerprint": "fp-\\udfff", "source_url": "http://x/\\u0000"},'
    '{"labels": {"alertname": "Fine"}, "starts_at": "2026-10-14T06:00:00Z"}'
    "]}"
)


def test_nul_and_lone_surrogates_are_cleaned_in_that_alert_and_the_batch_is_stored(client, payments):
    _hook, token = integration("generic")
    with time_machine.travel(T0, tick=False):
        answer = post(client, "generic", UNSTORABLE_BODY, token)

    assert answer.status_code == 200, answer.content
    assert answer.json() == {"accepted": 3, "new": 3, "repeated": 0, "rejected": []}
    payout, cashier, fine = (AlertOccurrence.objects.get(alertname=n) for n in ("Payout\ufffdStuck", "Cashier", "Fine"))
    assert payout.labels == {"alertname": "Payout\ufffdStuck", "system": "payout"}
    assert payout.system == payments["payout"]
    assert payout.fingerprint == expected_label_fingerprint(payout.labels)
    assert cashier.labels == {"alertname": "Cashier", "sys\ufffdtem": "cashier"}
    assert (cashier.summary, cashier.annotations) == ("bad \ufffd half", {"summary": "bad \ufffd half"})
    assert (cashier.fingerprint, cashier.generator_url) == ("fp-\ufffd", "http://x/\ufffd")
    assert fine.labels == {"alertname": "Fine"}

    # The same odd bytes again are the same alerts (the cleaning is deterministic).
    with time_machine.travel(T0 + timedelta(minutes=1), tick=False):
        again = post(client, "generic", UNSTORABLE_BODY, token)
    assert again.json() == {"accepted": 3, "new": 0, "repeated": 3, "rejected": []}


def test_nul_in_an_alertmanager_label_is_cleaned(client, db):
    _hook, token = integration()
    alerts = [prometheus_alert(1), prometheus_alert(2)]
    alerts[0]["labels"]["instance"] = "host\x00-1"
    alerts[1]["annotations"]["summary"] = "\ud83d"  # the half of an emoji
    body = json.dumps(alertmanager_body(alerts))  # ASCII: both travel as \\u escapes
    answer = post(client, "alertmanager", body, token)
    assert answer.json()["accepted"] == 2, answer.content
    assert AlertOccurrence.objects.get(fingerprint="fp1").labels["instance"] == "host\ufffd-1"
    assert AlertOccurrence.objects.get(fingerprint="fp2").summary == "\ufffd"


@pytest.mark.parametrize(
    "body",
    [b'{"alerts": [\x00]}', b'{"alerts": "\xed\xa0\x80\x00"}', b"\x00" * 10],
    ids=["nul-byte", "surrogate-bytes", "only-nul"],
)
def test_a_body_with_raw_unstorable_bytes_is_400_and_kept_readable(client, db, body):
    hook, token = integration("generic")
    answer = post(client, "generic", body, token)
    assert answer.status_code == 400, answer.content
    kept = RejectedDelivery.objects.get()
    assert kept.integration == hook
    assert "\x00" not in kept.body and "\x00" not in kept.reason
    kept.body.encode("utf-8")  # no lone surrogate either


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"alerts": [' * 50_000, "nested too deeply"),
        (b'{"alerts": [], "count": ' + b"7" * 5_000 + b"}", "not valid JSON"),  # past int's 4,300 digits
    ],
    ids=["100k-nested-list", "100k-nested-unclosed", "5000-digit-integer"],
)
def test_a_body_no_parser_can_hold_is_400(client, db, body, detail):
    _hook, token = integration("generic")
    answer = post(client, "generic", body, token)
    assert answer.status_code == 400, answer.content
    assert detail in answer.json()["detail"]
    assert RejectedDelivery.objects.get().reason == answer.json()["detail"]


def test_deep_nesting_inside_one_alert_rejects_that_alert_alone(client, db):
    _hook, token = integration("generic")
    deep = "[" * 900 + "]" * 900  # within the parser's depth, deeper than any field may be
    body = (
        '{"alerts": [{"labels": {"alertname": "A"}, "status": ' + deep + "}, "
        '{"labels": {"alertname": "B"}, "source_url": ' + deep + "}, "
        '{"labels": {"alertname": "C"}}]}'
    )
    answer = post(client, "generic", body, token)
    assert answer.status_code == 200, answer.content
    assert [(r["index"], r["reason"]) for r in answer.json()["rejected"]] == [
        (0, "status must be 'firing' or 'resolved'"),
        (1, "source_url must be a string"),
    ]
    assert AlertOccurrence.objects.get().alertname == "C"


@pytest.mark.parametrize("debug", [True, False])
@pytest.mark.parametrize("kind", ["alertmanager", "grafana", "generic"])
def test_a_webhook_url_without_its_trailing_slash_is_answered_not_redirected(client, db, settings, debug, kind):
    settings.DEBUG = debug
    _hook, token = integration(kind)
    alert = prometheus_alert(1) if kind != "generic" else {"labels": {"alertname": "A"}, "fingerprint": "fp1"}
    answer = client.post(
        f"/api/v1/integrations/{kind}",
        json.dumps({"alerts": [alert]}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert answer.status_code == 200, answer.content
    assert answer.json()["new"] == 1
    assert AlertOccurrence.objects.get().fingerprint == "fp1"


class _Chunks:
    """A server's decoded chunked input (wsgi.input_terminated): counts what the view reads."""

    def __init__(self, body: bytes, *, endless: bool = False):
        self.body, self.endless, self.read_bytes = body, endless, 0

    def read(self, size: int = -1) -> bytes:
        if self.endless:
            data = b" " * size
        else:
            data, self.body = (self.body, b"") if size < 0 else (self.body[:size], self.body[size:])
        self.read_bytes += len(data)
        return data

    def readline(self, size: int = -1) -> bytes:  # Django's LimitedStream wants it; never called here
        raise AssertionError("a JSON body is not read by lines")


def _chunked_request(kind: str, token: str, stream: _Chunks):
    from django.core.handlers.wsgi import WSGIRequest
    from django.test import RequestFactory

    environ = RequestFactory().post(f"/api/v1/integrations/{kind}/", b"", content_type="application/json").environ
    environ.pop("CONTENT_LENGTH", None)
    environ.update(
        {
            "HTTP_TRANSFER_ENCODING": "chunked",
            "HTTP_AUTHORIZATION": f"Bearer {token}",
            "wsgi.input": stream,
            "wsgi.input_terminated": True,
        }
    )
    return WSGIRequest(environ)


def test_a_chunked_body_is_read_to_its_end(db):
    from stability.api.webhooks import AlertmanagerWebhook

    _hook, token = integration()
    body = json.dumps(alertmanager_body([prometheus_alert(n) for n in range(3)])).encode()
    answer = AlertmanagerWebhook.as_view()(_chunked_request("alertmanager", token, _Chunks(body)))
    assert answer.status_code == 200, answer.content
    assert json.loads(answer.content)["new"] == 3
    assert AlertOccurrence.objects.count() == 3


def test_an_endless_chunked_body_is_413_after_reading_one_byte_over_the_limit(db, settings):
    from stability.api.webhooks import AlertmanagerWebhook

    settings.INGEST_MAX_BODY_BYTES = 10_000
    _hook, token = integration()
    stream = _Chunks(b"", endless=True)
    answer = AlertmanagerWebhook.as_view()(_chunked_request("alertmanager", token, stream))
    assert answer.status_code == 413
    assert stream.read_bytes == 10_001
    assert not AlertOccurrence.objects.exists()


# --- alerts without starts_at: one open occurrence, however concurrent -----------------------------


def test_a_delivery_that_lost_the_race_to_open_an_occurrence_joins_the_winners(client, db, monkeypatch):
    """Deterministic: the first look for an open occurrence is stale (another delivery opened one right
    after it); the partial unique constraint refuses a second, and the retry joins it."""
    from stability import ingestion

    hook, token = integration("generic")
    body = {"alerts": [{"labels": {"alertname": "QueueBacklog", "service": "settlement"}}]}
    with time_machine.travel(T0, tick=False):
        post(client, "generic", body, token)
    looks = []
    real_open_starts = ingestion._open_starts

    def stale_first(integration_id, fingerprints):
        looks.append(fingerprints)
        return {} if len(looks) == 1 else real_open_starts(integration_id, fingerprints)

    monkeypatch.setattr(ingestion, "_open_starts", stale_first)
    with time_machine.travel(T0 + timedelta(seconds=1), tick=False):
        answer = post(client, "generic", body, token)

    assert answer.status_code == 200, answer.content
    assert answer.json() == {"accepted": 1, "new": 0, "repeated": 1, "rejected": []}
    assert len(looks) == 2
    occurrence = AlertOccurrence.objects.get()
    assert (occurrence.starts_at, occurrence.notifications, occurrence.receipt_started) == (T0, 2, True)


def test_alerts_with_starts_at_may_keep_several_firing_occurrences(client, db):
    """A source whose resolution was lost (send_resolved: false) fires again with a new starts_at: both stay
    firing; the one-open rule is only for occurrences the tracker started at receipt."""
    _hook, token = integration()
    post(client, "alertmanager", alertmanager_body([prometheus_alert(1, starts_at="2026-10-14T06:00:00Z")]), token)
    post(client, "alertmanager", alertmanager_body([prometheus_alert(1, starts_at="2026-10-14T07:00:00Z")]), token)
    assert list(AlertOccurrence.objects.order_by("starts_at").values_list("status", "receipt_started")) == [
        ("firing", False),
        ("firing", False),
    ]


@needs_postgres
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_alerts_without_starts_at_open_one_occurrence_each():
    """8 threads deliver the same 25 alerts, each thread's clock a second apart (as deliveries straddling a
    second boundary are): one firing occurrence per alert, all 8 notifications counted on it."""
    hook, token = integration("generic")
    body = json.dumps({"alerts": [{"labels": {"alertname": f"A{n}"}} for n in range(25)]}).encode()
    threads_count = 8
    barrier = threading.Barrier(threads_count)
    errors: list[BaseException] = []
    route = routing().integrations[digest_of(token)]

    def deliver(offset: int):
        try:
            alerts, _rejected = read_body("generic", body)
            barrier.wait(timeout=10)
            alerts_ingest(route=route, alerts=alerts, now=datetime.now(UTC) + timedelta(seconds=offset))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver, args=(n,)) for n in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert not errors, errors
    assert AlertOccurrence.objects.count() == 25
    assert set(AlertOccurrence.objects.values_list("status", "notifications")) == {("firing", threads_count)}


# --- the routing snapshot: new tokens at once, disabling within a second ----------------------------


def _stale_snapshot_installed(snapshot, *, checked_seconds_ago: float) -> None:
    """This process keeps the snapshot it read before another process's change (signals only reach the
    process that saved), checked against the database's version that long ago."""
    from stability import ingest_routing

    snapshot.checked_at = time.monotonic() - checked_seconds_ago
    ingest_routing._routing = snapshot


def test_a_token_created_on_another_process_works_at_once(client, db):
    _hook, old_token = integration()
    assert post(client, "alertmanager", alertmanager_body([prometheus_alert(1)]), old_token).status_code == 200
    snapshot = routing()
    _new_hook, new_token = integration()
    _stale_snapshot_installed(snapshot, checked_seconds_ago=0)

    answer = post(client, "alertmanager", alertmanager_body([prometheus_alert(2)]), new_token)
    assert answer.status_code == 200, answer.content
    assert AlertOccurrence.objects.get(fingerprint="fp2").integration == _new_hook
    # ... and an unknown token is still 401, after one indexed read.
    with CaptureQueriesContext(connection) as queries:
        assert post(client, "alertmanager", alertmanager_body([prometheus_alert(3)]), "st_i_nope").status_code == 401
    assert len(queries.captured_queries) == 1


def test_disabling_an_integration_applies_on_every_process_within_a_second(client, db):
    from stability.ingest_routing import VERSION_CHECK_SECONDS

    assert VERSION_CHECK_SECONDS <= 1.0
    hook, token = integration()
    assert post(client, "alertmanager", alertmanager_body([prometheus_alert(1)]), token).status_code == 200
    snapshot = routing()
    hook.enabled = False
    hook.save()

    # Checked against the database less than a second ago: the snapshot still routes (the documented window).
    _stale_snapshot_installed(snapshot, checked_seconds_ago=0)
    assert post(client, "alertmanager", alertmanager_body([prometheus_alert(2)]), token).status_code == 200
    # A second on, the next request compares versions, reloads and refuses.
    _stale_snapshot_installed(snapshot, checked_seconds_ago=VERSION_CHECK_SECONDS)
    answer = post(client, "alertmanager", alertmanager_body([prometheus_alert(3)]), token)
    assert answer.status_code == 403, answer.content
    assert not AlertOccurrence.objects.filter(fingerprint="fp3").exists()


def test_the_version_check_costs_one_query_a_second_and_none_in_between(client, db):
    _hook, token = integration()
    post(client, "alertmanager", alertmanager_body([prometheus_alert("warm-up")]), token)
    snapshot = routing()
    counts = []
    for checked_seconds_ago in (0, 1.0, 0):
        _stale_snapshot_installed(snapshot, checked_seconds_ago=checked_seconds_ago)
        counts.append(_queries_of(client, "alertmanager", alertmanager_body([prometheus_alert(1)]), token))
    assert counts == [1, 2, 1]  # the upsert; the upsert and the version (unchanged: no reload)
    assert routing() is snapshot


# --- property-based: the readers never fail, whatever they are sent --------------------------------

RECEIPT = datetime(2026, 10, 14, 6, 23, tzinfo=UTC)
KINDS = ["alertmanager", "grafana", "generic"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
timestamps = st.one_of(
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.sampled_from(["0001-01-01T00:00:00Z", "9999-12-31T23:59:59-14:00", "2026-10-14T06:00:00Z", "", "now"]),
    st.text(max_size=30),
)
string_maps = st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=4)


def _alerts(kind: str):
    start, end = ("startsAt", "endsAt") if kind != "generic" else ("starts_at", "ends_at")
    return st.fixed_dictionaries(
        {},
        optional={
            "labels": string_maps | json_values,
            "annotations": string_maps | json_values,
            "status": st.sampled_from(["firing", "resolved", ""]) | json_values,
            start: timestamps | json_values,
            end: timestamps,
            "fingerprint": st.text(max_size=70) | json_values,
            "generatorURL" if kind != "generic" else "source_url": st.text(max_size=20) | json_values,
            "silenced": st.booleans() | json_values,
        },
    )


def _check(kind: str, raw: bytes) -> None:
    try:
        accepted, rejected = read_body(kind, raw, now=RECEIPT)
    except BodyError:
        return
    for alert in accepted:
        strings = [alert.fingerprint, alert.generator_url, *alert.labels, *alert.labels.values()]
        strings += [*alert.annotations, *alert.annotations.values()]
        for value in strings:
            assert isinstance(value, str) and "\x00" not in value
            value.encode("utf-8")  # raises on a lone surrogate
        assert alert.labels and len(alert.fingerprint) <= 64 and alert.status in ("firing", "resolved")
        for instant in (alert.starts_at, alert.ends_at):
            assert instant is None or EARLIEST_TIMESTAMP <= instant <= RECEIPT + CLOCK_SKEW
            assert instant is None or instant.utcoffset() == timedelta(0)
    assert all(isinstance(r.reason, str) and "\x00" not in r.reason for r in rejected)


@pytest.mark.parametrize("kind", KINDS)
@hypothesis_settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.binary(max_size=200) | st.sampled_from([b"[" * 100_000, b'{"alerts": [], "n": ' + b"9" * 5_000 + b"}"]))
def test_any_bytes_are_read_or_refused_with_a_body_error(kind, raw):
    _check(kind, raw)


@pytest.mark.parametrize("kind", KINDS)
@hypothesis_settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=json_values)
def test_any_json_value_is_read_or_refused_with_a_body_error(kind, value):
    _check(kind, json.dumps(value).encode())


@pytest.mark.parametrize("kind", KINDS)
@hypothesis_settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_alert_list_gives_storable_alerts_and_reasons_by_index(kind, data):
    alerts = data.draw(st.lists(_alerts(kind) | json_values, max_size=5))
    raw = json.dumps({"alerts": alerts}).encode()  # ensure_ascii: NUL and lone surrogates as \\u escapes
    accepted, rejected = read_body(kind, raw, now=RECEIPT)
    assert len(accepted) + len(rejected) == len(alerts)
    assert [r.index for r in rejected] == sorted({r.index for r in rejected})
    _check(kind, raw)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"alerts": [{"labels": {"a": "x\\u0000"}}]}',  # an escape
        b'{"alerts": [{"labels": {"a": "x\\uDBFF"}}]}',  # an escape, upper case
        b'{"alerts": [{"labels": {"a": "x\xed\xa0\x80"}}]}',  # a surrogate encoded in UTF-8
        '{"alerts": [{"labels": {"a": "x\\u0000"}}]}'.encode("utf-16"),  # json.loads reads UTF-16 too
    ],
    ids=["escape", "escape-upper", "utf8-surrogate", "utf16"],
)
def test_every_way_an_unstorable_character_can_arrive_is_cleaned(raw):
    [alert], rejected = read_body("generic", raw)
    assert rejected == [] and alert.labels == {"a": "x\ufffd"}
