from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.exceptions import ValidationError

from incidents import services
from incidents.models import Incident, TimelineEntry
from incidents.selectors import current_severity_policy
from tests.factories import IncidentFactory, SystemFactory, UserFactory, write_review

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


@pytest.fixture
def cashier():
    return SystemFactory(code="cashier", tier="P0")


@pytest.fixture
def alice():
    return UserFactory(username="alice")


def severity_rows(incident):
    return list(incident.timeline.filter(kind="severity").values_list("old_value", "new_value", "author"))


def test_unrecovered_incident_rises_as_impact_grows(cashier):
    with time_machine.travel(T0, tick=False) as clock:
        incident = IncidentFactory(systems=[cashier], occurred_at=T0, detected_at=T0)
        assert incident.level == "D"
        clock.move_to(T0 + timedelta(minutes=9, seconds=59))
        assert services.reevaluate_unrecovered() == []
        clock.move_to(T0 + timedelta(minutes=10))
        assert [i.pk for i in services.reevaluate_unrecovered()] == [incident.pk]
        clock.move_to(T0 + timedelta(minutes=30))
        services.reevaluate_unrecovered()
        clock.move_to(T0 + timedelta(minutes=61))
        services.reevaluate_unrecovered()
    incident.refresh_from_db()
    assert incident.level == "A"
    # Every automatic change is on the record, made by the system (no author).
    assert severity_rows(incident) == [("D", "C", None), ("C", "B", None), ("B", "A", None)]


def test_recovery_freezes_the_impact(cashier, alice):
    with time_machine.travel(T0, tick=False) as clock:
        incident = IncidentFactory(systems=[cashier], occurred_at=T0, detected_at=T0)
        clock.move_to(T0 + timedelta(minutes=20))
        incident = services.incident_transition(incident_id=incident.pk, by=alice, action="recover")
        assert (incident.status, incident.recovered_at, incident.level) == (
            "recovered",
            T0 + timedelta(minutes=20),
            "C",
        )
        clock.move_to(T0 + timedelta(hours=5))
        assert services.reevaluate_unrecovered() == []
    incident.refresh_from_db()
    assert incident.level == "C"


def test_override_sticks_through_reevaluation_until_cleared(cashier, alice):
    with time_machine.travel(T0, tick=False) as clock:
        incident = IncidentFactory(systems=[cashier], occurred_at=T0, detected_at=T0)
        incident = services.severity_override_set(
            incident_id=incident.pk, by=alice, level="B", reason="bank channel down for all merchants"
        )
        assert (incident.level, incident.classified_level, incident.recovery_target) == ("B", "D", timedelta(hours=1))
        clock.move_to(T0 + timedelta(minutes=15))
        services.reevaluate_unrecovered()
        incident.refresh_from_db()
        assert (incident.level, incident.classified_level) == ("B", "C")
        incident = services.severity_override_clear(incident_id=incident.pk, by=alice, reason="facts caught up")
    assert (incident.level, incident.level_override) == ("C", "")
    assert list(incident.timeline.filter(kind="severity").values_list("field", "old_value", "new_value", "text")) == [
        ("level_override", "D", "B", "bank channel down for all merchants"),
        ("level_override", "B", "C", "facts caught up"),
    ]


def test_override_needs_a_reason(cashier, alice):
    incident = IncidentFactory(systems=[cashier])
    with pytest.raises(ValidationError) as caught:
        services.severity_override_set(incident_id=incident.pk, by=alice, level="A", reason="  ")
    assert "reason" in caught.value.message_dict


def test_policy_edit_applies_to_existing_incidents_only_when_reevaluated(alice):
    p1 = SystemFactory(code="bill", tier="P1")
    with time_machine.travel(T0, tick=False):
        incident = IncidentFactory(
            systems=[p1], occurred_at=T0 - timedelta(minutes=20), detected_at=T0, recovered_at=T0
        )
        assert incident.level == "D"  # P1 for 20 min
        rules = dict(current_severity_policy().rules)
        rules["C"] = [*rules["C"], {"kind": "tier_impact", "tier": "P1", "minutes": 15}]
        v2 = services.severity_policy_create(
            by=alice, rules=rules, recovery_targets={"A": 1800, "B": 3600, "C": 7200, "D": 86400}
        )
        assert v2.version == 2
        # A fact change re-classifies under the incident's own version: still D.
        incident = services.incident_update(
            incident_id=incident.pk, by=alice, expected_version=incident.version, changes={"affected_users": 10}
        )
        assert (incident.level, incident.severity_policy.version) == ("D", 1)
        result = services.incidents_reevaluate(incidents=Incident.objects.filter(pk=incident.pk), by=alice)
    assert result == {"evaluated": 1, "level_changed": 1}
    incident.refresh_from_db()
    assert (incident.level, incident.severity_policy.version, incident.recovery_target) == ("C", 2, timedelta(hours=2))
    # New incidents use the newest version.
    assert IncidentFactory(systems=[p1]).severity_policy.version == 2


def test_update_with_stale_version_writes_nothing(cashier, alice):
    incident = IncidentFactory(systems=[cashier])
    services.incident_update(incident_id=incident.pk, by=alice, expected_version=1, changes={"title": "first"})
    rows = TimelineEntry.objects.count()
    with pytest.raises(services.StaleVersionError) as caught:
        services.incident_update(incident_id=incident.pk, by=alice, expected_version=1, changes={"title": "second"})
    assert caught.value.current_version == 2
    incident.refresh_from_db()
    assert (incident.title, incident.version, TimelineEntry.objects.count()) == ("first", 2, rows)


def test_update_that_changes_nothing_does_nothing(cashier, alice):
    incident = IncidentFactory(systems=[cashier], title="same")
    rows = TimelineEntry.objects.count()
    incident = services.incident_update(
        incident_id=incident.pk, by=alice, expected_version=1, changes={"title": "same", "systems": [cashier]}
    )
    assert (incident.version, TimelineEntry.objects.count()) == (1, rows)


def test_update_records_each_field_change(cashier, alice):
    bill = SystemFactory(code="bill", tier="P1")
    with time_machine.travel(T0, tick=False):
        incident = IncidentFactory(systems=[cashier], title="old title")
        services.incident_update(
            incident_id=incident.pk,
            by=alice,
            expected_version=1,
            changes={"title": "new title", "systems": [cashier, bill], "affected_users": 5},
        )
    rows = list(
        incident.timeline.filter(kind="change").values_list("field", "old_value", "new_value", "author__username")
    )
    assert sorted(rows) == [
        ("affected_users", "0", "5", "alice"),
        ("systems", "cashier", "bill, cashier", "alice"),
        ("title", "old title", "new title", "alice"),
    ]


def test_failed_validation_leaves_the_incident_untouched(cashier, alice):
    incident = IncidentFactory(systems=[cashier], occurred_at=T0, detected_at=T0 + timedelta(minutes=1))
    with pytest.raises(ValidationError) as caught:
        services.incident_update(
            incident_id=incident.pk,
            by=alice,
            expected_version=1,
            changes={"title": "changed", "detected_at": T0 - timedelta(minutes=1)},
        )
    assert list(caught.value.message_dict) == ["detected_at"]
    incident.refresh_from_db()
    assert (incident.title, incident.version) != ("changed", 2)
    assert incident.timeline.filter(kind="change").count() == 0


def test_lifecycle_with_reopen(cashier, alice):
    with time_machine.travel(T0, tick=False) as clock:
        incident = IncidentFactory(systems=[cashier], occurred_at=T0, detected_at=T0)
        clock.move_to(T0 + timedelta(minutes=5))
        services.incident_transition(incident_id=incident.pk, by=alice, action="resolve")
        write_review(incident, by=alice)
        incident = services.incident_transition(incident_id=incident.pk, by=alice, action="close")
        assert incident.status == "closed"
        assert incident.recovered_at == incident.resolved_at == incident.closed_at == T0 + timedelta(minutes=5)
        with pytest.raises(ValidationError) as caught:
            services.incident_transition(incident_id=incident.pk, by=alice, action="recover")
        assert "action" in caught.value.message_dict
        incident = services.incident_transition(incident_id=incident.pk, by=alice, action="reopen")
    assert (incident.status, incident.recovered_at, incident.resolved_at, incident.closed_at) == (
        "open",
        None,
        None,
        None,
    )
    statuses = list(incident.timeline.filter(kind="status").values_list("old_value", "new_value"))
    assert statuses == [("open", "resolved"), ("resolved", "closed"), ("closed", "open")]


def test_recovered_at_is_owned_by_transitions(cashier, alice):
    incident = IncidentFactory(systems=[cashier])
    with pytest.raises(ValidationError) as caught:
        services.incident_update(
            incident_id=incident.pk,
            by=alice,
            expected_version=1,
            changes={"recovered_at": incident.occurred_at + timedelta(minutes=3)},
        )
    assert "recovered_at" in caught.value.message_dict


def test_retroactive_entry_and_timestamps_to_the_second(cashier, alice):
    with time_machine.travel(T0, tick=False):
        incident = IncidentFactory(
            systems=[cashier],
            occurred_at=T0 - timedelta(hours=3, microseconds=-700),
            detected_at=T0 - timedelta(hours=3) + timedelta(minutes=4),
            recovered_at=T0 - timedelta(hours=2),
            resolved_at=T0 - timedelta(hours=1),
        )
    assert incident.status == "resolved"
    assert incident.occurred_at == T0 - timedelta(hours=3)
    assert incident.time_to_recover == timedelta(hours=1) and incident.time_to_detect == timedelta(minutes=4)
    assert incident.time_to_respond is None


def test_future_timestamps(cashier):
    with time_machine.travel(T0, tick=False):
        IncidentFactory(systems=[cashier], occurred_at=T0 + timedelta(minutes=5), detected_at=T0 + timedelta(minutes=5))
        with pytest.raises(ValidationError) as caught:
            IncidentFactory(systems=[cashier], occurred_at=T0, detected_at=T0 + timedelta(minutes=5, seconds=1))
    assert list(caught.value.message_dict) == ["detected_at"]


def test_detection_after_recovery_is_legal(cashier):
    """A data error found days later by a customer."""
    with time_machine.travel(T0, tick=False):
        incident = IncidentFactory(
            systems=[cashier],
            occurred_at=T0 - timedelta(days=3),
            recovered_at=T0 - timedelta(days=3) + timedelta(minutes=1),
            detected_at=T0 - timedelta(days=1),
            detection_source="customer",
        )
    assert incident.time_to_detect == timedelta(days=2)


def test_notes_keep_their_time_order(cashier, alice):
    with time_machine.travel(T0, tick=False):
        incident = IncidentFactory(
            systems=[cashier], occurred_at=T0 - timedelta(hours=1), detected_at=T0 - timedelta(hours=1)
        )
        services.timeline_note_add(
            incident_id=incident.pk, by=alice, text="16:40 switched to backup channel", at=T0 - timedelta(minutes=20)
        )
        services.timeline_note_add(
            incident_id=incident.pk, by=alice, text="16:10 paged the bank", at=T0 - timedelta(minutes=50)
        )
    texts = [e.text for e in incident.timeline.filter(kind="note").order_by("at", "id")]
    assert texts == ["16:10 paged the bank", "16:40 switched to backup channel"]
