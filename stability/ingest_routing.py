"""What ingestion routes by: integrations, systems, teams and maintenance windows, read into a per-process
snapshot, so a notification costs no query to route (stability.ingestion writes it in one statement).

Every change to one of them bumps IngestConfigVersion in its own transaction (stability.signals); a
process compares its snapshot's version with the database's at most once a second
(VERSION_CHECK_SECONDS) and reloads when they differ, so a change made by any process applies
everywhere within about a second; a token the snapshot does not know is looked up in the database
before the answer is 401, so a new integration works at once on every process. The snapshot is
reloaded every INGEST_CONFIG_TTL seconds anyway, for writes that bypass the signals (bulk_create).

Measured by bench/ingest.py (--only 1 --duration 10, back-to-back pairs on a busy shared machine):
gunicorn CPU per 1-alert notification 0.79 and 1.56 ms with the snapshot, 3.63 and 3.60 ms reading
it per request (5 queries before the upsert; 699 and 245 against 121 and 138 alerts/s).
"""

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from incidents.models import System, Team
from stability.models import IngestConfigVersion, Integration, MaintenanceWindow


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
