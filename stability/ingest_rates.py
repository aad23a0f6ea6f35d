"""The per-integration rate of webhook notifications: fixed one-minute windows, counted in Redis when
it is configured (shared by every process), else in this process's cache (the embedded mode)."""

import threading
import time

from django.conf import settings
from django.core.cache import cache

from stability.ingest_routing import IntegrationRoute

_redis_client = None
_redis_client_lock = threading.Lock()


def _redis():
    """One client per process (building one per request was a tenth of a webhook's time). Built under a
    lock: two threads' first requests each built one, and the client dropped closed its connections as
    it was collected, under the other thread's command (a 500 at a worker's start, seen by bench/ingest.py)."""
    global _redis_client
    if _redis_client is None:
        with _redis_client_lock:
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
    of 120,000 a minute may be passed by 1,200 per process. Measured by bench/ingest.py (--only 1
    --duration 10, back-to-back pairs on a busy shared machine): gunicorn CPU per 1-alert notification
    0.80 and 0.93 ms this way, 0.96 and 1.18 ms with an INCR round trip per request, a fifth more.
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
