"""Alert ingestion: IncomingAlerts become AlertOccurrence rows in a constant number of queries.

Identity is (integration, fingerprint, starts_at), enforced by a unique constraint; the rows of a
notification are written by one INSERT ... ON CONFLICT DO UPDATE, so a repeat notification, a
retry or a concurrent delivery of the same alert updates the one occurrence and never makes a
second. An alert sent without starts_at joins the open occurrence of its fingerprint, else opens
one starting at its receipt; at most one such receipt-started occurrence per (integration,
fingerprint) is open at a time (a partial unique constraint), and a delivery that loses that race
re-reads and joins the winner's.

receive() is the webhook's service: it checks the sender (stability.ingest_routing: what ingestion
routes by, a per-process snapshot; stability.ingest_rates: the rate windows), reads the body
(stability.formats) and stores it (alerts_ingest), returning Received or Refused with its reason for
the view to map to HTTP.
"""

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Field
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.guessing import token_failure, token_refusal
from accounts.tokens import digest_of
from stability import process_figures
from stability.formats import BodyError, IncomingAlert, RejectedAlert, read_body, storable
from stability.ingest_rates import over_rate_limit
from stability.ingest_routing import IntegrationRoute, Routing, integration_route, routing
from stability.models import AlertOccurrence, RejectedDelivery

KEPT_BODY_BYTES = 64 * 1024


@dataclass(frozen=True)
class Received:
    """A delivery stored: every accepted alert is in the database when this is returned."""

    accepted: int  # alerts stored, new or repeated
    new: int  # new occurrences
    repeated: int  # repeat notifications of known occurrences
    rejected: tuple[RejectedAlert, ...] = ()  # malformed alerts of the body, by index


class Refusal(StrEnum):
    """Why a delivery was refused, stored nothing (a rejected delivery is kept for some) and read no
    further: the checks run in this order, so the body of an unknown or refused sender is never read."""

    UNAUTHORISED = "unauthorised"  # no token, or one of no integration
    TOO_MANY_WRONG_TOKENS = "too_many_wrong_tokens"  # from this address (accounts.guessing)
    DISABLED = "disabled"
    WRONG_KIND = "wrong_kind"  # the token is of another kind's endpoint
    RATE_LIMITED = "rate_limited"  # over the integration's notifications a minute
    TOO_LARGE = "too_large"  # over INGEST_MAX_BODY_BYTES
    BAD_BODY = "bad_body"  # not JSON, or no alert list (formats.BodyError)


@dataclass(frozen=True)
class Refused:
    reason: Refusal
    detail: str  # in the active language
    retry_after: int | None = None  # seconds, for the two limits


def _open_starts(integration_id: int, fingerprints: set[str]) -> dict[str, datetime]:
    """starts_at of the open occurrence of each fingerprint (for sources that send no starts_at)."""
    rows = (
        AlertOccurrence.objects.filter(
            integration_id=integration_id, fingerprint__in=fingerprints, status=AlertOccurrence.Status.FIRING
        )
        .order_by("fingerprint", "-starts_at")
        .values_list("fingerprint", "starts_at")
    )
    found: dict[str, datetime] = {}
    for fingerprint, starts_at in rows:
        found.setdefault(fingerprint, starts_at)
    return found


def occurrence_columns() -> tuple[Field, ...]:
    """Every column of an AlertOccurrence row but its id, in the model's order: the one list the
    occurrence upsert below and bulk writers (stability.history) name their columns from."""
    return tuple(f for f in AlertOccurrence._meta.concrete_fields if not f.primary_key)


# A repeat refreshes what the source says now, counts the notification, and never undoes a resolution;
# received_at, the exclusion and the routing stay as first decided. Stamped with changed_at when a
# figure could change (stability.follow_up reads it): a first resolution, a renamed rule.
_ON_REPEAT = """
    last_received_at = excluded.last_received_at,
    notifications = {table}.notifications + 1,
    labels = excluded.labels, annotations = excluded.annotations, summary = excluded.summary,
    alertname = excluded.alertname, severity = excluded.severity,
    status = CASE WHEN {table}.status = 'resolved' THEN 'resolved' ELSE excluded.status END,
    ends_at = COALESCE({table}.ends_at, excluded.ends_at),
    resolved_at = COALESCE({table}.resolved_at, excluded.resolved_at),
    changed_at = CASE WHEN ({table}.resolved_at IS NULL AND excluded.resolved_at IS NOT NULL)
        OR {table}.alertname <> excluded.alertname THEN excluded.changed_at ELSE {table}.changed_at END
"""


def _json_rows(columns: tuple[Field, ...]) -> str:
    """A SELECT of the rows sent as one JSON array (the statement's single parameter), per vendor: the
    statement text never changes with the number of alerts, and there is one parameter to send instead
    of 20 per row (on PostgreSQL those were half the CPU of a 50-alert notification). A key absent from
    a row is NULL."""
    names = ", ".join(f.column for f in columns)
    if connection.vendor == "postgresql":
        record = ", ".join(f"{f.column} {f.db_type(connection)}" for f in columns)
        return f"SELECT {names} FROM json_to_recordset(%s::json) AS r({record})"
    # SQLite: json_extract gives an object as its JSON text, which is how a JSONField is stored there.
    # WHERE true: SQLite's grammar needs it before an ON CONFLICT that follows a SELECT.
    values = ", ".join(f"json_extract(value, '$.{f.column}')" for f in columns)
    return f"SELECT {values} FROM json_each(%s) WHERE true"


@functools.cache
def _upsert_statement(vendor: str) -> str:
    """INSERT ... SELECT ... ON CONFLICT (identity) DO UPDATE ... RETURNING notifications: one statement
    for any number of rows, atomic by itself, on PostgreSQL and SQLite alike (cached per vendor)."""
    columns = occurrence_columns()
    table = connection.ops.quote_name(AlertOccurrence._meta.db_table)
    return (
        f"INSERT INTO {table} ({', '.join(f.column for f in columns)}) {_json_rows(columns)} "
        f"ON CONFLICT (integration_id, fingerprint, starts_at) DO UPDATE SET {_ON_REPEAT.format(table=table)} "
        "RETURNING notifications"
    )


def _write(rows: list[dict]) -> int:
    """Upserts the rows in one statement; returns how many occurrences are new (counted once)."""
    # Instants as the backend stores them: PostgreSQL reads ISO 8601, SQLite compares its own text form.
    instant = datetime.isoformat if connection.vendor == "postgresql" else connection.ops.adapt_datetimefield_value
    payload = json.dumps(rows, ensure_ascii=False, default=instant)
    with connection.cursor() as cursor:
        cursor.execute(_upsert_statement(connection.vendor), [payload])
        return sum(1 for (notifications,) in cursor.fetchall() if notifications == 1)


def _route(alert: IncomingAlert, route: IntegrationRoute, config: Routing) -> tuple[int | None, int | None]:
    """(team id, system id): the system named by the first system label that names a known one, else the
    integration's default; the team named by the team label, else the system's team, else the default."""
    system_id = next(
        (
            config.systems[alert.labels[label]]
            for label in route.system_labels
            if alert.labels.get(label) in config.systems
        ),
        route.default_system_id,
    )
    team_id = (
        config.teams.get(alert.labels.get(route.team_label, ""))
        or config.system_teams.get(system_id)
        or route.default_team_id
    )
    return team_id, system_id


def _exclusion(
    alert: IncomingAlert, route: IntegrationRoute, config: Routing, *, system_id: int | None, now: datetime
) -> str:
    """Why the alert is left out of the follow-up figures, decided at its first receipt."""
    if route.is_test:
        return AlertOccurrence.Exclusion.TEST
    if alert.silenced:
        return AlertOccurrence.Exclusion.SILENCED
    if config.in_maintenance(system_id, now):
        return AlertOccurrence.Exclusion.MAINTENANCE
    return AlertOccurrence.Exclusion.NONE


# Deliveries of alerts without starts_at that lost the race to open an occurrence re-read and join the
# winner's; a third loss in a row would need three deliveries opening and resolving it meanwhile.
RECEIPT_START_ATTEMPTS = 3


def alerts_ingest(*, route: IntegrationRoute, alerts: list[IncomingAlert], now: datetime | None = None) -> Received:
    """Store the alerts of one notification (metrics.md, "Alerts"): a new occurrence per new
    (integration, fingerprint, starts_at), received_at set once; repeats only update. Exclusion
    (test integration, silenced, maintenance window) is decided at first receipt. Alerts without
    starts_at join the open occurrence of their fingerprint, else open one starting now, never two
    however concurrent (constraint alert_occurrence_one_open_receipt_started)."""
    # To the whole second, like every stored instant: follow-up delays are exact seconds.
    now = (now or timezone.now()).replace(microsecond=0)
    config = routing()
    missing = {a.fingerprint for a in alerts if a.starts_at is None}
    if not missing:  # the hot path (Alertmanager, Grafana): one statement
        rows = _rows(alerts, route=route, config=config, now=now, open_starts={})
        new = _write(rows)
        return Received(accepted=len(rows), new=new, repeated=len(rows) - new)
    for attempt in range(1, RECEIPT_START_ATTEMPTS + 1):
        try:
            # A savepoint inside a caller's transaction; a failed attempt leaves nothing behind.
            with transaction.atomic():
                rows = _rows(alerts, route=route, config=config, now=now, open_starts=_open_starts(route.id, missing))
                new = _write(rows)
            return Received(accepted=len(rows), new=new, repeated=len(rows) - new)
        except IntegrityError:
            # Another delivery opened one of these occurrences since we looked: join it.
            if attempt == RECEIPT_START_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


def _rows(
    alerts: list[IncomingAlert],
    *,
    route: IntegrationRoute,
    config: Routing,
    now: datetime,
    open_starts: dict[str, datetime],
) -> list[dict]:
    by_identity: dict[tuple[str, datetime], tuple[IncomingAlert, bool]] = {}
    for alert in alerts:
        receipt_started = alert.starts_at is None and alert.fingerprint not in open_starts
        starts_at = alert.starts_at or open_starts.get(alert.fingerprint) or now
        by_identity[(alert.fingerprint, starts_at)] = (alert, receipt_started)  # the last word of the body wins

    rows = []
    for (fingerprint, starts_at), (alert, receipt_started) in by_identity.items():
        team_id, system_id = _route(alert, route, config)
        resolved = alert.status == AlertOccurrence.Status.RESOLVED
        rows.append(
            {
                "integration_id": route.id,
                "fingerprint": fingerprint,
                "starts_at": starts_at,
                "status": alert.status,
                "alertname": alert.labels.get("alertname", "")[:200],
                "severity": alert.labels.get(route.severity_label, "")[:50],
                "summary": alert.annotations.get("summary") or alert.annotations.get("description") or "",
                "labels": alert.labels,
                "annotations": alert.annotations,
                "generator_url": alert.generator_url,
                "team_id": team_id,
                "system_id": system_id,
                "received_at": now,
                "last_received_at": now,
                "notifications": 1,
                "excluded": _exclusion(alert, route, config, system_id=system_id, now=now),
                "ends_at": alert.ends_at if resolved else None,
                "resolved_at": now if resolved else None,
                "changed_at": now,
                "receipt_started": receipt_started,
            }
        )
    return rows


def rejected_delivery_record(
    *, integration_id: int | None, reason: str, body: bytes, remote_addr: str = ""
) -> RejectedDelivery:
    """Kept for admins as text PostgreSQL can store, whatever the bytes (a NUL byte is not valid JSON
    but is a valid body to reject)."""
    return RejectedDelivery.objects.create(
        integration_id=integration_id,
        reason=storable(reason),
        body=storable(body[:KEPT_BODY_BYTES].decode("utf-8", errors="replace")),
        remote_addr=storable(remote_addr[:64]),
    )


def _sender_route(*, token: str | None, sender: HttpRequest) -> IntegrationRoute | Refused:
    """The integration of the token, or why not. A wrong token counts against the sender's address; an
    address already refused in this process is answered from memory, before any lookup."""
    refused = token_refusal(scope="webhook", request=sender) if token else None
    route = integration_route(token_digest=digest_of(token)) if token and refused is None else None
    if route is not None:
        return route
    if token and (wait := refused or token_failure(scope="webhook", request=sender)):
        return Refused(
            Refusal.TOO_MANY_WRONG_TOKENS,
            _("Too many wrong tokens from this address; retry in %(wait)s s.") % {"wait": wait},
            retry_after=wait,
        )
    return Refused(Refusal.UNAUTHORISED, _("Unknown or missing integration token."))


def _route_refusal(route: IntegrationRoute, *, kind: str) -> Refused | None:
    if not route.enabled:
        return Refused(Refusal.DISABLED, _("This integration is disabled."))
    if route.kind != kind:
        return Refused(
            Refusal.WRONG_KIND,
            _("This token belongs to an integration of kind %(kind)s; post to /api/v1/integrations/%(kind)s/.")
            % {"kind": route.kind},
        )
    wait = over_rate_limit(route)
    if wait is not None:
        return Refused(
            Refusal.RATE_LIMITED,
            _("Over this integration's rate of %(rate)s notifications a minute; retry in %(wait)s s.")
            % {"rate": route.rate_limit_per_minute, "wait": wait},
            retry_after=wait,
        )
    return None


def receive(
    *, kind: str, token: str | None, sender: HttpRequest, body_up_to: Callable[[int], bytes | None]
) -> Received | Refused:
    """One delivery to the webhook of `kind` (contracts.md, "HTTP"): the token's integration, its state,
    kind and rate, then the body, read by `body_up_to(limit)` (None: larger than limit) only once all of
    those pass. Stores the body's good alerts (alerts_ingest) and keeps a rejected delivery for admins
    when the body, or an alert in it, is refused. `sender` is read for its address only. Every answer is
    counted for /metrics (stability.process_figures)."""
    route = _sender_route(token=token, sender=sender)
    if isinstance(route, Refused):
        process_figures.webhook_refused(integration="", reason=route.reason)
        return route
    outcome = _receive_from(route, kind=kind, sender=sender, body_up_to=body_up_to)
    if isinstance(outcome, Refused):
        process_figures.webhook_refused(integration=route.name, reason=outcome.reason)
    else:
        process_figures.webhook_received(
            integration=route.name, new=outcome.new, repeated=outcome.repeated, rejected=len(outcome.rejected)
        )
    return outcome


def _receive_from(
    route: IntegrationRoute, *, kind: str, sender: HttpRequest, body_up_to: Callable[[int], bytes | None]
) -> Received | Refused:
    if refused := _route_refusal(route, kind=kind):
        return refused
    limit, remote = settings.INGEST_MAX_BODY_BYTES, sender.META.get("REMOTE_ADDR", "")
    body = body_up_to(limit)
    if body is None:
        too_large = _("The body is larger than %(limit)s bytes.") % {"limit": limit}
        rejected_delivery_record(integration_id=route.id, reason=too_large, body=b"", remote_addr=remote)
        return Refused(Refusal.TOO_LARGE, too_large)
    try:
        alerts, rejected = read_body(kind, body)
    except BodyError as exc:
        rejected_delivery_record(integration_id=route.id, reason=str(exc), body=body, remote_addr=remote)
        return Refused(Refusal.BAD_BODY, str(exc))
    stored = alerts_ingest(route=route, alerts=alerts)
    if rejected:
        reason = "; ".join(f"alert {r.index}: {r.reason}" for r in rejected)
        rejected_delivery_record(integration_id=route.id, reason=reason, body=body, remote_addr=remote)
    return replace(stored, rejected=tuple(rejected))
