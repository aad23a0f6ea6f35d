"""Items beyond incidents: the source of an item (incident, drill, review meeting, audit, governance), its
team, the migration that gave every existing item its incident's team, the constraint tying the source to
the incident or drill, the services, reminders, the API, and the closed-loop figures by source.

The clock is frozen at NOW = 2026-11-20 10:00 in Asia/Shanghai (02:00 UTC).
"""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core import mail
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor

from incidents import drills, periods, services
from incidents.models import ActionItem, TimelineEntry
from incidents.selectors import closed_loop_metrics
from stability import channels, delivery, reminders
from stability.channels import Reply
from stability.models import Notification
from tests.factories import ActionItemFactory, IncidentFactory, SystemFactory, TeamFactory, UserFactory

NOW = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
ZONE = ZoneInfo("Asia/Shanghai")
ITEMS = "/api/v1/action-items/"
GOVERNANCE_NOTE = "P0/P1 数据库 default null 规范"
WECOM_URL = "https://robot.example.com/cgi-bin/webhook/send?key=lei"


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZONE)


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def payments(db):
    return TeamFactory(slug="payments", name="Payments")


def make_drill(team, **values):
    system = values.pop("system", None) or SystemFactory(code="cashier", tier="P0", team=team)
    defaults = {"title": "Bank channel switch-over", "scenario": "bank_channel_switch", "planned_at": NOW}
    return drills.drill_create(by=None, team=team, systems=[system], **{**defaults, **values})


# -- the migration ----------------------------------------------------------------------------------

MIGRATION = ("incidents", "0007_drills_item_sources")


@pytest.fixture
def back_to_latest(transactional_db):
    """Whatever the test leaves, the schema goes back to the latest migrations for the tests after it."""
    yield
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
def test_the_migration_gives_each_item_its_incidents_team_and_source_incident(back_to_latest):
    executor = MigrationExecutor(connection)
    # The migration before this one, whichever it is after a merge.
    before = [parent for parent in executor.loader.graph.node_map[MIGRATION].parents if parent.key[0] == "incidents"]
    before = [node.key for node in before]
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    Team, Incident = old.get_model("incidents", "Team"), old.get_model("incidents", "Incident")
    Policy, Item = old.get_model("incidents", "SeverityPolicy"), old.get_model("incidents", "ActionItem")
    User = old.get_model("accounts", "User")
    owner = User.objects.create(username="lin")
    teams = [Team.objects.create(name=name, slug=name.lower()) for name in ("Pay", "Risk")]

    def incident(team):
        return Incident.objects.create(
            title="old",
            team=team,
            detection_source="monitoring",
            occurred_at=NOW,
            detected_at=NOW,
            level="C",
            classified_level="C",
            severity_policy=Policy.objects.order_by("version").first(),
            recovery_target=timedelta(hours=4),
            funds_loss=Decimal(0),
        )

    pay, risk = incident(teams[0]), incident(teams[1])
    items = [Item.objects.create(incident=i, title="fix", owner=owner, due_at=NOW).pk for i in (pay, risk, risk)]

    executor = MigrationExecutor(connection)
    executor.migrate([MIGRATION])
    new = executor.loader.project_state([MIGRATION]).apps
    rows = new.get_model("incidents", "ActionItem").objects.filter(pk__in=items).order_by("pk")
    assert list(rows.values_list("team__slug", "source", "drill", "source_note")) == [
        ("pay", "incident", None, ""),
        ("risk", "incident", None, ""),
        ("risk", "incident", None, ""),
    ]


# -- the constraint ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "with_incident", "with_drill"),
    [
        ("incident", False, False),  # an incident's item without its incident
        ("incident", True, True),
        ("drill", False, False),  # a drill's item without its drill
        ("drill", True, True),
        ("review_meeting", True, False),  # a meeting's item naming an incident
        ("governance", False, True),
    ],
)
def test_the_database_ties_the_source_to_the_incident_or_the_drill(payments, source, with_incident, with_drill):
    incident = IncidentFactory(systems=[SystemFactory(team=payments)])
    drill = make_drill(payments)
    values = {"incident": incident if with_incident else None, "drill": drill if with_drill else None}
    with pytest.raises(IntegrityError), transaction.atomic():
        ActionItem.objects.create(source=source, team=payments, title="x", owner=UserFactory(), due_at=NOW, **values)


def test_each_source_with_what_it_names_is_accepted(payments):
    owner = UserFactory()
    incident = IncidentFactory(systems=[SystemFactory(team=payments)])
    drill = make_drill(payments)
    rows = [
        {"source": "incident", "incident": incident},
        {"source": "drill", "drill": drill},
        *({"source": source} for source in ("review_meeting", "audit", "governance")),
    ]
    for row in rows:
        ActionItem.objects.create(team=payments, title="x", owner=owner, due_at=NOW, **row)
    assert ActionItem.objects.count() == 5


# -- the services -----------------------------------------------------------------------------------


def test_an_item_of_a_review_meeting_belongs_to_its_team_and_keeps_its_history_on_itself(payments, frozen):
    owner, manager = UserFactory(username="lei"), UserFactory(username="luna", role="manager")
    item = services.action_item_create(
        by=owner,
        team=payments,
        source=ActionItem.Source.REVIEW_MEETING,
        source_note=" 稳定性双月会 2026-11 ",
        title="Review the alert thresholds of the payout channel",
        owner=owner,
        due_at=NOW + timedelta(days=10),
    )
    assert (item.team, item.source, item.source_note, item.incident, item.drill) == (
        payments,
        "review_meeting",
        "稳定性双月会 2026-11",
        None,
        None,
    )
    frozen.shift(timedelta(hours=1))
    services.action_item_transition(item_id=item.pk, by=owner, action="complete")
    frozen.shift(timedelta(hours=1))
    services.action_item_transition(item_id=item.pk, by=manager, action="verify")
    services.action_item_update(item_id=item.pk, by=owner, title="Review the payout thresholds")
    item.refresh_from_db()
    assert (item.status, item.completed_at, item.verified_at, item.verified_by) == (
        "verified",
        NOW + timedelta(hours=1),
        NOW + timedelta(hours=2),
        manager,
    )
    assert (item.title, item.version) == ("Review the payout thresholds", 4)
    assert not TimelineEntry.objects.exists()  # no incident, no timeline


def test_a_drill_item_takes_the_drills_team(payments, frozen):
    drill = make_drill(payments)
    item = services.action_item_create(
        by=None, source="drill", drill_id=drill.pk, title="Script the switch-over", owner=UserFactory(), due_at=NOW
    )
    assert (item.team, item.drill, item.incident) == (payments, drill, None)


def test_an_incidents_item_takes_the_incidents_team_whatever_team_is_given(payments, frozen):
    incident = IncidentFactory(systems=[SystemFactory(team=payments)])
    item = services.action_item_create(
        by=None, incident_id=incident.pk, team=TeamFactory(), title="Alarm", owner=UserFactory(), due_at=NOW
    )
    assert (item.team, item.source) == (payments, "incident")
    assert TimelineEntry.objects.filter(action_item=item, data__event="item_added").count() == 1


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"source": "incident"}, "incident"),
        ({"source": "drill"}, "drill"),
        ({"source": "audit"}, "team"),
        ({"source": "audit", "team": "payments", "incident": True}, "source"),
        ({"source": "hearsay", "team": "payments"}, "source"),
    ],
)
def test_an_item_must_say_where_it_comes_from(payments, values, field):
    values = dict(values)
    if values.pop("team", None):
        values["team"] = payments
    if values.pop("incident", None):
        values["incident_id"] = IncidentFactory().pk
    with pytest.raises(ValidationError) as error:
        services.action_item_create(by=None, title="x", owner=UserFactory(), due_at=NOW, **values)
    assert field in error.value.message_dict
    assert not ActionItem.objects.exists()


def test_bulk_steps_take_items_with_and_without_an_incident_together(payments, frozen):
    owner = UserFactory()
    incident_item = ActionItemFactory(incident=IncidentFactory(systems=[SystemFactory(team=payments)]), owner=owner)
    audit_item = ActionItemFactory(incident=None, team=payments, source="audit", owner=owner)
    services.action_items_bulk_update(item_ids=[incident_item.pk, audit_item.pk], by=owner, action="start")
    assert set(ActionItem.objects.values_list("status", flat=True)) == {"in_progress"}
    assert TimelineEntry.objects.filter(action_item__isnull=False).count() == 1  # the incident's item only


# -- reminders --------------------------------------------------------------------------------------


def test_reminders_fire_for_an_item_of_no_incident_and_link_to_its_page(
    payments, django_capture_on_commit_callbacks, monkeypatch
):
    posts = []
    monkeypatch.setattr(
        channels,
        "post_json",
        lambda url, payload, *, headers=None: posts.append(payload) or Reply(200, '{"errcode": 0}'),
    )
    with time_machine.travel(local("2026-11-20 10:00"), tick=False):
        lei = UserFactory(username="lei", email="lei@example.com")
        # a chat robot: its quiet hours are the item's team's
        channels.channel_create(kind="wecom", name="lei wecom", target=WECOM_URL, user=lei)
        channels.channel_create(kind="email", name="lei email", user=lei)
        item = ActionItemFactory(
            incident=None,
            team=payments,
            source="governance",
            source_note=GOVERNANCE_NOTE,
            owner=lei,
            title="Forbid nullable primary keys",
            due_at=local("2026-11-25 21:30"),
        )
    with time_machine.travel(local("2026-11-25 21:30"), tick=False), django_capture_on_commit_callbacks(execute=True):
        reminders.sweep(enqueue=lambda destinations: [delivery.deliver(destination=d) for d in destinations])
    assert sorted(Notification.objects.values_list("event", "step", "channel__kind", "status")) == [
        ("item_due", "due", "email", "sent"),
        ("item_due", "due", "wecom", "sent"),
    ]
    assert len(posts) == 1
    [message] = mail.outbox
    assert message.subject == "Due now: Forbid nullable primary keys"
    assert f"http://127.0.0.1:8000/items/{item.pk}/" in message.body
    assert f"Action item #{item.pk} (Governance · {GOVERNANCE_NOTE}) of team Payments" in message.body


# -- the API ----------------------------------------------------------------------------------------


def test_the_api_creates_a_governance_item_for_a_team_and_lists_it_by_source(engineer_client, payments, frozen):
    UserFactory(username="lei")
    ActionItemFactory(incident=IncidentFactory(systems=[SystemFactory(team=payments)]))
    answer = engineer_client.post(
        ITEMS,
        {
            "source": "governance",
            "team": "payments",
            "source_note": GOVERNANCE_NOTE,
            "title": "Forbid nullable primary keys",
            "owner": "lei",
            "due_at": "2026-12-31T10:00:00Z",
        },
        format="json",
    )
    assert answer.status_code == 201, answer.json()
    body = answer.json()
    assert {key: body[key] for key in ("source", "team", "incident", "incident_title", "drill", "source_note")} == {
        "source": "governance",
        "team": "payments",
        "incident": None,
        "incident_title": None,
        "drill": None,
        "source_note": GOVERNANCE_NOTE,
    }
    listed = engineer_client.get(ITEMS, {"source": "governance"}).json()["results"]
    assert [row["id"] for row in listed] == [body["id"]]
    assert len(engineer_client.get(ITEMS, {"team": "payments"}).json()["results"]) == 2


def test_the_api_names_what_an_item_lacks(engineer_client, payments):
    UserFactory(username="lei")
    base = {"title": "x", "owner": "lei", "due_at": "2026-12-31T10:00:00Z"}
    assert engineer_client.post(ITEMS, {**base, "source": "audit"}, format="json").json() == {
        "team": ["Choose the team that owns the item."]
    }
    assert "incident" in engineer_client.post(ITEMS, base, format="json").json()
    drill = make_drill(payments)
    answer = engineer_client.post(ITEMS, {**base, "source": "drill", "drill": drill.pk}, format="json")
    assert (answer.status_code, answer.json()["team"], answer.json()["drill"]) == (201, "payments", drill.pk)


# -- closed-loop figures by source ------------------------------------------------------------------


def test_closed_loop_figures_by_source_add_up_to_the_totals(payments, frozen, django_assert_num_queries):
    """November 2026, as of 11-20 10:00 local. Due in November:
    incident  A due 11-10, done 11-09 (on time); B due 11-12, open (overdue)   -> 1 of 2, 1 overdue
    drill     C due 11-15, done 11-16 (late)                                   -> 0 of 1
    review    D due 11-25, open (not yet due)                                  -> not counted, rate None
    governance E due 11-05, waived                                             -> not counted
    audit     none; and F (review, due 12-02) is December's."""
    owner = UserFactory()
    other = TeamFactory(slug="risk")
    incident = IncidentFactory(systems=[SystemFactory(team=payments)])
    drill = make_drill(payments)

    def item(due, **values):
        return ActionItemFactory(owner=owner, due_at=local(due), **values)

    item("2026-11-10 12:00", incident=incident, status="done", completed_at=local("2026-11-09 12:00"))
    item("2026-11-12 12:00", incident=incident)
    item("2026-11-15 12:00", incident=None, drill=drill, status="verified", completed_at=local("2026-11-16 12:00"))
    item("2026-11-25 12:00", incident=None, team=payments, source="review_meeting")
    item("2026-11-05 12:00", incident=None, team=other, source="governance", status="waived", waive_reason="moot")
    item("2026-12-02 12:00", incident=None, team=payments, source="review_meeting")

    with django_assert_num_queries(5):
        figures = closed_loop_metrics(period=periods.month(2026, 11), now=NOW)
    on_time = figures["on_time_completion"]
    assert (on_time["due_in_period"], on_time["numerator"], on_time["denominator"]) == (5, 1, 3)
    assert (on_time["overdue"], on_time["waived"], on_time["not_yet_due"]) == (1, 1, 1)
    by_source = {row["source"]: row for row in figures["by_source"]}
    assert list(by_source) == ["incident", "drill", "review_meeting", "audit", "governance"]
    wanted = {  # due, completed, numerator, denominator, rate, overdue, waived
        "incident": (2, 1, 1, 2, 0.5, 1, 0),
        "drill": (1, 1, 0, 1, 0.0, 0, 0),
        "review_meeting": (1, 0, 0, 0, None, 0, 0),
        "audit": (0, 0, 0, 0, None, 0, 0),
        "governance": (1, 0, 0, 0, None, 0, 1),
    }
    names = ("due_in_period", "completed", "numerator", "denominator", "rate", "overdue", "waived")
    assert {source: tuple(row[name] for name in names) for source, row in by_source.items()} == wanted
    for name in ("due_in_period", "numerator", "denominator", "overdue", "waived"):
        assert sum(row[name] for row in figures["by_source"]) == on_time[name]

    # The team's figures go by the item's team: the waived governance item is risk's.
    team_figures = closed_loop_metrics(period=periods.month(2026, 11), team=payments, now=NOW)
    assert team_figures["on_time_completion"]["due_in_period"] == 4
    assert [row["due_in_period"] for row in team_figures["by_source"]] == [2, 1, 1, 0, 0]


# -- the admin --------------------------------------------------------------------------------------


def test_the_admin_adds_a_governance_item_through_the_service_and_lists_drills(client, payments, frozen):
    from django.urls import reverse

    admin = UserFactory(username="root", role="admin", is_staff=True, is_superuser=True)
    client.force_login(admin)
    owner = UserFactory(username="fumin")
    response = client.post(
        reverse("admin:incidents_actionitem_add"),
        {
            "source": "governance",
            "team": payments.pk,
            "source_note": GOVERNANCE_NOTE,
            "title": "No nullable keys",
            "kind": "fix",
            "priority": "medium",
            "owner": owner.pk,
            "due_at_0": "2026-12-31",
            "due_at_1": "18:00:00",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    item = ActionItem.objects.get()
    assert (item.source, item.team, item.source_note, item.created_by, item.version) == (
        "governance",
        payments,
        GOVERNANCE_NOTE,
        admin,
        1,
    )
    drill = make_drill(payments)
    assert client.get(reverse("admin:incidents_actionitem_changelist"), {"source": "governance"}).status_code == 200
    assert client.get(reverse("admin:incidents_drill_changelist")).status_code == 200
    assert client.get(reverse("admin:incidents_drill_change", args=[drill.pk])).status_code == 200
    assert client.get(reverse("admin:incidents_actionitem_change", args=[item.pk])).status_code == 200


def test_the_reports_closed_loop_part_tells_the_sources_in_both_languages(payments, frozen):
    """November 2026 as of 11-20: an incident's item done on time, a drill's item done late, and a
    governance item due 11-15 12:00 still open (4 days 22 hours overdue: 4 days)."""
    from django.utils import translation

    from stability.report_narrative import narrative
    from stability.reports import build_report

    owner = UserFactory(username="lei")
    incident = IncidentFactory(systems=[SystemFactory(team=payments)])
    drill = make_drill(payments)
    done = {"status": "done", "owner": owner}
    ActionItemFactory(
        incident=incident, due_at=local("2026-11-10 12:00"), completed_at=local("2026-11-09 12:00"), **done
    )
    ActionItemFactory(
        incident=None, drill=drill, due_at=local("2026-11-12 12:00"), completed_at=local("2026-11-13 12:00"), **done
    )
    ActionItemFactory(
        incident=None,
        team=payments,
        source="governance",
        source_note=GOVERNANCE_NOTE,
        title="No nullable keys",
        owner=owner,
        due_at=local("2026-11-15 12:00"),
    )
    report = build_report(period=periods.month(2026, 11), now=NOW)
    said = {}
    for language in ("en", "zh-hans"):
        with translation.override(language):
            said[language] = [line.plain() for line in {p.key: p for p in narrative(report)}["closed_loop"].lines]
    assert said["en"][:3] == [
        "Items due in the period done on time: 1 of 3 (33.3 %).",
        "Overdue: 1 (lei 1).",
        "Done on time by source: Incident 1 of 1, Drill 0 of 1, Governance 0 of 1.",
    ]
    assert "No nullable keys: owner lei, 4 days overdue, from Governance." in said["en"]
    assert "按来源的按时完成：事件 1/1，演练 0/1，治理 0/1。" in said["zh-hans"]
    assert "No nullable keys：负责人 lei，逾期 4 天，来源：治理。" in said["zh-hans"]
