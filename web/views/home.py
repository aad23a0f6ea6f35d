"""The home page of each role: engineers see what needs them now, managers this month's figures."""

from datetime import timedelta

from django.shortcuts import render
from django.utils import timezone

from accounts.permissions import READ_REPORTS, WRITE_RECORD, user_can
from incidents import periods
from incidents import selectors as incident_selectors
from incidents.models import Incident
from web import selectors as web_selectors
from web.views import items
from web.views.alerts import month_follow_up_rate
from web.views.base import PageView
from web.views.service_levels import unlogged_for_manager

HOME_ALERTS = 10
# Alerts older than this are history for the inbox, not the home page's "waiting for you".
HOME_ALERT_HOURS = 24


class HomeView(PageView):
    def get(self, request):
        now = timezone.now()
        context = {"now": now}
        if user_can(request.user, WRITE_RECORD):
            waiting = web_selectors.alerts_awaiting_follow_up(since=now - timedelta(hours=HOME_ALERT_HOURS))
            context |= {
                "open_incidents": web_selectors.open_incidents(),
                "waiting_alerts": waiting[:HOME_ALERTS],
                **items.my_items_summary(request.user, now=now),
            }
        if user_can(request.user, READ_REPORTS):
            period = periods.this_month(now)
            context |= {
                "period": period,
                "metrics": incident_selectors.incident_metrics(
                    incidents=incident_selectors.in_period(Incident.objects.all(), period)
                ),
                "rate": month_follow_up_rate(now=now),
            }
        # Days a managed team's P0/P1 indicator fell below its objective with no incident logged.
        context["possible_unlogged"] = unlogged_for_manager(request.user, now=now)
        return render(request, "web/home.html", context)
