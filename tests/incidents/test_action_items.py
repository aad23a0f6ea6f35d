"""Closed-loop items (闭环项) through incidents.services: creation, edits, each step and each refusal,
the close rule, reopening the loop, bulk changes, and the admin.

The clock is frozen at NOW = 2026-11-20 10:00 in Asia/Shanghai (02:00 UTC).
"""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse
from django.utils import translation

from accounts.models import Role
from incidents import services
from incidents.models import ActionItem, Incident, TimelineEntry
from incidents.timeline import describe
from tests.factories import ActionItemFactory, IncidentFactory, SystemFactory, UserFactory, write_review

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
Step = services.ItemTransition


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def alice():
    return UserFactory(username="alice")


@pytest.fixture
def bob():
    return UserFactory(username="bob")


@pytest.fixture
def carol():
    return UserFactory(username="carol")


@pytest.fixture
def boss():
    return UserFactory(username="boss", role=Role.MANAGER)


@pytest.fixture
def root():
    return UserFactory(username="root", role=Role.ADMIN)


@pytest.fixture
def incident():
    """Recovered and resolved: ready to close once its loop is done."""
    occurred = NOW - timedelta(days=3)
    return IncidentFactory(
        systems=[SystemFactory(code="bill-service", tier="P1")],
        occurred_at=occurred,
        recovered_at=occurred + timedelta(hours=2),
        resolved_at=occurred + timedelta(days=1),
    )


def add(incident, owner, **values):
    values.setdefault("title", "Add alert on fee bill rows")
    values.setdefault("due_at", NOW + timedelta(days=7))
    return services.action_item_create(incident_id=incident.pk, by=owner, owner=owner, **values)


def step(item, by, action, **options):
    return services.action_item_transition(item_id=item.pk, by=by, action=action, **options)


def item_rows(item):
    return list(
        TimelineEntry.objects.filter(action_item=item)
        .order_by("id")
        .values_list("field", "old_value", "new_value", "author__username", "text")
    )


def item_said(item):
    """(field, old, new, author, the row as an English reader reads it)."""
    with translation.override("en"):
        return [
            (e.field, e.old_value, e.new_value, e.author.username if e.author else None, describe(e))
            for e in TimelineEntry.objects.filter(action_item=item).select_related("author").order_by("id")
        ]


def errors_of(caught) -> dict:
    return caught.value.message_dict


# -- creating -----------------------------------------------------------------------------------


def test_create_records_the_item_and_a_timeline_row(incident, alice, carol):
    # 2026-11-30T16:30Z is 2026-12-01 00:30 in Asia/Shanghai: the row names the local date.
    due = datetime(2026, 11, 30, 16, 30, 0, 123456, tzinfo=UTC)
    item = services.action_item_create(
        incident_id=incident.pk,
        by=alice,
        title="  Add alert on fee bill rows ",
        owner=alice,
        verifier=carol,
        due_at=due,
        kind=ActionItem.Kind.MONITORING,
        priority=ActionItem.Priority.HIGH,
        acceptance_criteria="Alert within 5 min of a row mismatch",
        ticket_url="https://jira.example.com/browse/BILL-1024",
    )
    item.refresh_from_db()
    assert (item.title, item.status, item.version, item.created_by, item.verifier) == (
        "Add alert on fee bill rows",
        "open",
        1,
        alice,
        carol,
    )
    assert item.due_at == datetime(2026, 11, 30, 16, 30, tzinfo=UTC)  # whole seconds
    entry = TimelineEntry.objects.get(action_item=item)
    assert (entry.incident, entry.kind, entry.author, entry.at) == (incident, "action_item", alice, NOW)
    # Stored as values, said in the reader's language when read.
    assert entry.text == ""
    assert entry.data == {
        "event": "item_added",
        "item": item.pk,
        "title": "Add alert on fee bill rows",
        "owner": "alice",
        "due": "2026-12-01",
    }
    with translation.override("en"):
        assert (
            describe(entry) == f'Action item #{item.pk} "Add alert on fee bill rows" added, owner alice, due 2026-12-01'
        )
    with translation.override("zh-hans"):
        assert describe(entry) == f"已添加闭环项 #{item.pk}“Add alert on fee bill rows”，负责人 alice，截止 2026-12-01"


def test_a_due_date_in_the_past_is_accepted_for_items_recorded_after_the_fact(incident, alice):
    item = add(incident, alice, due_at=NOW - timedelta(days=30))
    assert item.due_at == NOW - timedelta(days=30)


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"title": "   "}, "title"),
        ({"kind": "wish"}, "kind"),
        ({"priority": "urgent"}, "priority"),
        ({"ticket_url": "not a link"}, "ticket_url"),
        ({"due_at": datetime(1926, 11, 1, tzinfo=UTC)}, "due_at"),
    ],
)
def test_create_refuses_bad_values_naming_the_field(incident, alice, values, field):
    with pytest.raises(ValidationError) as caught:
        add(incident, alice, **values)
    assert list(errors_of(caught)) == [field]
    assert not ActionItem.objects.exists()


def test_owner_must_be_active_and_cannot_be_the_verifier(incident, alice, bob):
    bob.is_active = False
    bob.save()
    with pytest.raises(ValidationError) as caught:
        services.action_item_create(incident_id=incident.pk, by=alice, title="x", owner=bob, due_at=NOW)
    assert errors_of(caught) == {"owner": ["The owner must be an active user."]}
    with pytest.raises(ValidationError) as caught:
        add(incident, alice, verifier=alice)
    assert list(errors_of(caught)) == ["verifier"]
    assert not ActionItem.objects.exists() and not TimelineEntry.objects.filter(kind="action_item").exists()


def test_an_item_cannot_be_added_to_a_closed_incident(incident, alice):
    Incident.objects.filter(pk=incident.pk).update(status="closed", closed_at=NOW)
    with pytest.raises(ValidationError) as caught:
        add(incident, alice)
    assert list(errors_of(caught)) == ["incident"]
    assert not ActionItem.objects.exists()


# -- editing ------------------------------------------------------------------------------------


def test_update_writes_a_row_per_real_change_and_raises_the_version(incident, alice, bob):
    item = add(incident, alice)
    new_due = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    item = services.action_item_update(
        item_id=item.pk,
        by=bob,
        expected_version=1,
        title="Add alert on fee bill rows",  # unchanged
        owner=bob,
        due_at=new_due,
        priority=ActionItem.Priority.HIGH,
    )
    assert (item.owner, item.due_at, item.priority, item.version) == (bob, new_due, "high", 2)
    assert item_rows(item)[1:] == [
        ("owner", "alice", "bob", "bob", ""),
        ("due_at", "2026-11-27T02:00:00+00:00", "2026-12-01T10:00:00+00:00", "bob", ""),
        ("priority", "medium", "high", "bob", ""),
    ]


def test_an_update_that_changes_nothing_writes_nothing(incident, alice):
    item = add(incident, alice)
    before = TimelineEntry.objects.count()
    item = services.action_item_update(item_id=item.pk, by=alice, title=item.title, owner=alice, verifier=None)
    item.refresh_from_db()
    assert item.version == 1
    assert TimelineEntry.objects.count() == before


def test_a_stale_version_is_refused_and_changes_nothing(incident, alice):
    item = add(incident, alice)
    services.action_item_update(item_id=item.pk, by=alice, expected_version=1, title="first")
    with pytest.raises(services.StaleVersionError) as caught:
        services.action_item_update(item_id=item.pk, by=alice, expected_version=1, title="second")
    assert caught.value.current_version == 2
    item.refresh_from_db()
    assert (item.title, item.version) == ("first", 2)


def test_unknown_fields_are_a_programming_error(incident, alice):
    item = add(incident, alice)
    with pytest.raises(TypeError):
        services.action_item_update(item_id=item.pk, by=alice, status="verified")


def test_the_due_date_of_a_completed_item_is_kept(incident, alice):
    item = add(incident, alice)
    step(item, alice, Step.COMPLETE)
    with pytest.raises(ValidationError) as caught:
        services.action_item_update(item_id=item.pk, by=alice, due_at=NOW + timedelta(days=30))
    assert list(errors_of(caught)) == ["due_at"]


# -- the life cycle -----------------------------------------------------------------------------


def test_each_step_sets_its_timestamps_and_writes_a_row(incident, alice, carol, frozen):
    item = add(incident, alice, verifier=carol)
    frozen.shift(timedelta(hours=1))
    item = step(item, alice, Step.START)
    assert (item.status, item.started_at, item.version) == ("in_progress", NOW + timedelta(hours=1), 2)

    frozen.shift(timedelta(days=2))
    item = step(item, alice, Step.COMPLETE, expected_version=2)
    assert (item.status, item.completed_at) == ("done", NOW + timedelta(days=2, hours=1))
    assert item.started_at == NOW + timedelta(hours=1)  # kept

    frozen.shift(timedelta(hours=3))
    item = step(item, carol, Step.VERIFY)
    verified_at = NOW + timedelta(days=2, hours=4)
    assert (item.status, item.verified_at, item.verified_by, item.version) == ("verified", verified_at, carol, 4)

    item = step(item, carol, Step.REOPEN, reason="alert fired on a test table only")
    item.refresh_from_db()
    assert (item.status, item.completed_at, item.verified_at, item.verified_by) == ("open", None, None, None)
    assert item.started_at == NOW + timedelta(hours=1)

    n = item.pk
    assert item_said(item)[1:] == [
        ("status", "open", "in_progress", "alice", f"Action item #{n} started"),
        ("status", "in_progress", "done", "alice", f"Action item #{n} done, awaiting verification"),
        ("status", "done", "verified", "carol", f"Action item #{n} verified"),
        ("status", "verified", "open", "carol", f"Action item #{n} reopened: alert fired on a test table only"),
    ]


def test_complete_straight_from_open_sets_started_at_too(incident, alice):
    item = step(add(incident, alice), alice, Step.COMPLETE)
    assert item.started_at == item.completed_at == NOW


def test_steps_recorded_after_the_fact_keep_their_time(incident, alice, bob):
    item = add(incident, alice, due_at=NOW - timedelta(days=5))
    done = NOW - timedelta(days=6, hours=2)
    item = step(item, alice, Step.COMPLETE, at=done + timedelta(microseconds=5))
    item = step(item, bob, Step.VERIFY, at=done + timedelta(days=1))
    assert (item.started_at, item.completed_at, item.verified_at) == (done, done, done + timedelta(days=1))
    # The status row is when it was recorded; a second row says when it happened.
    assert [row[:3] for row in item_rows(item)[1:]] == [
        ("status", "open", "done"),
        ("completed_at", "", "2026-11-14T00:00:00+00:00"),  # NOW - 6 days 2 hours, whole seconds
        ("status", "done", "verified"),
        ("verified_at", "", "2026-11-15T00:00:00+00:00"),
    ]


@pytest.mark.parametrize(
    ("action", "at", "message"),
    [
        (Step.COMPLETE, NOW + timedelta(minutes=6), "This time lies in the future; at most 5 minutes ahead"),
        (Step.COMPLETE, datetime(1999, 12, 31, tzinfo=UTC), "This time is before the year 2000"),
        (Step.WAIVE, NOW - timedelta(days=1), "A waiver or a reopening is recorded when it is made"),
    ],
)
def test_bad_step_times_are_refused_under_at(incident, alice, boss, action, at, message):
    item = add(incident, alice)
    with pytest.raises(ValidationError) as caught:
        step(item, boss if action == Step.WAIVE else alice, action, at=at, reason="not needed")
    assert list(errors_of(caught)) == ["at"]
    assert errors_of(caught)["at"][0].startswith(message)
    item.refresh_from_db()
    assert (item.status, item.version) == ("open", 1)


def test_verification_cannot_predate_completion(incident, alice, bob):
    item = step(add(incident, alice), alice, Step.COMPLETE)
    with pytest.raises(ValidationError) as caught:
        step(item, bob, Step.VERIFY, at=NOW - timedelta(hours=1))
    assert errors_of(caught) == {"at": ["This time is before the item's previous step (2026-11-20 10:00)."]}


@pytest.mark.parametrize(
    ("status", "action", "message"),
    [
        ("open", Step.VERIFY, "Cannot verify an action item whose status is Open."),
        ("in_progress", Step.START, "Cannot start an action item whose status is In progress."),
        ("done", Step.COMPLETE, "Cannot mark done an action item whose status is Done, awaiting verification."),
        ("verified", Step.WAIVE, "Cannot waive an action item whose status is Verified."),
        ("open", Step.REOPEN, "Cannot reopen an action item whose status is Open."),
        ("open", "explode", "Unknown action; use one of: start, complete, verify, waive, reopen."),
    ],
)
def test_a_step_the_status_does_not_allow_is_refused_naming_action(incident, alice, root, status, action, message):
    item = ActionItemFactory(incident=incident, owner=alice, status=status, completed_at=NOW)
    before = TimelineEntry.objects.count()
    with pytest.raises(ValidationError) as caught:
        step(item, root, action, reason="because")
    assert errors_of(caught) == {"action": [message]}
    item.refresh_from_db()
    assert (item.status, item.version, TimelineEntry.objects.count()) == (status, 1, before)


def test_who_may_verify(incident, alice, bob, carol, boss, root):
    with_verifier = step(add(incident, alice, verifier=carol), alice, Step.COMPLETE)
    without = step(add(incident, alice, title="Must-test case"), alice, Step.COMPLETE)
    admins_own = step(add(incident, root, title="Runbook"), root, Step.COMPLETE)

    with pytest.raises(PermissionDenied, match="The owner cannot verify their own action item"):
        step(without, alice, Step.VERIFY)
    with pytest.raises(PermissionDenied, match=r"Only the verifier of this item \(carol\) or a manager"):
        step(with_verifier, bob, Step.VERIFY)
    assert step(without, bob, Step.VERIFY).verified_by == bob  # no verifier: anyone but the owner
    assert step(with_verifier, boss, Step.VERIFY).verified_by == boss  # a manager verifies any item
    assert step(admins_own, root, Step.VERIFY).verified_by == root  # administrators, their own too


def test_only_a_manager_or_an_administrator_waives_and_with_a_reason(incident, alice, boss, root):
    item = step(add(incident, alice), alice, Step.START)
    with pytest.raises(PermissionDenied, match="Only a manager or an administrator can approve a waiver."):
        step(item, alice, Step.WAIVE, reason="covered by the bill rework")
    with pytest.raises(ValidationError) as caught:
        step(item, boss, Step.WAIVE, reason="  ")
    assert list(errors_of(caught)) == ["reason"]
    item.refresh_from_db()
    assert (item.status, item.version) == ("in_progress", 2)

    item = step(item, boss, Step.WAIVE, reason=" covered by the bill rework ")
    assert (item.status, item.waived_at, item.waived_by, item.waive_reason) == (
        "waived",
        NOW,
        boss,
        "covered by the bill rework",
    )
    assert item_rows(item)[-1][-1] == "covered by the bill rework"  # the reason typed, alone
    assert item_said(item)[-1] == (
        "status",
        "in_progress",
        "waived",
        "boss",
        f"Action item #{item.pk} waived: covered by the bill rework",
    )
    item = step(item, root, Step.REOPEN)
    assert (item.status, item.waived_at, item.waived_by, item.waive_reason) == ("open", None, None, "")


# -- the close rule and reopening the loop ------------------------------------------------------


def close(incident, by):
    return services.incident_transition(incident_id=incident.pk, by=by, action="close")


def test_closing_needs_the_review_and_every_item_verified_or_waived(incident, alice, bob, boss, frozen):
    first, second = add(incident, alice), add(incident, alice, title="Bank channel switch-over drill")
    with pytest.raises(ValidationError) as caught:
        close(incident, alice)
    assert errors_of(caught) == {
        "action": [
            "Write the review's required sections before closing: Summary, Impact, Root cause (5 whys), Lessons.",
            f"2 action items are not verified or waived: #{first.pk}, #{second.pk}",
        ]
    }

    write_review(incident, by=alice)
    step(first, alice, Step.COMPLETE)
    with pytest.raises(ValidationError) as caught:
        close(incident, alice)
    # Done is not enough: it awaits verification.
    assert errors_of(caught) == {"action": [f"2 action items are not verified or waived: #{first.pk}, #{second.pk}"]}

    step(first, bob, Step.VERIFY)
    step(second, boss, Step.WAIVE, reason="drilled with the CMB one in December")
    write_review(incident, by=alice, root_cause="   ")
    with pytest.raises(ValidationError) as caught:
        close(incident, alice)
    assert errors_of(caught) == {
        "action": ["Write the review's required sections before closing: Root cause (5 whys)."]
    }

    frozen.shift(timedelta(hours=2))
    write_review(incident, by=alice, root_cause="Review.")
    closed = close(incident, alice)
    assert (closed.status, closed.closed_at) == ("closed", NOW + timedelta(hours=2))


def test_an_incident_without_items_closes_once_reviewed(incident, alice):
    write_review(incident, by=alice)
    assert close(incident, alice).status == "closed"


@pytest.mark.parametrize(("resolved", "back_to"), [(True, "resolved"), (False, "recovered")])
def test_reopening_an_item_reopens_the_loop(alice, boss, frozen, resolved, back_to):
    occurred = NOW - timedelta(days=3)
    incident = IncidentFactory(
        occurred_at=occurred,
        recovered_at=occurred + timedelta(hours=1),
        resolved_at=occurred + timedelta(hours=5) if resolved else None,
    )
    write_review(incident)
    item = step(step(add(incident, alice), alice, Step.COMPLETE), boss, Step.VERIFY)
    closed = close(incident, alice)
    version = closed.version

    frozen.shift(timedelta(days=1))
    step(item, boss, Step.REOPEN, reason="the alert never fired")
    incident.refresh_from_db()
    assert (incident.status, incident.closed_at, incident.version) == (back_to, None, version + 1)
    assert incident.recovered_at == occurred + timedelta(hours=1)
    rows = list(
        incident.timeline.filter(kind__in=["status", "change"], at=NOW + timedelta(days=1))
        .order_by("id")
        .values_list("kind", "field", "old_value", "new_value", "author__username", "text")
    )
    reopened = incident.timeline.get(kind="status", at=NOW + timedelta(days=1))
    assert reopened.data == {"event": "item_reopened", "item": item.pk}
    with translation.override("en"):
        assert describe(reopened).endswith(f"Action item #{item.pk} reopened: the loop is open again")
    assert rows == [
        ("status", "status", "closed", back_to, "boss", ""),
        ("change", "closed_at", "2026-11-20T02:00:00+00:00", "", "boss", ""),
    ]
    # The loop is open: it closes again only when the item is verified or waived.
    with pytest.raises(ValidationError):
        close(incident, alice)


# -- bulk ---------------------------------------------------------------------------------------


def test_bulk_changes_every_item_in_one_go(incident, alice, bob):
    items = [add(incident, alice, title=f"item {n}") for n in range(3)]
    new_due = NOW + timedelta(days=14)
    changed = services.action_items_bulk_update(
        item_ids=[i.pk for i in items], by=alice, action=Step.START, owner=bob, due_at=new_due
    )
    assert [i.pk for i in changed] == sorted(i.pk for i in items)
    for item in ActionItem.objects.all():
        assert (item.owner, item.due_at, item.status, item.started_at, item.version) == (
            bob,
            new_due,
            "in_progress",
            NOW,
            3,  # created 1, owner and due date (one change) 2, started 3
        )


def test_bulk_is_all_or_nothing_and_names_each_failing_item(incident, alice, bob):
    fine = add(incident, alice)
    done = step(add(incident, alice, title="done already"), alice, Step.COMPLETE)
    verified = step(step(add(incident, alice, title="verified"), alice, Step.COMPLETE), bob, Step.VERIFY)
    before = (TimelineEntry.objects.count(), list(ActionItem.objects.order_by("pk").values_list("status", "version")))

    with pytest.raises(ValidationError) as caught:
        services.action_items_bulk_update(item_ids=[fine.pk, done.pk, verified.pk], by=alice, action=Step.START)
    assert errors_of(caught) == {
        "ids": [
            f"#{done.pk}: Cannot start an action item whose status is Done, awaiting verification.",
            f"#{verified.pk}: Cannot start an action item whose status is Verified.",
        ]
    }
    after = (TimelineEntry.objects.count(), list(ActionItem.objects.order_by("pk").values_list("status", "version")))
    assert after == before  # the first item was not started either


def test_bulk_refusals(incident, alice, boss):
    item = add(incident, alice)
    with pytest.raises(ValidationError) as caught:
        services.action_items_bulk_update(item_ids=[item.pk, 999999], by=alice, action=Step.START)
    assert errors_of(caught) == {"ids": ["Unknown action items: #999999."]}
    with pytest.raises(ValidationError) as caught:
        services.action_items_bulk_update(item_ids=[item.pk], by=alice)
    assert list(errors_of(caught)) == ["action"]
    with pytest.raises(PermissionDenied):
        services.action_items_bulk_update(item_ids=[item.pk], by=alice, action=Step.WAIVE, reason="not needed")
    waived = services.action_items_bulk_update(item_ids=[item.pk], by=boss, action=Step.WAIVE, reason="not needed")
    assert [i.status for i in waived] == ["waived"]


# -- admin --------------------------------------------------------------------------------------


@pytest.fixture
def admin_browser(client, root):
    root.is_staff = root.is_superuser = True
    root.save()
    client.force_login(root)
    return client


def test_admin_lists_shows_and_adds_items_through_the_service(admin_browser, incident, alice):
    item = add(incident, alice)
    assert admin_browser.get(reverse("admin:incidents_actionitem_changelist")).status_code == 200
    assert admin_browser.get(reverse("admin:incidents_actionitem_changelist") + "?overdue=yes").status_code == 200
    assert admin_browser.get(reverse("admin:incidents_actionitem_change", args=[item.pk])).status_code == 200
    page = admin_browser.get(reverse("admin:incidents_incident_change", args=[incident.pk]))
    assert page.status_code == 200 and item.title in page.content.decode()

    response = admin_browser.post(
        reverse("admin:incidents_actionitem_add"),
        {
            "source": "incident",
            "team": incident.team.pk,
            "incident": incident.pk,
            "title": "Make the key column NOT NULL",
            "description": "",
            "kind": "fix",
            "priority": "high",
            "owner": alice.pk,
            "verifier": "",
            "acceptance_criteria": "",
            "due_at_0": "2026-12-01",
            "due_at_1": "18:00:00",
            "ticket_url": "",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    added = ActionItem.objects.get(title="Make the key column NOT NULL")
    assert (added.created_by.username, added.due_at) == ("root", datetime(2026, 12, 1, 10, 0, tzinfo=UTC))
    assert TimelineEntry.objects.filter(action_item=added, kind="action_item").count() == 1


def test_admin_actions_take_steps_and_report_refusals(admin_browser, incident, alice):
    item = add(incident, alice)
    url = reverse("admin:incidents_actionitem_changelist")
    admin_browser.post(url, {"action": "complete", "_selected_action": [item.pk]})
    item.refresh_from_db()
    assert item.status == "done"
    response = admin_browser.post(url, {"action": "start", "_selected_action": [item.pk]}, follow=True)
    assert "Cannot start an action item whose status is Done" in response.content.decode()
    item.refresh_from_db()
    assert item.status == "done"
