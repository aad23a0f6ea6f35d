"""The follow-up delay median and p90 of months and ISO weeks kept by the day counts' refresh
(stability.follow_up: AlertDelayPercentiles, period_delays): what a report reads is exactly what
follow_up_rate counts from the occurrences, before a refresh, after it, after a change it has not seen
yet, and under other rules; the report's overall follow-up figures are follow_up_rate's.

November 2026 in Asia/Shanghai (UTC+8) is [2026-10-31T16:00Z, 2026-11-30T16:00Z). NOW is
2026-12-02T00:00Z (December 2, 08:00 local): all of November is settled, and so is ISO week 45
(November 2-8), which holds every alert below.
"""

from datetime import UTC, date, datetime, timedelta
from io import StringIO
from itertools import count

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from incidents import periods
from incidents.models import System, Team
from stability import follow_up
from stability.models import AlertDelayPercentiles, AlertOccurrence
from stability.reports import build_report
from stability.selectors import follow_up_rate
from stability.services import alerts_follow_up, integration_create
from tests.factories import SystemFactory, TeamFactory, UserFactory

pytestmark = pytest.mark.django_db

NOVEMBER = periods.month(2026, 11)
WEEK_45 = periods.iso_week(2026, 45)
NOW = datetime(2026, 12, 2, tzinfo=UTC)
_fingerprints = count(1)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
def world():
    """Written an hour before NOW (changed_at), so that a refresh at NOW has seen them."""
    with time_machine.travel(NOW - timedelta(hours=1), tick=False):
        return _world()


def _world():
    payments = TeamFactory(slug="payments", name="Payments")
    risk = TeamFactory(slug="risk", name="Risk")
    cashier = SystemFactory(code="cashier", tier="P0", team=payments)
    ledger = SystemFactory(code="ledger", tier="P2", team=risk)
    integration, _token = integration_create(kind="generic", name="generic")

    def alert(team, system, received_at, delay, **fields):
        return AlertOccurrence.objects.create(
            integration=integration,
            fingerprint=f"fp-{next(_fingerprints)}",
            starts_at=received_at - timedelta(seconds=30),
            received_at=received_at,
            last_received_at=received_at,
            alertname="DiskFull",
            team=team,
            system=system,
            followed_up_at=None if delay is None else received_at + timedelta(seconds=delay),
            **fields,
        )

    # Payments / cashier on November 3 (local): followed up after 60 s, 300 s, 301 s, and never.
    never = None
    for hour, delay in enumerate((60, 300, 301, None), start=1):
        never = alert(payments, cashier, utc(2026, 11, 3, hour), delay)
    # Risk / ledger on November 4: 10 s and 20 s; one silenced (excluded) followed up after 5 s.
    alert(risk, ledger, utc(2026, 11, 4, 1), 10)
    alert(risk, ledger, utc(2026, 11, 4, 2), 20)
    alert(risk, ledger, utc(2026, 11, 4, 3), 5, excluded="silenced")
    return {"payments": payments, "risk": risk, "cashier": cashier, "ledger": ledger, "never": never}


# Worked by hand (percentile_cont: the value at position (n - 1) x fraction, interpolated):
# everyone: 10, 20, 60, 300, 301: median 60; p90 at 3.6: 300 + 0.6 x (301 - 300) = 300.6.
# payments (= cashier): 60, 300, 301: median 300; p90 at 1.8: 300 + 0.8 x 1 = 300.8.
# risk (= ledger): 10, 20: median at 0.5: 15; p90 at 0.9: 10 + 0.9 x 10 = 19.
EVERYONE, PAYMENTS, RISK = (60.0, 300.6), (300.0, 300.8), (15.0, 19.0)


def delays(period=NOVEMBER, *, team=None, system=None, now=NOW) -> tuple:
    found = follow_up.period_delays(period=period, now=now, team=team and team.pk, system=system and system.pk)
    return found["median_delay"], found["p90_delay"]


def counted(period=NOVEMBER, *, now=NOW, **scope) -> tuple:
    """follow_up_rate's own figures, from every occurrence."""
    overall = follow_up_rate(occurrences=AlertOccurrence.objects.filter(**scope), period=period, now=now)["overall"]
    return overall["median_delay"], overall["p90_delay"]


def refresh(now=NOW):
    with time_machine.travel(now, tick=False):
        follow_up.refresh_day_counts(now)


def all_scopes(world) -> dict:
    return {
        "everyone": delays(),
        "payments": delays(team=world["payments"]),
        "risk": delays(team=world["risk"]),
        "cashier": delays(system=world["cashier"]),
        "ledger": delays(system=world["ledger"]),
    }


BY_HAND = {"everyone": EVERYONE, "payments": PAYMENTS, "risk": RISK, "cashier": PAYMENTS, "ledger": RISK}


def test_counted_from_the_occurrences_before_any_refresh(world):
    assert all_scopes(world) == BY_HAND
    assert counted() == EVERYONE and counted(team=world["payments"]) == PAYMENTS
    assert not AlertDelayPercentiles.objects.exists()


def test_the_refresh_keeps_the_months_and_weeks_it_holds_whole(world):
    refresh()
    kept = {
        (row.period, row.scope, row.key): (row.followed_up, row.median_delay, row.p90_delay)
        for row in AlertDelayPercentiles.objects.all()
    }
    payments, risk = world["payments"].pk, world["risk"].pk
    cashier, ledger = world["cashier"].pk, world["ledger"].pk
    for label in ("2026-11", "2026-W45"):
        assert kept[(label, "all", None)] == (5, *EVERYONE)
        assert kept[(label, "team", payments)] == (3, *PAYMENTS)
        assert kept[(label, "team", risk)] == (2, *RISK)
        assert kept[(label, "system", cashier)] == (3, *PAYMENTS)
        assert kept[(label, "system", ledger)] == (2, *RISK)
    # Weeks 46 to 48 (November 9-29) hold nothing followed up: a row for everyone says so. Week 49
    # (November 30 - December 6) is not over.
    for label in ("2026-W46", "2026-W47", "2026-W48"):
        assert kept[(label, "all", None)] == (0, None, None)
    assert not [key for key in kept if key[0] in ("2026-W49", "2026-12")]
    assert all_scopes(world) == BY_HAND


def test_readers_take_the_kept_figures(world):
    """Proof that they are read, not counted: a kept figure altered by hand is what comes back."""
    refresh()
    AlertDelayPercentiles.objects.filter(period="2026-11", scope="all").update(median_delay=1234.5)
    assert delays() == (1234.5, EVERYONE[1])
    # A quarter, a range, or a team and a system at once are never kept: always counted.
    assert delays(periods.quarter(2026, 4)) == EVERYONE
    assert delays(periods.date_range(date(2026, 11, 1), date(2026, 11, 30))) == EVERYONE
    assert delays(team=world["payments"], system=world["cashier"]) == PAYMENTS


def test_a_change_since_the_refresh_is_counted_then_kept(world):
    refresh()
    AlertDelayPercentiles.objects.filter(period="2026-11", scope="all").update(median_delay=1234.5)
    # The never-followed-up alert (Nov 3, 03:00Z) is acknowledged on December 2, 08:01 local.
    person = UserFactory(username="late", role="engineer")
    with time_machine.travel(NOW + timedelta(minutes=1), tick=False):
        alerts_follow_up(occurrence_ids=[world["never"].pk], by=person, action="acknowledge")
    late = (NOW + timedelta(minutes=1) - utc(2026, 11, 3, 4)).total_seconds()
    # Nov 3 04:00Z to Dec 2 04:00Z is 29 days, 2,505,600 s; to Dec 2 00:01Z 3 h 59 min (14,340 s) less.
    assert late == 2_491_260
    # everyone: 10, 20, 60, 300, 301, 2,491,260: median at 2.5: 60 + 0.5 x 240 = 180; p90 at 4.5:
    # 301 + 0.5 x (2,491,260 - 301) = 1,245,780.5. payments: 60, 300, 301, 2,491,260: median at 1.5:
    # 300.5; p90 at 2.7: 301 + 0.7 x 2,490,959 = 1,743,972.3.
    now = NOW + timedelta(minutes=2)
    assert delays(now=now) == counted(now=now) == (180.0, 1_245_780.5)
    assert delays(team=world["payments"], now=now) == (300.5, 1_743_972.3)
    assert delays(system=world["ledger"], now=now) == RISK
    refresh(now)
    assert AlertDelayPercentiles.objects.get(period="2026-11", scope="all").median_delay == 180.0
    assert delays(now=now) == (180.0, 1_245_780.5)
    assert delays(WEEK_45, team=world["payments"], now=now) == (300.5, 1_743_972.3)


def test_other_rules_in_force_are_counted(world):
    refresh()
    AlertDelayPercentiles.objects.filter(period="2026-11", scope="all").update(median_delay=1234.5)
    with override_settings(FOLLOW_UP_WINDOW_SECONDS=600):
        assert delays() == EVERYONE
        refresh()  # counts everything again under the new rules
        assert AlertDelayPercentiles.objects.get(period="2026-11", scope="all").median_delay == 60.0


def test_the_same_queries_kept_or_counted(world):
    seen = []
    for step in ("before", "kept", "quarter"):
        if step == "kept":
            refresh()
        period = periods.quarter(2026, 4) if step == "quarter" else NOVEMBER
        with CaptureQueriesContext(connection) as queries:
            follow_up.period_delays(period=period, now=NOW, team=world["payments"].pk)
        seen.append(len(queries))
    assert seen == [4, 4, 4]


@pytest.mark.parametrize("scope", ["everyone", "team", "system"])
def test_the_reports_overall_follow_up_figures_are_follow_up_rates(world, scope):
    chosen = {"everyone": {}, "team": {"team": world["payments"]}, "system": {"system": world["ledger"]}}[scope]
    occurrences = AlertOccurrence.objects.filter(**chosen)
    expected = follow_up_rate(occurrences=occurrences, period=NOVEMBER, now=NOW)["overall"]
    assert build_report(period=NOVEMBER, now=NOW, **chosen).alerts.figures["overall"] == expected
    refresh()
    assert build_report(period=NOVEMBER, now=NOW, **chosen).alerts.figures["overall"] == expected


def test_kept_figures_match_counting_over_a_generated_year():
    """Every month and week of a generated year, for everyone, each team and each system: the kept
    percentiles are those of counting the occurrences (PostgreSQL's percentile_cont on both sides, or
    the same interpolation in Python)."""
    call_command(
        "generate_history",
        year=2025,
        seed=5,
        teams=2,
        systems=4,
        incidents=20,
        items=20,
        alerts=3_000,
        stdout=StringIO(),
        stderr=StringIO(),
    )
    now = datetime.now(UTC)
    kept = set(AlertDelayPercentiles.objects.filter(scope="all").values_list("period", flat=True))
    chosen = [periods.month(2025, m) for m in range(1, 13)] + [periods.iso_week(2025, w) for w in (1, 10, 26, 52)]
    assert {p.label for p in chosen} <= kept
    scopes = [{}] + [{"team": t} for t in Team.objects.all()] + [{"system": s} for s in System.objects.all()]
    for period in chosen:
        for scope in scopes:
            found = delays(period, now=now, **scope)
            assert found == counted(period, now=now, **scope), (period.label, scope)
    assert delays(periods.month(2025, 6), now=now)[0] is not None
