from datetime import timedelta
from io import StringIO

import pytest
from django.conf import settings
from django.contrib.auth import authenticate
from django.core.management import call_command
from django.utils import timezone

from accounts.models import Role, User
from incidents import demo
from incidents.models import (
    CauseCategory,
    DetectionSource,
    Incident,
    Level,
    Status,
    System,
    Team,
    TimelineEntry,
)

pytestmark = pytest.mark.django_db


def _load() -> str:
    out = StringIO()
    call_command("load_demo", stdout=out, stderr=StringIO())
    return out.getvalue()


def _counts() -> dict[str, int]:
    return {
        model.__name__: model.objects.count()
        for model in (User, Team, System, Incident, TimelineEntry, Team.managers.through, Team.members.through)
    }


@pytest.fixture
def loaded() -> str:
    return _load()


def test_second_run_changes_nothing(loaded):
    before = _counts()
    assert before["Incident"] == len(demo.INCIDENTS)
    assert _load().strip() == "Demo data already loaded."
    assert _counts() == before


def test_output_names_the_counts_and_logins(loaded):
    assert "Created 4 teams, 12 systems, 7 users" in loaded
    assert f"Created {len(demo.INCIDENTS)} incidents (A: 1, B: 2, C: 12, D: 21)" in loaded
    assert "engineer" in loaded and "manager" in loaded and "demo-password" in loaded


def test_users_and_roles(loaded):
    assert User.objects.get(username="engineer").role == Role.ENGINEER
    assert User.objects.get(username="manager").role == Role.MANAGER
    admin = User.objects.get(username="admin")
    assert admin.role == Role.ADMIN and admin.is_staff and admin.is_superuser
    assert authenticate(username="manager", password="demo-password") == User.objects.get(username="manager")
    assert User.objects.filter(role=Role.ENGINEER).count() >= 4
    assert not User.objects.filter(first_name="").exists()
    manager = User.objects.get(username="manager")
    assert set(manager.managed_teams.values_list("slug", flat=True)) == {t.slug for t in demo.TEAMS}


def test_levels_statuses_and_variety(loaded):
    levels = set(Incident.objects.values_list("level", flat=True))
    assert levels == set(Level.values)
    assert Incident.objects.filter(recovered_at__isnull=True, status=Status.OPEN).count() >= 2
    assert Incident.objects.filter(status=Status.CLOSED).exists()
    assert set(Incident.objects.values_list("detection_source", flat=True)) == set(DetectionSource.values)
    assert set(Incident.objects.values_list("cause_category", flat=True)) == set(CauseCategory.values)
    assert set(Incident.objects.values_list("team__slug", flat=True)) == {t.slug for t in demo.TEAMS}
    assert Incident.objects.filter(occurred_at__gte=timezone.now() - timedelta(days=31)).count() >= 5
    overridden = Incident.objects.exclude(level_override="")
    assert overridden.count() == 1 and overridden.get().level_override_reason


def test_levels_follow_from_the_facts(loaded):
    """Each template's facts give the level it names under the default policy."""
    expected = {template.title: template.level for template in demo.INCIDENTS}
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
