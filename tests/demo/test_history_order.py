"""demo.history orders the alert rows by received_at holding only SORT_RUN of them at once (sorted runs
spilled to temporary files, then merged): the rows come out exactly as sorted() would give them, equal
times in the order they were made, whatever the run size."""

import random
from datetime import UTC, datetime, timedelta

import pytest

from demo import history

START = datetime(2026, 11, 1, tzinfo=UTC)


def rows(n: int, *, seed: int = 3) -> list[dict]:
    rng = random.Random(seed)
    # Few distinct times (0 to 49 minutes), so that most rows share their time with others.
    return [
        {"received_at": START + timedelta(minutes=rng.randrange(50)), "made": i, "labels": '{"team": "payments"}'}
        for i in range(n)
    ]


@pytest.mark.parametrize(
    ("n", "run"),
    [
        (0, 4),  # nothing
        (3, 4),  # fewer than a run: sorted in memory, nothing spilled
        (4, 4),  # exactly one run, spilled
        (10, 4),  # two full runs and a part
        (2_500, 7),  # many runs, each pickled in batches (below)
        (5_000, 2_000),  # runs of several batches
    ],
)
def test_rows_come_out_as_sorted_would_give_them(monkeypatch, n, run):
    monkeypatch.setattr(history, "SORT_RUN", run)
    monkeypatch.setattr(history, "_SPILL_BATCH", 3)
    made = rows(n)
    ordered = list(history._in_received_order(iter(made)))
    assert ordered == sorted(made, key=lambda row: row["received_at"])
    # Ties keep the order they were made in (sorted() is stable): the identity of each row's time.
    for before, after in zip(ordered, ordered[1:], strict=False):
        assert (before["received_at"], before["made"]) < (after["received_at"], after["made"])


def test_spilled_runs_hold_whole_rows(monkeypatch):
    """Rows come back equal field by field (times with their zone, strings), not only in order."""
    monkeypatch.setattr(history, "SORT_RUN", 2)
    made = [
        {"received_at": START + timedelta(seconds=s), "labels": "收银台支付超时", "followed_up_at": None}
        for s in (5, 1, 3)
    ]
    ordered = list(history._in_received_order(made))
    assert [row["received_at"].tzinfo for row in ordered] == [UTC, UTC, UTC]
    assert ordered == [made[1], made[2], made[0]]
