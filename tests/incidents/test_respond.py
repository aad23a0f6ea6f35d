"""Taking an incident ("I'm on it"), its roles and the commander's updates (issue 15, part 2)."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.exceptions import PermissionDenied, ValidationError

from accounts.models import Role
from incidents import durations, services
from incidents.models import Incident, TimelineEntry
from tests.factories import IncidentFactory, UserFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 5, 4, 0, tzinfo=UTC)  # 12:00 in Asia/Shanghai


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def incident():
    # Detected 20 minutes ago: time to acknowledge is known once someone responds.
    return IncidentFactory(occurred_at=NOW - timedelta(minutes=30), detected_at=NOW - timedelta(minutes=20))


def respond(incident, user):
    return services.incident_transition(incident_id=incident.pk, by=user, action="respond")


def rows(incident, kind=None):
    entries = incident.timeline.exclude(kind="created").order_by("id")
    if kind:
        entries = entries.filter(kind=kind)
    return list(entries.values_list("kind", "field", "old_value", "new_value", "author__username"))


def test_im_on_it_sets_owner_and_responded_at_once_and_time_to_respond_follows():
    lin = UserFactory(username="lin")
    incident = IncidentFactory(occurred_at=NOW - timedelta(minutes=30), detected_at=NOW - timedelta(minutes=20))
    version = incident.version
    respond(incident, lin)
    incident.refresh_from_db()
    assert (incident.owner, incident.responded_at, incident.status, incident.version) == (lin, NOW, "open", version + 1)
    # MTTA: responded 12:00 - detected 11:40 = 20 min.
    assert durations.incident_duration("time_to_respond", incident) == timedelta(minutes=20)
    assert rows(incident) == [
        ("responded", "", "", "", "lin"),
        ("change", "owner", "", "lin", "lin"),
        ("change", "responded_at", "", NOW.isoformat(), "lin"),
    ]


def test_taking_it_again_writes_nothing(incident, frozen):
    lin = UserFactory(username="lin")
    respond(incident, lin)
    incident.refresh_from_db()
    before = (incident.version, TimelineEntry.objects.count())
    frozen.shift(timedelta(minutes=5))
    respond(incident, lin)
    incident.refresh_from_db()
    assert (incident.version, TimelineEntry.objects.count()) == before
    assert incident.responded_at == NOW  # the first response counts


def test_a_second_responder_is_recorded_once_and_keeps_owner_and_first_response(incident, frozen):
    lin, wu = UserFactory(username="lin"), UserFactory(username="wu")
    respond(incident, lin)
    frozen.shift(timedelta(minutes=3))
    respond(incident, wu)
    respond(incident, wu)
    incident.refresh_from_db()
    assert (incident.owner.username, incident.responded_at) == ("lin", NOW)
    assert rows(incident, "responded") == [("responded", "", "", "", "lin"), ("responded", "", "", "", "wu")]


def test_an_owner_already_set_is_kept():
    lin, boss = UserFactory(username="lin"), UserFactory(username="boss")
    incident = IncidentFactory(owner=boss, occurred_at=NOW - timedelta(hours=1), detected_at=NOW - timedelta(hours=1))
    respond(incident, lin)
    incident.refresh_from_db()
    assert (incident.owner, incident.responded_at) == (boss, NOW)


def test_a_closed_incident_cannot_be_taken(incident):
    Incident.objects.filter(pk=incident.pk).update(status="closed")
    with pytest.raises(ValidationError) as refused:
        respond(incident, UserFactory())
    assert list(refused.value.message_dict) == ["action"]
    assert rows(incident) == []


def test_roles_are_set_by_an_edit_and_recorded(incident):
    chen, zhao = UserFactory(username="chen"), UserFactory(username="zhao")
    services.incident_update(
        incident_id=incident.pk,
        by=chen,
        expected_version=incident.version,
        changes={"commander": chen, "communications_lead": zhao},
    )
    incident.refresh_from_db()
    assert (incident.commander, incident.communications_lead) == (chen, zhao)
    assert sorted(rows(incident)) == [
        ("change", "commander", "", "chen", "chen"),
        ("change", "communications_lead", "", "zhao", "chen"),
    ]


def test_only_the_commander_or_a_manager_posts_an_update(incident):
    chen, lin = UserFactory(username="chen"), UserFactory(username="lin")
    boss = UserFactory(username="boss", role=Role.MANAGER)
    Incident.objects.filter(pk=incident.pk).update(commander=chen)
    with pytest.raises(PermissionDenied):
        services.timeline_note_add(incident_id=incident.pk, by=lin, text="switched channel", update=True)
    assert rows(incident) == []
    services.timeline_note_add(incident_id=incident.pk, by=chen, text="switched channel", update=True)
    services.timeline_note_add(incident_id=incident.pk, by=boss, text="recovering", update=True)
    # Anyone may still write a plain note.
    services.timeline_note_add(incident_id=incident.pk, by=lin, text="looking at logs")
    assert list(incident.timeline.exclude(kind="created").values_list("kind", "text", "author__username")) == [
        ("update", "switched channel", "chen"),
        ("update", "recovering", "boss"),
        ("note", "looking at logs", "lin"),
    ]


# -- the API ------------------------------------------------------------------------------------


def test_api_respond_answers_the_incident_with_owner_and_responded_at(engineer_client, incident):
    response = engineer_client.post(
        f"/api/v1/incidents/{incident.pk}/transitions/", {"action": "respond"}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["owner"], body["responded_at"], body["status"]) == ("engineer", "2026-12-05T12:00:00+08:00", "open")
    assert body["durations"]["time_to_respond"] == 20 * 60  # 11:40 -> 12:00
    again = engineer_client.post(f"/api/v1/incidents/{incident.pk}/transitions/", {"action": "respond"}, format="json")
    assert again.status_code == 200
    assert again.json()["version"] == body["version"]  # nothing written the second time


def test_api_roles_by_username_and_unknown_user_is_a_400_with_nothing_written(engineer_client, incident):
    UserFactory(username="chen")
    url = f"/api/v1/incidents/{incident.pk}/"
    bad = engineer_client.patch(url, {"version": incident.version, "commander": "nobody"}, format="json")
    assert bad.status_code == 400
    assert "commander" in bad.json()
    incident.refresh_from_db()
    assert incident.commander is None
    ok = engineer_client.patch(url, {"version": incident.version, "commander": "chen"}, format="json")
    assert ok.status_code == 200, ok.content
    assert ok.json()["commander"] == "chen"


def test_api_update_from_someone_not_commander_is_a_403(engineer_client, incident):
    response = engineer_client.post(
        f"/api/v1/incidents/{incident.pk}/timeline/", {"text": "all good", "update": True}, format="json"
    )
    assert response.status_code == 403
    assert not incident.timeline.filter(kind="update").exists()


def test_api_respond_refused_to_anonymous(anonymous_client, incident):
    response = anonymous_client.post(
        f"/api/v1/incidents/{incident.pk}/transitions/", {"action": "respond"}, format="json"
    )
    assert response.status_code in (401, 403)
    incident.refresh_from_db()
    assert incident.responded_at is None
