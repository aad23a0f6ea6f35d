"""Bulk loads of records written in the past: the write path of a history at scale (demo.history),
one function per record kind, beside the services rather than through them.

A service writes one record as life does: it validates, classifies, locks, bumps the version and adds
the timeline row of each real change. At a million rows that is days of work, so these functions
take rows the caller has already made consistent and only store them: on PostgreSQL with COPY
(psycopg 3), elsewhere with batched INSERTs. Each says what it leaves to its caller. Call them inside
the caller's transaction; the database's constraints still hold for every row.

A row is a mapping from field name (a relation by its name, holding the related id) to the value
as Python holds it, JSON already as text. The columns are the model's own (`bulk_columns`), so a
new field of the model is a KeyError here, not a silently missing column.
"""

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import islice
from operator import itemgetter
from typing import Any

from django.db import connection, models

from incidents.models import (
    ActionItem,
    Incident,
    IncidentReview,
    IncidentReviewSection,
    ReviewRevision,
    TimelineEntry,
)

Progress = Callable[[str, int, int], None]  # phase, rows done, rows in the phase (-1: not known)
Row = Mapping[str, Any]

BATCH = 2_000  # rows per INSERT batch off PostgreSQL
PROGRESS_EVERY = 20_000  # rows between progress reports


def _quiet(phase: str, done: int, total: int) -> None:
    return None


def bulk_columns(model: type[models.Model], *, with_id: bool = False) -> list[models.Field]:
    """The columns a bulk load of `model` writes: every concrete field in the model's order, but the id
    unless the caller reserved ids (`ids_reserve`) and the fields the database fills (db_default)."""
    return [
        f
        for f in model._meta.concrete_fields
        if (with_id or not f.primary_key) and not (f.has_db_default() and not f.primary_key)
    ]


def ids_reserve(*, model: type[models.Model], count: int) -> list[int]:
    """`count` primary keys of `model` taken from its table's sequence, for rows that refer to each other
    before they are written (an item names its incident's id)."""
    if count == 0:
        return []
    table = model._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)", [table, count]
            )
            return [row[0] for row in cursor.fetchall()]
        # SQLite: one writer at a time (the caller's transaction holds the lock from its first write).
        cursor.execute(f"SELECT COALESCE(MAX(id), 0) FROM {connection.ops.quote_name(table)}")
        first = cursor.fetchone()[0] + 1
    return list(range(first, first + count))


def rows_load(
    *,
    model: type[models.Model],
    rows: Iterable[Row],
    with_id: bool = False,
    fields: Sequence[models.Field] | None = None,
    phase: str = "",
    total: int = -1,
    progress: Progress | None = None,
) -> int:
    """Store `rows` (mappings by field name, see the module's docstring) into `model`'s table as they are:
    no validation, no defaults but the database's, no signals, no save(). Returns the rows written.
    The columns are `bulk_columns(model, with_id=with_id)` unless `fields` names them. The building
    block of the per-kind functions below and of stability.bulk."""
    report = progress or _quiet
    fields = list(fields) if fields is not None else bulk_columns(model, with_id=with_id)
    values = map(itemgetter(*(f.name for f in fields)), rows)
    table = connection.ops.quote_name(model._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    report(phase, 0, total)
    write = _copy if connection.vendor == "postgresql" else _insert
    done = write(table, columns, fields, values, report=lambda done: report(phase, done, total))
    report(phase, done, max(total, done))
    return done


def _copy(table: str, columns: str, fields: list[models.Field], values: Iterable[tuple], *, report) -> int:
    """COPY ... FROM STDIN (psycopg 3 adapts each Python value); `report(done)` every PROGRESS_EVERY rows."""
    done = 0
    connection.ensure_connection()
    # Django's errors (an IntegrityError for a broken constraint), as from the INSERTs elsewhere.
    with (
        connection.wrap_database_errors,
        connection.connection.cursor() as cursor,
        cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy,
    ):
        for row in values:
            copy.write_row(row)
            done += 1
            if done % PROGRESS_EVERY == 0:
                report(done)
    return done


def _insert(table: str, columns: str, fields: list[models.Field], values: Iterator[tuple], *, report) -> int:
    """Batched executemany of INSERT, each value prepared as the field would store it."""
    # JSON columns arrive as text already.
    prepare = [
        None if isinstance(f, models.JSONField) else (lambda v, f=f: f.get_db_prep_save(v, connection)) for f in fields
    ]
    statement = f"INSERT INTO {table} ({columns}) VALUES ({', '.join(['%s'] * len(fields))})"
    done = 0
    with connection.cursor() as cursor:
        while batch := list(islice(values, BATCH)):
            cursor.executemany(
                statement,
                [tuple(v if p is None else p(v) for p, v in zip(prepare, row, strict=True)) for row in batch],
            )
            done += len(batch)
            if done % PROGRESS_EVERY < BATCH:
                report(done)
    return done


def incidents_bulk_load(*, rows: Iterable[Row], total: int = -1, progress: Progress | None = None) -> int:
    """Store past incidents, each row with every field including its reserved id (`ids_reserve`).

    Unlike incidents.services.incident_create it does NOT classify (the row carries level,
    classified_level, severity_matches, severity_policy and recovery_target as incidents.severity gave
    them under the current policy), derive the status from the timestamps, validate their order, write
    any timeline row, or link systems: the caller computes those, then loads the systems
    (`incident_systems_bulk_load`) and the timeline (`timeline_entries_bulk_load`) itself."""
    return rows_load(model=Incident, rows=rows, with_id=True, phase="incidents", total=total, progress=progress)


def incident_systems_bulk_load(*, rows: Iterable[Row], total: int = -1, progress: Progress | None = None) -> int:
    """Store which systems each incident impacted: rows {"incident": id, "system": id}. Unlike a change
    of systems through the services it does NOT reclassify the incident: the caller classified it with
    these systems' most critical tier."""
    return rows_load(
        model=Incident.systems.through, rows=rows, phase="incident systems", total=total, progress=progress
    )


def action_items_bulk_load(*, rows: Iterable[Row], total: int = -1, progress: Progress | None = None) -> int:
    """Store past closed-loop items, each row with every field including its reserved id.

    Unlike incidents.services.action_item_create / action_item_transition it does NOT check the steps
    (who may verify or waive, in which order), write the items' timeline rows, or reopen or close the
    incident's loop: the caller gives each item a consistent status and timestamps, closes only
    incidents whose items are all verified or waived, and loads the timeline rows."""
    return rows_load(model=ActionItem, rows=rows, with_id=True, phase="action items", total=total, progress=progress)


def timeline_entries_bulk_load(*, rows: Iterable[Row], total: int = -1, progress: Progress | None = None) -> int:
    """Store timeline rows (ids from the table): what the services would have written for each change,
    which the caller derives from the records it loaded. Nothing is checked against the records."""
    return rows_load(model=TimelineEntry, rows=rows, phase="timeline", total=total, progress=progress)


def reviews_bulk_load(*, rows: Iterable[Row], progress: Progress | None = None) -> int:
    """Store past reviews (复盘), written once: rows {"incident": id, "by": user id, "at": when, "sections":
    {key: Markdown}}, each a review at version 1 whose sections are at version 1 with their revision.
    Unlike incidents.reviews.review_save it does NOT write the timeline row or check the keys; the
    caller gives each closed incident the sections its team requires. Returns the reviews written."""
    rows = list(rows)
    review_ids = ids_reserve(model=IncidentReview, count=len(rows))
    reviews = [
        {
            "id": pk,
            "incident": row["incident"],
            "version": 1,
            "updated_by": row["by"],
            "created_at": row["at"],
            "updated_at": row["at"],
        }
        for pk, row in zip(review_ids, rows, strict=True)
    ]
    rows_load(model=IncidentReview, rows=reviews, with_id=True, phase="reviews", total=len(reviews), progress=progress)
    pairs = [
        (pk, row, key, text) for pk, row in zip(review_ids, rows, strict=True) for key, text in row["sections"].items()
    ]
    section_ids = ids_reserve(model=IncidentReviewSection, count=len(pairs))
    sections = [
        {
            "id": section_id,
            "review": pk,
            "key": key,
            "text": text,
            "version": 1,
            "updated_by": row["by"],
            "updated_at": row["at"],
        }
        for section_id, (pk, row, key, text) in zip(section_ids, pairs, strict=True)
    ]
    rows_load(model=IncidentReviewSection, rows=sections, with_id=True, phase="review sections", progress=progress)
    revisions = (
        {"section": s["id"], "version": 1, "text": s["text"], "by": s["updated_by"], "at": s["updated_at"]}
        for s in sections
    )
    rows_load(model=ReviewRevision, rows=revisions, phase="review revisions", progress=progress)
    return len(reviews)
