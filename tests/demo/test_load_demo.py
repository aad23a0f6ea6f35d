from datetime import timedelta
from io import StringIO

import pytest
from django.conf import settings
from django.contrib.auth import authenticate
from django.core.management import call_command
from django.db.models import F
from django.utils import timezone

from accounts.models import Role, User
from demo import dataset
from incidents import periods
from incidents.models import (
    ActionItem,
    CauseCategory,
    DetectionSource,
    Incident,
    Level,
    Status,
    System,
    Team,
    TimelineEntry,
)
from incidents.selectors import review_missing_sections
from stability.models import AlertActivity, AlertOccurrence
from stability.selectors import follow_up_rate

pytestmark = pytest.mark.django_db


def _load() -> str:
    out = StringIO()
    call_command("load_demo", stdout=out, stderr=StringIO())
    return out.getvalue()


def _counts() -> dict[str, int]:
    return {
        model.__name__: model.objects.count()
        for model in (
            User,
            Team,
            System,
            Incident,
            ActionItem,
            TimelineEntry,
            Team.managers.through,
            Team.members.through,
        )
    }


@pytest.fixture
def loaded() -> str:
    return _load()


def test_second_run_changes_nothing(loaded):
    before = _counts()
    assert before["Incident"] == len(dataset.INCIDENTS)
    assert _load().strip() == "Demo data already loaded."
    assert _counts() == before


def test_output_names_the_counts_and_logins(loaded):
    assert "Created 4 teams, 12 systems, 7 users" in loaded
    assert f"Created {len(dataset.INCIDENTS)} incidents (A: 1, B: 2, C: 12, D: 21)" in loaded
    assert "Created 28 action items (open: 5, in_progress: 3, done: 2, verified: 17, waived: 1)" in loaded
    assert "engineer" in loaded and "manager" in loaded and "demo-password" in loaded


def test_alerts_give_the_report_its_follow_up_figures(loaded):
    now = timezone.now()
    last_month = periods.containing("month", now).previous()
    rate = follow_up_rate(occurrences=AlertOccurrence.objects.all(), period=last_month, group_by="team", now=now)
    # About 7 alerts a day (200 a month); the teams' habits (dataset.FOLLOW_UP_HABITS) put the rate between 68 and 90 %.
    assert rate["overall"]["denominator"] > 150
    assert 0.6 < rate["overall"]["rate"] < 0.95
    by_team = {group["key"]: group["rate"] for group in rate["groups"]}
    assert by_team["payments"] > by_team["bank-channels"]  # 90 % in time against 68 %
    # The last hours' alerts wait in the inbox; every follow-up has its acknowledgement.
    assert AlertOccurrence.objects.filter(
        followed_up_at__isnull=True, received_at__gte=now - timedelta(hours=5)
    ).exists()
    followed = AlertOccurrence.objects.filter(followed_up_at__isnull=False)
    assert AlertActivity.objects.filter(kind=AlertActivity.Kind.ACKNOWLEDGED).count() == followed.count()
    assert f"Created {AlertOccurrence.objects.count()} alerts over {dataset.ALERT_DAYS} days" in loaded


def test_users_and_roles(loaded):
    assert User.objects.get(username="engineer").role == Role.ENGINEER
    assert User.objects.get(username="manager").role == Role.MANAGER
    admin = User.objects.get(username="admin")
    assert admin.role == Role.ADMIN and admin.is_staff and admin.is_superuser
    assert authenticate(username="manager", password="demo-password") == User.objects.get(username="manager")
    assert User.objects.filter(role=Role.ENGINEER).count() >= 4
    assert not User.objects.filter(first_name="").exists()
    manager = User.objects.get(username="manager")
    assert set(manager.managed_teams.values_list("slug", flat=True)) == {t.slug for t in dataset.TEAMS}


def test_levels_statuses_and_variety(loaded):
    levels = set(Incident.objects.values_list("level", flat=True))
    assert levels == set(Level.values)
    assert Incident.objects.filter(recovered_at__isnull=True, status=Status.OPEN).count() >= 2
    assert Incident.objects.filter(status=Status.CLOSED).exists()
    assert set(Incident.objects.values_list("detection_source", flat=True)) == set(DetectionSource.values)
    assert set(Incident.objects.values_list("cause_category", flat=True)) == set(CauseCategory.values)
    assert set(Incident.objects.values_list("team__slug", flat=True)) == {t.slug for t in dataset.TEAMS}
    assert Incident.objects.filter(occurred_at__gte=timezone.now() - timedelta(days=31)).count() >= 5
    overridden = Incident.objects.exclude(level_override="")
    assert overridden.count() == 1 and overridden.get().level_override_reason


def test_levels_follow_from_the_facts(loaded):
    """Each template's facts give the level it names under the default policy."""
    expected = {template.title: template.level for template in dataset.INCIDENTS}
    for title, classified in Incident.objects.values_list("title", "classified_level"):
        assert classified == expected[title], title


def test_timelines_and_timestamps(loaded):
    assert not Incident.objects.filter(timeline__isnull=True).exists()
    assert TimelineEntry.objects.filter(kind=TimelineEntry.Kind.NOTE).count() >= 10
    latest = timezone.now() + settings.FUTURE_TOLERANCE
    for incident in Incident.objects.all():
        assert incident.occurred_at <= incident.detected_at <= incident.responded_at <= latest
        if incident.recovered_at:
            assert incident.occurred_at <= incident.recovered_at <= latest
        if incident.resolved_at:
            assert incident.recovered_at <= incident.resolved_at <= latest
        end = incident.resolved_at or incident.recovered_at or latest
        for note in incident.timeline.filter(kind=TimelineEntry.Kind.NOTE):
            assert incident.occurred_at <= note.at <= end


def test_action_items_close_some_loops_and_leave_the_engineer_overdue_work(loaded):
    now = timezone.now()
    incident_items = ActionItem.objects.filter(source=ActionItem.Source.INCIDENT)
    assert incident_items.count() == sum(len(t.items) for t in dataset.INCIDENTS) == 28
    # The engineer (with an e-mail for reminders) has open work past its due date.
    engineer = User.objects.get(username="engineer")
    assert engineer.email == "engineer@example.com"
    overdue = ActionItem.objects.filter(owner=engineer, status__in=ActionItem.OPEN_STATUSES, due_at__lt=now)
    assert overdue.count() >= 2
    # Closed incidents have their review and every item verified or waived; resolved ones with open
    # items stay open loops.
    closed = Incident.objects.filter(status=Status.CLOSED)
    assert closed.count() >= 10
    assert not any(review_missing_sections(incident=incident) for incident in closed)
    assert not closed.filter(review__isnull=True).exists()
    assert not ActionItem.objects.filter(incident__in=closed).exclude(status__in=ActionItem.FINAL_STATUSES).exists()
    assert Incident.objects.filter(status=Status.RESOLVED, action_items__status=ActionItem.Status.OPEN).exists()
    waived = ActionItem.objects.get(status=ActionItem.Status.WAIVED)
    assert (waived.waived_by.username, bool(waived.waive_reason)) == ("manager", True)
    # Steps are dated in the past, in order; some items were done late, most on time.
    for item in ActionItem.objects.exclude(completed_at=None):
        assert item.started_at <= item.completed_at <= now
        if item.verified_at:
            assert item.completed_at <= item.verified_at <= now
            assert item.verified_by not in (None, item.owner)
    late = ActionItem.objects.filter(completed_at__gt=F("due_at")).count()
    on_time = ActionItem.objects.filter(completed_at__lte=F("due_at")).count()
    assert 0 < late < on_time
    assert TimelineEntry.objects.filter(kind=TimelineEntry.Kind.ACTION_ITEM).count() > 28


def test_existing_teams_and_systems_are_kept_and_gain_the_demo_people(db):
    """Teams and systems go through incidents.services: one already there is not recreated; a team keeps
    its people and gains the demo's, a system keeps its own facts."""
    keeper = User.objects.create(username="keeper", role=Role.ENGINEER)
    team = Team.objects.create(slug=dataset.TEAMS[0].slug, name="Ours")
    team.members.add(keeper)
    system = System.objects.create(code=dataset.SYSTEMS[0].code, name="Ours", tier="P3", team=team)
    out = _load()
    assert "Created 3 teams, 11 systems" in out
    team.refresh_from_db()
    assert team.name == "Ours"
    assert set(team.members.values_list("username", flat=True)) == {"keeper", *dataset.TEAMS[0].members}
    assert set(team.managers.values_list("username", flat=True)) == set(dataset.TEAMS[0].managers)
    system.refresh_from_db()
    assert (system.name, system.tier) == ("Ours", "P3")


def test_drills_and_items_beyond_incidents(loaded):
    from incidents.drills import drill_coverage
    from incidents.models import Drill
    from incidents.periods import containing

    now = timezone.now()
    assert "Created 3 drills and 4 items of drills, meetings and governance" in loaded
    switch = Drill.objects.get(scenario="bank_channel_switch")
    last_quarter = containing("quarter", now).previous()
    assert last_quarter.start <= switch.held_at < last_quarter.end and switch.result == "partly"
    assert switch.switch_over_seconds == 95
    assert list(switch.action_items.values_list("source", "team__slug")) == [("drill", "payments")]
    planned = Drill.objects.get(scenario="failover")
    assert planned.held_at is None and planned.planned_at > now
    sources = ActionItem.objects.exclude(source=ActionItem.Source.INCIDENT).values_list("source", "source_note")
    assert sorted(sources)[-1] == ("review_meeting", "稳定性双月会 / bimonthly stability review")
    assert ("governance", "P0/P1 数据库 default null 规范") in set(sources)
    # Four P0 systems; the capacity test of 10 days ago covers cashier and payout this quarter, unless the
    # quarter began since (then the switch-over of last quarter is not counted either).
    quarter = containing("quarter", now)
    coverage = drill_coverage(quarter_start=quarter.start, quarter_end=quarter.end)
    assert coverage["denominator"] == 4
    capacity = Drill.objects.get(scenario="capacity")
    assert coverage["numerator"] == (2 if capacity.held_at >= quarter.start else 0)
