"""Links back to the tracker, for whatever leaves it (reminders, alert notices, the monthly report's email
and chat summary, webhook payloads): the page's URL name (web/urls.py) reversed, under SITE_URL.
Built here and nowhere else, so a page that moves moves every link to it."""

from urllib.parse import urlencode

from django.conf import settings
from django.urls import reverse


def absolute(path: str) -> str:
    """A path of the tracker as an absolute URL under SITE_URL (messages are read outside any request)."""
    return settings.SITE_URL.rstrip("/") + path


def home_url() -> str:
    return absolute(reverse("web:home"))


def incident_url(*, incident_id: int) -> str:
    return absolute(reverse("web:incident-detail", kwargs={"pk": incident_id}))


def item_url(*, incident_id: int | None, item_id: int) -> str:
    """An incident's item is shown on its incident's page, at its own anchor; any other item's page
    leads to where it is shown (its drill's page, or its own)."""
    if incident_id is None:
        return absolute(reverse("web:item-detail", kwargs={"item_pk": item_id}))
    return f"{incident_url(incident_id=incident_id)}#item-{item_id}"


def alert_url(*, alert_id: int) -> str:
    return absolute(reverse("web:alert-detail", kwargs={"pk": alert_id}))


def report_url(*, period_label: str, team_slug: str | None = None, system_code: str | None = None) -> str:
    """The report page of a period, for one team or system when given."""
    query = {"period": period_label, "team": team_slug, "system": system_code}
    return absolute(reverse("web:reports")) + "?" + urlencode({k: v for k, v in query.items() if v})


def notification_log_url() -> str:
    return absolute(reverse("web:notification-log"))


def webhook_path(*, kind: str) -> str:
    """Where an alerting system of this kind (alertmanager, grafana, generic) posts, as a path: the sender
    reaches the tracker by whatever address its network gives it."""
    return reverse(f"webhook-{kind}")
