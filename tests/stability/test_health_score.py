"""The health score (健康分) of metrics.md (stability.selectors.health_scores) worked out by hand.

Defaults (settings.HEALTH_SCORE): incidents 400 - penalties (A 400, B 200, C 50, D 10), floored at 0;
follow-up 250 x the 5-minute follow-up rate; closed loop 200 x the on-time completion rate; recovery
150 x recovery-target compliance. No data gives the full term. Terms are rounded half up to one
decimal and the score is their sum. November 2026 in Asia/Shanghai: [10-31T16:00Z, 11-30T16:00Z).
"""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import count

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from incidents import periods
from incidents.models import ActionItem, Incident, Team
from incidents.selectors import in_period, incident_metrics
from stability.models import AlertOccurrence
from stability.selectors import health_scores, incident_figures_by_team
from stability.services import integration_create
from tests.factories import ActionItemFactory, IncidentFactory, SystemFactory, TeamFactory

pytestmark = pytest.mark.django_db

NOVEMBER = periods.month(2026, 11)
AFTER = datetime(2026, 12, 10, tzinfo=UTC)
NOV_4 = datetime(2026, 11, 4, 2, tzinfo=UTC)
_fingerprints = count(1)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def alerts(team: Team, *delays: int | None, received_at=NOV_4, **fields) -> None:
    """One occurrence per delay (seconds to the follow-up; None: never followed up), a minute apart."""
    integration, _token = integration_create(kind="generic", name=f"{team.slug}-{next(_fingerprints)}")
    for i, delay in enumerate(delays):
        received = received_at + timedelta(minutes=i)
        AlertOccurrence.objects.create(
            integration=integration,
            fingerprint=f"fp-{next(_fingerprints)}",
            starts_at=received - timedelta(seconds=30),
            received_at=received,
            last_received_at=received,
            alertname="支付成功率下降",
            team=team,
            followed_up_at=None if delay is None else received + timedelta(seconds=delay),
            **fields,
        )


def incident(system, occurred_at: datetime, minutes: int, **fields) -> Incident:
    with time_machine.travel(AFTER, tick=False):
        return IncidentFactory(
            systems=[system], occurred_at=occurred_at, recovered_at=occurred_at + timedelta(minutes=minutes), **fields
        )


@pytest.fixture
def teams():
    """
    Payments, November: C (P0, 20 min <= 4 h: within), D (P3, 1 h <= 24 h: within), D (P3, 25 h > 24 h);
      10 counted alerts, 9 followed up within 300 s (300 s itself is in time), one at 301 s, one
      silenced alert (not counted); 4 items due in November: 3 done on time, 1 overdue, plus a waived
      one (excluded) and one due in December (not this period's).
      October: one D (P3, 1 h: within).
    Accounts, November: one D (P3, 1 h: within), nothing else.
    Zeta and Beta: nothing at all (created in that order: ranked by name, not creation).
    """
    payments = TeamFactory(slug="payments", name="Payments")
    accounts = TeamFactory(slug="accounts", name="Accounts")
    TeamFactory(slug="zeta", name="Zeta")
    TeamFactory(slug="beta", name="Beta")
    core = SystemFactory(code="pay-core", tier="P0", team=payments)
    pay_ops = SystemFactory(code="pay-ops", tier="P3", team=payments)
    acc_ops = SystemFactory(code="acc-ops", tier="P3", team=accounts)

    c = incident(core, utc(2026, 11, 3, 2), 20)
    d1 = incident(pay_ops, utc(2026, 11, 5, 2), 60)
    d2 = incident(pay_ops, utc(2026, 11, 6, 2), 25 * 60)
    incident(pay_ops, utc(2026, 10, 10, 2), 60)
    incident(acc_ops, utc(2026, 11, 8, 2), 60)
    assert [i.level for i in (c, d1, d2)] == ["C", "D", "D"]

    alerts(payments, 60, 120, 300, 10, 200, 250, 5, 299, 1, 301)
    alerts(payments, None, received_at=utc(2026, 11, 5, 2), excluded=AlertOccurrence.Exclusion.SILENCED)

    def due(day: int) -> datetime:
        return utc(2026, 11, day, 4)

    for item_incident, day in ((c, 10), (d1, 12), (d2, 14)):
        ActionItemFactory(
            incident=item_incident,
            due_at=due(day),
            status=ActionItem.Status.VERIFIED,
            completed_at=due(day) - timedelta(hours=1),
        )
    ActionItemFactory(incident=c, due_at=due(16))  # open, past due by now: overdue
    ActionItemFactory(incident=c, due_at=due(18), status=ActionItem.Status.WAIVED, waive_reason="covered by #12")
    ActionItemFactory(incident=c, due_at=utc(2026, 12, 20))
    return {"payments": payments, "accounts": accounts}


def test_scores_terms_ranking_and_change(teams):
    result = health_scores(period=NOVEMBER, now=AFTER)
    assert (result["period"], result["previous_period"], result["as_of"]) == ("2026-11", "2026-10", AFTER)
    assert result["settings"] == {
        "weights": {"incidents": 400, "follow_up": 250, "closed_loop": 200, "recovery": 150},
        "penalties": {"A": 400, "B": 200, "C": 50, "D": 10},
    }
    ranking = [(t["rank"], t["team"], t["score"], t["change"]) for t in result["teams"]]
    assert ranking == [
        (1, "beta", Decimal("1000.0"), Decimal("0.0")),  # every term full: no data anywhere
        (2, "zeta", Decimal("1000.0"), Decimal("0.0")),  # tied with Beta: ranked by name
        (3, "accounts", Decimal("990.0"), Decimal("-10.0")),  # 400 - 10 + 250 + 200 + 150; October 1,000
        (4, "payments", Decimal("805.0"), Decimal("-185.0")),  # October: 390 + 250 + 200 + 150 = 990
    ]

    payments = result["teams"][3]
    assert payments["previous_score"] == Decimal("990.0")
    terms = payments["terms"]
    assert terms["incidents"] == {
        "points": Decimal("330.0"),  # 400 - (50 + 10 + 10)
        "max": 400,
        "by_level": {"A": 0, "B": 0, "C": 1, "D": 2},
        "penalty": 70,
    }
    assert terms["follow_up"] == {
        "points": Decimal("225.0"),  # 250 x 9 / 10
        "max": 250,
        "rate": 0.9,
        "in_time": 9,
        "denominator": 10,  # the silenced alert is not counted
    }
    assert terms["closed_loop"] == {
        "points": Decimal("150.0"),  # 200 x 3 / 4
        "max": 200,
        "rate": 0.75,
        "on_time": 3,
        "denominator": 4,  # waived and December items excluded
    }
    assert terms["recovery"] == {
        "points": Decimal("100.0"),  # 150 x 2 / 3
        "max": 150,
        "rate": pytest.approx(2 / 3),
        "within_target": 2,
        "recovered": 3,
    }
    # 330.0 + 225.0 + 150.0 + 100.0 = 805.0
    assert payments["score"] == sum(term["points"] for term in terms.values()) == Decimal("805.0")

    accounts = result["teams"][2]["terms"]
    # No alerts, no items: null rates give the full terms.
    assert (accounts["follow_up"]["rate"], accounts["follow_up"]["points"]) == (None, Decimal("250.0"))
    assert (accounts["closed_loop"]["rate"], accounts["closed_loop"]["points"]) == (None, Decimal("200.0"))
    assert accounts["recovery"]["points"] == Decimal("150.0")  # 1 / 1


def test_terms_round_half_up_to_one_decimal():
    team = TeamFactory(slug="round", name="Round")
    ops = SystemFactory(code="round-ops", tier="P3", team=team)
    alerts(team, 10, 400, 400, 400, 400, 400, 400, None)  # 1 in time of 8
    for day, minutes in ((3, 60), (4, 25 * 60), (5, 26 * 60)):  # 1 within 24 h of 3
        incident(ops, utc(2026, 11, day, 2), minutes)

    row = health_scores(period=NOVEMBER, now=AFTER)["teams"][0]
    terms = row["terms"]
    assert terms["follow_up"]["points"] == Decimal("31.3")  # 250 / 8 = 31.25, half up (half even: 31.2)
    assert terms["recovery"]["points"] == Decimal("50.0")  # 150 / 3
    assert terms["incidents"]["points"] == Decimal("370.0")  # 400 - 3 x 10
    assert row["score"] == Decimal("651.3")  # 370.0 + 31.3 + 200.0 + 50.0


def test_weights_and_penalties_come_from_settings_and_the_incident_term_is_floored(settings):
    settings.HEALTH_SCORE = {
        "weights": {"incidents": 100, "follow_up": 300, "closed_loop": 300, "recovery": 300},
        "penalties": {"A": 1000, "B": 500, "C": 100, "D": 60},
    }
    team = TeamFactory(slug="floor", name="Floor")
    ops = SystemFactory(code="floor-ops", tier="P3", team=team)
    incident(ops, utc(2026, 11, 3, 2), 60)
    incident(ops, utc(2026, 11, 4, 2), 60)
    result = health_scores(period=NOVEMBER, now=AFTER)
    assert result["settings"] == settings.HEALTH_SCORE
    terms = result["teams"][0]["terms"]
    assert (terms["incidents"]["penalty"], terms["incidents"]["points"]) == (120, Decimal("0.0"))  # 100 - 120 < 0
    assert result["teams"][0]["score"] == Decimal("900.0")  # 0 + 300 + 300 + 300


def test_grouped_incident_figures_match_incident_metrics(teams):
    grouped = incident_figures_by_team(period=NOVEMBER)
    for team in teams.values():
        figures = incident_metrics(incidents=in_period(Incident.objects.filter(team=team), NOVEMBER))
        compliance = figures["recovery_target_compliance"]
        assert grouped[team.pk] == {
            "by_level": figures["by_level"],
            "recovered": compliance["recovered"],
            "within_target": compliance["within_target"],
            "recovery_target_compliance": compliance["rate"],
        }
    assert set(grouped) == {teams["payments"].pk, teams["accounts"].pk}


def test_team_filter_and_constant_queries(teams):
    chosen = Team.objects.filter(slug__in=["payments", "zeta"])
    with CaptureQueriesContext(connection) as few:
        result = health_scores(period=NOVEMBER, now=AFTER, teams=chosen)
    scores = [(t["team"], t["score"]) for t in result["teams"]]
    assert scores == [("zeta", Decimal("1000.0")), ("payments", Decimal("805.0"))]

    for n in range(5):
        team = TeamFactory(slug=f"more-{n}", name=f"More {n}")
        ops = SystemFactory(code=f"more-ops-{n}", tier="P3", team=team)
        incident(ops, utc(2026, 11, 3 + n, 2), 60)
        alerts(team, 30, None)
        ActionItemFactory(incident=Incident.objects.filter(team=team).get(), due_at=utc(2026, 11, 20))
    with CaptureQueriesContext(connection) as many:
        result = health_scores(period=NOVEMBER, now=AFTER)
    assert len(result["teams"]) == 9
    assert len(few) == len(many)
    # 1 (teams) + both periods' follow-up counts by team at once (stability.follow_up.period_counts,
    # which only reads: the day counts' state, the days changed since their refresh, day counts, the
    # other days' occurrences, team slugs: 5; no delay percentiles, the score needs none) + per period
    # (this one and the previous): incidents by team 1, on-time completion 1.
    assert len(many) == 1 + 5 + 2 * (1 + 1)
