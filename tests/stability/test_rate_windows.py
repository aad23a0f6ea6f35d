"""The per-minute webhook counts shared through Redis (stability.ingest_rates._SharedWindows) and its client."""

import uuid

import pytest

from stability.ingest_rates import _redis, _SharedWindows
from tests.conftest import needs_redis

pytestmark = [needs_redis]


@pytest.fixture
def key():
    name = f"st:ingest-rate:test-{uuid.uuid4().hex}:0"
    yield name
    _redis().delete(name)


def test_a_small_limit_is_counted_exactly_across_processes(key):
    # limit 60: 1 % of it is 0 requests, so every request synchronises with Redis.
    first, second = _SharedWindows(), _SharedWindows()
    assert [first.count(key, limit=60), second.count(key, limit=60), first.count(key, limit=60)] == [1, 2, 3]
    assert int(_redis().get(key)) == 3
    assert 0 < _redis().ttl(key) <= 120


def test_a_large_limit_lags_redis_by_at_most_one_percent_per_process(key):
    # limit 1,000: each process may hold back 10 requests (1 %) before it synchronises.
    first, second = _SharedWindows(), _SharedWindows()
    seen_by_first = [first.count(key, limit=1000) for _ in range(10)]
    assert seen_by_first == list(range(1, 11))
    assert _redis().get(key) is None  # nothing sent yet: 10 <= 10

    assert first.count(key, limit=1000) == 11  # the 11th goes over 1 %: 11 sent in one INCRBY
    assert int(_redis().get(key)) == 11
    # The other process sees the shared total when it next synchronises (its own 11th request).
    seen_by_second = [second.count(key, limit=1000) for _ in range(11)]
    assert seen_by_second[:10] == list(range(1, 11))
    assert seen_by_second[10] == 22
    assert int(_redis().get(key)) == 22


def test_a_quarter_second_without_sync_sends_the_count(key, monkeypatch):
    windows = _SharedWindows()
    clock = [1000.0]
    monkeypatch.setattr("stability.ingest_rates.time.monotonic", lambda: clock[0])
    assert windows.count(key, limit=100_000) == 1  # first request of the window: 1 <= 1,000
    assert _redis().get(key) is None
    clock[0] += 0.25
    assert windows.count(key, limit=100_000) == 2
    assert int(_redis().get(key)) == 2


def test_threads_starting_together_share_one_redis_client(monkeypatch, settings):
    """A second client, dropped, closed the connections the first thread was using (a 500)."""
    import threading

    from stability import ingest_rates

    settings.REDIS_URL = "redis://127.0.0.1:6379/13"  # built, never connected here
    monkeypatch.setattr(ingest_rates, "_redis_client", None)
    barrier = threading.Barrier(8)
    clients = []

    def first_request():
        barrier.wait(timeout=10)
        clients.append(ingest_rates._redis())

    threads = [threading.Thread(target=first_request) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(clients) == 8
    assert len({id(client) for client in clients}) == 1
