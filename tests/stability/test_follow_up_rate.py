"""The 5-minute follow-up rate of metrics.md (stability.selectors.follow_up_rate) on alerts worked out by hand.

Alerts arrive through the real generic webhook under a frozen clock (which sets received_at) and are
followed up through stability.services.alerts_follow_up, so identity, repeats, exclusions at receipt and
follow-up are the production paths. The same figures must come out on SQLite (delays interpolated in
Python) and on PostgreSQL (percentile_cont).
"""

import json
from datetime import UTC, datetime, timedelta
from itertools import count

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from incidents import periods
from stability.models import AlertOccurrence, MaintenanceWindow
from stability.selectors import follow_up_missed, follow_up_rate
from stability.services import alerts_follow_up, integration_create
from tests.factories import SystemFactory, TeamFactory, UserFactory

pytestmark = pytest.mark.django_db

RATE = "/api/v1/metrics/follow-up/"
MISSED = "/api/v1/metrics/follow-up/missed/"
NOVEMBER = periods.month(2026, 11)  # [2026-10-31T16:00Z, 2026-11-30T16:00Z)
AFTER = datetime(2026, 12, 10, tzinfo=UTC)  # long after every window: nothing pending
T = datetime(2026, 11, 3, 2, tzinfo=UTC)  # 10:00 on Nov 3 in Asia/Shanghai

_names = count(1)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def seconds(n: float) -> timedelta:
    return timedelta(seconds=n)


class Source:
    """An alerting system posting the generic format to the real webhook."""

    def __init__(self, client, *, is_test: bool = False):
        self.client = client
        self.integration, self.token = integration_create(kind="generic", name=f"g{next(_names)}", is_test=is_test)

    def send(self, at: datetime, name: str, *, starts_at: datetime, system: str, severity: str, **fields):
        alert = {
            "labels": {"alertname": name, "system": system, "severity": severity},
            "starts_at": starts_at.isoformat(),
            **fields,
        }
        with time_machine.travel(at, tick=False):
            answer = self.client.post(
                "/api/v1/integrations/generic/",
                json.dumps({"alerts": [alert]}),
                content_type="application/json",
                HTTP_AUTHORIZATION=f"Bearer {self.token}",
            )
        assert answer.status_code == 200, answer.content
        assert answer.json()["rejected"] == []
        return AlertOccurrence.objects.get(integration=self.integration, alertname=name, starts_at=starts_at)

    def fire(self, at: datetime, name: str, *, system="cashier", severity="critical", starts_at=None, **fields):
        """A firing that started a minute before it reaches the tracker (unless told)."""
        return self.send(at, name, starts_at=starts_at or at - seconds(60), system=system, severity=severity, **fields)

    def resolve(self, at: datetime, occurrence: AlertOccurrence):
        """The source says the occurrence is over (automatic resolution: not a follow-up)."""
        return self.send(
            at,
            occurrence.alertname,
            starts_at=occurrence.starts_at,
            system=occurrence.system.code,
            severity=occurrence.severity,
            status="resolved",
            ends_at=at.isoformat(),
        )


def follow_up(occurrence: AlertOccurrence, at: datetime, *, by, action: str = "acknowledge") -> None:
    with time_machine.travel(at, tick=False):
        alerts_follow_up(occurrence_ids=[occurrence.pk], by=by, action=action)


@pytest.fixture
def systems(db):
    payments, risk = TeamFactory(slug="payments", name="Payments"), TeamFactory(slug="risk", name="Risk")
    return {
        "payments": payments,
        "risk": risk,
        "cashier": SystemFactory(code="cashier", team=payments),
        "bank-gateway": SystemFactory(code="bank-gateway", team=payments),
        "riskctl": SystemFactory(code="riskctl", team=risk),
    }


@pytest.fixture
def engineer(db):
    return UserFactory(username="oncall")


@pytest.fixture
def november(client, systems, engineer):
    """Twelve occurrences around November (Asia/Shanghai), made in the order they happen.

    name  received (UTC)        system / team          severity  follow-up         delay  outcome
    O1    10-31 15:59:59        cashier / payments     critical  never             -      October
    E1    10-31 16:30 (Nov 1)   cashier / payments     critical  ack +60           60     in time
    A1    11-03 02:00           cashier / payments     critical  ack +300          300    in time (exactly the window)
    A2    11-03 03:00           cashier / payments     critical  ack +301          301    missed (late); repeat at +120
    A3    11-03 04:00           bank-gateway / paym.   warning   ack +90           90     in time
    A4    11-03 05:00           riskctl / risk         critical  ack +120          120    in time; source resolves 05:20
    A5    11-03 06:00           riskctl / risk         critical  never             -      missed: A4 fires again
    A6    11-03 07:00           cashier / payments     warning   ack +240          240    in time; source resolved +30
    X1    11-04 01:00           bank-gateway / paym.   warning   -                 -      excluded: maintenance window
    X2    11-04 02:00           cashier / payments     critical  -                 -      excluded: test integration
    X3    11-04 03:00           cashier / payments     critical  -                 -      excluded: silenced
    O2    11-30 16:00 (Dec 1)   cashier / payments     critical  never             -      December

    November: received 10 (E1, A1-A6, X1-X3), excluded 3, pending 0, denominator 7,
    in time 5 (E1, A1, A3, A4, A6), missed 2 (A2, A5), followed up 6 (all but A5).
    """
    MaintenanceWindow.objects.create(
        system=systems["bank-gateway"], starts_at=utc(2026, 11, 4), ends_at=utc(2026, 11, 4, 4), reason="DB upgrade"
    )
    source, test_source = Source(client), Source(client, is_test=True)
    made = {}
    made["O1"] = source.fire(utc(2026, 10, 31, 15, 59, 59), "O1")
    made["E1"] = source.fire(utc(2026, 10, 31, 16, 30), "E1")
    follow_up(made["E1"], utc(2026, 10, 31, 16, 31), by=engineer)

    made["A1"] = source.fire(T, "A1")
    follow_up(made["A1"], T + seconds(300), by=engineer)

    made["A2"] = source.fire(T + timedelta(hours=1), "A2")
    repeat = source.fire(T + timedelta(hours=1, minutes=2), "A2", starts_at=made["A2"].starts_at)
    assert (repeat.pk, repeat.notifications, repeat.received_at) == (made["A2"].pk, 2, T + timedelta(hours=1))
    follow_up(made["A2"], T + timedelta(hours=1) + seconds(301), by=engineer)

    made["A3"] = source.fire(T + timedelta(hours=2), "A3", system="bank-gateway", severity="warning")
    follow_up(made["A3"], T + timedelta(hours=2) + seconds(90), by=engineer)

    made["A4"] = source.fire(T + timedelta(hours=3), "RiskScoreLag", system="riskctl")
    follow_up(made["A4"], T + timedelta(hours=3) + seconds(120), by=engineer)
    source.resolve(T + timedelta(hours=3, minutes=20), made["A4"])
    made["A5"] = source.fire(T + timedelta(hours=4), "RiskScoreLag", system="riskctl")  # fires again

    made["A6"] = source.fire(T + timedelta(hours=5), "A6", severity="warning")
    source.resolve(T + timedelta(hours=5) + seconds(30), made["A6"])
    follow_up(made["A6"], T + timedelta(hours=5) + seconds(240), by=engineer)

    made["X1"] = source.fire(utc(2026, 11, 4, 1), "X1", system="bank-gateway", severity="warning")
    made["X2"] = test_source.fire(utc(2026, 11, 4, 2), "X2")
    made["X3"] = source.fire(utc(2026, 11, 4, 3), "X3", silenced=True)
    made["O2"] = source.fire(utc(2026, 11, 30, 16), "O2")

    for occurrence in made.values():
        occurrence.refresh_from_db()
    made["test_integration"] = test_source.integration
    return made


def figures(**values) -> dict:
    """A group's figures: the given ones, zero / null for the rest."""
    base = {
        "rate": None,
        "in_time": 0,
        "missed": 0,
        "denominator": 0,
        "followed_up": 0,
        "received": 0,
        "excluded": 0,
        "pending": 0,
        "flapping_excluded": 0,
        "median_delay": None,
        "p90_delay": None,
    }
    assert set(values) <= set(base), set(values) - set(base)
    return {**base, **values}


# --- the dataset is what it claims to be ----------------------------------------------------------


def test_the_dataset_went_through_the_real_paths(november):
    assert AlertOccurrence.objects.count() == 12
    a4, a5 = november["A4"], november["A5"]
    # A re-fire after resolution: same fingerprint, new starts_at, a new occurrence.
    assert a4.fingerprint == a5.fingerprint and a4.pk != a5.pk
    assert (a4.status, a4.resolved_by, a5.status) == ("resolved", None, "firing")
    # A6: the source resolved it at +30 s; the person's acknowledgement at +240 s is still its follow-up.
    a6 = november["A6"]
    assert a6.resolved_at - a6.received_at == seconds(30) and a6.resolved_by is None
    assert a6.followed_up_at - a6.received_at == seconds(240)
    # A2: the repeat at +120 s did not restart the clock.
    assert november["A2"].followed_up_at - november["A2"].received_at == seconds(301)
    assert {k: november[k].excluded for k in ("X1", "X2", "X3")} == {
        "X1": "maintenance",
        "X2": "test",
        "X3": "silenced",
    }
    assert november["E1"].team.slug == "payments" and november["A4"].team.slug == "risk"


# --- the rate of a period ------------------------------------------------------------------------


def test_november(november):
    result = follow_up_rate(occurrences=AlertOccurrence.objects.all(), period=NOVEMBER, now=AFTER)

    assert result["period"] == "2026-11"
    assert result["window_seconds"] == 300
    assert result["flapping_seconds"] == 0
    assert result["as_of"] == AFTER
    assert result["groups"] == []
    # rate 5/7. Delays of the 6 followed up, sorted: 60 90 120 240 300 301;
    # median: (6-1) x 0.5 = 2.5 -> 120 + 0.5 x (240 - 120) = 180; p90: 5 x 0.9 = 4.5 -> 300 + 0.5 x 1 = 300.5
    assert result["overall"] == figures(
        rate=5 / 7,
        in_time=5,
        missed=2,
        denominator=7,
        followed_up=6,
        received=10,
        excluded=3,
        median_delay=180.0,
        p90_delay=300.5,
    )


def test_exactly_the_window_is_in_time_one_second_more_is_missed(november):
    missed = follow_up_missed(occurrences=AlertOccurrence.objects.all(), period=NOVEMBER, now=AFTER)
    just_in_time = AlertOccurrence.objects.filter(pk__in=[november["A1"].pk])
    just_late = AlertOccurrence.objects.filter(pk__in=[november["A2"].pk])

    assert november["A1"] not in missed and november["A2"] in missed
    assert follow_up_rate(occurrences=just_in_time, period=NOVEMBER, now=AFTER)["overall"]["rate"] == 1.0
    assert follow_up_rate(occurrences=just_late, period=NOVEMBER, now=AFTER)["overall"]["rate"] == 0.0


def test_the_missed_list_is_late_or_never_oldest_first(november, django_assert_num_queries):
    missed = follow_up_missed(occurrences=AlertOccurrence.objects.all(), period=NOVEMBER, now=AFTER)
    with django_assert_num_queries(1):
        rows = [(o.alertname, o.team.slug, o.system.code, o.integration.name) for o in missed]
    assert [o.pk for o in missed] == [november["A2"].pk, november["A5"].pk]
    assert rows == [
        ("A2", "payments", "cashier", november["A2"].integration.name),
        ("RiskScoreLag", "risk", "riskctl", november["A5"].integration.name),
    ]


def test_periods_are_cut_in_the_organisation_time_zone(november):
    everything = AlertOccurrence.objects.all()
    # O1 (Oct 31 23:59:59 local) is October's; E1 (Nov 1 00:30 local) November's; O2 (Dec 1 00:00) December's.
    october = follow_up_rate(occurrences=everything, period=periods.month(2026, 10), now=AFTER)
    december = follow_up_rate(occurrences=everything, period=periods.month(2026, 12), now=AFTER)
    first_day = follow_up_rate(occurrences=everything, period=periods.parse("2026-11-01..2026-11-01"), now=AFTER)

    assert october["overall"] == figures(rate=0.0, missed=1, denominator=1, received=1)
    assert december["overall"] == figures(rate=0.0, missed=1, denominator=1, received=1)
    assert first_day["overall"] == figures(
        rate=1.0, in_time=1, denominator=1, followed_up=1, received=1, median_delay=60.0, p90_delay=60.0
    )
    assert [o.alertname for o in follow_up_missed(occurrences=everything, period=periods.month(2026, 10))] == ["O1"]


def test_no_data_is_a_null_rate_not_zero(november):
    empty = follow_up_rate(occurrences=AlertOccurrence.objects.all(), period=periods.month(2027, 1), now=AFTER)
    assert empty["overall"] == figures()
    # X1-X3 on Nov 4: all excluded, so the day has received 3 and no rate.
    nov4 = follow_up_rate(
        occurrences=AlertOccurrence.objects.all(), period=periods.parse("2026-11-04..2026-11-04"), now=AFTER
    )
    assert nov4["overall"] == figures(received=3, excluded=3)


# --- pending --------------------------------------------------------------------------------------


def test_a_pending_alert_is_left_out_until_its_window_has_passed(client, systems, engineer):
    source = Source(client)
    received = utc(2026, 11, 20, 10)
    waiting = source.fire(received, "Waiting")
    answered = source.fire(received, "Answered", severity="warning")
    follow_up(answered, received + seconds(100), by=engineer)
    occurrences = AlertOccurrence.objects.all()

    # now - received_at = 299 s < 300: Waiting is pending; Answered, followed up at +100, is decided.
    young = follow_up_rate(occurrences=occurrences, period=NOVEMBER, now=received + seconds(299))
    assert young["overall"] == figures(
        rate=1.0, in_time=1, denominator=1, followed_up=1, received=2, pending=1, median_delay=100.0, p90_delay=100.0
    )
    assert list(follow_up_missed(occurrences=occurrences, period=NOVEMBER, now=received + seconds(299))) == []

    # Exactly one window later Waiting is decided: never followed up, so missed. 1 in time / 2.
    decided = follow_up_rate(occurrences=occurrences, period=NOVEMBER, now=received + seconds(300))
    assert decided["overall"] == figures(
        rate=0.5, in_time=1, missed=1, denominator=2, followed_up=1, received=2, median_delay=100.0, p90_delay=100.0
    )
    assert list(follow_up_missed(occurrences=occurrences, period=NOVEMBER, now=received + seconds(300))) == [waiting]


def test_pending_alone_gives_no_rate_and_now_defaults_to_the_clock(client, systems):
    received = utc(2026, 11, 20, 10)
    Source(client).fire(received, "Waiting")
    with time_machine.travel(received + seconds(299), tick=False):
        result = follow_up_rate(occurrences=AlertOccurrence.objects.all(), period=NOVEMBER)
    assert result["as_of"] == received + seconds(299)
    assert result["overall"] == figures(received=1, pending=1)


# --- percentiles ----------------------------------------------------------------------------------


def test_median_and_p90_interpolate_linearly(client, systems, engineer):
    source = Source(client)
    for n, delay in enumerate((301, 60, 300, 120)):
        received = T + timedelta(hours=n)
        follow_up(source.fire(received, f"D{n}"), received + seconds(delay), by=engineer)

    result = follow_up_rate(occurrences=AlertOccurrence.objects.all(), period=NOVEMBER, now=AFTER)

    # Sorted 60 120 300 301. median: 3 x 0.5 = 1.5 -> 120 + 0.5 x 180 = 210; p90: 3 x 0.9 = 2.7 -> 300 + 0.7 x 1 = 300.7
    assert result["overall"]["median_delay"] == 210.0
    assert result["overall"]["p90_delay"] == 300.7
    assert result["overall"]["rate"] == 3 / 4


def test_percentiles_carry_no_floating_point_noise(client, systems, engineer):
    """metrics.md's example: over 600, 1200, 2700, 7200 s, p90 = 2700 + 0.7 x 4500 = 5850 (PostgreSQL's float
    arithmetic alone gives 5850.000000000001); median = 1200 + 0.5 x 1500 = 1950."""
    source = Source(client)
    for n, delay in enumerate((600, 1200, 2700, 7200)):
        received = T + timedelta(hours=n)
        follow_up(source.fire(received, f"D{n}"), received + seconds(delay), by=engineer)

    overall = follow_up_rate(occurrences=AlertOccurrence.objects.all(), period=NOVEMBER, now=AFTER)["overall"]

    assert (overall["median_delay"], overall["p90_delay"]) == (1950.0, 5850.0)
    assert overall["rate"] == 0.0  # all four later than 300 s


def test_sub_second_delays_agree_on_both_databases(client, systems):
    """Should an instant carry microseconds (written directly here; services store whole seconds), the exact
    percentile lies on a
    1e-7 s grid, which both paths round to. Delays 100.000001, 100.000002, 100.000004 s:
    median = 100.000002; p90: 2 x 0.9 = 1.8 -> 100.000002 + 0.8 x 0.000002 = 100.0000036."""
    source = Source(client)
    for n, micros in enumerate((4, 1, 2)):
        received = T + timedelta(hours=n)
        occurrence = source.fire(received, f"D{n}")
        AlertOccurrence.objects.filter(pk=occurrence.pk).update(
            followed_up_at=received + timedelta(seconds=100, microseconds=micros)
        )

    overall = follow_up_rate(occurrences=AlertOccurrence.objects.all(), period=NOVEMBER, now=AFTER)["overall"]

    assert (overall["median_delay"], overall["p90_delay"]) == (100.000002, 100.0000036)
    assert overall["in_time"] == 3


# --- flapping -------------------------------------------------------------------------------------


@pytest.fixture
def flapping(client, systems, engineer):
    """F1 source-resolved at +120 s, never followed up; F2 source-resolved at +121 s, never followed up;
    F3 source-resolved at +30 s, then acknowledged at +200 s; F4 resolved by a person at +60 s."""
    source = Source(client)
    r = utc(2026, 11, 20, 10)
    made = {}
    made["F1"] = source.fire(r, "F1")
    source.resolve(r + seconds(120), made["F1"])
    made["F2"] = source.fire(r + timedelta(minutes=10), "F2")
    source.resolve(r + timedelta(minutes=10) + seconds(121), made["F2"])
    made["F3"] = source.fire(r + timedelta(minutes=20), "F3")
    source.resolve(r + timedelta(minutes=20) + seconds(30), made["F3"])
    follow_up(made["F3"], r + timedelta(minutes=20) + seconds(200), by=engineer)
    made["F4"] = source.fire(r + timedelta(minutes=30), "F4")
    follow_up(made["F4"], r + timedelta(minutes=30) + seconds(60), by=engineer, action="resolve")
    return made


def test_flapping_alerts_are_excluded_only_when_the_setting_is_on(flapping, settings):
    occurrences = AlertOccurrence.objects.all()
    # Off (default 0): every one counts. In time F3 (200 s), F4 (60 s); missed F1, F2. Delays 60 200:
    # median 60 + 0.5 x 140 = 130; p90 60 + 0.9 x 140 = 186.
    off = follow_up_rate(occurrences=occurrences, period=NOVEMBER, now=AFTER)
    assert off["overall"] == figures(
        rate=0.5, in_time=2, missed=2, denominator=4, followed_up=2, received=4, median_delay=130.0, p90_delay=186.0
    )
    assert [o.alertname for o in follow_up_missed(occurrences=occurrences, period=NOVEMBER, now=AFTER)] == [
        "F1",
        "F2",
    ]

    settings.FOLLOW_UP_FLAPPING_SECONDS = 120
    # On: F1 (source-resolved at exactly 120 s, no follow-up) is flapping; F2 (121 s) still missed;
    # F3 followed up (after the source resolved it) and F4 resolved by a person are not flapping. 2/3.
    on = follow_up_rate(occurrences=occurrences, period=NOVEMBER, now=AFTER)
    assert on["flapping_seconds"] == 120
    assert on["overall"] == figures(
        rate=2 / 3,
        in_time=2,
        missed=1,
        denominator=3,
        followed_up=2,
        received=4,
        flapping_excluded=1,
        median_delay=130.0,
        p90_delay=186.0,
    )
    assert [o.alertname for o in follow_up_missed(occurrences=occurrences, period=NOVEMBER, now=AFTER)] == ["F2"]


def test_a_flapping_alert_still_in_its_window_is_pending(flapping, settings):
    settings.FOLLOW_UP_FLAPPING_SECONDS = 120
    # now = F1's receipt + 200 s: F1 is pending (pending comes first), none of the others is received yet.
    now = utc(2026, 11, 20, 10) + seconds(200)
    result = follow_up_rate(occurrences=AlertOccurrence.objects.filter(alertname="F1"), period=NOVEMBER, now=now)
    assert result["overall"] == figures(received=1, pending=1)


# --- grouping -------------------------------------------------------------------------------------


def test_grouped_by_team(november):
    result = follow_up_rate(occurrences=AlertOccurrence.objects.all(), period=NOVEMBER, group_by="team", now=AFTER)
    assert result["group_by"] == "team"
    assert result["groups"] == [
        # E1 A1 A2 A3 A6 X1 X2 X3: excluded X1-X3; in time E1 A1 A3 A6; missed A2. Delays 60 90 240 300 301:
        # median 240; p90 4 x 0.9 = 3.6 -> 300 + 0.6 x 1 = 300.6
        {
            "key": "payments",
            **figures(
                rate=0.8,
                in_time=4,
                missed=1,
                denominator=5,
                followed_up=5,
                received=8,
                excluded=3,
                median_delay=240.0,
                p90_delay=300.6,
            ),
        },
        # A4 in time (120), A5 never.
        {
            "key": "risk",
            **figures(
                rate=0.5,
                in_time=1,
                missed=1,
                denominator=2,
                followed_up=1,
                received=2,
                median_delay=120.0,
                p90_delay=120.0,
            ),
        },
    ]
    assert result["overall"]["denominator"] == sum(g["denominator"] for g in result["groups"])


def test_grouped_by_system(november):
    result = follow_up_rate(occurrences=AlertOccurrence.objects.all(), period=NOVEMBER, group_by="system", now=AFTER)
    assert [g["key"] for g in result["groups"]] == ["bank-gateway", "cashier", "riskctl"]
    bank_gateway, cashier, riskctl = result["groups"]
    # A3 in time (90); X1 excluded (maintenance).
    assert bank_gateway == {
        "key": "bank-gateway",
        **figures(
            rate=1.0,
            in_time=1,
            denominator=1,
            followed_up=1,
            received=2,
            excluded=1,
            median_delay=90.0,
            p90_delay=90.0,
        ),
    }
    # E1 A1 A2 A6 X2 X3: delays 60 240 300 301: median 1.5 -> 240 + 0.5 x 60 = 270; p90 2.7 -> 300 + 0.7 = 300.7
    assert cashier == {
        "key": "cashier",
        **figures(
            rate=0.75,
            in_time=3,
            missed=1,
            denominator=4,
            followed_up=4,
            received=6,
            excluded=2,
            median_delay=270.0,
            p90_delay=300.7,
        ),
    }
    assert (riskctl["rate"], riskctl["missed"], riskctl["median_delay"]) == (0.5, 1, 120.0)


def test_grouped_by_severity(november):
    result = follow_up_rate(occurrences=AlertOccurrence.objects.all(), period=NOVEMBER, group_by="severity", now=AFTER)
    assert result["groups"] == [
        # E1 A1 A2 A4 A5 X2 X3: in time E1 A1 A4; missed A2 A5. Delays 60 120 300 301: median 210, p90 300.7
        {
            "key": "critical",
            **figures(
                rate=0.6,
                in_time=3,
                missed=2,
                denominator=5,
                followed_up=4,
                received=7,
                excluded=2,
                median_delay=210.0,
                p90_delay=300.7,
            ),
        },
        # A3 A6 X1: delays 90 240: median 165; p90 90 + 0.9 x 150 = 225
        {
            "key": "warning",
            **figures(
                rate=1.0,
                in_time=2,
                denominator=2,
                followed_up=2,
                received=3,
                excluded=1,
                median_delay=165.0,
                p90_delay=225.0,
            ),
        },
    ]


def test_grouped_by_local_day(november):
    result = follow_up_rate(occurrences=AlertOccurrence.objects.all(), period=NOVEMBER, group_by="day", now=AFTER)
    assert result["groups"] == [
        # E1, received 10-31T16:30Z: Nov 1 local, not Oct 31.
        {
            "key": "2026-11-01",
            **figures(rate=1.0, in_time=1, denominator=1, followed_up=1, received=1, median_delay=60.0, p90_delay=60.0),
        },
        # A1-A6: in time A1 A3 A4 A6 = 4 / 6; delays 90 120 240 300 301: median 240, p90 300.6
        {
            "key": "2026-11-03",
            **figures(
                rate=4 / 6,
                in_time=4,
                missed=2,
                denominator=6,
                followed_up=5,
                received=6,
                median_delay=240.0,
                p90_delay=300.6,
            ),
        },
        # X1-X3, all excluded: no data.
        {"key": "2026-11-04", **figures(received=3, excluded=3)},
    ]


def test_grouped_by_week_and_month(november):
    everything = AlertOccurrence.objects.all()
    weeks = follow_up_rate(occurrences=everything, period=NOVEMBER, group_by="week", now=AFTER)
    # Sunday Nov 1 (E1) closes ISO week 44; Nov 3-4 are in week 45.
    assert [(g["key"], g["received"], g["denominator"], g["in_time"]) for g in weeks["groups"]] == [
        ("2026-W44", 1, 1, 1),
        ("2026-W45", 9, 6, 4),
    ]
    # The fourth quarter by local month: O1 (Oct 31 23:59:59 local), November's 10, O2 (Dec 1 00:00 local).
    months = follow_up_rate(occurrences=everything, period=periods.quarter(2026, 4), group_by="month", now=AFTER)
    assert [(g["key"], g["received"], g["rate"]) for g in months["groups"]] == [
        ("2026-10", 1, 0.0),
        ("2026-11", 10, 5 / 7),
        ("2026-12", 1, 0.0),
    ]
    assert months["overall"] == figures(
        rate=5 / 9,
        in_time=5,
        missed=4,
        denominator=9,
        followed_up=6,
        received=12,
        excluded=3,
        median_delay=180.0,
        p90_delay=300.5,
    )


def test_alerts_with_no_team_or_system_group_last(client, systems, engineer):
    source = Source(client)
    follow_up(source.fire(T, "Known"), T + seconds(10), by=engineer)
    source.fire(T, "Unrouted", system="nowhere")  # names no known system, and the integration has no default
    result = follow_up_rate(occurrences=AlertOccurrence.objects.all(), period=NOVEMBER, group_by="team", now=AFTER)
    assert [(g["key"], g["in_time"], g["missed"]) for g in result["groups"]] == [("payments", 1, 0), (None, 0, 1)]


def test_an_unknown_grouping_is_refused(db):
    with pytest.raises(ValueError, match="group_by"):
        follow_up_rate(occurrences=AlertOccurrence.objects.all(), period=NOVEMBER, group_by="colour")


# --- queries --------------------------------------------------------------------------------------


@pytest.mark.parametrize("group_by", [None, "team", "system", "severity", "day", "week", "month"])
def test_the_database_does_the_counting_in_a_constant_number_of_queries(november, group_by):
    # One aggregate, one more for the groups; SQLite (no percentile_cont) adds one for the delays.
    expected = (1 if group_by is None else 2) + (connection.vendor != "postgresql")
    with CaptureQueriesContext(connection) as queries:
        follow_up_rate(occurrences=AlertOccurrence.objects.all(), period=NOVEMBER, group_by=group_by, now=AFTER)
    assert len(queries) == expected, [q["sql"] for q in queries]


# --- the API --------------------------------------------------------------------------------------


def test_managers_read_the_rate(manager_client, november):
    with time_machine.travel(AFTER, tick=False):
        answer = manager_client.get(RATE, {"period": "2026-11", "group_by": "team"})
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["period"] == "2026-11" and body["window_seconds"] == 300
    assert body["overall"]["rate"] == 5 / 7
    assert (body["overall"]["in_time"], body["overall"]["denominator"], body["overall"]["p90_delay"]) == (5, 7, 300.5)
    assert [(g["key"], g["rate"], g["median_delay"]) for g in body["groups"]] == [
        ("payments", 0.8, 240.0),
        ("risk", 0.5, 120.0),
    ]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # payments: see test_grouped_by_team
        ({"team": "payments"}, {"received": 8, "denominator": 5, "in_time": 4}),
        ({"system": "cashier"}, {"received": 6, "denominator": 4, "in_time": 3}),
        ({"severity": "critical"}, {"received": 7, "denominator": 5, "in_time": 3}),
        ({"team": "payments", "severity": "warning"}, {"received": 3, "denominator": 2, "in_time": 2}),
    ],
)
def test_the_rate_filtered(admin_client_api, november, query, expected):
    with time_machine.travel(AFTER, tick=False):
        overall = admin_client_api.get(RATE, {"period": "2026-11", **query}).json()["overall"]
    assert {k: overall[k] for k in expected} == expected


def test_the_rate_of_one_integration(manager_client, november):
    with time_machine.travel(AFTER, tick=False):
        answer = manager_client.get(RATE, {"period": "2026-11", "integration": november["test_integration"].pk})
    assert answer.json()["overall"] == figures(received=1, excluded=1)  # X2, from the test integration


def test_the_period_defaults_to_the_current_month(manager_client, november):
    with time_machine.travel(utc(2026, 11, 3, 8), tick=False):  # 16:00 on Nov 3 local
        body = manager_client.get(RATE).json()
    assert body["period"] == "2026-11"
    assert body["as_of"] == "2026-11-03T08:00:00Z"
    assert (body["overall"]["received"], body["overall"]["denominator"], body["overall"]["in_time"]) == (10, 7, 5)


def test_engineers_may_not_read_the_rate(engineer_client, anonymous_client):
    assert engineer_client.get(RATE).status_code == 403
    assert engineer_client.get(MISSED).status_code == 403
    assert anonymous_client.get(RATE).status_code == 401


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"group_by": "colour"}, "group_by"),
        ({"period": "November"}, "period"),
        ({"period": "2026-13"}, "period"),
        ({"integration": "abc"}, "integration"),
    ],
)
def test_bad_parameters_are_400_naming_them(manager_client, query, field):
    answer = manager_client.get(RATE, query)
    assert answer.status_code == 400
    assert field in answer.json()


def test_the_missed_alerts_paginated(manager_client, november):
    with time_machine.travel(AFTER, tick=False):
        first = manager_client.get(MISSED, {"period": "2026-11", "page_size": 1})
        second = manager_client.get(first.json()["next"])
    assert first.status_code == 200, first.content
    assert first.json()["count"] == 2
    a2, a5 = november["A2"], november["A5"]
    assert first.json()["results"] == [
        {
            "id": a2.pk,
            "alertname": "A2",
            "severity": "critical",
            "team": "payments",
            "system": "cashier",
            "received_at": "2026-11-03T11:00:00+08:00",
            "followed_up_at": "2026-11-03T11:05:01+08:00",
            "delay": 301.0,
        }
    ]
    assert second.json()["results"][0] | {"received_at": None} == {
        "id": a5.pk,
        "alertname": "RiskScoreLag",
        "severity": "critical",
        "team": "risk",
        "system": "riskctl",
        "received_at": None,
        "followed_up_at": None,
        "delay": None,
    }
    assert second.json()["next"] is None


def test_the_missed_alerts_filtered_and_in_constant_queries(manager_client, november):
    with time_machine.travel(AFTER, tick=False):
        risk = manager_client.get(MISSED, {"period": "2026-11", "team": "risk"})
        with CaptureQueriesContext(connection) as one:
            manager_client.get(MISSED, {"period": "2026-11", "page_size": 1})
        with CaptureQueriesContext(connection) as two:
            manager_client.get(MISSED, {"period": "2026-11", "page_size": 2})
        bad = manager_client.get(MISSED, {"period": "nope"})
    assert [r["id"] for r in risk.json()["results"]] == [november["A5"].pk]
    assert len(one) == len(two)
    assert bad.status_code == 400 and "period" in bad.json()


# --- bugs in code this module relies on -----------------------------------------------------------


def test_received_at_is_stored_to_the_whole_second(client, systems):
    occurrence = Source(client).fire(utc(2026, 11, 20, 10, 0, 0, 600_000), "Fractional")
    assert occurrence.received_at == utc(2026, 11, 20, 10)


def test_a_follow_up_shown_five_minutes_after_receipt_is_in_time(client, systems, engineer):
    occurrence = Source(client).fire(utc(2026, 11, 20, 10), "Fractional")
    follow_up(occurrence, utc(2026, 11, 20, 10, 5, 0, 400_000), by=engineer)
    occurrence.refresh_from_db()
    assert occurrence.followed_up_at == utc(2026, 11, 20, 10, 5)
    result = follow_up_rate(occurrences=AlertOccurrence.objects.all(), period=NOVEMBER, now=AFTER)
    assert result["overall"]["rate"] == 1.0
