"""`manage.py generate_history` (demo.history) at small scale: counts, every rule of the record
holds, levels agree with the severity policy, the figures can be computed, and a second run refuses.

Runs the batched-INSERT path on SQLite and the COPY path on PostgreSQL (DATABASE_URL)."""

from collections import Counter
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.db.models import F
from django.utils import timezone

from accounts.models import Role, User
from demo.history import HistoryRefused, history_window
from incidents import periods, severity
from incidents.models import (
    TIMESTAMP_FIELDS,
    ActionItem,
    DetectionSource,
    Incident,
    Level,
    Status,
    Team,
    validate_timestamps,
)
from incidents.selectors import current_severity_policy, on_time_completion_by_team, review_missing_sections
from stability.models import AlertActivity, AlertOccurrence, Integration
from stability.selectors import follow_up_rate

pytestmark = pytest.mark.django_db

SMALL = {"teams": 2, "systems": 5, "incidents": 50, "items": 100, "alerts": 2000}
YEAR = periods.year(2025)


def generate(**options) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("generate_history", stdout=out, stderr=err, **{"year": 2025, "seed": 7, **SMALL, **options})
    return out.getvalue(), err.getvalue()


@pytest.fixture
def generated():
    return generate()


def test_counts_and_progress(generated):
    out, err = generated
    assert Team.objects.count() == 2
    assert Team.objects.get(slug="payments").systems.count() >= 1  # every team has a system
    assert Incident.objects.count() == 50
    assert ActionItem.objects.count() == 100
    assert AlertOccurrence.objects.count() == 2000
    # One integration per team, routing its alerts to it.
    integrations = Integration.objects.order_by("pk")
    assert [(i.kind, i.default_team.slug) for i in integrations] == [
        ("alertmanager", "payments"),
        ("alertmanager", "cashier"),
    ]
    assert not AlertOccurrence.objects.exclude(team=F("integration__default_team")).exists()
    assert not AlertOccurrence.objects.exclude(team=F("system__team")).exists()
    for team in Team.objects.all():
        assert team.members.filter(role=Role.ENGINEER).count() == 5
        assert team.managers.filter(role=Role.MANAGER).count() == 1
    assert not User.objects.filter(role=Role.ENGINEER).first().has_usable_password()
    assert "Generated in" in out and "incidents 50" in out and "alerts 2,000" in out
    for phase in ("organisation", "incidents", "action items", "timeline", "alerts", "alert activities"):
        assert f"  {phase} " in err
    assert "rows/s" in err and "2025-01-01 00:00 .. 2026-01-01 00:00 (Asia/Shanghai)" in err


def test_incidents_keep_every_rule_and_the_policy_level(generated):
    policy = current_severity_policy()
    now = timezone.now()
    incidents = Incident.objects.prefetch_related("systems", "action_items")
    for incident in incidents:
        assert YEAR.start <= incident.occurred_at < YEAR.end
        validate_timestamps({name: getattr(incident, name) for name in TIMESTAMP_FIELDS}, now=now)
        facts = severity.ImpactFacts(
            tier=severity.most_critical_tier(s.tier for s in incident.systems.all()),
            impact=severity.impact_of(occurred_at=incident.occurred_at, recovered_at=incident.recovered_at, now=now),
            affected_users=incident.affected_users,
            affected_transactions=incident.affected_transactions,
            funds_loss=incident.funds_loss,
            data_or_security_breach=incident.data_or_security_breach,
            regulatory_reportable=incident.regulatory_reportable,
        )
        result = severity.classify(facts, policy.rules)
        assert (incident.level, incident.classified_level, incident.severity_matches) == (
            result.level,
            result.level,
            result.matches,
        )
        assert incident.severity_policy_id == policy.pk
        assert incident.recovery_target == timedelta(seconds=policy.recovery_targets[incident.level])
        items = list(incident.action_items.all())
        if incident.status == Status.CLOSED:
            assert incident.closed_at and not review_missing_sections(incident=incident)
            assert all(item.status in ActionItem.FINAL_STATUSES for item in items)
        expected = (
            Status.CLOSED
            if incident.closed_at
            else Status.RESOLVED
            if incident.resolved_at
            else Status.RECOVERED
            if incident.recovered_at
            else Status.OPEN
        )
        assert incident.status == expected
        assert incident.timeline.filter(kind="created").count() == 1

    levels = Counter(Incident.objects.values_list("level", flat=True))
    assert levels[Level.D] + levels[Level.C] > 3 * (levels[Level.B] + levels[Level.A])  # mostly D and C
    sources = Counter(Incident.objects.values_list("detection_source", flat=True))
    assert sources.most_common(1)[0][0] == DetectionSource.MONITORING


def test_items_and_alerts_are_consistent_and_measurable(generated):
    for item in ActionItem.objects.all():
        item.validate_constraints()  # waived with a reason; done and verified with completed_at
        if item.status in (ActionItem.Status.DONE, ActionItem.Status.VERIFIED):
            assert item.completed_at <= timezone.now()
        if item.status == ActionItem.Status.VERIFIED:
            assert item.verified_at >= item.completed_at and item.verified_by_id
    on_time = on_time_completion_by_team(period=YEAR, now=timezone.now())
    numerator = sum(n for n, _d, _r in on_time.values())
    denominator = sum(d for _n, d, _r in on_time.values())
    assert 0.6 < numerator / denominator < 0.95  # most on time, some late, some overdue

    rate = follow_up_rate(occurrences=AlertOccurrence.objects.all(), period=YEAR, now=timezone.now())["overall"]
    assert rate["received"] == 2000
    assert 0.6 < rate["rate"] < 0.98 and rate["excluded"] > 0 and rate["missed"] > 0
    assert rate["median_delay"] < 300

    # Every follow-up has its activity, of the kind the follow-up was.
    followed_up = AlertOccurrence.objects.filter(followed_up_at__isnull=False)
    assert AlertActivity.objects.count() == followed_up.count()
    kinds = Counter(AlertActivity.objects.values_list("kind", flat=True))
    assert kinds["acknowledged"] > kinds["commented"] > 0 and kinds["linked"] > 0 and kinds["resolved"] > 0
    linked = AlertOccurrence.objects.filter(incident__isnull=False).select_related("incident")
    assert linked.exists()
    for occurrence in linked:
        assert occurrence.incident.detection_source == DetectionSource.MONITORING
        assert occurrence.received_at == occurrence.incident.detected_at
    # Identity (integration, fingerprint, starts_at) is unique by constraint; a rule fires many times.
    assert AlertOccurrence.objects.values("fingerprint").distinct().count() < 2000


def test_a_second_run_refuses_and_append_adds(generated):
    with pytest.raises(CommandError, match="already holds incidents"):
        generate()
    assert Incident.objects.count() == 50

    first_run = list(Incident.objects.order_by("pk").values_list("title", "occurred_at", "level", "detection_source"))
    generate(append=True)
    assert Team.objects.count() == 4 and Incident.objects.count() == 100
    assert sorted(Team.objects.values_list("slug", flat=True)) == ["cashier", "cashier-2", "payments", "payments-2"]
    # Same seed and scale, same records.
    second_run = list(
        Incident.objects.order_by("pk").values_list("title", "occurred_at", "level", "detection_source")[50:]
    )
    assert second_run == first_run


def test_refuses_impossible_scales_and_future_years():
    with pytest.raises(CommandError, match="as many systems as teams"):
        generate(teams=3, systems=2)
    with pytest.raises(CommandError, match="starts after now"):
        generate(year=timezone.now().year + 1)
    assert not Team.objects.exists()


def test_default_window_is_the_last_twelve_whole_months_and_this_month_so_far():
    now = datetime(2026, 11, 22, 8, 3, tzinfo=UTC)
    with time_machine.travel(now, tick=False):
        window = history_window(year=None, now=timezone.now())
    assert window.start == datetime(2025, 10, 31, 16, tzinfo=UTC)  # 2025-11-01 00:00 in Asia/Shanghai
    assert window.end == now
    assert history_window(year=2025, now=now).end == datetime(2025, 12, 31, 16, tzinfo=UTC)
    with pytest.raises(HistoryRefused):
        history_window(year=2027, now=now)
