"""The follow-up day counts (stability.follow_up): the figures read from them are those of counting
every occurrence, before and after each kind of write that can change them, and before and after the
beat's refresh (readers never write: until it runs, what changed is counted from the occurrences).

November 2026 in Asia/Shanghai (UTC+8) is [2026-10-31T16:00Z, 2026-11-30T16:00Z). NOW is
2026-11-30T15:58Z (23:58 local): November 1-29 are settled (they ended more than a 300 s window
before NOW), November 30 is not, so every figure below mixes day counts and occurrences.
"""

import json
import re
from datetime import UTC, datetime, timedelta
from itertools import count

import pytest
import time_machine
from django.db import connection
from django.db.models import Q
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from incidents import periods
from incidents.periods import Period
from stability import follow_up, tasks
from stability.models import AlertDayCount, AlertDayCountState, AlertOccurrence
from stability.selectors import follow_up_breakdown, follow_up_rate, follow_up_trend, health_scores
from stability.services import alerts_follow_up, integration_create
from tests.factories import SystemFactory, TeamFactory, UserFactory

pytestmark = pytest.mark.django_db

OCTOBER, NOVEMBER = periods.month(2026, 10), periods.month(2026, 11)
NOW = datetime(2026, 11, 30, 15, 58, tzinfo=UTC)
_fingerprints = count(1)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
def world():
    payments = TeamFactory(slug="payments", name="Payments")
    risk = TeamFactory(slug="risk", name="Risk")
    cashier = SystemFactory(code="cashier", tier="P0", team=payments)
    ledger = SystemFactory(code="ledger", tier="P2", team=risk)
    integration, token = integration_create(kind="generic", name="generic")
    return {
        "payments": payments,
        "risk": risk,
        "cashier": cashier,
        "ledger": ledger,
        "integration": integration,
        "token": token,
    }


def alert(world, team, system, received_at, delay, *, alertname="DiskFull", **fields):
    """One occurrence received at `received_at`, followed up `delay` seconds later (None: never). Written
    now (changed_at is the clock's), as readers and refresh_day_counts() look at what changed since the
    last refresh."""
    return AlertOccurrence.objects.create(
        integration=world["integration"],
        fingerprint=f"fp-{next(_fingerprints)}",
        starts_at=received_at - timedelta(seconds=30),
        received_at=received_at,
        last_received_at=received_at,
        alertname=alertname,
        team=world[team],
        system=world[system],
        followed_up_at=None if delay is None else received_at + timedelta(seconds=delay),
        **fields,
    )


@pytest.fixture
def alerts(world):
    return {
        # Nov 3 local (Nov 2 16:00Z - Nov 3 16:00Z): payments/cashier, 60 s and 301 s and never.
        "in_time": alert(world, "payments", "cashier", utc(2026, 11, 3, 1), 60),
        "late": alert(world, "payments", "cashier", utc(2026, 11, 3, 2), 301),
        "never": alert(world, "payments", "cashier", utc(2026, 11, 3, 3), None),
        # Nov 4 local: risk/ledger, 300 s (in time, inclusive) under another rule; one silenced.
        "edge": alert(world, "risk", "ledger", utc(2026, 11, 4, 1), 300, alertname="LedgerLag"),
        "silenced": alert(
            world, "risk", "ledger", utc(2026, 11, 4, 2), None, alertname="LedgerLag", excluded="silenced"
        ),
        # Oct 31 16:30Z is Nov 1 00:30 local: November's, on its first day.
        "first_day": alert(world, "payments", "cashier", utc(2026, 10, 31, 16, 30), 10),
        # Oct 31 15:30Z is Oct 31 23:30 local: October's.
        "october": alert(world, "payments", "cashier", utc(2026, 10, 31, 15, 30), None),
        # Nov 30 local, not settled at NOW: one followed up, one pending (received 60 s before NOW).
        "today": alert(world, "risk", "ledger", utc(2026, 11, 30, 10), 100),
        "pending": alert(world, "risk", "ledger", NOW - timedelta(seconds=60), None),
    }


def figures(key: str, *, now: datetime = NOW) -> dict:
    """November's figures for each dimension read through the day counts, checked against counting
    every occurrence (follow_up_rate), and the trend of October and November likewise: first as the
    day counts stand (what changed since the last refresh counted from the occurrences), then after the
    beat's refresh (read from the day counts)."""
    before = _checked_figures(key, now=now)
    follow_up.refresh_day_counts(now)
    after = _checked_figures(key, now=now)
    assert before == after
    return after


def _checked_figures(key: str, *, now: datetime) -> dict:
    breakdown = follow_up_breakdown(period=NOVEMBER, dimensions=("team", "system", "alertname"), now=now)
    everything = AlertOccurrence.objects.all()
    for dimension in ("team", "system", "alertname"):
        counted = follow_up_rate(
            occurrences=everything, period=NOVEMBER, group_by=dimension, now=now, percentiles=False
        )
        assert breakdown[dimension] == counted["groups"], dimension
    trend = follow_up_trend(periods=[OCTOBER, NOVEMBER], now=now)
    for point, period in zip(trend, (OCTOBER, NOVEMBER), strict=True):
        counted = follow_up_rate(occurrences=everything, period=period, now=now, percentiles=False)["overall"]
        assert {k: v for k, v in point.items() if k != "period"} == counted
    return {group["key"]: group for group in breakdown[key]}


def test_settled_days_are_counted_once_and_read_with_the_rest(alerts):
    payments = figures("team")["payments"]
    # payments in November: first_day (10 s), in_time (60 s) in time; late (301 s) and never missed.
    assert (payments["in_time"], payments["denominator"], payments["followed_up"]) == (2, 4, 3)
    assert payments["rate"] == 0.5
    risk = figures("team")["risk"]
    # risk: edge (300 s, in time) and today (100 s) in time; silenced excluded; pending not yet counted.
    assert (risk["in_time"], risk["denominator"], risk["excluded"], risk["pending"]) == (2, 2, 1, 1)
    # The settled days with alerts are counted; November 30 (not settled at NOW) is not.
    rows = {(row.day.isoformat(), row.alertname): row for row in AlertDayCount.objects.all()}
    assert sorted(rows) == [
        ("2026-10-31", "DiskFull"),
        ("2026-11-01", "DiskFull"),
        ("2026-11-03", "DiskFull"),
        ("2026-11-04", "LedgerLag"),
    ]
    nov3 = rows[("2026-11-03", "DiskFull")]
    assert (nov3.received, nov3.denominator, nov3.in_time, nov3.followed_up) == (3, 3, 1, 2)
    nov4 = rows[("2026-11-04", "LedgerLag")]
    assert (nov4.received, nov4.excluded, nov4.denominator, nov4.in_time) == (2, 1, 1, 1)
    assert AlertDayCountState.objects.get().counted_until.isoformat() == "2026-11-30"


def test_a_late_follow_up_of_a_counted_day_is_counted_again(alerts):
    figures("team")
    alerts_follow_up(occurrence_ids=[alerts["never"].pk], by=UserFactory(), action="acknowledge")
    payments = figures("team")["payments"]
    # never is followed up now, weeks late: followed up 3 -> 4, still missed (in time stays 2 of 4).
    assert (payments["in_time"], payments["denominator"], payments["followed_up"]) == (2, 4, 4)
    nov3 = AlertDayCount.objects.get(day="2026-11-03")
    assert (nov3.followed_up, nov3.in_time) == (3, 1)


def test_an_occurrence_written_into_a_counted_day_is_counted(world, alerts):
    figures("team")
    alert(world, "payments", "cashier", utc(2026, 11, 3, 4), 30)
    payments = figures("team")["payments"]
    assert (payments["in_time"], payments["denominator"]) == (3, 5)


def test_a_rule_renamed_by_a_repeat_notification_is_counted_under_its_new_name(client, world):
    body = {
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "DiskFull", "team": "payments", "system": "cashier"},
                "fingerprint": "disk-1",
                "startsAt": "2026-11-03T00:59:00Z",
            }
        ]
    }

    def post(moment, name):
        body["alerts"][0]["labels"]["alertname"] = name
        with time_machine.travel(moment, tick=False):
            answer = client.post(
                "/api/v1/integrations/generic/",
                json.dumps(body),
                content_type="application/json",
                HTTP_AUTHORIZATION=f"Bearer {world['token']}",
            )
        assert answer.status_code in (200, 202), answer.content

    # The clock as the server saw it: received on November 3, looked at, repeated at NOW, looked at.
    post(utc(2026, 11, 3, 1), "DiskFull")
    with time_machine.travel(NOW, tick=False):
        assert list(figures("alertname")) == ["DiskFull"]
    post(NOW + timedelta(seconds=30), "DiskAlmostFull")  # the same occurrence, repeated under a new name
    with time_machine.travel(NOW + timedelta(seconds=40), tick=False):
        assert list(figures("alertname")) == ["DiskAlmostFull"]
    assert list(AlertDayCount.objects.values_list("alertname", flat=True)) == ["DiskAlmostFull"]


def test_other_rules_count_everything_again(alerts):
    figures("team")
    with override_settings(FOLLOW_UP_WINDOW_SECONDS=600):
        payments = figures("team")["payments"]
    # A 600 s window: late (301 s) is in time now; 3 of 4.
    assert (payments["in_time"], payments["denominator"]) == (3, 4)
    assert AlertDayCountState.objects.get().rules["window_seconds"] == 600
    # And back.
    assert figures("team")["payments"]["in_time"] == 2


def test_flapping_exclusion_from_the_day_counts(world, alerts):
    # Resolved by the source 60 s after receipt, never followed up: flapping when the setting is on.
    alert(world, "payments", "cashier", utc(2026, 11, 3, 5), None, resolved_at=utc(2026, 11, 3, 5, 1))
    assert figures("team")["payments"]["denominator"] == 5
    with override_settings(FOLLOW_UP_FLAPPING_SECONDS=120):
        payments = figures("team")["payments"]
    assert (payments["denominator"], payments["flapping_excluded"]) == (4, 1)


def test_a_report_as_of_an_earlier_moment_reads_only_what_was_settled_then(alerts):
    figures("team")  # counted up to November 29 as of NOW
    earlier = utc(2026, 11, 3, 2, 3)  # 10:03 local on Nov 3: Nov 1-2 read as day counts, the rest not
    payments = figures("team", now=earlier)["payments"]
    # The records as they stand, judged as of then: never (received 03:00Z, after `earlier`, not followed
    # up) is pending; first_day and in_time in time, late missed (followed up after 301 s): 2 of 3.
    assert (payments["received"], payments["pending"], payments["denominator"], payments["in_time"]) == (4, 1, 3, 2)


def test_a_period_not_cut_at_midnight_is_counted_from_the_occurrences(alerts):
    follow_up.refresh_day_counts(NOW)
    zone_noon = utc(2026, 11, 3, 4)  # 12:00 local
    odd = Period("range", zone_noon - timedelta(hours=4), utc(2026, 11, 4, 16))
    breakdown = follow_up_breakdown(period=odd, dimensions=("team",), now=NOW)
    counted = follow_up_rate(
        occurrences=AlertOccurrence.objects.all(), period=odd, group_by="team", now=NOW, percentiles=False
    )
    assert breakdown["team"] == counted["groups"]
    # [Nov 3 08:00, Nov 5 00:00) local: payments' in_time, late, never; risk's edge and silenced.
    assert [(g["key"], g["received"]) for g in breakdown["team"]] == [("payments", 3), ("risk", 2)]


def test_refresh_runs_the_same_statements_whatever_there_is_to_count(alerts):
    with CaptureQueriesContext(connection) as first:
        follow_up.refresh_day_counts(NOW)  # counts everything
    with CaptureQueriesContext(connection) as again:
        follow_up.refresh_day_counts(NOW)  # nothing new
    assert len(first) == len(again)
    assert AlertDayCount.objects.count() == 4


def test_health_scores_read_the_day_counts(alerts):
    scores = {row["team"]: row for row in health_scores(period=NOVEMBER, now=NOW)["teams"]}
    follow_up = scores["payments"]["terms"]["follow_up"]
    # 250 x 2 / 4 = 125.0
    assert (follow_up["in_time"], follow_up["denominator"], str(follow_up["points"])) == (2, 4, "125.0")


def test_beat_keeps_the_day_counts(alerts, settings):
    assert settings.CELERY_BEAT_SCHEDULE["day-counts-refresh"]["task"] == "stability.tasks.day_counts_refresh"
    with time_machine.travel(NOW, tick=False):
        assert tasks.day_counts_refresh() == {"counted_until": "2026-11-30"}
    assert AlertDayCount.objects.filter(day="2026-11-03").exists()


# Whole words: a column such as "updated_at" is no write ("FOR UPDATE", a lock, counts as one).
WRITES = re.compile(r"\b(INSERT|UPDATE|DELETE)\b")


def test_a_get_writes_nothing_and_shows_a_just_changed_day_exactly(alerts, engineer_client, manager_client):
    """The report and the follow-up API only read: a day followed up since the beat's last refresh is
    counted from its occurrences, exactly, while its stored day count is still the old one."""
    after = NOW + timedelta(days=2)  # December 2, 07:58 local: all of November is settled
    with time_machine.travel(after, tick=False):
        tasks.day_counts_refresh()
    with time_machine.travel(after + timedelta(minutes=1), tick=False):
        answer = engineer_client.post(f"/api/v1/alerts/{alerts['never'].pk}/acknowledge/")
        assert answer.status_code == 200, answer.content
    stored = AlertDayCount.objects.get(day="2026-11-03")
    assert stored.followed_up == 2  # not recounted: no refresh ran since the follow-up

    with time_machine.travel(after + timedelta(minutes=2), tick=False):
        with CaptureQueriesContext(connection) as report_queries:
            report = manager_client.get("/api/v1/reports/stability/?period=2026-11")
        with CaptureQueriesContext(connection) as rate_queries:
            rate = manager_client.get("/api/v1/metrics/follow-up/?period=2026-11&group_by=team")
    assert report.status_code == 200 and rate.status_code == 200
    writes = [
        query["sql"]
        for query in [*report_queries.captured_queries, *rate_queries.captured_queries]
        if WRITES.search(query["sql"].upper())
    ]
    # Only the token's bookkeeping (accounts: when it was last used), never the figures'.
    assert all(sql.startswith('UPDATE "accounts_apitoken" SET "last_used_at"') for sql in writes), writes
    assert AlertDayCount.objects.get(day="2026-11-03").followed_up == 2
    assert AlertDayCountState.objects.get().checked_at == after

    # payments in November: first_day, in_time (in time), late, never (followed up just now, weeks late).
    payments = {g["key"]: g for g in report.json()["alerts"]["by_team"]}["payments"]
    assert (payments["in_time"], payments["denominator"], payments["followed_up"]) == (2, 4, 4)
    everything = follow_up_rate(
        occurrences=AlertOccurrence.objects.all(), period=NOVEMBER, group_by="team", now=after, percentiles=False
    )
    assert {g["key"]: g["followed_up"] for g in rate.json()["groups"]} == {
        g["key"]: g["followed_up"] for g in everything["groups"]
    }
    november = report.json()["trend"]["follow_up_rate"][-1]
    assert {k: v for k, v in november.items() if k not in ("period", "value")} == everything["overall"]
    # payments' 4 and risk's edge, today and pending (decided by now, never followed up): 7.
    assert (november["followed_up"], november["denominator"]) == (6, 7)


def test_period_counts_read_in_the_same_queries_whatever_the_day_counts_hold(world, alerts):
    """Never refreshed, refreshed, a day changed since, other rules in force, a month with nothing: the
    state, the changed days, the day counts, the other days' occurrences, the team slugs; no write."""
    seen = []

    def read(periods=(NOVEMBER,)):
        with CaptureQueriesContext(connection) as queries:
            counts = follow_up.period_counts(scope=Q(), periods=list(periods), dimensions=("team",), now=NOW)
        assert not [q["sql"] for q in queries.captured_queries if WRITES.search(q["sql"].upper())]
        seen.append(len(queries))
        return {team: row["n_denominator"] for (_period, team), row in counts.items()}

    assert read() == {"payments": 4, "risk": 2}
    follow_up.refresh_day_counts(NOW)
    assert read() == {"payments": 4, "risk": 2}
    alert(world, "payments", "cashier", utc(2026, 11, 3, 4), 30)  # into a counted day
    assert read() == {"payments": 5, "risk": 2}
    with override_settings(FOLLOW_UP_WINDOW_SECONDS=600):
        assert read() == {"payments": 5, "risk": 2}
    assert read([periods.month(2027, 3)]) == {}
    assert seen == [5] * 5
