"""The action item API: /api/v1/action-items/ (list, filters, create, edit, steps, my items, bulk),
the incident's items, and /api/v1/metrics/closed-loop/.

The clock is frozen at NOW = 2026-11-20 10:00 in Asia/Shanghai (02:00 UTC).
"""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from incidents.models import ActionItem, Incident, TimelineEntry
from tests.factories import ActionItemFactory, IncidentFactory, SystemFactory, TeamFactory, UserFactory, write_review

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
ITEMS = "/api/v1/action-items/"
METRICS = "/api/v1/metrics/closed-loop/"


def detail(item_id: int) -> str:
    return f"{ITEMS}{item_id}/"


def iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def payments():
    return TeamFactory(slug="payments", name="Payments")


@pytest.fixture
def incident(payments):
    occurred = NOW - timedelta(days=3)
    return IncidentFactory(
        title="Fee bill missing 236 rows",
        systems=[SystemFactory(code="bill-service", tier="P1", team=payments)],
        occurred_at=occurred,
        recovered_at=occurred + timedelta(hours=2),
    )


@pytest.fixture
def alice():
    return UserFactory(username="alice")


def create(client, incident, **values):
    body = {
        "incident": incident.pk,
        "title": "Add alert on fee bill rows",
        "owner": "alice",
        "due_at": "2026-12-01T18:00:00+08:00",
    }
    return client.post(ITEMS, {**body, **values}, format="json")


def post_step(client, item_id, action, **extra):
    return client.post(detail(item_id) + "transitions/", {"action": action, **extra}, format="json")


# -- create, read, edit -------------------------------------------------------------------------


def test_create_and_read(engineer_client, incident, alice):
    response = create(engineer_client, incident, verifier="engineer", kind="monitoring", priority="high")
    assert response.status_code == 201, response.data
    data = response.data
    assert response["ETag"] == '"1"'
    assert {k: data[k] for k in ("incident", "incident_title", "team", "owner", "verifier", "status", "version")} == {
        "incident": incident.pk,
        "incident_title": "Fee bill missing 236 rows",
        "team": "payments",
        "owner": "alice",
        "verifier": "engineer",
        "status": "open",
        "version": 1,
    }
    assert (data["due_at"], data["is_overdue"], data["days_overdue"]) == ("2026-12-01T18:00:00+08:00", False, None)
    assert (data["kind"], data["priority"], data["created_by"]) == ("monitoring", "high", "engineer")
    assert engineer_client.get(detail(data["id"])).data == data


def test_create_refusals_name_the_field(engineer_client, incident, alice):
    assert set(create(engineer_client, incident, owner="nobody").data) == {"owner"}
    assert set(create(engineer_client, incident, verifier="alice").data) == {"verifier"}
    assert set(create(engineer_client, incident, kind="wish").data) == {"kind"}
    assert set(create(engineer_client, incident, colour="red").data) == {"colour"}
    Incident.objects.filter(pk=incident.pk).update(status="closed", closed_at=NOW)
    closed = create(engineer_client, incident)
    assert closed.status_code == 400
    assert closed.data == {
        "incident": ["This incident is closed: its loop is done. Reopen the incident to add action items."]
    }
    assert not ActionItem.objects.exists()


def test_patch_needs_the_version_and_a_stale_one_is_409(engineer_client, incident, alice):
    item_id = create(engineer_client, incident).data["id"]
    assert set(engineer_client.patch(detail(item_id), {"title": "x"}, format="json").data) == {"version"}

    ok = engineer_client.patch(detail(item_id), {"title": "Alert on fee rows", "version": 1}, format="json")
    assert ok.status_code == 200, ok.data
    assert (ok.data["title"], ok.data["version"], ok["ETag"]) == ("Alert on fee rows", 2, '"2"')

    by_header = engineer_client.patch(detail(item_id), {"priority": "low"}, format="json", HTTP_IF_MATCH='"2"')
    assert (by_header.status_code, by_header.data["version"]) == (200, 3)

    stale = engineer_client.patch(detail(item_id), {"title": "lost", "version": 2}, format="json")
    assert stale.status_code == 409
    assert stale.data["current_version"] == 3
    assert ActionItem.objects.get().title == "Alert on fee rows"
    moved = engineer_client.patch(detail(item_id), {"incident": incident.pk, "version": 3}, format="json")
    assert set(moved.data) == {"incident"}  # an item stays with its incident


# -- steps and who may take them ----------------------------------------------------------------


def test_engineers_take_steps_managers_approve(engineer_client, manager_client, incident, alice):
    item_id = create(engineer_client, incident).data["id"]

    started = post_step(engineer_client, item_id, "start")
    assert (started.status_code, started.data["status"], started.data["started_at"]) == (
        200,
        "in_progress",
        "2026-11-20T10:00:00+08:00",
    )
    # The engineer cannot waive; a manager can, with a reason; a manager does not start or complete.
    refused = post_step(engineer_client, item_id, "waive", reason="covered by the bill rework")
    assert (refused.status_code, str(refused.data["detail"])) == (
        403,
        "Only a manager or an administrator can approve a waiver.",
    )
    assert set(post_step(manager_client, item_id, "waive").data) == {"reason"}
    assert post_step(manager_client, item_id, "complete").status_code == 403
    waived = post_step(manager_client, item_id, "waive", reason="covered by the bill rework")
    assert waived.status_code == 200, waived.data
    assert (waived.data["status"], waived.data["waived_by"], waived.data["waive_reason"]) == (
        "waived",
        "manager",
        "covered by the bill rework",
    )
    wrong = post_step(engineer_client, item_id, "start")
    assert (wrong.status_code, wrong.data) == (400, {"action": ["Cannot start an action item whose status is Waived."]})
    assert post_step(engineer_client, item_id, "explode").status_code == 400
    assert post_step(engineer_client, item_id, "reopen", version=1).status_code == 409
    assert post_step(engineer_client, item_id, "reopen", version=3).data["status"] == "open"


def test_owner_does_not_verify_their_own_item(engineer_client, manager_client, incident):
    item_id = create(engineer_client, incident, owner="engineer").data["id"]
    post_step(engineer_client, item_id, "complete")
    assert post_step(engineer_client, item_id, "verify").status_code == 403
    verified = post_step(manager_client, item_id, "verify")
    assert (verified.status_code, verified.data["verified_by"]) == (200, "manager")


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("get", ITEMS, None),
        ("post", ITEMS, {}),
        ("get", METRICS, None),
        ("post", ITEMS + "bulk/", {"ids": [1], "action": "start"}),
    ],
)
def test_anonymous_requests_are_401(anonymous_client, method, url, body):
    response = (
        getattr(anonymous_client, method)(url, body, format="json") if body is not None else anonymous_client.get(url)
    )
    assert response.status_code == 401


def test_roles(engineer_client, manager_client, admin_client_api, incident):
    assert create(manager_client, incident, owner="manager").status_code == 403
    assert create(admin_client_api, incident, owner="admin").status_code == 201
    assert manager_client.get(ITEMS).status_code == 200
    assert engineer_client.get(METRICS + "?period=2026-11").status_code == 403
    assert manager_client.get(METRICS + "?period=2026-11").status_code == 200


# -- lists, filters, my items -------------------------------------------------------------------


@pytest.fixture
def listed(engineer_client, incident, alice):
    """Five items on two teams; `engineer` owns two. Due dates relative to NOW (Nov 20, 10:00 local)."""
    accounts = TeamFactory(slug="accounts", name="Accounts")
    other = IncidentFactory(systems=[SystemFactory(code="ledger", team=accounts)], occurred_at=NOW - timedelta(days=1))
    engineer = engineer_client.user
    return {
        "overdue": ActionItemFactory(incident=incident, owner=engineer, due_at=NOW - timedelta(days=2, hours=1)),
        "started": ActionItemFactory(
            incident=incident, owner=alice, due_at=NOW - timedelta(hours=1), status="in_progress", kind="drill"
        ),
        "done": ActionItemFactory(
            incident=incident,
            owner=engineer,
            due_at=NOW - timedelta(days=1),
            status="done",
            completed_at=NOW - timedelta(days=2),
            priority="high",
        ),
        "future": ActionItemFactory(incident=other, owner=alice, due_at=NOW + timedelta(days=10)),
        "waived": ActionItemFactory(
            incident=other, owner=alice, due_at=NOW - timedelta(days=5), status="waived", waive_reason="dup"
        ),
    }


def ids(response) -> list[int]:
    assert response.status_code == 200, response.data
    return [row["id"] for row in response.data["results"]]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["waived", "overdue", "done", "started", "future"]),  # by due date
        ("?owner=me", ["overdue", "done"]),
        ("?owner=alice", ["waived", "started", "future"]),
        ("?team=accounts", ["waived", "future"]),
        ("?status=open&status=in_progress", ["overdue", "started", "future"]),
        ("?overdue=true", ["overdue", "started"]),  # waived and done are not overdue
        ("?overdue=false", ["waived", "done", "future"]),
        ("?due_after=2026-11-19T09:00:00%2B08:00&due_before=2026-11-20T10:00:00%2B08:00", ["done", "started"]),
        ("?kind=drill", ["started"]),
        ("?priority=high", ["done"]),
        ("?ordering=-due_at", ["future", "started", "done", "overdue", "waived"]),
    ],
)
def test_filters(engineer_client, listed, query, expected):
    assert ids(engineer_client.get(ITEMS + query)) == [listed[name].pk for name in expected]


def test_filters_by_owner_id_and_incident_and_refuses_bad_values(engineer_client, listed, alice, incident):
    assert ids(engineer_client.get(f"{ITEMS}?owner={alice.pk}&incident={incident.pk}")) == [listed["started"].pk]
    assert engineer_client.get(ITEMS + "?overdue=maybe").status_code == 400
    assert set(engineer_client.get(ITEMS + "?owner=nobody").data) == {"owner"}
    assert engineer_client.get(ITEMS + "?status=lost").status_code == 400


def test_overdue_fields_in_the_list(engineer_client, listed):
    rows = {row["id"]: row for row in engineer_client.get(ITEMS).data["results"]}
    # Due 2 days 1 hour ago: 2 whole days; due an hour ago: 0 days, but overdue.
    assert (rows[listed["overdue"].pk]["is_overdue"], rows[listed["overdue"].pk]["days_overdue"]) == (True, 2)
    assert (rows[listed["started"].pk]["is_overdue"], rows[listed["started"].pk]["days_overdue"]) == (True, 0)
    assert (rows[listed["done"].pk]["is_overdue"], rows[listed["done"].pk]["days_overdue"]) == (False, None)


def test_my_items_open_ones_first(engineer_client, listed, incident):
    engineer = engineer_client.user
    later = ActionItemFactory(incident=incident, owner=engineer, due_at=NOW + timedelta(days=3), status="in_progress")
    verified = ActionItemFactory(
        incident=incident, owner=engineer, due_at=NOW - timedelta(days=9), status="verified", completed_at=NOW
    )
    mine = engineer_client.get(ITEMS + "mine/")
    # open and in progress by due date, then done, then verified / waived
    assert ids(mine) == [listed["overdue"].pk, later.pk, listed["done"].pk, verified.pk]
    assert ids(engineer_client.get(ITEMS + "mine/?status=done")) == [listed["done"].pk]
    assert ids(engineer_client.get(ITEMS + "mine/?ordering=due_at"))[0] == verified.pk


def test_list_queries_do_not_grow_with_the_page(engineer_client, listed, incident):
    engineer_client.get(ITEMS)  # the token's first use is recorded once; count the requests after it

    def queries(url: str, rows: int) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert len(ids(engineer_client.get(url))) == rows
        return len(captured)

    few, few_mine = queries(ITEMS, 5), queries(ITEMS + "mine/", 2)
    for n in range(12):
        ActionItemFactory(
            incident=incident, owner=engineer_client.user, verifier=UserFactory(), due_at=NOW + timedelta(days=n)
        )
    assert queries(ITEMS, 17) == few
    assert queries(ITEMS + "mine/", 14) == few_mine
    assert few <= 3  # the token, the count, the page with its incident, team and people joined


def test_the_incident_lists_its_items(engineer_client, listed, incident):
    response = engineer_client.get(f"/api/v1/incidents/{incident.pk}/action-items/")
    assert response.status_code == 200
    assert [row["id"] for row in response.data] == [listed[n].pk for n in ("overdue", "done", "started")]


def test_timeline_rows_name_the_item(engineer_client, incident, alice):
    item_id = create(engineer_client, incident).data["id"]
    timeline = engineer_client.get(f"/api/v1/incidents/{incident.pk}/timeline/").data
    assert timeline[-1]["kind"] == "action_item" and timeline[-1]["action_item"] == item_id


# -- bulk ---------------------------------------------------------------------------------------


def test_bulk_owner_and_due_date(engineer_client, listed, alice):
    chosen = [listed["overdue"].pk, listed["started"].pk]
    response = engineer_client.post(
        ITEMS + "bulk/", {"ids": chosen, "owner": "alice", "due_at": "2026-11-30T18:00:00+08:00"}, format="json"
    )
    assert response.status_code == 200, response.data
    assert [(row["id"], row["owner"], row["due_at"]) for row in response.data] == [
        (pk, "alice", "2026-11-30T18:00:00+08:00") for pk in sorted(chosen)
    ]


def test_bulk_is_all_or_nothing(engineer_client, listed):
    before = (TimelineEntry.objects.count(), list(ActionItem.objects.order_by("pk").values_list("status", "version")))
    chosen = [listed["overdue"].pk, listed["done"].pk, listed["future"].pk]
    response = engineer_client.post(ITEMS + "bulk/", {"ids": chosen, "action": "complete"}, format="json")
    assert response.status_code == 400
    assert response.data == {
        "ids": [f"#{listed['done'].pk}: Cannot mark done an action item whose status is Done, awaiting verification."]
    }
    after = (TimelineEntry.objects.count(), list(ActionItem.objects.order_by("pk").values_list("status", "version")))
    assert after == before


def test_bulk_for_managers_is_approval_only(manager_client, engineer_client, listed):
    chosen = [listed["overdue"].pk, listed["future"].pk]
    assert manager_client.post(ITEMS + "bulk/", {"ids": chosen, "owner": "manager"}, format="json").status_code == 403
    assert (
        engineer_client.post(
            ITEMS + "bulk/", {"ids": chosen, "action": "waive", "reason": "merged"}, format="json"
        ).status_code
        == 403
    )
    waived = manager_client.post(ITEMS + "bulk/", {"ids": chosen, "action": "waive", "reason": "merged"}, format="json")
    assert [row["status"] for row in waived.data] == ["waived", "waived"]
    assert set(engineer_client.post(ITEMS + "bulk/", {"ids": chosen}, format="json").data) == {"action"}


# -- closing over the API -------------------------------------------------------------------------


def test_closing_over_the_api_says_what_is_missing(engineer_client, manager_client, incident, alice):
    item_id = create(engineer_client, incident).data["id"]
    url = f"/api/v1/incidents/{incident.pk}/transitions/"
    refused = engineer_client.post(url, {"action": "close"}, format="json")
    assert refused.status_code == 400
    assert refused.data == {
        "action": [
            "Write the review's required sections before closing: Summary, Impact, Root cause (5 whys), Lessons.",
            f"1 action item is not verified or waived: #{item_id}",
        ]
    }
    write_review(incident)
    post_step(engineer_client, item_id, "complete")
    post_step(manager_client, item_id, "verify")
    closed = engineer_client.post(url, {"action": "close"}, format="json")
    assert (closed.status_code, closed.data["status"]) == (200, "closed")

    reopened = post_step(engineer_client, item_id, "reopen", reason="alert never fired")
    assert reopened.status_code == 200
    incident_now = engineer_client.get(f"/api/v1/incidents/{incident.pk}/").data
    assert (incident_now["status"], incident_now["closed_at"]) == ("recovered", None)


# -- the metrics endpoint -----------------------------------------------------------------------


def test_metrics_endpoint(manager_client, listed, payments):
    response = manager_client.get(METRICS + "?period=2026-11&team=payments")
    assert response.status_code == 200, response.data
    assert response.data["period"]["label"] == "2026-11"
    figures = response.data["metrics"]["on_time_completion"]
    # Payments, due in November: overdue (open, past due), started (in progress, past due), done (on time).
    # Numerator: done (completed the day before it was due) = 1; denominator: all three = 3.
    assert (figures["numerator"], figures["denominator"]) == (1, 3)
    overdue = response.data["metrics"]["overdue"]
    assert [(row["id"], row["owner"], row["days_overdue"]) for row in overdue["items"]] == [
        (listed["overdue"].pk, "engineer", 2),
        (listed["started"].pk, "alice", 0),
    ]
    assert manager_client.get(METRICS + "?period=2026-13").status_code == 400
    assert set(manager_client.get(METRICS + "?team=nobody").data) == {"team"}
    assert set(manager_client.get(METRICS + "?system=nothing").data) == {"system"}
    assert manager_client.get(METRICS + "?system=ledger").status_code == 200
