"""The closed-loop figures of metrics.md (incidents.selectors.closed_loop_metrics and
on_time_completion_by_team), worked out by hand.

November 2026 in Asia/Shanghai is [2026-10-31T16:00Z, 2026-11-30T16:00Z). The figures are taken
as of NOW = 2026-11-20T04:00Z (12:00 local).
"""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from incidents import periods
from incidents.models import ActionItem, Incident
from incidents.selectors import closed_loop_metrics, on_time_completion_by_team
from tests.factories import ActionItemFactory, IncidentFactory, SystemFactory, TeamFactory, UserFactory

pytestmark = pytest.mark.django_db

NOVEMBER = periods.month(2026, 11)
NOW = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)
S = ActionItem.Status


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def incident(system, occurred_at, *, recovered=True, closed=False, systems=()):
    with time_machine.travel(NOW, tick=False):
        made = IncidentFactory(
            systems=[system, *systems],
            occurred_at=occurred_at,
            recovered_at=occurred_at + timedelta(hours=1) if recovered else None,
        )
    if closed:
        # Read side only: the close rule is tested with the services.
        Incident.objects.filter(pk=made.pk).update(status="closed", closed_at=occurred_at + timedelta(days=5))
    return made


@pytest.fixture
def world():
    """
    Incidents (occurred_at; November by local time):
      i1 payments Nov 2, closed          i2 payments Nov 5, recovered, impacts pay + acc
      i3 payments Nov 8, not recovered   i4 accounts Nov 9, closed
      i5 payments 2026-10-31T16:30Z = Nov 1 00:30 local, closed
      i6 payments 2026-10-31T15:30Z = Oct 31 23:30 local, closed (October)
    Items (due_at; owner), payments unless said:
      a due Nov 5, completed Nov 4, verified          -> on time
      b due Nov 6 10:00, completed exactly then, done -> on time (at the due date is on time)
      c due Nov 7, completed Nov 8, verified (on i2)  -> late
      d due Nov 10 10:00, open (alice)                -> overdue 9 days 18 h -> 9 days
      e due Nov 18 04:00:01, in progress (alice)      -> overdue 1 day 23:59:59 -> 1 day
      f due Nov 25, open                              -> not yet due: excluded
      g due Nov 26, done Nov 19                       -> completed early: on time, counted
      h due Nov 12, waived                            -> excluded
      i due 2026-10-31T16:00Z = Nov 1 00:00 local, completed late (on i6, an October incident)
      j due 2026-11-30T16:30Z = Dec 1 00:30 local, open        -> December
      k due 2026-10-31T15:59:59Z = Oct 31 23:59:59 local, open -> October, though overdue
      l accounts, due Nov 9, completed Nov 8, verified -> on time
      m accounts, due Nov 19 05:00, open (bob)         -> overdue 23 h -> 0 days
    """
    payments = TeamFactory(slug="payments", name="Payments")
    accounts = TeamFactory(slug="accounts", name="Accounts")
    pay = SystemFactory(code="pay", team=payments)
    acc = SystemFactory(code="acc", team=accounts)
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")

    i1 = incident(pay, utc(2026, 11, 2, 2), closed=True)
    i2 = incident(pay, utc(2026, 11, 5, 2), systems=[acc])
    incident(pay, utc(2026, 11, 8, 2), recovered=False)
    i4 = incident(acc, utc(2026, 11, 9, 2), closed=True)
    incident(pay, utc(2026, 10, 31, 16, 30), closed=True)
    i6 = incident(pay, utc(2026, 10, 31, 15, 30), closed=True)

    def item(name, on, due, status=S.OPEN, completed=None, owner=alice):
        return ActionItemFactory(
            title=name,
            incident=on,
            owner=owner,
            due_at=due,
            status=status,
            completed_at=completed,
            waive_reason="merged into #1" if status == S.WAIVED else "",
        )

    made = [
        item("a", i1, utc(2026, 11, 5, 10), S.VERIFIED, utc(2026, 11, 4, 10)),
        item("b", i1, utc(2026, 11, 6, 10), S.DONE, utc(2026, 11, 6, 10)),
        item("c", i2, utc(2026, 11, 7, 10), S.VERIFIED, utc(2026, 11, 8, 10)),
        item("d", i1, utc(2026, 11, 10, 10)),
        item("e", i1, utc(2026, 11, 18, 4, 0, 1), S.IN_PROGRESS),
        item("f", i1, utc(2026, 11, 25, 10)),
        item("g", i1, utc(2026, 11, 26, 10), S.DONE, utc(2026, 11, 19, 10)),
        item("h", i1, utc(2026, 11, 12, 10), S.WAIVED),
        item("i", i6, utc(2026, 10, 31, 16), S.VERIFIED, utc(2026, 11, 3, 10)),
        item("j", i1, utc(2026, 11, 30, 16, 30)),
        item("k", i1, utc(2026, 10, 31, 15, 59, 59)),
        item("l", i4, utc(2026, 11, 9, 10), S.VERIFIED, utc(2026, 11, 8, 10)),
        item("m", i4, utc(2026, 11, 19, 5), owner=bob),
    ]
    return {"payments": payments, "accounts": accounts, "acc": acc, **{i.title: i for i in made}}


def test_november_for_everyone(world, django_assert_num_queries):
    with django_assert_num_queries(5):
        figures = closed_loop_metrics(period=NOVEMBER, now=NOW)

    # Due in November: a b c d e f g h i l m = 11 (j is December, k October, by local time).
    # Completed: a b c g i l = 6, of which on time a b g l = 4 (c and i late).
    # Overdue: d e m = 3. Denominator = completed 6 + overdue 3 = 9; f (not yet due) and h (waived) out.
    assert figures["on_time_completion"] == {
        "rate": 4 / 9,
        "numerator": 4,
        "denominator": 9,
        "due_in_period": 11,
        "completed": 6,
        "completed_late": 2,
        "overdue": 3,
        "not_yet_due": 1,
        "waived": 1,
    }
    overdue = figures["overdue"]
    assert [(row["title"], row["owner"], row["team"], row["days_overdue"]) for row in overdue["items"]] == [
        ("d", "alice", "payments", 9),  # NOW - Nov 10 10:00 = 9 days 18 hours
        ("e", "alice", "payments", 1),  # 1 day 23:59:59
        ("m", "bob", "accounts", 0),  # 23 hours: overdue, but not a whole day
    ]
    assert overdue["items"][0]["incident"] == world["d"].incident_id
    assert (overdue["count"], overdue["by_owner"], overdue["by_team"]) == (
        3,
        [{"owner": "alice", "count": 2}, {"owner": "bob", "count": 1}],
        [{"team": "payments", "count": 2}, {"team": "accounts", "count": 1}],
    )
    # Incidents of November: i1 i2 i3 i4 i5 (i5 is Nov 1 00:30 local; i6 is October).
    # Recovered: i1 i2 i4 i5 = 4; closed: i1 i4 i5 = 3.
    assert figures["incident_closed_loop"] == {"rate": 0.75, "numerator": 3, "denominator": 4}


def test_one_team(world):
    figures = closed_loop_metrics(period=NOVEMBER, team=world["payments"], now=NOW)
    # Payments: completed a b c g i = 5, on time a b g = 3; overdue d e = 2 -> 3 / 7.
    assert (figures["on_time_completion"]["numerator"], figures["on_time_completion"]["denominator"]) == (3, 7)
    assert [row["title"] for row in figures["overdue"]["items"]] == ["d", "e"]
    # Payments incidents: recovered i1 i2 i5 = 3, closed i1 i5 = 2.
    assert figures["incident_closed_loop"] == {"rate": 2 / 3, "numerator": 2, "denominator": 3}


def test_one_system_counts_each_incident_once(world):
    figures = closed_loop_metrics(period=NOVEMBER, system=world["acc"], now=NOW)
    # Impacting acc: i2 (pay + acc) and i4. Items c (late), l (on time), m (overdue) -> 1 / 3.
    assert (figures["on_time_completion"]["numerator"], figures["on_time_completion"]["denominator"]) == (1, 3)
    # i2 recovered, not closed; i4 closed -> 1 / 2.
    assert figures["incident_closed_loop"] == {"rate": 0.5, "numerator": 1, "denominator": 2}


def test_by_team_in_one_query_matches_the_team_figures(world, django_assert_num_queries):
    with django_assert_num_queries(1):
        by_team = on_time_completion_by_team(period=NOVEMBER, now=NOW)
    assert by_team == {world["payments"].pk: (3, 7, 3 / 7), world["accounts"].pk: (1, 2, 0.5)}
    for team in ("payments", "accounts"):
        figures = closed_loop_metrics(period=NOVEMBER, team=world[team], now=NOW)["on_time_completion"]
        assert by_team[world[team].pk] == (figures["numerator"], figures["denominator"], figures["rate"])


def test_no_item_due_yet_is_no_data_not_zero(world):
    december = closed_loop_metrics(period=periods.month(2026, 12), now=NOW)
    # Only j is due in December, and it is not due yet: nothing counts.
    assert december["on_time_completion"]["rate"] is None
    assert (december["on_time_completion"]["due_in_period"], december["on_time_completion"]["not_yet_due"]) == (1, 1)
    assert december["incident_closed_loop"] == {"rate": None, "numerator": 0, "denominator": 0}
    assert on_time_completion_by_team(period=periods.month(2026, 12), now=NOW) == {world["payments"].pk: (0, 0, None)}


def test_time_moves_items_into_the_denominator(world):
    # On Nov 26 at 10:00:01 f (due Nov 25) is overdue too: 4 on time of 10.
    later = utc(2026, 11, 26, 10, 0, 1)
    figures = closed_loop_metrics(period=NOVEMBER, now=later)["on_time_completion"]
    assert (figures["numerator"], figures["denominator"], figures["overdue"]) == (4, 10, 4)


def test_queries_do_not_grow_with_the_data(world, django_assert_num_queries):
    team = world["payments"]
    other = incident(SystemFactory(code="more", team=team), utc(2026, 11, 3, 2))
    for n in range(20):
        ActionItemFactory(incident=other, owner=UserFactory(), due_at=utc(2026, 11, 1 + n, 10))
    with django_assert_num_queries(5):
        figures = closed_loop_metrics(period=NOVEMBER, team=team, now=NOW)
    assert figures["overdue"]["count"] == 2 + 19  # Nov 1..19 at 10:00 are past NOW, Nov 20 10:00 is not
