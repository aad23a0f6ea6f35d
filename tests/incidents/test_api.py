"""The REST API of incidents, teams, systems, the severity policy and the incident metrics.

Every test runs with the clock frozen at NOW (2026-12-05 12:00 in Asia/Shanghai) so figures
can be computed by hand; tests that need another instant travel explicitly.
"""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from accounts.services import api_token_create
from incidents.models import Incident, SeverityPolicy, System, Team, Tier, TimelineEntry
from tests.factories import IncidentFactory, SystemFactory, TeamFactory, UserFactory, write_review

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 5, 4, 0, tzinfo=UTC)

INCIDENTS = "/api/v1/incidents/"
TEAMS = "/api/v1/teams/"
SYSTEMS = "/api/v1/systems/"
POLICIES = "/api/v1/severity-policies/"
PREVIEW = "/api/v1/severity/preview/"
METRICS = "/api/v1/metrics/incidents/"


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


def detail(incident_id: int) -> str:
    return f"{INCIDENTS}{incident_id}/"


def counts() -> tuple[int, int]:
    return Incident.objects.count(), TimelineEntry.objects.count()


def call(client, method: str, url: str, body: dict | None = None):
    if method == "get":
        return client.get(url)
    return getattr(client, method)(url, body or {}, format="json")


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def payments():
    return TeamFactory(name="Payments", slug="payments")


@pytest.fixture
def risk():
    return TeamFactory(name="Risk", slug="risk")


@pytest.fixture
def cashier(payments):
    return SystemFactory(code="cashier", name="Cashier", tier=Tier.P0, team=payments)


@pytest.fixture
def payout(payments):
    return SystemFactory(code="payout", name="Payout", tier=Tier.P0, team=payments)


@pytest.fixture
def riskctl(risk):
    return SystemFactory(code="riskctl", name="Risk control", tier=Tier.P2, team=risk)


@pytest.fixture
def incident(cashier):
    """P0 cashier, occurred 20 min before NOW and still open: level C (P0 >= 10 min)."""
    return IncidentFactory(
        title="Cashier timeouts",
        systems=[cashier],
        occurred_at=NOW - timedelta(minutes=20),
        detected_at=NOW - timedelta(minutes=18),
    )


def live_body(**overrides) -> dict:
    body = {
        "title": "Card payments failing",
        "systems": ["cashier"],
        "occurred_at": iso(NOW - timedelta(minutes=45)),
        "detected_at": iso(NOW - timedelta(minutes=40)),
        "detection_source": "monitoring",
    }
    body.update(overrides)
    return body


# -- 1. roles -----------------------------------------------------------------------------------

ANONYMOUS_REQUESTS = [
    ("get", INCIDENTS),
    ("post", INCIDENTS),
    ("get", "{incident}"),
    ("get", "{incident}timeline/"),
    ("get", TEAMS),
    ("post", TEAMS),
    ("get", SYSTEMS),
    ("get", POLICIES),
    ("get", POLICIES + "current/"),
    ("post", PREVIEW),
    ("get", METRICS),
]


@pytest.mark.parametrize(("method", "url"), ANONYMOUS_REQUESTS)
def test_anonymous_gets_401_with_www_authenticate(anonymous_client, incident, method, url):
    before = counts()
    response = call(anonymous_client, method, url.format(incident=detail(incident.pk)))
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert counts() == before


def _write_requests(incident_id: int) -> dict[str, tuple[str, str, dict]]:
    """name: (method, url, body), each valid, so only the role decides the answer."""
    url = detail(incident_id)
    return {
        "create incident": ("post", INCIDENTS, live_body()),
        "update incident": ("patch", url, {"title": "Renamed", "version": 1}),
        "timeline note": ("post", url + "timeline/", {"text": "Switched traffic to the backup channel"}),
        "transition": ("post", url + "transitions/", {"action": "recover"}),
        "override": ("post", url + "severity-override/", {"level": "A", "reason": "Regulator asked"}),
        "clear override": ("delete", url + "severity-override/", {}),
        "create team": ("post", TEAMS, {"name": "Core", "slug": "core"}),
        "create system": ("post", SYSTEMS, {"code": "ledger", "name": "Ledger", "tier": "P1", "team": "payments"}),
        "create policy": (
            "post",
            POLICIES,
            {"rules": {"A": [{"kind": "flag", "flag": "regulatory_reportable"}]}, "recovery_targets": _targets()},
        ),
        "reevaluate": ("post", POLICIES + "reevaluate/", {"incidents": [incident_id]}),
    }


def _targets() -> dict:
    return {"A": 1800, "B": 3600, "C": 14400, "D": 86400}


def _write_counts() -> tuple:
    return (*counts(), Team.objects.count(), System.objects.count(), SeverityPolicy.objects.count())


@pytest.mark.parametrize(
    "name",
    [
        "create incident",
        "update incident",
        "timeline note",
        "transition",
        "override",
        "clear override",
        "create team",
        "create system",
        "create policy",
        "reevaluate",
    ],
)
def test_manager_may_not_write(manager_client, incident, name):
    method, url, body = _write_requests(incident.pk)[name]
    before = _write_counts()
    response = call(manager_client, method, url, body)
    assert response.status_code == 403, response.data
    assert _write_counts() == before
    incident.refresh_from_db()
    assert (incident.version, incident.title, incident.status, incident.level) == (1, "Cashier timeouts", "open", "C")


@pytest.mark.parametrize("name", ["create team", "create system", "create policy", "reevaluate"])
def test_engineer_may_not_configure(engineer_client, incident, name):
    method, url, body = _write_requests(incident.pk)[name]
    before = _write_counts()
    response = call(engineer_client, method, url, body)
    assert response.status_code == 403, response.data
    assert _write_counts() == before


def test_engineer_may_not_read_metrics(engineer_client):
    response = engineer_client.get(METRICS, {"period": "2026-11"})
    assert response.status_code == 403


@pytest.mark.parametrize(
    ("name", "expected_status"),
    [
        ("create incident", 201),
        ("update incident", 200),
        ("timeline note", 201),
        ("transition", 200),
        ("override", 200),
        ("clear override", 200),
        ("create team", 201),
        ("create system", 201),
        ("create policy", 201),
        ("reevaluate", 200),
    ],
)
def test_admin_may_do_everything(admin_client_api, incident, name, expected_status):
    method, url, body = _write_requests(incident.pk)[name]
    response = call(admin_client_api, method, url, body)
    assert response.status_code == expected_status, response.data


@pytest.mark.parametrize(
    ("name", "check"),
    [
        ("create incident", lambda r, i: r.data["title"] == "Card payments failing" and r.data["status"] == "open"),
        ("update incident", lambda r, i: r.data["title"] == "Renamed" and r.data["version"] == 2),
        ("timeline note", lambda r, i: r.data["kind"] == "note" and r.data["author"] == "engineer"),
        ("transition", lambda r, i: r.data["status"] == "recovered"),
        ("override", lambda r, i: r.data["level"] == "A" and r.data["level_override"] == "A"),
    ],
)
def test_engineer_may_write_the_record(engineer_client, incident, name, check):
    method, url, body = _write_requests(incident.pk)[name]
    response = call(engineer_client, method, url, body)
    assert response.status_code in (200, 201), response.data
    assert check(response, incident)


@pytest.mark.parametrize("role_client", ["engineer_client", "manager_client", "admin_client_api"])
@pytest.mark.parametrize("url", [INCIDENTS, "{incident}", "{incident}timeline/", TEAMS, SYSTEMS, POLICIES])
def test_every_role_reads_the_record(request, incident, role_client, url):
    client = request.getfixturevalue(role_client)
    response = client.get(url.format(incident=detail(incident.pk)))
    assert response.status_code == 200
    if url == INCIDENTS:
        assert [row["id"] for row in response.data["results"]] == [incident.pk]
    elif url == "{incident}":
        assert response.data["title"] == "Cashier timeouts"
    elif url == "{incident}timeline/":
        assert [entry["kind"] for entry in response.data] == ["created"]
    elif url == TEAMS:
        assert [team["slug"] for team in response.data["results"]] == ["payments"]
    elif url == SYSTEMS:
        assert [(s["code"], s["tier"], s["team"]) for s in response.data["results"]] == [("cashier", "P0", "payments")]
    else:
        assert [policy["version"] for policy in response.data["results"]] == [1]


@pytest.mark.parametrize(("role_client", "expected"), [("manager_client", 200), ("admin_client_api", 200)])
def test_managers_and_admins_read_metrics(request, role_client, expected):
    response = request.getfixturevalue(role_client).get(METRICS, {"period": "2026-11"})
    assert response.status_code == expected
    assert response.data["period"]["label"] == "2026-11"


def test_a_superuser_is_an_admin_whatever_the_role(incident):
    root = UserFactory(username="root", role="engineer", is_superuser=True)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_token_create(user=root)[1]}")
    assert client.post(TEAMS, {"name": "Core", "slug": "core"}, format="json").status_code == 201
    assert client.get(METRICS, {"period": "2026-11"}).status_code == 200


@pytest.mark.parametrize("role_client", ["engineer_client", "manager_client", "admin_client_api"])
def test_every_role_may_preview(request, role_client):
    response = request.getfixturevalue(role_client).post(PREVIEW, {"tier": "P0", "impact_minutes": 30}, format="json")
    assert response.status_code == 200
    assert response.data["level"] == "B"


# -- 2. create ----------------------------------------------------------------------------------


def test_create_live_incident_with_the_minimum(engineer_client, cashier, riskctl):
    response = engineer_client.post(INCIDENTS, live_body(systems=["cashier", "riskctl"]), format="json")

    assert response.status_code == 201, response.data
    data = response.data
    assert data["status"] == "open"
    assert data["team"] == "payments"  # the first system's team
    assert data["systems"] == ["cashier", "riskctl"]
    # P0 impacted 45 min (NOW - occurred_at) -> B, under policy version 1.
    assert data["level"] == "B"
    assert data["classified_level"] == "B"
    assert data["severity_explanation"] == "B: P0 system impacted 45 min (>= 30 min)"
    assert data["severity_policy_version"] == 1
    assert data["recovery_target"] == 3600
    assert data["version"] == 1
    assert parse(data["occurred_at"]) == NOW - timedelta(minutes=45)
    assert parse(data["detected_at"]) == NOW - timedelta(minutes=40)
    assert data["responded_at"] is None and data["recovered_at"] is None and data["closed_at"] is None
    assert data["durations"] == {
        "time_to_detect": 300,
        "time_to_respond": None,
        "time_to_recover": None,
        "time_to_resolve": None,
    }
    assert response["ETag"] == '"1"'

    incident = Incident.objects.get(pk=data["id"])
    assert incident.created_by.username == "engineer"
    assert incident.team.slug == "payments"
    entries = list(incident.timeline.all())
    assert [(e.kind, e.author.username, e.new_value) for e in entries] == [("created", "engineer", "B")]
    assert entries[0].at == NOW


def test_team_is_the_team_of_the_first_system_given(engineer_client, cashier, riskctl):
    response = engineer_client.post(INCIDENTS, live_body(systems=["riskctl", "cashier"]), format="json")
    assert response.status_code == 201, response.data
    assert response.data["team"] == "risk"
    # the most critical tier counts, whatever the order
    assert response.data["severity_explanation"] == "B: P0 system impacted 45 min (>= 30 min)"


def test_create_with_an_explicit_team(engineer_client, cashier, risk):
    response = engineer_client.post(INCIDENTS, live_body(team="risk"), format="json")
    assert response.status_code == 201, response.data
    assert response.data["team"] == "risk"


def test_create_retroactive_incident_computes_durations(engineer_client, cashier):
    body = live_body(
        occurred_at="2026-11-03T10:00:00Z",
        detected_at="2026-11-03T10:04:00Z",
        responded_at="2026-11-03T10:06:30Z",
        recovered_at="2026-11-03T10:50:00Z",
        resolved_at="2026-11-03T12:00:00Z",
        affected_transactions=1200,
        cause_category="code_change",
        cause="A release broke the signature check",
    )
    response = engineer_client.post(INCIDENTS, body, format="json")

    assert response.status_code == 201, response.data
    data = response.data
    assert data["status"] == "resolved"
    assert data["durations"] == {
        "time_to_detect": 240,  # 10:04:00 - 10:00:00
        "time_to_respond": 150,  # 10:06:30 - 10:04:00
        "time_to_recover": 3000,  # 10:50:00 - 10:00:00
        "time_to_resolve": 7200,  # 12:00:00 - 10:00:00
    }
    # P0 impacted 50 min (>= 30) and 1,200 failed transactions (C only): B.
    assert data["level"] == "B"
    assert data["severity_explanation"] == "B: P0 system impacted 50 min (>= 30 min)"
    assert parse(data["resolved_at"]) == utc(2026, 11, 3, 12, 0)
    assert data["closed_at"] is None
    assert data["cause_category"] == "code_change"


def test_create_retroactive_recovered_incident(engineer_client, cashier):
    body = live_body(
        occurred_at="2026-11-03T10:00:00Z", detected_at="2026-11-03T10:00:00Z", recovered_at="2026-11-03T10:09:59Z"
    )
    response = engineer_client.post(INCIDENTS, body, format="json")
    assert response.status_code == 201, response.data
    assert response.data["status"] == "recovered"
    assert response.data["durations"]["time_to_recover"] == 599
    # 9 whole minutes of P0 impact: below every threshold.
    assert response.data["level"] == "D"
    assert response.data["severity_explanation"] == "D: no A-C condition met"


# -- 3. bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "bad_fields"),
    [
        ({"occurred_at": "2026-11-03T10:00:00Z", "detected_at": "2026-11-03T09:59:59Z"}, {"detected_at"}),
        (
            {
                "occurred_at": "2026-11-03T10:00:00Z",
                "detected_at": "2026-11-03T10:01:00Z",
                "recovered_at": "2026-11-03T09:30:00Z",
            },
            {"recovered_at"},
        ),
        (
            {
                "occurred_at": "2026-11-03T10:00:00Z",
                "detected_at": "2026-11-03T10:05:00Z",
                "responded_at": "2026-11-03T10:04:00Z",
            },
            {"responded_at"},
        ),
        (
            {
                "occurred_at": "2026-11-03T10:00:00Z",
                "detected_at": "2026-11-03T10:00:00Z",
                "recovered_at": "2026-11-03T11:00:00Z",
                "resolved_at": "2026-11-03T10:59:00Z",
            },
            {"resolved_at"},
        ),
        (
            # two violations at once: both are named
            {
                "occurred_at": "2026-11-03T10:00:00Z",
                "detected_at": "2026-11-03T09:00:00Z",
                "recovered_at": "2026-11-03T09:30:00Z",
            },
            {"detected_at", "recovered_at"},
        ),
        ({"detected_at": iso(NOW + timedelta(minutes=10))}, {"detected_at"}),
        ({"affected_users": -1}, {"affected_users"}),
        ({"detection_source": "psychic"}, {"detection_source"}),
        ({"systems": ["no-such-system"]}, {"systems"}),
        ({"systems": []}, {"systems"}),
        ({"severity": "A"}, {"severity"}),
        ({"affected_users": -5, "detection_source": "psychic"}, {"affected_users", "detection_source"}),
    ],
    ids=[
        "detected-before-occurred",
        "recovered-before-occurred",
        "responded-before-detected",
        "resolved-before-recovered",
        "two-ordering-violations",
        "10-min-in-future",
        "negative-users",
        "unknown-source",
        "unknown-system",
        "no-system",
        "unknown-field",
        "two-field-errors",
    ],
)
def test_create_rejects_bad_input_and_writes_nothing(engineer_client, cashier, overrides, bad_fields):
    before = counts()
    response = engineer_client.post(INCIDENTS, live_body(**overrides), format="json")
    assert response.status_code == 400
    assert set(response.data) == bad_fields
    assert counts() == before


def test_a_timestamp_4_minutes_ahead_is_accepted(engineer_client, cashier):
    response = engineer_client.post(
        INCIDENTS,
        live_body(occurred_at=iso(NOW - timedelta(minutes=1)), detected_at=iso(NOW + timedelta(minutes=4))),
        format="json",
    )
    assert response.status_code == 201, response.data
    assert parse(response.data["detected_at"]) == NOW + timedelta(minutes=4)
    assert response.data["durations"]["time_to_detect"] == 300


def test_exactly_5_minutes_ahead_is_accepted_and_5_minutes_1_second_is_not(engineer_client, cashier):
    ok = engineer_client.post(INCIDENTS, live_body(detected_at=iso(NOW + timedelta(minutes=5))), format="json")
    assert ok.status_code == 201, ok.data
    before = counts()
    late = engineer_client.post(
        INCIDENTS, live_body(detected_at=iso(NOW + timedelta(minutes=5, seconds=1))), format="json"
    )
    assert late.status_code == 400
    assert set(late.data) == {"detected_at"}
    assert counts() == before


def test_malformed_json_is_a_400(engineer_client, cashier):
    before = counts()
    response = engineer_client.generic("POST", INCIDENTS, "{bad", content_type="application/json")
    assert response.status_code == 400
    assert "JSON parse error" in response.data["detail"]
    assert counts() == before


def test_missing_required_fields_are_named(engineer_client):
    response = engineer_client.post(INCIDENTS, {}, format="json")
    assert response.status_code == 400
    assert set(response.data) == {"title", "systems", "occurred_at", "detected_at", "detection_source"}


@pytest.mark.parametrize(
    ("body", "bad_field"),
    [
        ({"level": "E", "reason": "Worse than A"}, "level"),
        ({"level": "A", "reason": ""}, "reason"),
        ({"level": "A", "reason": "   "}, "reason"),
        ({"level": "A"}, "reason"),
        ({"level": "A", "reason": "why", "because": "x"}, "because"),
    ],
)
def test_override_rejects_bad_input(engineer_client, incident, body, bad_field):
    before = counts()
    response = engineer_client.post(detail(incident.pk) + "severity-override/", body, format="json")
    assert response.status_code == 400
    assert set(response.data) == {bad_field}
    assert counts() == before
    incident.refresh_from_db()
    assert (incident.level, incident.level_override, incident.version) == ("C", "", 1)


# -- 4. PATCH -----------------------------------------------------------------------------------


def test_patch_with_current_version(engineer_client, incident):
    response = engineer_client.patch(
        detail(incident.pk), {"title": "Cashier 502s", "cause": "Pool exhausted", "version": 1}, format="json"
    )

    assert response.status_code == 200, response.data
    assert response.data["title"] == "Cashier 502s"
    assert response.data["cause"] == "Pool exhausted"
    assert response.data["version"] == 2
    assert response["ETag"] == '"2"'
    changes = incident.timeline.filter(kind="change").order_by("field")
    assert [(e.field, e.old_value, e.new_value, e.author.username, e.at) for e in changes] == [
        ("cause", "", "Pool exhausted", "engineer", NOW),
        ("title", "Cashier timeouts", "Cashier 502s", "engineer", NOW),
    ]


def test_patch_a_severity_fact_reclassifies_and_records_it(engineer_client, incident):
    response = engineer_client.patch(detail(incident.pk), {"affected_transactions": 12000, "version": 1}, format="json")

    assert response.status_code == 200, response.data
    assert response.data["level"] == "B"
    assert response.data["severity_explanation"] == "B: 12,000 failed transactions (>= 10,000)"
    assert response.data["recovery_target"] == 3600
    entries = [
        (e.kind, e.field, e.old_value, e.new_value, e.author.username)
        for e in incident.timeline.exclude(kind="created").order_by("id")
    ]
    assert entries == [
        ("change", "affected_transactions", "0", "12000", "engineer"),
        ("severity", "level", "C", "B", "engineer"),
    ]


def test_patch_systems_and_owner_are_recorded(engineer_client, riskctl, cashier):
    incident = IncidentFactory(systems=[riskctl], occurred_at=NOW - timedelta(minutes=20))
    assert incident.level == "D"  # P2 for 20 min
    UserFactory(username="lee")

    response = engineer_client.patch(
        detail(incident.pk), {"systems": ["cashier", "riskctl"], "owner": "lee", "version": 1}, format="json"
    )

    assert response.status_code == 200, response.data
    assert (response.data["systems"], response.data["owner"], response.data["level"]) == (
        ["cashier", "riskctl"],
        "lee",
        "C",
    )
    assert response.data["team"] == "risk"  # the team is not moved by a change of systems
    entries = {
        e.field: (e.kind, e.old_value, e.new_value) for e in incident.timeline.exclude(kind="created").order_by("id")
    }
    assert entries == {
        "systems": ("change", "riskctl", "cashier, riskctl"),
        "owner": ("change", "", "lee"),
        "level": ("severity", "D", "C"),
    }


def test_patch_with_stale_version_is_409_and_changes_nothing(engineer_client, incident):
    assert (
        engineer_client.patch(detail(incident.pk), {"title": "First", "version": 1}, format="json").status_code == 200
    )
    before = counts()

    response = engineer_client.patch(detail(incident.pk), {"title": "Second", "version": 1}, format="json")

    assert response.status_code == 409
    assert response.json()["current_version"] == 2
    assert "version 2" in response.json()["detail"]
    assert counts() == before
    incident.refresh_from_db()
    assert (incident.title, incident.version) == ("First", 2)


def test_patch_with_if_match_header(engineer_client, incident):
    response = engineer_client.patch(detail(incident.pk), {"title": "Via If-Match"}, format="json", HTTP_IF_MATCH='"1"')
    assert response.status_code == 200, response.data
    assert (response.data["title"], response.data["version"]) == ("Via If-Match", 2)

    stale = engineer_client.patch(detail(incident.pk), {"title": "Lost"}, format="json", HTTP_IF_MATCH='"1"')
    assert stale.status_code == 409
    assert stale.json()["current_version"] == 2
    incident.refresh_from_db()
    assert incident.title == "Via If-Match"


def test_patch_with_the_etag_of_a_get(engineer_client, incident):
    etag = engineer_client.get(detail(incident.pk))["ETag"]
    response = engineer_client.patch(detail(incident.pk), {"title": "From ETag"}, format="json", HTTP_IF_MATCH=etag)
    assert response.status_code == 200, response.data
    assert response.data["version"] == 2


def test_patch_with_a_garbage_if_match_is_400(engineer_client, incident):
    response = engineer_client.patch(detail(incident.pk), {"title": "x"}, format="json", HTTP_IF_MATCH="abc")
    assert response.status_code == 400
    assert set(response.data) == {"If-Match"}


def test_patch_without_version_is_400(engineer_client, incident):
    before = counts()
    response = engineer_client.patch(detail(incident.pk), {"title": "No version"}, format="json")
    assert response.status_code == 400
    assert set(response.data) == {"version"}
    assert counts() == before
    incident.refresh_from_db()
    assert (incident.title, incident.version) == ("Cashier timeouts", 1)


def test_patch_that_changes_nothing_keeps_the_version(engineer_client, incident):
    before = counts()
    response = engineer_client.patch(
        detail(incident.pk),
        {"title": "Cashier timeouts", "systems": ["cashier"], "detection_source": "monitoring", "version": 1},
        format="json",
    )
    assert response.status_code == 200, response.data
    assert response.data["version"] == 1
    assert counts() == before


def test_patch_cannot_set_recovered_at_on_an_open_incident(engineer_client, incident):
    before = counts()
    response = engineer_client.patch(
        detail(incident.pk), {"recovered_at": iso(NOW - timedelta(minutes=5)), "version": 1}, format="json"
    )
    assert response.status_code == 400
    assert set(response.data) == {"recovered_at"}
    assert counts() == before
    incident.refresh_from_db()
    assert (incident.recovered_at, incident.status, incident.version) == (None, "open", 1)


def test_patch_may_correct_recovered_at_once_set(engineer_client, incident):
    engineer_client.post(detail(incident.pk) + "transitions/", {"action": "recover"}, format="json")
    corrected = NOW - timedelta(minutes=5)  # impact 15 min: still C
    response = engineer_client.patch(detail(incident.pk), {"recovered_at": iso(corrected), "version": 2}, format="json")
    assert response.status_code == 200, response.data
    assert parse(response.data["recovered_at"]) == corrected
    assert response.data["durations"]["time_to_recover"] == 900
    assert response.data["status"] == "recovered"


def test_patch_breaking_the_ordering_is_400_and_writes_nothing(engineer_client, incident):
    before = counts()
    response = engineer_client.patch(
        detail(incident.pk), {"detected_at": iso(NOW - timedelta(minutes=30)), "version": 1}, format="json"
    )
    assert response.status_code == 400
    assert set(response.data) == {"detected_at"}
    assert counts() == before
    incident.refresh_from_db()
    assert incident.detected_at == NOW - timedelta(minutes=18)


def test_patch_unknown_field_is_400(engineer_client, incident):
    response = engineer_client.patch(detail(incident.pk), {"status": "closed", "version": 1}, format="json")
    assert response.status_code == 400
    assert set(response.data) == {"status"}


def test_put_is_not_allowed(engineer_client, incident):
    response = engineer_client.put(detail(incident.pk), {"title": "x", "version": 1}, format="json")
    assert response.status_code == 405


def test_delete_is_not_allowed(admin_client_api, incident):
    response = admin_client_api.delete(detail(incident.pk))
    assert response.status_code == 405
    assert Incident.objects.filter(pk=incident.pk).exists()


def test_unknown_incident_is_404(engineer_client):
    assert engineer_client.get(detail(999999)).status_code == 404


# -- 5. transitions and timeline ----------------------------------------------------------------


def transition(client, incident_id, action, **extra):
    return client.post(detail(incident_id) + "transitions/", {"action": action, **extra}, format="json")


def test_status_lifecycle(engineer_client, incident, frozen):
    recovered = transition(engineer_client, incident.pk, "recover")
    assert recovered.status_code == 200, recovered.data
    assert recovered.data["status"] == "recovered"
    assert parse(recovered.data["recovered_at"]) == NOW
    assert recovered.data["durations"]["time_to_recover"] == 1200
    assert recovered.data["version"] == 2

    frozen.shift(timedelta(hours=1))
    resolved = transition(engineer_client, incident.pk, "resolve")
    assert resolved.status_code == 200, resolved.data
    assert resolved.data["status"] == "resolved"
    assert parse(resolved.data["resolved_at"]) == NOW + timedelta(hours=1)
    assert parse(resolved.data["recovered_at"]) == NOW  # unchanged
    assert resolved.data["durations"]["time_to_resolve"] == 4800

    frozen.shift(timedelta(days=2))
    write_review(incident, summary="Channel timeout; switch threshold lowered.")
    closed = transition(engineer_client, incident.pk, "close")
    assert closed.status_code == 200, closed.data
    assert closed.data["status"] == "closed"
    assert parse(closed.data["closed_at"]) == NOW + timedelta(days=2, hours=1)

    reopened = transition(engineer_client, incident.pk, "reopen")
    assert reopened.status_code == 200, reopened.data
    assert reopened.data["status"] == "open"
    assert (reopened.data["recovered_at"], reopened.data["resolved_at"], reopened.data["closed_at"]) == (
        None,
        None,
        None,
    )
    assert reopened.data["durations"]["time_to_recover"] is None
    # Unrecovered again: impact runs until now (2 days and more) on a P0 -> A.
    assert reopened.data["level"] == "A"

    statuses = [
        (e.old_value, e.new_value, e.author.username) for e in incident.timeline.filter(kind="status").order_by("id")
    ]
    assert statuses == [
        ("open", "recovered", "engineer"),
        ("recovered", "resolved", "engineer"),
        ("resolved", "closed", "engineer"),
        ("closed", "open", "engineer"),
    ]


def test_recover_at_a_given_time_reclassifies(engineer_client, cashier):
    incident = IncidentFactory(systems=[cashier], occurred_at=NOW - timedelta(minutes=90))
    assert incident.level == "A"  # P0 impacted 90 min so far
    response = transition(engineer_client, incident.pk, "recover", at=iso(NOW - timedelta(minutes=55)))
    assert response.status_code == 200, response.data
    # Recovered after 35 minutes of impact: B.
    assert response.data["level"] == "B"
    assert response.data["severity_explanation"] == "B: P0 system impacted 35 min (>= 30 min)"
    assert response.data["durations"]["time_to_recover"] == 2100


def test_resolve_an_open_incident_sets_recovered_at_too(engineer_client, incident):
    response = transition(engineer_client, incident.pk, "resolve")
    assert response.status_code == 200, response.data
    assert response.data["status"] == "resolved"
    assert parse(response.data["recovered_at"]) == parse(response.data["resolved_at"]) == NOW


@pytest.mark.parametrize(
    ("action", "body_extra"),
    [("close", {}), ("reopen", {}), ("explode", {})],
)
def test_invalid_transition_is_400_naming_action(engineer_client, incident, action, body_extra):
    before = counts()
    response = transition(engineer_client, incident.pk, action, **body_extra)
    assert response.status_code == 400
    assert set(response.data) == {"action"}
    assert counts() == before
    incident.refresh_from_db()
    assert (incident.status, incident.version) == ("open", 1)


def test_recover_before_occurrence_is_400(engineer_client, incident):
    before = counts()
    response = transition(engineer_client, incident.pk, "recover", at=iso(NOW - timedelta(hours=1)))
    assert response.status_code == 400
    # Reported under the field the client sent.
    assert response.data == {"at": ["Recovered at must not be earlier than occurred at (when the impact started)."]}
    assert counts() == before


def test_a_date_typed_wrong_is_400(engineer_client, incident):
    response = engineer_client.patch(
        detail(incident.pk), {"occurred_at": "0001-01-01T00:00:00Z", "version": 1}, format="json"
    )
    assert response.status_code == 400
    assert response.data == {"occurred_at": ["This time is before the year 2000; check the date."]}


def test_timeline_in_order_with_a_backdated_note(engineer_client, incident, frozen):
    frozen.shift(timedelta(minutes=10))
    engineer_client.patch(detail(incident.pk), {"title": "Cashier down", "version": 1}, format="json")
    note = engineer_client.post(
        detail(incident.pk) + "timeline/",
        {"text": "  Switched traffic to the backup channel  ", "at": iso(NOW - timedelta(minutes=10))},
        format="json",
    )
    assert note.status_code == 201, note.data
    assert note.data["kind"] == "note"
    assert note.data["text"] == "Switched traffic to the backup channel"
    assert note.data["author"] == "engineer"
    assert parse(note.data["at"]) == NOW - timedelta(minutes=10)

    response = engineer_client.get(detail(incident.pk) + "timeline/")
    assert response.status_code == 200
    assert [(e["kind"], e["field"], parse(e["at"])) for e in response.data] == [
        ("note", "", NOW - timedelta(minutes=10)),
        ("created", "", NOW),
        ("change", "title", NOW + timedelta(minutes=10)),
    ]


def test_note_without_at_is_now(engineer_client, incident):
    response = engineer_client.post(detail(incident.pk) + "timeline/", {"text": "Paged the DBA"}, format="json")
    assert response.status_code == 201, response.data
    assert parse(response.data["at"]) == NOW


@pytest.mark.parametrize(
    ("body", "bad_field"),
    [
        ({"text": ""}, "text"),
        ({"text": "   "}, "text"),
        ({"text": "From the future", "at": iso(NOW + timedelta(minutes=10))}, "at"),
        ({"text": "x", "author": "someone"}, "author"),
    ],
)
def test_bad_note_is_400(engineer_client, incident, body, bad_field):
    before = counts()
    response = engineer_client.post(detail(incident.pk) + "timeline/", body, format="json")
    assert response.status_code == 400
    assert set(response.data) == {bad_field}
    assert counts() == before


# -- 6. severity --------------------------------------------------------------------------------


def test_override_and_clear(engineer_client, incident):
    response = engineer_client.post(
        detail(incident.pk) + "severity-override/",
        {"level": "A", "reason": "  Regulator asked for an A  "},
        format="json",
    )
    assert response.status_code == 200, response.data
    data = response.data
    assert (data["level"], data["classified_level"], data["level_override"]) == ("A", "C", "A")
    assert data["level_override_reason"] == "Regulator asked for an A"
    assert data["recovery_target"] == 1800
    assert data["severity_explanation"] == "C: P0 system impacted 20 min (>= 10 min)"
    entry = incident.timeline.get(kind="severity")
    assert (entry.field, entry.old_value, entry.new_value, entry.text, entry.author.username) == (
        "level_override",
        "C",
        "A",
        "Regulator asked for an A",
        "engineer",
    )

    # The override sticks when a fact changes.
    patched = engineer_client.patch(detail(incident.pk), {"affected_users": 20000, "version": 2}, format="json")
    assert (patched.data["level"], patched.data["classified_level"]) == ("A", "B")

    cleared = engineer_client.delete(
        detail(incident.pk) + "severity-override/", {"reason": "Not reportable"}, format="json"
    )
    assert cleared.status_code == 200, cleared.data
    assert (cleared.data["level"], cleared.data["classified_level"], cleared.data["level_override"]) == ("B", "B", "")
    assert cleared.data["level_override_reason"] == ""
    assert cleared.data["recovery_target"] == 3600
    last = incident.timeline.filter(kind="severity").latest("id")
    assert (last.field, last.old_value, last.new_value, last.text) == ("level_override", "A", "B", "Not reportable")


def test_clearing_without_override_changes_nothing(engineer_client, incident):
    before = counts()
    response = engineer_client.delete(detail(incident.pk) + "severity-override/")
    assert response.status_code == 200
    assert response.data["version"] == 1
    assert counts() == before


@pytest.mark.parametrize(
    ("facts", "level", "explanation"),
    [
        ({"tier": "P0", "impact_minutes": 30}, "B", "B: P0 system impacted 30 min (>= 30 min)"),
        ({"tier": "P0", "impact_minutes": 29}, "C", "C: P0 system impacted 29 min (>= 10 min)"),
        ({"tier": "P0", "impact_minutes": 9}, "D", "D: no A-C condition met"),
        ({"tier": "P0", "impact_minutes": 60}, "A", "A: P0 system impacted 60 min (>= 60 min)"),
        ({"tier": "P1", "impact_minutes": 60}, "B", "B: P1 system impacted 60 min (>= 60 min)"),
        (
            {"tier": "P0", "impact_minutes": 30, "affected_transactions": 12000},
            "B",
            "B: P0 system impacted 30 min (>= 30 min); 12,000 failed transactions (>= 10,000)",
        ),
        ({"regulatory_reportable": True}, "A", "A: reportable to the regulator"),
        ({"funds_loss": "10000"}, "C", "C: funds loss 10,000.00 CNY (>= 10,000)"),
    ],
)
def test_preview(engineer_client, facts, level, explanation):
    before = (*counts(), SeverityPolicy.objects.count())
    response = engineer_client.post(PREVIEW, facts, format="json")
    assert response.status_code == 200, response.data
    assert response.data["level"] == level
    assert response.data["explanation"] == explanation
    assert response.data["policy_version"] == 1
    assert response.data["recovery_target"] == _targets()[level]
    assert (*counts(), SeverityPolicy.objects.count()) == before


def test_preview_with_an_absurd_impact_is_400_not_500(engineer_client):
    engineer_client.raise_request_exception = False
    response = engineer_client.post(PREVIEW, {"tier": "P0", "impact_minutes": 10**15}, format="json")
    assert response.status_code == 400
    assert set(response.json()) == {"impact_minutes"}


def test_preview_from_systems_and_occurred_at(engineer_client, cashier, riskctl):
    response = engineer_client.post(
        PREVIEW,
        {"systems": ["riskctl", "cashier"], "occurred_at": iso(NOW - timedelta(minutes=31))},
        format="json",
    )
    assert response.status_code == 200, response.data
    assert response.data["explanation"] == "B: P0 system impacted 31 min (>= 30 min)"


@pytest.mark.parametrize(
    ("facts", "bad_field"),
    [
        ({"tier": "P9", "impact_minutes": 3}, "tier"),
        ({"tier": "P0", "impact_minutes": -1}, "impact_minutes"),
        ({"tier": "P0", "impact_minutes": 3, "occurred_at": iso(NOW)}, "impact_minutes"),
        ({"tier": "P0", "minutes": 3}, "minutes"),
    ],
)
def test_preview_rejects_bad_facts(engineer_client, facts, bad_field):
    response = engineer_client.post(PREVIEW, facts, format="json")
    assert response.status_code == 400
    assert set(response.data) == {bad_field}


def _rules_v1(client) -> tuple[dict, dict]:
    current = client.get(POLICIES + "current/").data
    return current["rules"], current["recovery_targets"]


def test_policy_versions_and_reevaluation(admin_client_api, cashier):
    def create_p0_25_min(title):
        # P0 impacted 25 min: C under version 1 (B needs 30 min).
        return admin_client_api.post(
            INCIDENTS,
            live_body(
                title=title,
                occurred_at="2026-11-03T10:00:00Z",
                detected_at="2026-11-03T10:00:00Z",
                recovered_at="2026-11-03T10:25:00Z",
            ),
            format="json",
        ).data

    old = create_p0_25_min("Old one")
    untouched = create_p0_25_min("Not re-evaluated")
    assert (old["level"], old["severity_policy_version"]) == ("C", 1)

    rules, targets = _rules_v1(admin_client_api)
    assert rules["B"][0] == {"kind": "tier_impact", "tier": "P0", "minutes": 30}
    rules["B"][0] = {"kind": "tier_impact", "tier": "P0", "minutes": 20}
    created = admin_client_api.post(
        POLICIES, {"rules": rules, "recovery_targets": targets, "note": "P0 is B from 20 min"}, format="json"
    )
    assert created.status_code == 201, created.data
    assert created.data["version"] == 2
    assert created.data["created_by"] == "admin"
    assert created.data["conditions_in_words"]["B"][0] == "P0 impacted >= 20 min"

    current = admin_client_api.get(POLICIES + "current/")
    assert (current.data["version"], current.data["note"]) == (2, "P0 is B from 20 min")
    assert [p["version"] for p in admin_client_api.get(POLICIES).data["results"]] == [2, 1]
    assert admin_client_api.get(POLICIES + "1/").data["rules"]["B"][0]["minutes"] == 30

    # Existing incidents keep their level and policy version.
    still = admin_client_api.get(detail(old["id"])).data
    assert (still["level"], still["severity_policy_version"]) == ("C", 1)
    # A new incident is classified by version 2.
    new = create_p0_25_min("New one")
    assert (new["level"], new["severity_policy_version"]) == ("B", 2)
    assert new["severity_explanation"] == "B: P0 system impacted 25 min (>= 20 min)"

    response = admin_client_api.post(POLICIES + "reevaluate/", {"incidents": [old["id"]]}, format="json")
    assert response.status_code == 200, response.data
    assert response.data == {"evaluated": 1, "level_changed": 1}

    moved = admin_client_api.get(detail(old["id"])).data
    assert (moved["level"], moved["severity_policy_version"]) == ("B", 2)
    assert moved["severity_explanation"] == "B: P0 system impacted 25 min (>= 20 min)"
    entry = TimelineEntry.objects.filter(incident_id=old["id"], kind="severity").get()
    assert (entry.old_value, entry.new_value, entry.author.username) == ("C", "B", "admin")

    kept = admin_client_api.get(detail(untouched["id"])).data
    assert (kept["level"], kept["severity_policy_version"]) == ("C", 1)


def test_reevaluate_keeps_overrides(admin_client_api, incident):
    admin_client_api.post(
        detail(incident.pk) + "severity-override/", {"level": "D", "reason": "Test env"}, format="json"
    )
    rules, targets = _rules_v1(admin_client_api)
    rules["C"] = []
    admin_client_api.post(POLICIES, {"rules": rules, "recovery_targets": targets}, format="json")

    response = admin_client_api.post(POLICIES + "reevaluate/", {"incidents": [incident.pk]}, format="json")
    assert response.status_code == 200
    assert response.data == {"evaluated": 1, "level_changed": 0}
    data = admin_client_api.get(detail(incident.pk)).data
    assert (data["level"], data["classified_level"], data["severity_policy_version"]) == ("D", "D", 2)


@pytest.mark.parametrize(
    ("body", "bad_field"),
    [
        (
            {"rules": {"A": [{"kind": "tier_impact", "tier": "P9", "minutes": 60}]}, "recovery_targets": _targets()},
            "rules",
        ),
        ({"rules": {"E": []}, "recovery_targets": _targets()}, "rules"),
        ({"rules": {"A": [{"kind": "moon_phase"}]}, "recovery_targets": _targets()}, "rules"),
        ({"rules": "not an object", "recovery_targets": _targets()}, "rules"),
        ({"rules": {"A": []}, "recovery_targets": {"A": 1800, "B": 3600, "C": 14400}}, "recovery_targets"),
        ({"rules": {"A": []}, "recovery_targets": {"A": 0, "B": 3600, "C": 14400, "D": 86400}}, "recovery_targets"),
        ({"recovery_targets": _targets()}, "rules"),
    ],
)
def test_invalid_policy_is_400(admin_client_api, body, bad_field):
    response = admin_client_api.post(POLICIES, body, format="json")
    assert response.status_code == 400
    assert bad_field in response.data
    assert list(SeverityPolicy.objects.values_list("version", flat=True)) == [1]


@pytest.mark.parametrize(
    ("rules", "targets"),
    [
        ({"A": [{"kind": "tier_impact", "tier": "P0", "minutes": 10**15}]}, _targets()),
        ({"A": []}, {"A": 1800, "B": 3600, "C": 14400, "D": 10**20}),
        ({"A": [{"kind": "funds_loss", "at_least": "Infinity"}]}, _targets()),
    ],
    ids=["minutes", "recovery-target", "infinite-funds-loss"],
)
def test_policy_with_unusable_numbers_is_400(admin_client_api, cashier, rules, targets):
    admin_client_api.raise_request_exception = False
    response = admin_client_api.post(POLICIES, {"rules": rules, "recovery_targets": targets}, format="json")
    assert response.status_code == 400
    assert list(SeverityPolicy.objects.values_list("version", flat=True)) == [1]
    # and the tracker still works
    assert admin_client_api.get(POLICIES + "current/").status_code == 200
    assert admin_client_api.post(INCIDENTS, live_body(), format="json").status_code == 201


def test_malformed_policy_json_is_400(admin_client_api):
    response = admin_client_api.generic("POST", POLICIES, "{bad", content_type="application/json")
    assert response.status_code == 400
    assert SeverityPolicy.objects.count() == 1


def test_reevaluate_a_period(admin_client_api, cashier):
    november = IncidentFactory(
        systems=[cashier], occurred_at=utc(2026, 11, 3, 10, 0), recovered_at=utc(2026, 11, 3, 10, 25)
    )
    october = IncidentFactory(
        systems=[cashier], occurred_at=utc(2026, 10, 3, 10, 0), recovered_at=utc(2026, 10, 3, 10, 25)
    )
    rules, targets = _rules_v1(admin_client_api)
    rules["B"][0]["minutes"] = 20
    admin_client_api.post(POLICIES, {"rules": rules, "recovery_targets": targets}, format="json")

    response = admin_client_api.post(POLICIES + "reevaluate/", {"period": "2026-11"}, format="json")

    assert response.status_code == 200, response.data
    assert response.data == {"evaluated": 1, "level_changed": 1}
    november.refresh_from_db()
    october.refresh_from_db()
    assert (november.level, november.severity_policy.version) == ("B", 2)
    assert (october.level, october.severity_policy.version) == ("C", 1)


@pytest.mark.parametrize(
    ("body", "bad_field"),
    [({}, "incidents"), ({"incidents": [999999]}, "incidents"), ({"period": "2026-13"}, "period")],
)
def test_bad_reevaluate_request_is_400(admin_client_api, body, bad_field):
    response = admin_client_api.post(POLICIES + "reevaluate/", body, format="json")
    assert response.status_code == 400
    assert set(response.data) == {bad_field}


# -- teams and systems --------------------------------------------------------------------------


def test_admin_creates_team_and_system(admin_client_api):
    UserFactory(username="lee")
    team = admin_client_api.post(TEAMS, {"name": "Ledger", "slug": "ledger", "members": ["lee"]}, format="json")
    assert team.status_code == 201, team.data
    assert team.data["members"] == ["lee"]
    system = admin_client_api.post(
        SYSTEMS, {"code": "ledger-core", "name": "Ledger core", "tier": "P1", "team": "ledger"}, format="json"
    )
    assert system.status_code == 201, system.data
    assert (system.json()["tier"], system.json()["team"], system.json()["availability_target"]) == (
        "P1",
        "ledger",
        99.99,
    )
    got = admin_client_api.get(SYSTEMS + "ledger-core/")
    assert got.data["name"] == "Ledger core"


# -- 7. list, filters, paging -------------------------------------------------------------------


@pytest.fixture
def dataset(cashier, payout, riskctl):
    """Six incidents around November 2026 (Asia/Shanghai), each made through the service."""
    return {
        # P0 45 min -> B
        "i1": IncidentFactory(
            title="Cashier timeouts",
            systems=[cashier],
            occurred_at=utc(2026, 11, 2, 2, 0),
            detected_at=utc(2026, 11, 2, 2, 3),
            recovered_at=utc(2026, 11, 2, 2, 45),
            detection_source="monitoring",
            cause_category="code_change",
        ).pk,
        # P0 still open since Nov 10 -> A
        "i2": IncidentFactory(
            title="Payout delayed",
            summary="The bank channel is slow",
            systems=[payout],
            occurred_at=utc(2026, 11, 10, 3, 0),
            detected_at=utc(2026, 11, 10, 4, 0),
            detection_source="customer",
            cause_category="third_party",
        ).pk,
        # P2 20 min -> D, resolved
        "i3": IncidentFactory(
            title="Risk rules stale",
            handling="Reloaded the rule cache",
            systems=[riskctl],
            occurred_at=utc(2026, 11, 15, 5, 0),
            detected_at=utc(2026, 11, 15, 5, 0),
            recovered_at=utc(2026, 11, 15, 5, 20),
            resolved_at=utc(2026, 11, 15, 6, 0),
            detection_source="inspection",
            cause_category="data",
        ).pk,
        # 01:00 on Nov 1 in Shanghai: November. P0 5 min -> D
        "i4": IncidentFactory(
            title="Cashier blip",
            systems=[cashier, riskctl],
            occurred_at=utc(2026, 10, 31, 17, 0),
            detected_at=utc(2026, 10, 31, 17, 0),
            recovered_at=utc(2026, 10, 31, 17, 5),
            detection_source="monitoring",
            cause_category="config_change",
        ).pk,
        # 23:59:59 on Oct 31 in Shanghai: October
        "i5": IncidentFactory(
            title="Risk batch late",
            systems=[riskctl],
            occurred_at=utc(2026, 10, 31, 15, 59, 59),
            detected_at=utc(2026, 10, 31, 16, 0),
            recovered_at=utc(2026, 10, 31, 16, 30),
            detection_source="other",
        ).pk,
        # 00:00 on Dec 1 in Shanghai: December
        "i6": IncidentFactory(
            title="Risk report missing",
            systems=[riskctl],
            occurred_at=utc(2026, 11, 30, 16, 0),
            detected_at=utc(2026, 11, 30, 16, 0),
            recovered_at=utc(2026, 11, 30, 16, 10),
            detection_source="monitoring",
        ).pk,
    }


def listed(client, params) -> list[int]:
    response = client.get(INCIDENTS, {"page_size": 100, **params})
    assert response.status_code == 200, response.data
    assert response.data["count"] == len(response.data["results"])
    return [row["id"] for row in response.data["results"]]


def test_dataset_levels(manager_client, dataset):
    levels = {row["id"]: row["level"] for row in manager_client.get(INCIDENTS).data["results"]}
    names = {pk: name for name, pk in dataset.items()}
    assert {names[pk]: level for pk, level in levels.items()} == {
        "i1": "B",
        "i2": "A",
        "i3": "D",
        "i4": "D",
        "i5": "D",
        "i6": "D",
    }


def test_default_order_is_newest_first(manager_client, dataset):
    d = dataset
    assert listed(manager_client, {}) == [d["i6"], d["i3"], d["i2"], d["i1"], d["i4"], d["i5"]]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "open"}, {"i2"}),
        ({"status": "resolved"}, {"i3"}),
        ({"status": "recovered"}, {"i1", "i4", "i5", "i6"}),
        ({"status": ["open", "resolved"]}, {"i2", "i3"}),
        ({"level": "A"}, {"i2"}),
        ({"level": "B"}, {"i1"}),
        ({"level": ["A", "B"]}, {"i1", "i2"}),
        ({"level": "C"}, set()),
        ({"team": "risk"}, {"i3", "i5", "i6"}),
        ({"team": "payments"}, {"i1", "i2", "i4"}),
        ({"system": "riskctl"}, {"i3", "i4", "i5", "i6"}),
        ({"system": "cashier"}, {"i1", "i4"}),
        ({"source": "customer"}, {"i2"}),
        ({"source": ["monitoring", "inspection"]}, {"i1", "i3", "i4", "i6"}),
        ({"cause": "data"}, {"i3"}),
        ({"cause": "code_change"}, {"i1"}),
        ({"cause": "unknown"}, {"i5", "i6"}),
        # occurred_after is inclusive, occurred_before exclusive
        ({"occurred_after": "2026-11-02T02:00:00Z", "occurred_before": "2026-11-15T05:00:00Z"}, {"i1", "i2"}),
        ({"occurred_after": "2026-11-15T05:00:00Z"}, {"i3", "i6"}),
        ({"period": "2026-11"}, {"i1", "i2", "i3", "i4"}),
        ({"period": "2026-10"}, {"i5"}),
        ({"period": "2026-12"}, {"i6"}),
        ({"period": "2026-11", "team": "payments", "status": "recovered"}, {"i1", "i4"}),
        ({"q": "bank channel"}, {"i2"}),
        ({"q": "RULE CACHE"}, {"i3"}),
        ({"q": "cashier"}, {"i1", "i4"}),
        ({"q": "nothing like this"}, set()),
    ],
)
def test_filters(manager_client, dataset, params, expected):
    ids = listed(manager_client, params)
    assert len(ids) == len(set(ids))  # no incident twice
    assert set(ids) == {dataset[name] for name in expected}


@time_machine.travel("2026-11-20T00:00:00Z", tick=False)
def test_period_is_cut_in_shanghai_time(manager_client, cashier):
    edge = IncidentFactory(systems=[cashier], occurred_at=utc(2026, 10, 31, 17, 0))
    before = IncidentFactory(systems=[cashier], occurred_at=utc(2026, 10, 31, 15, 59, 59))
    assert listed(manager_client, {"period": "2026-11"}) == [edge.pk]
    assert listed(manager_client, {"period": "2026-10"}) == [before.pk]


@pytest.mark.parametrize(
    "params",
    [{"period": "2026-13"}, {"period": "November"}, {"status": "bogus"}, {"occurred_after": "yesterday"}],
)
def test_bad_filter_is_400(manager_client, dataset, params):
    response = manager_client.get(INCIDENTS, params)
    assert response.status_code == 400
    assert set(response.data) == set(params)


def test_ordering_by_level(manager_client, dataset):
    rows = manager_client.get(INCIDENTS, {"ordering": "level"}).data["results"]
    assert [row["level"] for row in rows] == ["A", "B", "D", "D", "D", "D"]
    rows = manager_client.get(INCIDENTS, {"ordering": "-level"}).data["results"]
    assert [row["level"] for row in rows] == ["D", "D", "D", "D", "B", "A"]


def test_pagination(manager_client, dataset):
    d = dataset
    first = manager_client.get(INCIDENTS, {"page_size": 4})
    assert first.data["count"] == 6
    assert [row["id"] for row in first.data["results"]] == [d["i6"], d["i3"], d["i2"], d["i1"]]
    assert first.data["previous"] is None
    assert "page=2" in first.data["next"]
    second = manager_client.get(INCIDENTS, {"page_size": 4, "page": 2})
    assert [row["id"] for row in second.data["results"]] == [d["i4"], d["i5"]]
    assert second.data["next"] is None
    assert manager_client.get(INCIDENTS, {"page_size": 4, "page": 3}).status_code == 404


def test_list_queries_do_not_grow_with_the_page(manager_client, payments):
    owners = [UserFactory(username=f"owner{n}") for n in range(3)]
    systems = [SystemFactory(code=f"sys-{n}", team=payments) for n in range(4)]

    def make(n):
        for k in range(n):
            IncidentFactory(systems=[systems[k % 4], systems[(k + 1) % 4]], owner=owners[k % 3])

    def measure(expected_rows):
        manager_client.get(INCIDENTS)  # warm-up: the token's last_used_at write
        with CaptureQueriesContext(connection) as ctx:
            response = manager_client.get(INCIDENTS, {"page_size": 100})
        assert response.status_code == 200
        rows = response.data["results"]
        assert len(rows) == expected_rows
        assert all(len(row["systems"]) == 2 and row["owner"].startswith("owner") for row in rows)
        return len(ctx.captured_queries)

    make(3)
    with_3 = measure(3)
    make(22)
    with_25 = measure(25)
    assert with_3 == with_25
    assert with_25 <= 6


# -- 8. metrics ---------------------------------------------------------------------------------


def test_metrics_of_a_month(manager_client, dataset):
    response = manager_client.get(METRICS, {"period": "2026-11"})

    assert response.status_code == 200, response.data
    period = response.json()["period"]
    assert (period["label"], period["kind"]) == ("2026-11", "month")
    assert parse(period["start"]) == utc(2026, 10, 31, 16, 0)  # Nov 1 00:00 in Shanghai
    assert parse(period["end"]) == utc(2026, 11, 30, 16, 0)
    m = response.json()["metrics"]
    # i1, i2, i3, i4; i2 unrecovered.
    assert (m["incidents"], m["recovered"], m["unrecovered"]) == (4, 3, 1)
    assert m["by_level"] == {"A": 1, "B": 1, "C": 0, "D": 2}
    assert m["by_detection_source"] == {
        "monitoring": 2,
        "customer": 1,
        "inspection": 1,
        "third_party": 0,
        "other": 0,
    }
    assert m["by_cause_category"]["code_change"] == 1
    assert m["by_cause_category"]["config_change"] == 1
    assert m["by_cause_category"]["data"] == 1
    assert m["by_cause_category"]["third_party"] == 1
    assert [(t["team"], t["count"]) for t in m["by_team"]] == [("payments", 3), ("risk", 1)]
    assert [(s["system"], s["count"]) for s in m["by_system"]] == [("cashier", 2), ("riskctl", 2), ("payout", 1)]
    # TTR: i1 2700 s, i3 1200 s, i4 300 s -> mean 1400, median 1200, p90 1200 + 0.8 * 1500 = 2400
    assert m["time_to_recover"] == {"count": 3, "mean": 1400, "median": 1200, "p90": 2400}
    # TTD: i1 180, i2 3600, i3 0, i4 0 -> mean 945; sorted 0 0 180 3600: median 90, p90 180 + 0.7 * 3420
    assert m["time_to_detect"]["count"] == 4
    assert m["time_to_detect"]["mean"] == 945
    assert m["time_to_detect"]["median"] == 90
    assert m["time_to_detect"]["p90"] == pytest.approx(2574)
    assert m["time_to_respond"] == {"count": 0, "mean": None, "median": None, "p90": None}
    assert m["time_to_resolve"] == {"count": 1, "mean": 3600, "median": 3600, "p90": 3600}
    assert m["recovery_target_compliance"]["rate"] == 1
    assert m["recovery_target_compliance"]["within_target"] == 3
    assert m["detected_by_monitoring"] == {"rate": 0.5, "monitoring": 2, "with_source": 4}


def test_metrics_with_a_filter(manager_client, dataset):
    response = manager_client.get(METRICS, {"period": "2026-11", "team": "risk"})
    assert response.status_code == 200
    assert response.data["metrics"]["incidents"] == 1
    assert response.data["metrics"]["by_level"] == {"A": 0, "B": 0, "C": 0, "D": 1}


def test_metrics_of_an_empty_period_has_null_rates(manager_client, dataset):
    m = manager_client.get(METRICS, {"period": "2025-01"}).data["metrics"]
    assert m["incidents"] == 0
    assert m["recovery_target_compliance"]["rate"] is None
    assert m["detected_by_monitoring"]["rate"] is None
    assert m["time_to_recover"] == {"count": 0, "mean": None, "median": None, "p90": None}


def test_metrics_default_to_the_current_month(manager_client, dataset):
    response = manager_client.get(METRICS)
    assert response.status_code == 200
    assert response.data["period"]["label"] == "2026-12"
    assert response.data["metrics"]["incidents"] == 1  # i6


@pytest.mark.parametrize("period", ["2026-13", "Nov 2026", "2026-11-15..2026-11-01"])
def test_metrics_bad_period_is_400(manager_client, period):
    response = manager_client.get(METRICS, {"period": period})
    assert response.status_code == 400
    assert set(response.data) == {"period"}


def test_the_schema_documents_the_nulls_and_lists_the_api_answers(admin_client_api):
    """Schemathesis' conformance check found these: a seeded policy has no author, and `mine` is a page."""
    schema = admin_client_api.get("/api/schema/", {"format": "json"}).json()
    components = schema["components"]["schemas"]
    assert components["SeverityPolicy"]["properties"]["created_by"]["nullable"] is True
    assert components["ActionItem"]["properties"]["verifier"]["nullable"] is True
    assert "nullable" not in components["ActionItem"]["properties"]["owner"]  # an item always has an owner
    mine = schema["paths"]["/api/v1/action-items/mine/"]["get"]["responses"]["200"]["content"]
    assert mine["application/json"]["schema"] == {"$ref": "#/components/schemas/PaginatedActionItemList"}
    assert admin_client_api.get(f"{POLICIES}current/").json()["created_by"] is None
