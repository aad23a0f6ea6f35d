"""GET/PUT /api/v1/incidents/{id}/review/: every section with the team's required and missing ones, writes
with the version read (a stale one is 409, nothing written), unknown sections refused."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from incidents.models import ReviewRevision
from tests.factories import IncidentFactory, SystemFactory, TeamFactory

NOW = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
EMPTY = dict.fromkeys(
    [
        "summary",
        "impact",
        "timeline",
        "detection",
        "response",
        "root_cause",
        "went_well",
        "went_badly",
        "lessons",
        "items",
    ],
    "",
)


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def incident(db):
    team = TeamFactory(slug="payments", review_required_sections=["summary", "lessons"])
    return IncidentFactory(systems=[SystemFactory(code="cashier", team=team)], occurred_at=NOW - timedelta(hours=1))


def url(incident):
    return f"/api/v1/incidents/{incident.pk}/review/"


def test_reading_an_unwritten_review(engineer_client, incident):
    response = engineer_client.get(url(incident))
    assert response.status_code == 200
    assert response.data == {
        "version": 0,
        "sections": EMPTY,
        "required": ["summary", "lessons"],
        "missing": ["summary", "lessons"],
    }
    assert response["ETag"] == '"0"'


def test_writing_sections_with_the_version_read(engineer_client, incident):
    written = engineer_client.put(
        url(incident), {"version": 0, "sections": {"summary": "复盘：连接池耗尽"}}, format="json"
    )
    assert written.status_code == 200, written.data
    assert (written.data["version"], written.data["sections"]["summary"], written.data["missing"]) == (
        1,
        "复盘：连接池耗尽",
        ["lessons"],
    )
    # Sections left out are kept; If-Match carries the version instead of the body.
    again = engineer_client.put(
        url(incident), {"sections": {"lessons": "Alert on pool usage."}}, format="json", HTTP_IF_MATCH='"1"'
    )
    assert (again.status_code, again.data["version"], again.data["missing"]) == (200, 2, [])
    assert again.data["sections"]["summary"] == "复盘：连接池耗尽"


def test_a_stale_version_is_409_and_nothing_is_written(engineer_client, incident):
    engineer_client.put(url(incident), {"version": 0, "sections": {"summary": "First."}}, format="json")
    stale = engineer_client.put(url(incident), {"version": 0, "sections": {"summary": "Second."}}, format="json")
    assert stale.status_code == 409
    assert stale.data["current_version"] == 1
    assert "changed by someone else (now version 1)" in stale.data["detail"]
    assert list(ReviewRevision.objects.values_list("text", flat=True)) == ["First."]


def test_refusals(engineer_client, incident):
    no_version = engineer_client.put(url(incident), {"sections": {"summary": "x"}}, format="json")
    assert (no_version.status_code, list(no_version.data)) == (400, ["version"])
    unknown = engineer_client.put(url(incident), {"version": 0, "sections": {"blame": "x"}}, format="json")
    assert (unknown.status_code, unknown.data) == (400, {"sections": ["Unknown review sections: blame."]})
    nul = engineer_client.put(url(incident), {"version": 0, "sections": {"summary": "a\x00b"}}, format="json")
    assert (nul.status_code, list(nul.data)) == (400, ["sections"])
    extra = engineer_client.put(url(incident), {"version": 0, "sections": {}, "colour": "red"}, format="json")
    assert (extra.status_code, list(extra.data)) == (400, ["colour"])


def test_the_team_api_sets_the_required_sections(admin_client_api, incident):
    team = incident.team
    changed = admin_client_api.patch(
        f"/api/v1/teams/{team.slug}/", {"review_required_sections": ["root_cause"]}, format="json"
    )
    assert changed.status_code == 200, changed.data
    assert changed.data["review_required_sections"] == ["root_cause"]
    refused = admin_client_api.patch(
        f"/api/v1/teams/{team.slug}/", {"review_required_sections": ["blame"]}, format="json"
    )
    assert (refused.status_code, list(refused.data)) == (400, ["review_required_sections"])


def test_every_version_of_every_section(engineer_client, incident):
    engineer_client.put(url(incident), {"version": 0, "sections": {"lessons": "L1", "summary": "S1"}}, format="json")
    engineer_client.put(url(incident), {"version": 1, "sections": {"summary": "S2"}}, format="json")
    versions = engineer_client.get(url(incident) + "versions/")
    assert versions.status_code == 200
    assert [(v["section"], v["version"], v["text"], v["by"], v["at"]) for v in versions.data] == [
        ("summary", 1, "S1", "engineer", "2026-11-20T10:00:00+08:00"),
        ("summary", 2, "S2", "engineer", "2026-11-20T10:00:00+08:00"),
        ("lessons", 1, "L1", "engineer", "2026-11-20T10:00:00+08:00"),
    ]
