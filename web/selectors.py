"""Reads that only the pages need (lists as a page shows them). Figures are not computed here: the
pages call incidents.selectors and stability.selectors for those."""

from datetime import datetime

from django.db.models import QuerySet

from incidents import selectors as incident_selectors
from incidents.models import Incident, Status, System
from stability.models import AlertActivity, AlertOccurrence


def alert_list() -> QuerySet[AlertOccurrence]:
    """Alert occurrences with what a list row shows, newest first, in a constant number of queries."""
    return AlertOccurrence.objects.select_related(
        "integration", "team", "system", "followed_up_by", "acknowledged_by", "incident"
    ).order_by("-received_at", "-id")


def alerts_awaiting_follow_up(*, since: datetime | None = None) -> QuerySet[AlertOccurrence]:
    """Alerts nobody has followed up yet (acknowledged, commented, linked or resolved by a person)."""
    alerts = alert_list().filter(followed_up_at__isnull=True)
    if since is not None:
        alerts = alerts.filter(received_at__gte=since)
    return alerts


def incident_alerts(*, incident: Incident) -> QuerySet[AlertOccurrence]:
    return alert_list().filter(incident=incident).order_by("received_at", "id")


def open_incidents() -> QuerySet[Incident]:
    """Incidents still burning (not recovered), the most severe first."""
    return incident_selectors.incident_list().filter(status=Status.OPEN).order_by("level", "-occurred_at", "-id")


def alert_history(*, alert: AlertOccurrence) -> QuerySet[AlertActivity]:
    """What people did with the alert, in order."""
    return alert.activities.select_related("by", "incident").order_by("at", "id")


def inbox_choices(*, since: datetime) -> dict[str, list[str]]:
    """The alert rules and severities of the alerts waiting since `since`, offered by the inbox's filters
    (one read of the same index range as the inbox)."""
    pairs = set(
        AlertOccurrence.objects.filter(received_at__gte=since, followed_up_at__isnull=True)
        .values_list("alertname", "severity")
        .order_by()  # the model's ordering would join DISTINCT, making every alert a row of its own
        .distinct()
    )
    return {
        "rules": sorted({rule for rule, _severity in pairs if rule}),
        "severities": sorted({severity for _rule, severity in pairs if severity}),
        "systems": list(System.objects.order_by("code").values_list("code", "name")),
    }
