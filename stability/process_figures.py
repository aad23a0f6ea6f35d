"""The figures /metrics shows (stability.exposition) that no table records: what the webhooks answered,
counted by the web processes, and how long the reminder sweep took, timed by the worker that ran it.

Webhook answers are prometheus_client counters in the process that answered. With several processes on a
machine (gunicorn workers), set PROMETHEUS_MULTIPROC_DIR in their environment to an empty directory
(wiped before each start): every process then writes its counts there, and /metrics, on whichever process
answers it, adds them all up (prometheus_client's multiprocess mode). Without it each process shows its own
counts, which is right for one process (runserver, `make run`). Machines are scraped one by one (Prometheus
sums them): docs/metrics-endpoint.md.

The sweep runs on a Celery worker, often on another machine than the web: its timing is kept where every
process can read it, Redis when REDIS_URL is set, else a file under VAR_DIR (the embedded mode runs on one
machine).
"""

import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from prometheus_client import CollectorRegistry, Counter, disable_created_metrics
from prometheus_client.multiprocess import MultiProcessCollector

logger = logging.getLogger(__name__)

# No `_created` series next to each counter: Prometheus does not need them, and multiprocess mode has none.
disable_created_metrics()
# Kept out of prometheus_client's default registry: /metrics builds its own registry at each scrape.
_counters = CollectorRegistry(auto_describe=False)

WEBHOOK_NOTIFICATIONS = Counter(
    "stability_webhook_notifications",
    "Webhook notifications (POSTs) answered, by integration (empty: no known token), outcome (accepted, "
    "rejected, rate_limited) and reason (the refusal; empty when accepted).",
    ["integration", "outcome", "reason"],
    registry=_counters,
)
WEBHOOK_ALERTS = Counter(
    "stability_webhook_alerts",
    "Alerts in accepted webhook notifications, by integration and outcome (new occurrence, repeat of a "
    "known one, rejected: malformed and kept as a rejected delivery).",
    ["integration", "outcome"],
    registry=_counters,
)

# stability.ingestion.Refusal.RATE_LIMITED: its own outcome, every other refusal is "rejected".
RATE_LIMITED = "rate_limited"


def webhook_received(*, integration: str, new: int, repeated: int, rejected: int) -> None:
    """A notification accepted (its good alerts stored): counted with its alerts."""
    WEBHOOK_NOTIFICATIONS.labels(integration, "accepted", "").inc()
    for outcome, alerts in (("new", new), ("repeated", repeated), ("rejected", rejected)):
        if alerts:
            WEBHOOK_ALERTS.labels(integration, outcome).inc(alerts)


def webhook_refused(*, integration: str, reason: str) -> None:
    """A notification refused (nothing stored) for `reason`, a stability.ingestion.Refusal value."""
    outcome = RATE_LIMITED if reason == RATE_LIMITED else "rejected"
    WEBHOOK_NOTIFICATIONS.labels(integration, outcome, reason).inc()


def multiprocess_directory() -> str | None:
    """The directory of prometheus_client's multiprocess mode, when the processes were started with one."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def register_counters(registry: CollectorRegistry) -> None:
    """Puts the webhook counters into a scrape's registry: every process's (multiprocess mode), else this
    process's."""
    directory = multiprocess_directory()
    if directory:
        MultiProcessCollector(registry, path=directory)
    else:
        registry.register(_counters)


# --- the reminder sweep's timing -------------------------------------------------------------------


@dataclass(frozen=True)
class SweepTiming:
    """The sweeps that finished: how many, their total and last duration (seconds), when the last ended
    (epoch seconds)."""

    count: int
    total_seconds: float
    last_seconds: float
    last_finished_at: float


_SWEEP_KEY = "st:metrics:reminder-sweep"
_redis_client = None
_redis_client_lock = threading.Lock()


def _redis():
    global _redis_client
    if _redis_client is None:
        with _redis_client_lock:
            if _redis_client is None:
                import redis

                _redis_client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    return _redis_client


def _sweep_file() -> Path:
    return Path(settings.VAR_DIR) / "metrics" / "reminder-sweep.json"


def sweep_finished(*, seconds: float, finished_at: float) -> None:
    """Adds a finished sweep to the shared timing."""
    if settings.REDIS_URL:
        pipe = _redis().pipeline(transaction=True)
        pipe.hincrby(_SWEEP_KEY, "count", 1)
        pipe.hincrbyfloat(_SWEEP_KEY, "total_seconds", seconds)
        pipe.hset(_SWEEP_KEY, mapping={"last_seconds": repr(seconds), "last_finished_at": repr(finished_at)})
        pipe.execute()
        return
    path = _sweep_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    # One machine, a few processes: a lock file keeps two sweeps' read-and-write apart.
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        known = sweep_timing()
        written = {
            "count": (known.count if known else 0) + 1,
            "total_seconds": (known.total_seconds if known else 0.0) + seconds,
            "last_seconds": seconds,
            "last_finished_at": finished_at,
        }
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps(written))
        os.replace(partial, path)


def sweep_timing() -> SweepTiming | None:
    """The shared timing of the sweeps, or None before the first one finished."""
    if settings.REDIS_URL:
        stored = {key.decode(): value.decode() for key, value in _redis().hgetall(_SWEEP_KEY).items()}
    else:
        try:
            stored = json.loads(_sweep_file().read_text())
        except FileNotFoundError:
            return None
    if not stored:
        return None
    return SweepTiming(
        count=int(stored["count"]),
        total_seconds=float(stored["total_seconds"]),
        last_seconds=float(stored["last_seconds"]),
        last_finished_at=float(stored["last_finished_at"]),
    )


@contextmanager
def sweep_timed() -> Iterator[None]:
    """Times the sweep it wraps; a sweep that raises is not counted (its last-finished time then ages,
    which is what an alert on a stalled sweep watches). Failing to record never fails the sweep."""
    started = time.monotonic()
    yield
    try:
        sweep_finished(seconds=time.monotonic() - started, finished_at=time.time())
    except Exception:
        logger.warning("Cannot record the reminder sweep's timing", exc_info=True)


def forget_sweep_timing() -> None:
    """Tests: no sweep finished yet."""
    if settings.REDIS_URL:
        _redis().delete(_SWEEP_KEY)
    else:
        _sweep_file().unlink(missing_ok=True)
