"""Alert ingestion: IncomingAlerts become AlertOccurrence rows in a constant number of queries.

Identity is (integration, fingerprint, starts_at), enforced by a unique constraint; the rows of a
notification are written by one INSERT ... ON CONFLICT DO UPDATE, so a repeat notification, a
retry or a concurrent delivery of the same alert updates the one occurrence and never makes a
second. An alert sent without starts_at joins the open occurrence of its fingerprint, else opens
one starting at its receipt; at most one such receipt-started occurrence per (integration,
fingerprint) is open at a time (a partial unique constraint), and a delivery that loses that race
re-reads and joins the winner's.

What ingestion needs of the configuration (integrations, systems, teams, maintenance windows) is
read into a per-process snapshot. Every change to one of them bumps IngestConfigVersion in its own
transaction; a process compares its snapshot's version with the database's at most once a second
(VERSION_CHECK_SECONDS) and reloads when they differ, so a change made by any process applies
everywhere within about a second; a token the snapshot does not know is looked up in the database
before the answer is 401, so a new integration works at once on every process. The snapshot is
reloaded every INGEST_CONFIG_TTL seconds anyway, for writes that bypass the signals (bulk_create).
"""

import functools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Field
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.guessing import token_failure, token_refusal
from accounts.tokens import digest_of
from incidents.models import System, Team
from stability.formats import BodyError, IncomingAlert, RejectedAlert, read_body, storable
from stability.models import AlertOccurrence, IngestConfigVersion, Integration, MaintenanceWindow, RejectedDelivery

KEPT_BODY_BYTES = 64 * 1024


@dataclass(frozen=True)
class IntegrationRoute:
    id: int
    kind: str
    name: str
    enabled: bool
    is_test: bool
    default_team_id: int | None
    default_system_id: int | None
    team_label: str
    system_labels: tuple[str, ...]
    severity_label: str
    rate_limit_per_minute: int


@dataclass
class Routing:
    integrations: dict[str, IntegrationRoute]  # by token digest
    systems: dict[str, int]  # code -> system id
    system_teams: dict[int, int]  # system id -> its team id
    teams: dict[str, int]  # slug -> team id
    windows: dict[int, list[tuple[datetime, datetime]]]  # system id -> [starts_at, ends_at) not yet over
    version: int = 0  # IngestConfigVersion when loaded
    loaded_at: float = field(default_factory=time.monotonic)
    checked_at: float = field(default_factory=time.monotonic)  # last compared with the database's version

    def in_maintenance(self, system_id: int | None, moment: datetime) -> bool:
        return any(start <= moment < end for start, end in self.windows.get(system_id, ()))


_routing: Routing | None = None
_routing_lock = threading.Lock()
# How often a process asks the database whether its routing snapshot is stale: the delay before a
# change (a disabled integration, a new system) applies on every process. Measured by bench/ingest.py:
# one primary-key read a second per process, nothing per request.
VERSION_CHECK_SECONDS = 1.0


def invalidate_routing(**_kwargs) -> None:
    """This process drops its snapshot (tests; a save made here applies here at once)."""
    global _routing
    _routing = None


def routing_changed(**_kwargs) -> None:
    """Connected to saves and deletions of integrations, systems, teams and maintenance windows: bumps the
    version in the saving transaction, so other processes see the change when it is committed."""
    invalidate_routing()
    if not IngestConfigVersion.objects.filter(pk=1).update(version=F("version") + 1):
        IngestConfigVersion.objects.get_or_create(pk=1, defaults={"version": 1})
    transaction.on_commit(invalidate_routing)


def _config_version() -> int:
    return IngestConfigVersion.objects.filter(pk=1).values_list("version", flat=True).first() or 0


def _load_routing(now: datetime) -> Routing:
    default_limit = settings.INGEST_RATE_LIMIT_PER_MINUTE
    version = _config_version()  # read first: a change committed while loading makes the next check reload
    integrations = {
        i.token_digest: IntegrationRoute(
            id=i.pk,
            kind=i.kind,
            name=i.name,
            enabled=i.enabled,
            is_test=i.is_test,
            default_team_id=i.default_team_id,
            default_system_id=i.default_system_id,
            team_label=i.team_label,
            system_labels=tuple(i.system_labels),
            severity_label=i.severity_label,
            rate_limit_per_minute=i.rate_limit_per_minute or default_limit,
        )
        for i in Integration.objects.all()
    }
    windows: dict[int, list[tuple[datetime, datetime]]] = {}
    for system_id, start, end in MaintenanceWindow.objects.filter(ends_at__gt=now).values_list(
        "system_id", "starts_at", "ends_at"
    ):
        windows.setdefault(system_id, []).append((start, end))
    systems = System.objects.values_list("code", "pk", "team_id")
    return Routing(
        integrations=integrations,
        systems={code: pk for code, pk, _team in systems},
        system_teams={pk: team_id for _code, pk, team_id in systems},
        teams=dict(Team.objects.values_list("slug", "pk")),
        windows=windows,
        version=version,
    )


def _stale(current: Routing | None, moment: float) -> bool:
    return current is None or moment - current.loaded_at > settings.INGEST_CONFIG_TTL


def routing(*, reload: bool = False) -> Routing:
    """This process's snapshot, reloaded when another process's change is committed (within about
    VERSION_CHECK_SECONDS), when this process saved one, every INGEST_CONFIG_TTL, or on `reload`."""
    global _routing
    current, moment = _routing, time.monotonic()
    if reload or _stale(current, moment) or moment - current.checked_at >= VERSION_CHECK_SECONDS:
        with _routing_lock:
            current, moment = _routing, time.monotonic()
            if reload or _stale(current, moment):
                current = _routing = _load_routing(timezone.now())
            elif moment - current.checked_at >= VERSION_CHECK_SECONDS:
                if _config_version() != current.version:
                    current = _routing = _load_routing(timezone.now())
                else:
                    current.checked_at = moment
    return current


def integration_route(*, token_digest: str) -> IntegrationRoute | None:
    """The integration of a token, known to this process's snapshot or else to the database: an
    integration created a moment ago on another process works at once. An unknown token costs one
    indexed read."""
    route = routing().integrations.get(token_digest)
    if route is None and Integration.objects.filter(token_digest=token_digest).exists():
        route = routing(reload=True).integrations.get(token_digest)
    return route


_redis_client = None


def _redis():
    """One client per process (building one per request was a tenth of a webhook's time)."""
    global _redis_client
    if _redis_client is None:
        import redis

        _redis_client = redis.Redis.from_url(settings.REDIS_URL)
    return _redis_client


class _SharedWindows:
    """This process's view of the per-minute counts kept in Redis.

    A request counts itself here and sends the process's uncounted requests to Redis (one INCRBY)
    only when they reach 1 % of the limit or a quarter of a second has passed, so the busy path
    costs no network round trip. What Redis knows then lags each process by at most 1 % of the
    limit and a quarter second: a limit of 60 is counted exactly (every request synchronises), one
    of 120,000 a minute may be passed by 1,200 per process. Measured by bench/ingest.py, the round
    trip per request was a fifth of gunicorn's CPU per 1-alert notification.
    """

    SYNC_SECONDS = 0.25

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._windows: dict[str, list] = {}  # key -> [total last seen in Redis, uncounted, last sync]

    def reset(self) -> None:
        with self._lock:
            self._windows.clear()

    def count(self, key: str, *, limit: int) -> int:
        """This request's place in the window (1 = first), as well as this process knows it."""
        now = time.monotonic()
        with self._lock:
            window = self._windows.get(key)
            if window is None:
                if len(self._windows) > 1000:  # windows of past minutes
                    self._windows.clear()
                window = self._windows[key] = [0, 0, now]
            window[1] += 1
            if window[1] <= limit // 100 and now - window[2] < self.SYNC_SECONDS:
                return window[0] + window[1]
            uncounted, window[1], window[2] = window[1], 0, now
        pipe = _redis().pipeline(transaction=False)
        pipe.incrby(key, uncounted)
        pipe.expire(key, 120)
        total, _ = pipe.execute()
        with self._lock:
            window[0] = max(window[0], total)
            return window[0] + window[1]


_shared_windows = _SharedWindows()


def reset_rate_counters() -> None:
    """Forget this process's share of the rate windows (tests start each with none counted)."""
    _shared_windows.reset()


def _count_in_window(key: str, *, limit: int) -> int:
    if settings.REDIS_URL:
        return _shared_windows.count(key, limit=limit)
    if cache.add(key, 1, timeout=120):  # the embedded mode: per process
        return 1
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, timeout=120)
        return 1


def over_rate_limit(route: IntegrationRoute, *, now: float | None = None) -> int | None:
    """Fixed one-minute windows counted in Redis when configured (shared by every process, see
    _SharedWindows), else in this process's cache. Returns the seconds to wait when the sender is
    over its rate, else None."""
    now = time.time() if now is None else now
    minute = int(now // 60)
    limit = route.rate_limit_per_minute
    if _count_in_window(f"st:ingest-rate:{route.id}:{minute}", limit=limit) > limit:
        return max(1, 60 * (minute + 1) - int(now))
    return None


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
# figure could change (stability.day_counts): a first resolution, a renamed rule.
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
        if route.is_test:
            excluded = AlertOccurrence.Exclusion.TEST
        elif alert.silenced:
            excluded = AlertOccurrence.Exclusion.SILENCED
        elif config.in_maintenance(system_id, now):
            excluded = AlertOccurrence.Exclusion.MAINTENANCE
        else:
            excluded = AlertOccurrence.Exclusion.NONE
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
                "excluded": excluded,
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
    when the body, or an alert in it, is refused. `sender` is read for its address only."""
    route = _sender_route(token=token, sender=sender)
    if isinstance(route, Refused):
        return route
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
