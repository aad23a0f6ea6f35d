"""The home page of each role, saying what needs attention: an engineer sees what is theirs now (their
teams' alerts waiting for follow-up, the incidents they own or command, their items due); a manager sees
the open A/B incidents, the incidents awaiting review, the overdue items by team and each team's follow-up
rate this month against last, then this month's figures. An administrator sees both. A constant number
of queries whatever the data."""

from datetime import timedelta

from django.db.models import Q
from django.shortcuts import render
from django.utils import timezone

from accounts.permissions import READ_REPORTS, WRITE_RECORD, user_can
from incidents import periods
from incidents import selectors as incident_selectors
from incidents.models import Incident, Level, Status, Team
from stability import selectors as stability_selectors
from web import selectors as web_selectors
from web.views import items
from web.views.alerts import month_follow_up_rate
from web.views.base import PageView
from web.views.service_levels import unlogged_for_manager

HOME_ALERTS = 10
HOME_INCIDENTS = 10
# Alerts older than this are history for the inbox, not the home page's "waiting for you".
HOME_ALERT_HOURS = 24


class HomeView(PageView):
    def get(self, request):
        now = timezone.now()
        context = {"now": now}
        if user_can(request.user, WRITE_RECORD):
            context |= engineer_context(request.user, now=now)
        if user_can(request.user, READ_REPORTS):
            context |= manager_context(now=now)
        # Days a managed team's P0/P1 indicator fell below its objective with no incident logged.
        context["possible_unlogged"] = unlogged_for_manager(request.user, now=now)
        return render(request, "web/home.html", context)


def engineer_context(user, *, now) -> dict:
    """What is the reader's now: the alerts of their teams (everyone's when they are in no team) waiting
    for follow-up, received in the last day; the incidents not closed that they own or command; their
    items due within a week or overdue."""
    waiting = web_selectors.alerts_awaiting_follow_up(since=now - timedelta(hours=HOME_ALERT_HOURS))
    team_ids = list(user.teams.values_list("pk", flat=True))
    if team_ids:
        waiting = waiting.filter(team__in=team_ids)
    mine = (
        incident_selectors.incident_list()
        .filter(Q(owner=user) | Q(commander=user))
        .exclude(status=Status.CLOSED)
        .order_by("level", "-occurred_at", "-id")
    )
    return {
        "open_incidents": web_selectors.open_incidents(),
        "waiting_alerts": waiting[:HOME_ALERTS],
        "my_teams_only": bool(team_ids),
        "my_incidents": mine[:HOME_INCIDENTS],
        **items.my_items_summary(user, now=now),
    }


def manager_context(*, now) -> dict:
    """What needs a manager: open A/B incidents, incidents awaiting review, overdue items by team, each
    team's follow-up rate this month against last; and this month's figures."""
    period = periods.this_month(now)
    major = web_selectors.open_incidents().filter(level__in=(Level.A, Level.B))
    awaiting = incident_selectors.incidents_awaiting_review()
    return {
        "period": period,
        "last_period": period.previous(),
        "metrics": incident_selectors.incident_metrics(
            incidents=incident_selectors.in_period(Incident.objects.all(), period)
        ),
        "rate": month_follow_up_rate(now=now),
        "major_incidents": major[:HOME_INCIDENTS],
        "awaiting_review": awaiting[:HOME_INCIDENTS],
        "awaiting_review_total": awaiting.count(),
        "overdue_by_team": incident_selectors.overdue_items_by_team(now=now),
        "team_follow_up": team_follow_up(period=period, now=now),
    }


def team_follow_up(*, period: periods.Period, now) -> list[dict]:
    """Each team's follow-up rate (stability.selectors.follow_up_breakdown, the report's definition) in
    `period` and the one before, and the change in percentage points when both are known."""
    teams = list(Team.objects.order_by("name").values_list("slug", "name"))
    slugs = [slug for slug, _name in teams]

    def by_team(of: periods.Period) -> dict:
        groups = stability_selectors.follow_up_breakdown(
            period=of, dimensions=("team",), now=now, all_keys={"team": slugs}
        )["team"]
        return {group["key"]: group for group in groups}

    this, last = by_team(period), by_team(period.previous())
    rows = []
    for slug, name in teams:
        now_rate, then_rate = this[slug]["rate"], last[slug]["rate"]
        change = None
        if now_rate is not None and then_rate is not None:
            change = round((now_rate - then_rate) * 100, 1)
        rows.append({"slug": slug, "name": name, "this": this[slug], "last": last[slug], "change": change})
    return rows
