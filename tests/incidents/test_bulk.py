"""incidents.bulk: rows stored as given, in the model's columns, ids reserved ahead; a record loaded from
the row of one made by the services reads back the same. COPY on PostgreSQL, INSERTs elsewhere."""

import json
from datetime import timedelta

import pytest
from django.db import IntegrityError, models, transaction

from incidents import bulk
from incidents.models import ActionItem, Incident, Level, TimelineEntry
from stability.models import AlertOccurrence
from tests.factories import ActionItemFactory, IncidentFactory, UserFactory

pytestmark = pytest.mark.django_db


def _row_of(record: models.Model, **changes) -> dict:
    """The bulk row of an existing record: every field by name, relations as ids, JSON as text."""
    row = {}
    for f in record._meta.concrete_fields:
        value = f.value_from_object(record)
        row[f.name] = json.dumps(value) if isinstance(f, models.JSONField) else value
    return {**row, **changes}


def _fields(record: models.Model) -> dict:
    return {f.name: f.value_from_object(record) for f in record._meta.concrete_fields if not f.primary_key}


def test_columns_are_the_models_own():
    names = [f.name for f in bulk.bulk_columns(Incident)]
    assert names == [f.name for f in Incident._meta.concrete_fields if not f.primary_key]
    assert [f.name for f in bulk.bulk_columns(Incident, with_id=True)] == ["id", *names]
    # A column the database fills (db_default) is left to it.
    assert "receipt_started" not in {f.name for f in bulk.bulk_columns(AlertOccurrence)}


def test_ids_are_reserved_ahead_free_and_in_order():
    existing = IncidentFactory()
    assert bulk.ids_reserve(model=Incident, count=0) == []
    ids = bulk.ids_reserve(model=Incident, count=3)
    assert len(set(ids)) == 3 and ids == sorted(ids) and min(ids) > existing.pk
    assert not Incident.objects.filter(pk__in=ids).exists()


def test_an_incident_its_systems_item_and_timeline_load_as_the_services_wrote_them():
    original = IncidentFactory(recovered_at=None)
    item = ActionItemFactory(incident=original, owner=UserFactory())
    [pk] = bulk.ids_reserve(model=Incident, count=1)
    [item_pk] = bulk.ids_reserve(model=ActionItem, count=1)
    phases = []

    def progress(phase, done, total):
        phases.append((phase, done, total))

    assert bulk.incidents_bulk_load(rows=[_row_of(original, id=pk, title="Copy")], total=1, progress=progress) == 1
    systems = [{"incident": pk, "system": s.pk} for s in original.systems.all()]
    assert bulk.incident_systems_bulk_load(rows=systems) == len(systems)
    assert bulk.action_items_bulk_load(rows=[_row_of(item, id=item_pk, incident=pk)]) == 1
    entries = [_row_of(e, incident=pk) for e in original.timeline.all()]
    assert bulk.timeline_entries_bulk_load(rows=entries) == len(entries)

    copy = Incident.objects.get(pk=pk)
    assert {**_fields(copy), "title": original.title} == _fields(original)
    assert list(copy.systems.all()) == list(original.systems.all())
    assert {**_fields(ActionItem.objects.get(pk=item_pk)), "incident": original.pk} == _fields(item)
    assert TimelineEntry.objects.filter(incident=copy).count() == len(entries) > 0
    assert (phases[0], phases[-1]) == (("incidents", 0, 1), ("incidents", 1, 1))


def test_a_row_missing_a_column_is_refused():
    incident = IncidentFactory()
    row = _row_of(incident.timeline.first())
    del row["text"]
    with pytest.raises(KeyError), transaction.atomic():
        bulk.timeline_entries_bulk_load(rows=[_row_of(incident.timeline.first()), row])
    assert TimelineEntry.objects.filter(incident=incident).count() == 1


def test_rows_are_stored_unclassified_the_callers_duty_but_the_database_rules_hold():
    """Nothing is classified or timelined: a level the facts do not give is stored as given. The
    database's own constraints still hold (detected before occurred is refused)."""
    original = IncidentFactory()
    assert original.level != Level.A
    [pk, other] = bulk.ids_reserve(model=Incident, count=2)
    bulk.incidents_bulk_load(rows=[_row_of(original, id=pk, level=Level.A)])
    loaded = Incident.objects.get(pk=pk)
    assert (loaded.level, loaded.classified_level) == (Level.A, original.classified_level)
    assert not loaded.timeline.exists()
    early = _row_of(original, id=other, detected_at=original.occurred_at - timedelta(minutes=5))
    with pytest.raises(IntegrityError), transaction.atomic():
        bulk.incidents_bulk_load(rows=[early])
