"""The published reports' API: POST /api/v1/reports/published/ publishes, GET answers the frozen report
with what has been revised since, the list filters by period and team; who may do what."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from stability import published as publishing
from stability.models import PublishedReport
from tests.stability.test_published import (
    EDITED,
    OPENED,
    PUBLISHED,
    _must_not_build,
    at,
    make_november,
    recover_at,
    utc,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def november(db):
    return make_november()


URL = "/api/v1/reports/published/"
EXTRA = {"id", "revision", "reason", "published_at", "published_by", "revised", "revised_checked_at", "revisions"}


def publish_as(client, body: dict, moment=PUBLISHED):
    with at(moment):
        return client.post(URL, body, format="json")


def get_at(client, url: str, moment=OPENED):
    with at(moment):
        return client.get(url)


def test_a_manager_publishes_and_reads_the_frozen_report(manager_client, november):
    answer = publish_as(manager_client, {"period": "2026-11", "team": "payments"})
    assert answer.status_code == 201, answer.json()
    body = answer.json()
    published = PublishedReport.objects.get(pk=body["id"])
    assert (body["revision"], body["published_by"], body["reason"]) == (1, "manager", "manual")
    assert (published.team.slug, published.period) == ("payments", "2026-11")
    opened = get_at(manager_client, f"{URL}{body['id']}/").json()
    # The frozen report is the snapshot exactly, plus what the publication is.
    assert {key: value for key, value in opened.items() if key not in EXTRA} == published.snapshot
    assert opened["revised"] == []
    assert opened["revisions"] == [{"id": body["id"], "revision": 1, "published_at": PUBLISHED.isoformat()}]
    assert opened["headline"]["mttr_seconds"] == 2400


def test_an_edit_of_the_period_is_revised_with_the_published_and_current_values(manager_client, november):
    published_id = publish_as(manager_client, {"period": "2026-11", "team": "payments"}).json()["id"]
    recover_at(november["second"], utc(2026, 11, 10, 2, 40))
    revised = get_at(manager_client, f"{URL}{published_id}/").json()["revised"]
    mttr = next(change for change in revised if change["measure"] == "mttr_seconds")
    # MTTR (3,600 + 1,200) / 2 = 2,400 s when published; B now 40 min: (3,600 + 2,400) / 2 = 3,000 s.
    assert mttr == {
        "measure": "mttr_seconds",
        "figure": "MTTR",
        "subject": "",
        "published": 2400,
        "current": 3000,
        "records": {"incidents": [november["second"].pk]},
    }
    # The published figures themselves stay as sent.
    assert get_at(manager_client, f"{URL}{published_id}/").json()["headline"]["mttr_seconds"] == 2400


def test_the_changes_read_in_chinese(manager_client, november):
    published_id = publish_as(manager_client, {"period": "2026-11", "team": "payments"}).json()["id"]
    recover_at(november["second"], utc(2026, 11, 10, 2, 40))
    with at(OPENED):
        revised = manager_client.get(f"{URL}{published_id}/", HTTP_ACCEPT_LANGUAGE="zh-hans").json()["revised"]
    assert "可用性 · 收银台" in [change["figure"] for change in revised]


def test_a_new_revision_and_the_old_one_still_readable(manager_client, november):
    first = publish_as(manager_client, {"period": "2026-11", "team": "payments"}).json()["id"]
    recover_at(november["second"], utc(2026, 11, 10, 2, 40))
    second = publish_as(manager_client, {"period": "2026-11", "team": "payments"}, EDITED + timedelta(minutes=5))
    assert (second.status_code, second.json()["revision"]) == (201, 2)
    assert second.json()["headline"]["mttr_seconds"] == 3000
    old = get_at(manager_client, f"{URL}{first}/").json()
    assert (old["revision"], old["headline"]["mttr_seconds"]) == (1, 2400)
    assert [r["revision"] for r in old["revisions"]] == [1, 2]


def test_all_teams_and_weeks_are_published(admin_client_api, november):
    everyone = publish_as(admin_client_api, {"period": "2026-11"})
    assert everyone.status_code == 201
    assert everyone.json()["scope"]["team"] is None
    week = publish_as(admin_client_api, {"period": "2026-W48", "team": None})
    assert week.status_code == 201
    assert PublishedReport.objects.get(pk=week.json()["id"]).period_kind == "week"
    assert week.json()["period"]["label"] == "2026-W48"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"period": "2026-13"}, "period"),
        ({"period": "November"}, "period"),
        ({"period": ""}, "period"),
        ({}, "period"),
        ({"period": "2027-01"}, "period"),  # not begun on 2026-12-10
        ({"period": "2026-11", "team": "nobody"}, "team"),
        ({"period": "2026-11", "team": 5}, "team"),
        ({"period": "2026-11", "system": "cashier"}, "system"),
    ],
)
def test_bad_input_is_a_400_naming_the_field_and_publishes_nothing(manager_client, november, body, field):
    answer = publish_as(manager_client, body)
    assert answer.status_code == 400
    assert field in answer.json()
    assert not PublishedReport.objects.exists()


def test_engineers_may_not_publish(engineer_client, november):
    november["payments"].members.add(engineer_client.user)
    answer = publish_as(engineer_client, {"period": "2026-11", "team": "payments"})
    assert answer.status_code == 403
    assert not PublishedReport.objects.exists()


def test_anonymous_gets_nothing(anonymous_client, manager_client, november):
    published_id = publish_as(manager_client, {"period": "2026-11"}).json()["id"]
    assert publish_as(anonymous_client, {"period": "2026-11"}).status_code == 401
    assert anonymous_client.get(f"{URL}{published_id}/").status_code == 401
    assert anonymous_client.get(URL).status_code == 401


def test_engineers_read_their_teams_published_reports_only(engineer_client, manager_client, november):
    november["payments"].members.add(engineer_client.user)
    own = publish_as(manager_client, {"period": "2026-11", "team": "payments"}).json()["id"]
    other = publish_as(manager_client, {"period": "2026-11", "team": "accounts"}).json()["id"]
    everyone = publish_as(manager_client, {"period": "2026-11"}).json()["id"]
    assert get_at(engineer_client, f"{URL}{own}/").status_code == 200
    assert get_at(engineer_client, f"{URL}{other}/").status_code == 403
    assert get_at(engineer_client, f"{URL}{everyone}/").status_code == 403
    listed = get_at(engineer_client, URL).json()
    assert [row["id"] for row in listed["results"]] == [own]
    assert get_at(engineer_client, f"{URL}?team=accounts").status_code == 403
    assert [row["id"] for row in get_at(manager_client, URL).json()["results"]] == [everyone, other, own]


def test_the_list_filters_and_pages_like_the_other_lists(manager_client, november):
    ids = [
        publish_as(manager_client, body, PUBLISHED + timedelta(minutes=n)).json()["id"]
        for n, body in enumerate(
            [
                {"period": "2026-11", "team": "payments"},
                {"period": "2026-10", "team": "payments"},
                {"period": "2026-11"},
                {"period": "2026-W48", "team": "payments"},
            ]
        )
    ]
    listed = get_at(manager_client, f"{URL}?period=2026-11").json()
    assert listed["count"] == 2
    assert [row["id"] for row in listed["results"]] == [ids[2], ids[0]]
    assert [row["id"] for row in get_at(manager_client, f"{URL}?period=2026-11&team=payments").json()["results"]] == [
        ids[0]
    ]
    assert [row["id"] for row in get_at(manager_client, f"{URL}?team=all").json()["results"]] == [ids[2]]
    assert [row["id"] for row in get_at(manager_client, f"{URL}?period=2026-W48").json()["results"]] == [ids[3]]
    paged = get_at(manager_client, f"{URL}?page_size=3").json()
    assert (paged["count"], len(paged["results"]), paged["next"] is not None) == (4, 3, True)
    row = paged["results"][0]
    assert set(row) == {
        "id",
        "period",
        "period_kind",
        "team",
        "revision",
        "reason",
        "published_at",
        "published_by",
        "revised",
        "revised_checked_at",
    }
    assert get_at(manager_client, f"{URL}?period=2026-13").status_code == 400
    assert "period" in get_at(manager_client, f"{URL}?period=2026-13").json()
    assert "team" in get_at(manager_client, f"{URL}?team=nobody").json()


def test_an_unknown_report_is_a_404(manager_client, november):
    assert get_at(manager_client, f"{URL}999999/").status_code == 404


def test_opening_builds_no_report_while_nothing_changed_in_the_same_queries_busy_or_empty(
    manager_client, november, monkeypatch
):
    busy = publish_as(manager_client, {"period": "2026-11", "team": "payments"}).json()["id"]
    empty = publish_as(manager_client, {"period": "2026-06", "team": "payments"}).json()["id"]
    monkeypatch.setattr(publishing, "build_report", _must_not_build)
    # Signed in as the token's person without the token's own bookkeeping (its last use, once a minute).
    manager_client.force_authenticate(manager_client.user)
    counts = []
    for published_id in (busy, empty, busy):
        with CaptureQueriesContext(connection) as queries:
            assert get_at(manager_client, f"{URL}{published_id}/").status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1] == counts[2]
