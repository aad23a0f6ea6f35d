"""An incident's durations are defined once (incidents.durations.INCIDENT_DURATIONS): the model, the
selectors' SQL and a values() row agree."""

from datetime import UTC, datetime, timedelta

import pytest

from incidents import durations
from incidents.models import Incident
from incidents.selectors import incident_metrics
from tests.factories import IncidentFactory

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)


def test_the_model_a_values_row_and_the_selectors_measure_the_same():
    incident = IncidentFactory(
        occurred_at=T0,
        detected_at=T0 + timedelta(minutes=2),
        responded_at=T0 + timedelta(minutes=5),
        recovered_at=T0 + timedelta(minutes=40),
    )
    row = Incident.objects.values("occurred_at", "detected_at", "responded_at", "recovered_at", "resolved_at").get()
    expected = {
        "time_to_detect": timedelta(minutes=2),
        "time_to_respond": timedelta(minutes=3),
        "time_to_recover": timedelta(minutes=40),
        "time_to_resolve": None,
    }
    for name, duration in expected.items():
        assert getattr(incident, name) == duration
        assert durations.incident_duration(name, row) == duration
    metrics = incident_metrics(incidents=Incident.objects.all())
    assert metrics["time_to_recover"]["mean"] == 2400
    assert metrics["time_to_resolve"]["count"] == 0


def test_each_duration_is_described_by_its_timestamps():
    assert durations.described("time_to_recover") == "recovered_at - occurred_at, seconds"
    assert durations.described("time_to_respond") == "responded_at - detected_at, seconds"
