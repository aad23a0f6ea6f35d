"""stability.bulk: past occurrences stored as given in the ingestion's own columns, and each follow-up's
activity derived in one statement, of the kind alerts_follow_up writes."""

import json
from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from stability import bulk
from stability.ingestion import occurrence_columns
from stability.models import AlertActivity, AlertOccurrence
from stability.services import integration_create
from tests.factories import IncidentFactory, SystemFactory, TeamFactory, UserFactory

pytestmark = pytest.mark.django_db


def _row(integration, n: int, *, received, **changes) -> dict:
    system = SystemFactory(code="cashier", team=integration.default_team)
    row = {f.name: None for f in occurrence_columns()}
    row.update(
        integration=integration.pk,
        fingerprint=f"fp-{n}",
        starts_at=received - timedelta(seconds=30),
        status=AlertOccurrence.Status.FIRING,
        alertname="支付成功率下降",
        severity="critical",
        summary="",
        labels=json.dumps({"alertname": "支付成功率下降"}, ensure_ascii=False),
        annotations="{}",
        generator_url="",
        team=integration.default_team.pk,
        system=system.pk,
        received_at=received,
        last_received_at=received,
        notifications=1,
        excluded="",
        changed_at=received,
        receipt_started=False,
    )
    return {**row, **changes}


def test_occurrences_and_the_activity_of_each_follow_up():
    team = TeamFactory()
    integration, _token = integration_create(kind="alertmanager", name="am", default_team=team)
    person = UserFactory()
    incident = IncidentFactory()
    received = (timezone.now() - timedelta(days=3)).replace(microsecond=0)
    followed = received + timedelta(minutes=2)
    follow = {"followed_up_at": followed, "followed_up_by": person.pk, "changed_at": followed}
    rows = [
        _row(integration, 1, received=received, acknowledged_at=followed, acknowledged_by=person.pk, **follow),
        _row(integration, 2, received=received, incident=incident.pk, **follow),
        _row(
            integration, 3, received=received, status="resolved", resolved_at=followed, resolved_by=person.pk, **follow
        ),
        _row(integration, 4, received=received, **follow),  # a comment
        _row(integration, 5, received=received),  # nobody followed it up
    ]
    assert bulk.alert_occurrences_bulk_load(rows=rows, total=len(rows)) == 5
    first = AlertOccurrence.objects.get(fingerprint="fp-1")
    assert (first.received_at, first.followed_up_by, first.labels) == (
        received,
        person,
        {"alertname": "支付成功率下降"},
    )
    assert first.receipt_started is False

    assert bulk.alert_follow_up_activities_bulk_load(integration_ids=[integration.pk]) == 4
    kinds = dict(AlertActivity.objects.values_list("occurrence__fingerprint", "kind"))
    assert kinds == {
        "fp-1": AlertActivity.Kind.ACKNOWLEDGED,
        "fp-2": AlertActivity.Kind.LINKED,
        "fp-3": AlertActivity.Kind.RESOLVED,
        "fp-4": AlertActivity.Kind.COMMENTED,
    }
    assert set(AlertActivity.objects.values_list("at", "by")) == {(followed, person.pk)}
    assert AlertActivity.objects.get(kind=AlertActivity.Kind.LINKED).incident == incident
    assert AlertActivity.objects.get(kind=AlertActivity.Kind.COMMENTED).text
    assert bulk.alert_follow_up_activities_bulk_load(integration_ids=[]) == 0


def test_a_duplicate_identity_is_refused_not_merged():
    team = TeamFactory()
    integration, _token = integration_create(kind="alertmanager", name="am", default_team=team)
    received = (timezone.now() - timedelta(days=1)).replace(microsecond=0)
    row = _row(integration, 1, received=received)
    with pytest.raises(IntegrityError), transaction.atomic():
        bulk.alert_occurrences_bulk_load(rows=[row, dict(row)])
    assert not AlertOccurrence.objects.exists()
