"""Logging, reading and changing incidents through the pages (web/views/incidents.py).

Times typed into forms are in the reader's zone, here the organisation's (Asia/Shanghai, UTC+8):
16:10 typed is 08:10Z stored.
"""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from incidents import services
from incidents.models import Incident, Status, TimelineEntry
from tests.factories import IncidentFactory
from tests.web.conftest import field_errors, text_of

T0 = datetime(2026, 11, 22, 8, 30, tzinfo=UTC)  # 16:30 in Asia/Shanghai
LOG = "/incidents/new/"
PAST = "/incidents/new/past/"
SUGGEST = "/incidents/level-suggestion/"


@pytest.fixture(autouse=True)
def _at_t0():
    with time_machine.travel(T0, tick=False):
        yield


def quick(world, **changes) -> dict:
    return {
        "title": "收银台支付超时 / cashier payments timing out",
        "systems": [world["cashier"].pk],
        "occurred_at": "2026-11-22T16:10:00",
        "detected_at": "2026-11-22T16:12:00",
        "detection_source": "monitoring",
        "affected_users": "0",
        "affected_transactions": "0",
        "funds_loss": "0",
        **changes,
    }


# --- logging an incident while it burns ------------------------------------------------------------


def test_the_log_form_asks_only_what_is_needed_and_defaults_the_times_to_now(engineer, world):
    response = engineer.get(LOG)

    assert response.status_code == 200
    html = response.content.decode()
    # 08:30:00Z is 16:30:00 on the reader's clock
    assert html.count('value="2026-11-22T16:30:00"') == 2
    for name in ("title", "occurred_at", "detected_at"):
        assert f'<label for="id_{name}">' in html
    assert 'name="detection_source"' in html and 'name="systems"' in html
    assert 'name="recovered_at"' not in html  # after the fact only
    assert "Times are in Asia/Shanghai." in text_of(html)


def test_logging_an_incident_goes_through_the_service(engineer, world):
    response = engineer.post(LOG, quick(world))

    incident = Incident.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/incidents/{incident.pk}/"
    assert incident.title == "收银台支付超时 / cashier payments timing out"
    assert incident.occurred_at == datetime(2026, 11, 22, 8, 10, tzinfo=UTC)
    assert incident.detected_at == datetime(2026, 11, 22, 8, 12, tzinfo=UTC)
    assert incident.status == Status.OPEN
    assert incident.team == world["payments"]
    assert incident.created_by == engineer.user
    # P0 impacted since 16:10, now 16:30: 20 min >= 10 -> C
    assert incident.level == "C"
    assert list(incident.timeline.values_list("kind", flat=True)) == [TimelineEntry.Kind.CREATED]


def test_errors_are_shown_next_to_their_fields_and_nothing_is_saved(engineer, world):
    response = engineer.post(LOG, quick(world, detected_at="2026-11-22T16:05:00", title="", systems=[]))

    assert response.status_code == 400
    assert field_errors(response, "id_detected_at") == [
        "Detected at must not be earlier than occurred at (when the impact started)."
    ]
    assert field_errors(response, "id_title") == ["This field is required."]
    assert field_errors(response, "id_systems") == ["This field is required."]
    html = response.content.decode()
    assert 'aria-describedby="id_detected_at-help id_detected_at-errors"' in html
    assert 'aria-invalid="true"' in html
    # what was typed stays in the form
    assert 'value="2026-11-22T16:05:00"' in html
    assert Incident.objects.count() == 0
    assert TimelineEntry.objects.count() == 0


def test_a_time_in_the_future_is_refused_next_to_the_field(engineer, world):
    # 16:36 is 6 minutes after now; 5 are tolerated
    response = engineer.post(LOG, quick(world, detected_at="2026-11-22T16:36:00"))

    assert response.status_code == 400
    assert field_errors(response, "id_detected_at") == [
        "This time lies in the future; at most 5 minutes ahead of now is accepted."
    ]
    assert Incident.objects.count() == 0


def test_a_negative_count_is_refused(engineer, world):
    response = engineer.post(LOG, quick(world, affected_users="-3"))

    assert response.status_code == 400
    assert field_errors(response, "id_affected_users") == ["Ensure this value is greater than or equal to 0."]
    assert Incident.objects.count() == 0


def test_managers_read_but_do_not_log(manager, world):
    assert manager.get(LOG).status_code == 403
    assert manager.post(LOG, quick(world)).status_code == 403
    assert Incident.objects.count() == 0


def test_anonymous_readers_are_sent_to_sign_in(client, world):
    response = client.get(LOG)
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/incidents/new/"


# --- the live A-D suggestion --------------------------------------------------------------------------


def test_the_level_is_suggested_from_the_facts_typed_so_far(engineer, world):
    # P0 impacted since 15:45, now 16:30: 45 min >= 30 -> B
    response = engineer.post(SUGGEST, quick(world, occurred_at="2026-11-22T15:45:00"), HTTP_HX_REQUEST="true")

    assert response.status_code == 200
    text = text_of(response.content.decode())
    assert "B: P0 system impacted 45 min (>= 30 min)" in text
    assert "Recovery target 1 h · policy v1" in text
    assert Incident.objects.count() == 0


def test_the_suggestion_takes_every_impact_fact(engineer, world):
    facts = quick(world, systems=[world["portal"].pk], affected_transactions="12000", regulatory_reportable="on")
    response = engineer.post(SUGGEST, facts)

    # reportable to the regulator is an A condition under policy v1
    assert "A: reportable to the regulator" in text_of(response.content.decode())


def test_a_suggestion_without_systems_says_what_is_missing(engineer, world):
    response = engineer.post(SUGGEST, {"title": "x"})

    assert response.status_code == 200
    text = text_of(response.content.decode())
    assert "D: no A-C condition met" in text
    assert "choose the impacted systems for the tier" in text


def test_managers_may_ask_for_a_suggestion(manager, world):
    assert manager.post(SUGGEST, quick(world)).status_code == 200


# --- after the fact ------------------------------------------------------------------------------------


def test_a_past_incident_with_every_timestamp_in_one_form(engineer, world):
    data = quick(
        world,
        occurred_at="2026-11-20T10:00:00",
        detected_at="2026-11-20T10:03:00",
        responded_at="2026-11-20T10:05:00",
        recovered_at="2026-11-20T10:40:00",
        resolved_at="2026-11-21T09:00:00",
        team=world["accounts"].pk,
        owner=engineer.user.pk,
        cause_category="config_change",
        summary="",
        cause="a config push",
        handling="rolled back",
        availability_impact="0.5",
    )

    response = engineer.post(PAST, data)

    assert response.status_code == 302, field_errors(response, "id_resolved_at")
    incident = Incident.objects.get()
    assert incident.status == Status.RESOLVED
    assert incident.team == world["accounts"]
    assert incident.owner == engineer.user
    # 10:00 -> 10:40 local: 40 min to recover; P0 for 40 min >= 30 -> B
    assert incident.time_to_recover == timedelta(minutes=40)
    assert incident.level == "B"
    assert str(incident.availability_impact) == "0.500"


def test_a_past_incident_resolved_before_it_recovered_is_refused(engineer, world):
    data = quick(world, recovered_at="2026-11-22T16:20:00", resolved_at="2026-11-22T16:15:00")

    response = engineer.post(PAST, data)

    assert response.status_code == 400
    assert field_errors(response, "id_resolved_at") == ["Resolved at must not be earlier than recovered at."]
    assert Incident.objects.count() == 0


# --- the incident page ------------------------------------------------------------------------------


@pytest.fixture
def burning(engineer, world) -> Incident:
    return IncidentFactory(
        by=engineer.user,
        title="Cashier timeouts",
        systems=[world["cashier"]],
        occurred_at=datetime(2026, 11, 22, 8, 10, tzinfo=UTC),
        detected_at=datetime(2026, 11, 22, 8, 12, tzinfo=UTC),
        responded_at=datetime(2026, 11, 22, 8, 15, 30, tzinfo=UTC),
    )


def test_the_incident_page_shows_facts_level_durations_and_timeline(engineer, burning):
    response = engineer.get(f"/incidents/{burning.pk}/")

    assert response.status_code == 200
    text = text_of(response.content.decode())
    assert f"#{burning.pk} Cashier timeouts" in text
    assert "C: P0 system impacted 20 min (>= 10 min)" in text
    assert "Occurred at 2026-11-22 16:10:00 (Asia/Shanghai)" in text
    # TTD 08:12 - 08:10; TTA 08:15:30 - 08:12; not recovered
    assert "TTD detect 2 min" in text
    assert "TTA respond 3 min 30 s" in text
    assert "TTR recover –" in text
    assert "Logged: C: P0 system impacted 20 min (>= 10 min)" in text
    # open: it can be marked recovered or resolved, not closed or reopened
    assert "Mark recovered" in text and "Mark resolved" in text
    assert "Reopen" not in text


def test_managers_see_the_page_without_the_controls(manager, burning):
    response = manager.get(f"/incidents/{burning.pk}/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "Mark recovered" not in html
    assert "Add to timeline" not in html
    assert "Edit facts" not in html


def test_an_unknown_incident_is_404(engineer, db):
    assert engineer.get("/incidents/999/").status_code == 404


def test_marking_it_recovered_at_a_given_time(engineer, burning):
    response = engineer.post(
        f"/incidents/{burning.pk}/status/", {"action": "recover", "at": "2026-11-22T16:25:00"}, follow=True
    )

    burning.refresh_from_db()
    assert response.status_code == 200
    assert burning.status == Status.RECOVERED
    assert burning.recovered_at == datetime(2026, 11, 22, 8, 25, tzinfo=UTC)
    # 16:10 -> 16:25
    assert "TTR recover 15 min" in text_of(response.content.decode())


def test_marking_it_recovered_before_it_started_is_refused_next_to_the_time(engineer, burning):
    response = engineer.post(f"/incidents/{burning.pk}/status/", {"action": "recover", "at": "2026-11-22T16:00:00"})

    burning.refresh_from_db()
    assert response.status_code == 400
    assert field_errors(response, "id_at") == [
        "Recovered at must not be earlier than occurred at (when the impact started)."
    ]
    assert burning.status == Status.OPEN
    assert burning.recovered_at is None


def test_a_status_change_the_status_does_not_allow_is_refused(engineer, burning):
    response = engineer.post(f"/incidents/{burning.pk}/status/", {"action": "close"})

    assert response.status_code == 400
    assert "Cannot close an incident whose status is Open." in text_of(response.content.decode())
    burning.refresh_from_db()
    assert burning.status == Status.OPEN


def test_a_timeline_note_from_the_htmx_form_returns_the_timeline(engineer, burning):
    response = engineer.post(
        f"/incidents/{burning.pk}/notes/",
        {"text": "switched traffic to the backup channel", "at": "2026-11-22T16:20:00"},
        HTTP_HX_REQUEST="true",
    )

    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html  # a fragment
    assert "2026-11-22 16:20:00 (Asia/Shanghai) Engineer Person switched traffic to the backup channel" in text_of(html)
    note = burning.timeline.get(kind=TimelineEntry.Kind.NOTE)
    assert note.at == datetime(2026, 11, 22, 8, 20, tzinfo=UTC)
    assert note.author == engineer.user


def test_an_empty_note_is_refused_next_to_the_field(engineer, burning):
    response = engineer.post(f"/incidents/{burning.pk}/notes/", {"text": "  "}, HTTP_HX_REQUEST="true")

    assert response.status_code == 400
    assert field_errors(response, "id_text") == ["This field is required."]
    assert not burning.timeline.filter(kind=TimelineEntry.Kind.NOTE).exists()


def test_a_note_without_htmx_comes_back_to_the_page(engineer, burning):
    response = engineer.post(f"/incidents/{burning.pk}/notes/", {"text": "paged the DBA"})

    assert response.status_code == 302
    assert response["Location"] == f"/incidents/{burning.pk}/"


def test_overriding_the_level_needs_a_reason(engineer, burning):
    refused = engineer.post(f"/incidents/{burning.pk}/level/", {"level": "A", "reason": ""})
    burning.refresh_from_db()
    assert refused.status_code == 400
    assert field_errors(refused, "id_reason") == ["This field is required."]
    assert burning.level == "C"

    engineer.post(f"/incidents/{burning.pk}/level/", {"level": "A", "reason": "regulator called"})
    burning.refresh_from_db()
    assert (burning.level, burning.classified_level, burning.level_override_reason) == ("A", "C", "regulator called")
    page = text_of(engineer.get(f"/incidents/{burning.pk}/").content.decode())
    assert "Set by hand to A (classified C). Reason: regulator called" in page

    engineer.post(f"/incidents/{burning.pk}/level/", {"clear": "1"})
    burning.refresh_from_db()
    assert (burning.level, burning.level_override) == ("C", "")


def test_editing_facts_sends_only_what_changed(engineer, burning):
    form = engineer.get(f"/incidents/{burning.pk}/edit/")
    assert form.status_code == 200
    # recovered_at is set by a status change, not typed here while empty
    assert 'name="recovered_at"' in form.content.decode() and "disabled" in form.content.decode()

    data = {
        "expected_version": burning.version,
        "title": "Cashier timeouts",
        "systems": [s.pk for s in burning.systems.all()],
        "team": burning.team_id,
        "owner": "",
        "detection_source": "monitoring",
        "occurred_at": "2026-11-22T16:10:00",
        "detected_at": "2026-11-22T16:12:00",
        "responded_at": "2026-11-22T16:15:30",
        "affected_users": "0",
        "affected_transactions": "12000",
        "funds_loss": "0.00",
        "cause_category": "unknown",
        "summary": "",
        "cause": "",
        "handling": "",
        "availability_impact": "",
    }
    response = engineer.post(f"/incidents/{burning.pk}/edit/", data)

    assert response.status_code == 302
    burning.refresh_from_db()
    assert burning.affected_transactions == 12000
    # 12,000 failed transactions >= 10,000 -> B
    assert burning.level == "B"
    changes = list(
        burning.timeline.filter(kind=TimelineEntry.Kind.CHANGE).values_list("field", "old_value", "new_value")
    )
    assert changes == [("affected_transactions", "0", "12000")]


def test_a_stale_edit_is_refused_and_changes_nothing(engineer, burning):
    services.incident_update(
        incident_id=burning.pk, by=None, expected_version=burning.version, changes={"title": "Renamed meanwhile"}
    )
    data = {
        "expected_version": burning.version,  # the version read before the change above
        "title": "My title",
        "systems": [s.pk for s in burning.systems.all()],
        "team": burning.team_id,
        "detection_source": "monitoring",
        "occurred_at": "2026-11-22T16:10:00",
        "detected_at": "2026-11-22T16:12:00",
        "responded_at": "2026-11-22T16:15:30",
        "affected_users": "0",
        "affected_transactions": "0",
        "funds_loss": "0",
        "cause_category": "unknown",
    }

    response = engineer.post(f"/incidents/{burning.pk}/edit/", data)

    assert response.status_code == 409
    assert "Someone else changed this incident while you were editing (now version 2)." in text_of(
        response.content.decode()
    )
    burning.refresh_from_db()
    assert burning.title == "Renamed meanwhile"


# --- the list -----------------------------------------------------------------------------------------


@pytest.fixture
def listed(engineer, world) -> dict:
    def make(title, system, occurred, **extra):
        return IncidentFactory(by=engineer.user, title=title, systems=[system], occurred_at=occurred, **extra)

    return {
        "old": make(
            "Portal typo",
            world["portal"],
            datetime(2026, 10, 31, 17, 0, tzinfo=UTC),
            recovered_at=T0 - timedelta(days=20),
        ),
        "fund": make(
            "Payout to wrong account",
            world["payout"],
            datetime(2026, 11, 20, 2, 0, tzinfo=UTC),
            funds_loss=Decimal(200000),
            recovered_at=datetime(2026, 11, 20, 3, 0, tzinfo=UTC),
        ),
        "now": make("Cashier down", world["cashier"], T0 - timedelta(minutes=15)),
    }


def listed_titles(response) -> list[str]:
    return [incident.title for incident in response.context["page"].object_list]


def test_the_list_filters_searches_and_sorts_like_the_api(engineer, listed):
    assert listed_titles(engineer.get("/incidents/")) == ["Cashier down", "Payout to wrong account", "Portal typo"]
    assert listed_titles(engineer.get("/incidents/?ordering=occurred_at")) == [
        "Portal typo",
        "Payout to wrong account",
        "Cashier down",
    ]
    # funds loss 200,000 >= 100,000 is A
    assert listed_titles(engineer.get("/incidents/?level=A")) == ["Payout to wrong account"]
    assert listed_titles(engineer.get("/incidents/?status=open")) == ["Cashier down"]
    assert listed_titles(engineer.get("/incidents/?q=wrong+account")) == ["Payout to wrong account"]
    assert listed_titles(engineer.get("/incidents/?system=portal")) == ["Portal typo"]
    # 2026-10-31T17:00Z is 01:00 on Nov 1 in Asia/Shanghai: November
    assert len(listed_titles(engineer.get("/incidents/?period=2026-11"))) == 3
    assert listed_titles(engineer.get("/incidents/?period=2026-10")) == []


def test_a_bad_filter_is_explained_next_to_it(engineer, listed):
    response = engineer.get("/incidents/?period=November")

    assert response.status_code == 400
    assert field_errors(response, "id_period") == [
        "Not a period: 'November'. Use 2026-11, 2026-W36, 2026-Q4, 2026 or 2026-11-01..2026-11-15."
    ]


def test_the_list_pages_in_a_constant_number_of_queries(engineer, world):
    for n in range(3):
        IncidentFactory(title=f"first {n}", systems=[world["cashier"], world["payout"]])
    with CaptureQueriesContext(connection) as few:
        assert engineer.get("/incidents/").status_code == 200
    for n in range(12):
        IncidentFactory(title=f"more {n}", systems=[world["cashier"], world["portal"]])
    with CaptureQueriesContext(connection) as many:
        response = engineer.get("/incidents/")
    assert response.status_code == 200
    assert len(response.context["page"].object_list) == 15
    assert len(many) == len(few)


def test_the_list_pages_by_fifty(engineer, world):
    for n in range(51):
        IncidentFactory(title=f"incident {n:02d}", systems=[world["portal"]], occurred_at=T0 - timedelta(hours=n + 1))

    first, second = engineer.get("/incidents/"), engineer.get("/incidents/?page=2")

    assert len(first.context["page"].object_list) == 50
    assert listed_titles(second) == ["incident 50"]
    assert "Page 2 of 2" in text_of(second.content.decode())
