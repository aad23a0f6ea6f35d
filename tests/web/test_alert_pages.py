"""The alerts inbox (web/views/alerts.py): the live list with each alert's countdown to the 5-minute
window, follow-up of one alert or many, an incident from alerts, and this month's follow-up rate.

Alerts arrive through the real generic webhook at fixed times, so every delay is computed by hand."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from incidents.models import DetectionSource, Incident
from stability.models import AlertActivity, AlertOccurrence
from stability.services import integration_create
from tests.stability.test_follow_up import fire, generic_alert
from tests.web.conftest import field_errors, text_of

T0 = datetime(2026, 11, 2, 8, 1, tzinfo=UTC)  # when the first alerts reach the tracker
INBOX = "/alerts/"
FOLLOW_UP = "/alerts/follow-up/"


@pytest.fixture
def token(world) -> str:
    _hook, secret = integration_create(kind="generic", name="g")
    return secret


@pytest.fixture
def alerts(token) -> dict:
    """One alert nobody followed up (received at T0), two received 4 minutes later."""
    (missed,) = fire(token, [generic_alert("CashierLatency")], at=T0)
    fresh = fire(token, [generic_alert("PayoutErrors", system="payout"), generic_alert("DiskFull")], at=T0 + 4 * MINUTE)
    return {"missed": missed, "payout": fresh[0], "disk": fresh[1]}


MINUTE = timedelta(minutes=1)


def at(moment):
    return time_machine.travel(moment, tick=False)


def test_the_inbox_counts_down_each_waiting_alert(engineer, alerts):
    with at(T0 + 5 * MINUTE + timedelta(seconds=30)):
        response = engineer.get(INBOX + "?state=all")

    assert response.status_code == 200
    html = response.content.decode()
    # received 5:30 ago: 30 s late; received 1:30 ago: 3:30 left
    assert f'<tr id="alert-{alerts["missed"]}"' in html
    assert 'data-remaining="-30"' in html
    # two groups of one alert each (PayoutErrors on payout, DiskFull on cashier): the group and its alert
    assert html.count('data-remaining="210"') == 4
    text = text_of(html)
    assert "late by 0:30" in text and "3:30 left" in text
    # the missed one is decided (0 of 1 in time), the two fresh ones still pending
    assert "0.0 % 0 of 1 in time; 2 still within their window" in text


def test_acknowledging_within_the_window_moves_the_rate(engineer, alerts):
    with at(T0 + 6 * MINUTE):
        response = engineer.post(
            FOLLOW_UP, {"ids": [alerts["payout"]], "action": "acknowledge"}, HTTP_HX_REQUEST="true"
        )

    assert response.status_code == 200
    payout = AlertOccurrence.objects.get(pk=alerts["payout"])
    # received T0+4, acknowledged T0+6: 120 s <= 300 s
    assert payout.followed_up_at - payout.received_at == timedelta(minutes=2)
    assert payout.followed_up_by == engineer.user
    html = response.content.decode()
    assert "<html" not in html
    assert 'id="follow-up-rate"' in html and 'hx-swap-oob="true"' in html
    # in time: payout; missed: CashierLatency; DiskFull still pending -> 1 / 2
    assert "50.0 % 1 of 2 in time; 1 still within their window" in text_of(html)
    # the waiting list no longer shows it
    assert f'id="alert-{alerts["payout"]}"' not in html
    assert f'id="alert-{alerts["disk"]}"' in html


def test_many_alerts_at_once_and_a_comment(engineer, alerts):
    ids = [alerts["payout"], alerts["disk"]]
    with at(T0 + 5 * MINUTE):
        response = engineer.post(FOLLOW_UP, {"ids": ids, "action": "comment", "text": "looking at it"})

    assert response.status_code == 302
    assert response["Location"] == INBOX
    assert set(AlertActivity.objects.values_list("occurrence_id", "kind", "text")) == {
        (alerts["payout"], "commented", "looking at it"),
        (alerts["disk"], "commented", "looking at it"),
    }


def test_a_comment_needs_its_text_next_to_the_field(engineer, alerts):
    response = engineer.post(FOLLOW_UP, {"ids": [alerts["disk"]], "action": "comment", "text": ""})

    assert response.status_code == 400
    assert field_errors(response, "id_text") == ["Write the comment."]
    assert not AlertActivity.objects.exists()


def test_nothing_chosen_is_explained(engineer, alerts):
    response = engineer.post(FOLLOW_UP, {"action": "acknowledge"}, HTTP_HX_REQUEST="true")

    assert response.status_code == 400
    assert "Choose at least one alert." in text_of(response.content.decode())
    assert not AlertOccurrence.objects.filter(followed_up_at__isnull=False).exists()


def test_an_incident_from_the_selected_alerts(engineer, alerts, world):
    with at(T0 + 6 * MINUTE):
        response = engineer.post(
            FOLLOW_UP,
            {"ids": [alerts["missed"], alerts["payout"]], "action": "create_incident"},
            HTTP_HX_REQUEST="true",
        )

    incident = Incident.objects.get()
    assert response.status_code == 200
    assert response["HX-Redirect"] == f"/incidents/{incident.pk}/"
    assert incident.detection_source == DetectionSource.MONITORING
    assert {s.code for s in incident.systems.all()} == {"cashier", "payout"}
    # detected when the first alert reached people
    assert incident.detected_at == T0
    assert set(AlertOccurrence.objects.filter(incident=incident).values_list("pk", flat=True)) == {
        alerts["missed"],
        alerts["payout"],
    }
    page = text_of(engineer.get(f"/incidents/{incident.pk}/").content.decode())
    assert "Linked alerts 2" in page


def test_the_refresh_is_the_live_part_only(engineer, alerts):
    with at(T0 + 5 * MINUTE):
        response = engineer.get(INBOX + "?state=all", HTTP_HX_REQUEST="true")

    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="alerts-live"')
    assert 'hx-trigger="every 10s"' in html  # paused while choosing by web/static/web/app.js
    assert html.count('type="checkbox" name="ids"') == 3


def test_the_inbox_lists_in_a_constant_number_of_queries(engineer, token, world):
    fire(token, [generic_alert(f"A{n}") for n in range(2)], at=T0)
    with at(T0 + MINUTE):
        engineer.get(INBOX + "?state=all")  # remembers the filters: the next ones read them only
    with CaptureQueriesContext(connection) as few, at(T0 + MINUTE):
        engineer.get(INBOX + "?state=all")
    fire(token, [generic_alert(f"B{n}", system="payout") for n in range(10)], at=T0)
    with CaptureQueriesContext(connection) as many, at(T0 + MINUTE):
        response = engineer.get(INBOX + "?state=all")
    assert sum(len(group.alerts) for group in response.context["groups"]) == 12
    assert len(many) == len(few)


def test_managers_see_the_inbox_but_do_not_act(manager, alerts):
    response = manager.get(INBOX)
    assert response.status_code == 200
    assert 'name="ids"' not in response.content.decode()
    assert manager.post(FOLLOW_UP, {"ids": [alerts["disk"]], "action": "acknowledge"}).status_code == 403
    assert not AlertOccurrence.objects.filter(followed_up_at__isnull=False).exists()


def test_an_alerts_own_page_and_its_follow_up(engineer, alerts, world):
    from tests.factories import IncidentFactory

    incident = IncidentFactory(title="Payout burning", systems=[world["payout"]], occurred_at=T0)
    url = f"/alerts/{alerts['payout']}/"
    with at(T0 + 5 * MINUTE):
        page = engineer.get(url)
    assert page.status_code == 200
    text = text_of(page.content.decode())
    # received T0+4 min, now T0+5 min: 4:00 left
    assert "PayoutErrors 4:00 left" in text
    assert "Nobody has acted on it yet." in text

    with at(T0 + 7 * MINUTE):
        linked = engineer.post(
            FOLLOW_UP, {"ids": [alerts["payout"]], "action": "link", "incident": incident.pk, "from": "alert"}
        )
    assert linked.status_code == 302
    assert linked["Location"] == url
    alert = AlertOccurrence.objects.get(pk=alerts["payout"])
    assert alert.incident == incident
    # linked 3 minutes after it arrived: a follow-up, in time
    assert alert.followed_up_at - alert.received_at == 3 * MINUTE
    history = text_of(engineer.get(url).content.decode())
    assert f"Linked to an incident #{incident.pk}" in history

    refused = engineer.post(FOLLOW_UP, {"ids": [alerts["payout"]], "action": "comment", "from": "alert"})
    assert refused.status_code == 400
    assert "Write the comment." in text_of(refused.content.decode())
