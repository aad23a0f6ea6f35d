"""Bulk loads of alerts received and followed up in the past: the alert side of a history at scale
(demo.history) and of the demo, one function per record kind, beside the ingestion and the
services rather than through them (see incidents.bulk for the rows and the writer)."""

from collections.abc import Iterable

from django.db import connection

from incidents.bulk import Progress, Row, rows_load
from stability.ingestion import occurrence_columns
from stability.models import AlertActivity, AlertOccurrence


def alert_occurrences_bulk_load(*, rows: Iterable[Row], total: int = -1, progress: Progress | None = None) -> int:
    """Store past alert occurrences: each row a mapping with every column of
    stability.ingestion.occurrence_columns() (the list the webhook's upsert names too), relations by id.

    Unlike stability.ingestion.alerts_ingest it does NOT route (team and system are given), decide the
    exclusion (silenced, maintenance, test), merge repeats into an existing occurrence (a duplicate
    identity is an IntegrityError), or clean the source's strings; and it stamps no changed_at of its
    own: the rows carry the last write's time. Follow-ups given in the rows have no activity yet: load
    those with `alert_follow_up_activities_bulk_load`. The follow-up day counts are not touched: run
    stability.follow_up.refresh_day_counts() after the transaction's loads, as the beat task would.
    Write the rows in received_at order, as ingestion does, so a month's alerts lie together on disk."""
    return rows_load(
        model=AlertOccurrence, rows=rows, fields=occurrence_columns(), phase="alerts", total=total, progress=progress
    )


def alert_follow_up_activities_bulk_load(*, integration_ids: list[int], progress: Progress | None = None) -> int:
    """Give every followed-up occurrence of these integrations the activity row of its follow-up, in one
    statement: a person's resolution (resolved_by), else a link to an incident, else an acknowledgement,
    else a comment; dated followed_up_at, by followed_up_by, as stability.services.alerts_follow_up
    writes them. It does NOT look for activities already there: call it once, after loading the
    occurrences, for integrations whose occurrences were all bulk loaded. Returns the rows written."""
    if not integration_ids:
        return 0
    report = progress or (lambda phase, done, total: None)
    q = connection.ops.quote_name
    occurrence = {f.name: q(f.column) for f in AlertOccurrence._meta.concrete_fields}
    activity = {f.name: q(f.column) for f in AlertActivity._meta.concrete_fields}
    kind = AlertActivity.Kind
    columns = ", ".join(activity[name] for name in ("occurrence", "kind", "at", "by", "text", "incident"))
    statement = f"""
        INSERT INTO {q(AlertActivity._meta.db_table)} ({columns})
        SELECT {occurrence["id"]},
               CASE WHEN {occurrence["resolved_by"]} IS NOT NULL THEN %s
                    WHEN {occurrence["incident"]} IS NOT NULL THEN %s
                    WHEN {occurrence["acknowledged_at"]} IS NOT NULL THEN %s
                    ELSE %s END,
               {occurrence["followed_up_at"]},
               {occurrence["followed_up_by"]},
               CASE WHEN {occurrence["resolved_by"]} IS NULL AND {occurrence["incident"]} IS NULL
                         AND {occurrence["acknowledged_at"]} IS NULL THEN %s ELSE '' END,
               {occurrence["incident"]}
        FROM {q(AlertOccurrence._meta.db_table)}
        WHERE {occurrence["followed_up_at"]} IS NOT NULL
          AND {occurrence["integration"]} IN ({", ".join(["%s"] * len(integration_ids))})
    """
    report("alert activities", 0, -1)  # unknown until written
    with connection.cursor() as cursor:
        cursor.execute(
            statement,
            [kind.RESOLVED, kind.LINKED, kind.ACKNOWLEDGED, kind.COMMENTED, "已跟进，观察中", *integration_ids],
        )
        written = cursor.rowcount
    report("alert activities", written, written)
    return written
