"""The report's queries do not depend on the data: a busy month takes exactly the queries of a month with
nothing in it, for everyone, one team and one system, through the JSON API and the page, with the
follow-up day counts read for settled days and the occurrences for what changed since. A query per
incident, item, alert, team or system (an N+1) would make the busy month's count larger.

The busy month is made by generate_history (the benchmark's own data, at a small scale): 2025, with
three teams, eight systems, 300 incidents, 600 items and 6,000 alerts over the year (about 500 alerts
and 25 incidents a month, spread over every team and system). Its day counts are refreshed as the beat
task would; `NOW` is in 2026, so every day of 2025 is settled.
"""

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection
from django.db.models import Count
from django.db.models.functions import TruncMonth
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import Role
from incidents import periods
from incidents.models import ActionItem, Incident, System, Team
from stability import follow_up
from stability.models import AlertOccurrence
from stability.reports import build_report
from stability.services import alerts_follow_up
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 10, 4, tzinfo=UTC)
EMPTY = "2000-01"


@pytest.fixture
def year():
    call_command(
        "generate_history",
        year=2025,
        seed=11,
        teams=3,
        systems=8,
        incidents=300,
        items=600,
        alerts=6_000,
        stdout=StringIO(),
        stderr=StringIO(),
    )
    zone = timezone.get_default_timezone()
    busiest = (
        AlertOccurrence.objects.annotate(month=TruncMonth("received_at", tzinfo=zone))
        .values("month")
        .annotate(n=Count("pk"))
        .order_by("-n")
        .first()
    )
    return f"{busiest['month']:%Y-%m}"


@pytest.fixture
def manager() -> Client:
    client = Client()
    client.force_login(UserFactory(username="report-reader", role=Role.MANAGER))
    return client


def queries_of(fetch) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        fetch()
    return [query["sql"] for query in queries]


def report_queries(period: str, **scope) -> list[str]:
    return queries_of(lambda: build_report(period=periods.parse(period), now=NOW, **scope))


def test_the_busy_month_is_busy(year):
    """What the comparisons below stand on: the month holds hundreds of alerts, tens of incidents and
    items, over every team and system (else equal counts would prove nothing)."""
    month = periods.parse(year)
    alerts = AlertOccurrence.objects.filter(received_at__gte=month.start, received_at__lt=month.end)
    incidents = Incident.objects.filter(occurred_at__gte=month.start, occurred_at__lt=month.end)
    items = ActionItem.objects.filter(due_at__gte=month.start, due_at__lt=month.end)
    assert alerts.count() > 400 and incidents.count() > 15 and items.count() > 15
    assert alerts.values("team").distinct().count() == Team.objects.count() == 3
    assert incidents.values("team").distinct().count() == 3
    assert alerts.values("system").distinct().count() == System.objects.count() == 8


@pytest.mark.parametrize("scope", ["everyone", "team", "system"])
def test_a_busy_month_takes_the_queries_of_an_empty_one(year, scope):
    chosen = {
        "everyone": {},
        "team": {"team": Team.objects.order_by("pk").first()},
        "system": {"system": System.objects.order_by("pk").first()},
    }[scope]
    busy, empty = report_queries(year, **chosen), report_queries(EMPTY, **chosen)
    assert len(busy) == len(empty)


def test_the_same_queries_when_the_day_counts_are_stale(year):
    """Occurrences followed up after the last refresh: their days are counted from the occurrences
    (an extra range in the same query), not by more queries."""
    month = periods.parse(year)
    settled = report_queries(year)
    pending = AlertOccurrence.objects.filter(
        received_at__gte=month.start, received_at__lt=month.end, followed_up_at__isnull=True
    ).order_by("received_at")[:5]
    assert len(pending) == 5
    person = UserFactory(username="late-follower", role=Role.ENGINEER)
    with time_machine.travel(timezone.now() + timedelta(minutes=10), tick=False):
        alerts_follow_up(occurrence_ids=[o.pk for o in pending], action="acknowledge", by=person)
        stale = report_queries(year)
        assert len(stale) == len(settled)
        follow_up.refresh_day_counts()
        assert len(report_queries(year)) == len(settled)


def test_the_api_and_the_page_take_the_same_queries_busy_or_empty(year, manager):
    for url in ("/api/v1/reports/stability/?period={}", "/reports/?period={}"):
        with time_machine.travel(NOW, tick=False):
            busy = queries_of(lambda url=url: _ok(manager.get(url.format(year))))
            empty = queries_of(lambda url=url: _ok(manager.get(url.format(EMPTY))))
        assert len(busy) == len(empty), url


def _ok(answer):
    assert answer.status_code == 200, answer.content[:300]
    return answer
