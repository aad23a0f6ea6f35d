"""What each notification says: its entry (a title linking back to the tracker, detail lines and, for a
digest, links to several items) in the notification's language, and a generic webhook's JSON body.
Read by stability.delivery after its claim, holding no lock; channels.py writes entries in each
channel's format."""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from incidents import periods
from incidents.models import ActionItem, TimelineEntry
from incidents.timeline import level_name
from stability import links, reports
from stability.channels import Entry
from stability.models import Event, Notification
from stability.reminders import REPORT_EVENTS

DAY = timedelta(days=1)
DIGEST_ITEMS = 20  # items listed in a digest; more are counted


def _when(moment: datetime) -> str:
    return timezone.localtime(moment).isoformat(timespec="minutes").replace("T", " ")


def _person(user) -> str:
    return (user.get_full_name() or user.username) if user is not None else "-"


def _item_entry(notification: Notification) -> Entry:
    item = notification.action_item
    due_at = notification.due_at
    values = {"title": item.title}
    if notification.event == Event.ITEM_BEFORE_DUE:
        days = round((due_at - notification.fire_at) / DAY)
        title = ngettext("Due in %(days)d day: %(title)s", "Due in %(days)d days: %(title)s", days)
    elif notification.event == Event.ITEM_DUE:
        days, title = 0, _("Due now: %(title)s")
    elif notification.event == Event.ITEM_OVERDUE:
        days = round((notification.fire_at - due_at) / DAY)
        title = ngettext("Overdue by %(days)d day: %(title)s", "Overdue by %(days)d days: %(title)s", days)
    else:
        days = round((notification.fire_at - due_at) / DAY)
        title = ngettext(
            "Escalation, overdue by %(days)d day: %(title)s", "Escalation, overdue by %(days)d days: %(title)s", days
        )
    origin = (
        _("Action item #%(item)s of incident #%(incident)s %(incident_title)s")
        % {"item": item.pk, "incident": item.incident_id, "incident_title": item.incident.title}
        if item.incident_id is not None
        else _("Action item #%(item)s (%(source)s%(note)s) of team %(team)s")
        % {
            "item": item.pk,
            "source": item.get_source_display(),
            "note": f" · {item.source_note}" if item.source_note else "",
            "team": item.team.name,
        }
    )
    details = (
        origin,
        _("Owner %(owner)s, due %(due)s") % {"owner": _person(item.owner), "due": _when(due_at)},
    )
    url = links.item_url(incident_id=item.incident_id, item_id=item.pk)
    return Entry(title=title % {**values, "days": days}, url=url, details=details)


def _alert_entry(notification: Notification) -> Entry:
    alert = notification.alert
    name = alert.alertname or alert.fingerprint
    minutes = round((notification.fire_at - alert.received_at).total_seconds() / 60)
    if notification.event == Event.ALERT_UNFOLLOWED:
        title = ngettext(
            "Alert not followed up within %(minutes)d minute: %(alert)s",
            "Alert not followed up within %(minutes)d minutes: %(alert)s",
            minutes,
        )
    else:
        title = ngettext(
            "Escalation, alert not followed up for %(minutes)d minute: %(alert)s",
            "Escalation, alert not followed up for %(minutes)d minutes: %(alert)s",
            minutes,
        )
    details = [alert.summary] if alert.summary else []
    details.append(
        _("Team %(team)s, system %(system)s, severity %(severity)s, received %(received)s")
        % {
            "team": alert.team.name if alert.team else "-",
            "system": alert.system.code if alert.system else "-",
            "severity": alert.severity or "-",
            "received": _when(alert.received_at),
        }
    )
    return Entry(
        title=title % {"minutes": minutes, "alert": name},
        url=links.alert_url(alert_id=alert.pk),
        details=tuple(details),
    )


def _incident_entry(notification: Notification, updates: dict[int, TimelineEntry]) -> Entry | None:
    """An A/B incident logged or raised, or its commander's update (the text typed): level, title, team,
    systems, commander, and the link to the incident."""
    incident = notification.incident
    values = {"id": incident.pk, "title": incident.title, "level": level_name(notification.step.removeprefix("level-"))}
    details = []
    if notification.event == Event.INCIDENT_UPDATE:
        entry = updates.get(_update_entry_id(notification))
        if entry is None:  # the row was deleted since
            return None
        values["level"] = level_name(incident.level)
        title = _("Update on incident #%(id)s (%(level)s): %(title)s") % values
        details.append(entry.text)
        details.append(_("Posted by %(author)s at %(at)s") % {"author": _person(entry.author), "at": _when(entry.at)})
    else:
        title = _("Incident #%(id)s is %(level)s: %(title)s") % values
    details.append(
        _("Team %(team)s, systems %(systems)s, commander %(commander)s, since %(since)s")
        % {
            "team": incident.team.name,
            "systems": ", ".join(sorted(s.code for s in incident.systems.all())) or "-",
            "commander": _person(incident.commander) if incident.commander_id else _("none yet"),
            "since": _when(incident.occurred_at),
        }
    )
    return Entry(title=title, url=links.incident_url(incident_id=incident.pk), details=tuple(details))


def _update_entry_id(notification: Notification) -> int:
    return int(notification.step.removeprefix("update-"))


def _digest_entry(notification: Notification, items: list[ActionItem], *, now: datetime) -> Entry | None:
    if not items:
        return None
    overdue = sum(1 for item in items if item.due_at < now)
    listed = []
    for item in items[:DIGEST_ITEMS]:
        text = _("#%(item)s %(title)s, due %(due)s") % {"item": item.pk, "title": item.title, "due": _when(item.due_at)}
        if item.due_at < now:
            text += " " + _("(overdue)")
        listed.append((text, links.item_url(incident_id=item.incident_id, item_id=item.pk)))
    details = []
    if len(items) > DIGEST_ITEMS:
        details.append(_("and %(count)d more") % {"count": len(items) - DIGEST_ITEMS})
    title = _("Your action items this week: %(open)d open, %(overdue)d overdue") % {
        "open": len(items),
        "overdue": overdue,
    }
    return Entry(title=title, url=links.home_url(), details=tuple(details), links=tuple(listed))


def _team_report(notification: Notification) -> reports.Report:
    """The weekly or monthly report a notification carries, as of its sending time (computed holding no
    lock)."""
    period = periods.parse(notification.step)
    return reports.build_report(period=period, team=notification.team, now=notification.fire_at)


def report_title(event: str, period: periods.Period, team_name: str) -> str:
    """Which report, and the period's first and last day (local): "Weekly stability report 2026-W48
    (2026-11-23 to 2026-11-29): Payments"."""
    values = {
        "period": period.label,
        "first": f"{timezone.localtime(period.start, timezone.get_default_timezone()):%Y-%m-%d}",
        "last": f"{timezone.localtime(period.end, timezone.get_default_timezone()) - DAY:%Y-%m-%d}",
        "team": team_name,
    }
    if event == Event.WEEKLY_REPORT:
        return _("Weekly stability report %(period)s (%(first)s to %(last)s): %(team)s") % values
    return _("Monthly stability report %(period)s (%(first)s to %(last)s): %(team)s") % values


def _report_entry(notification: Notification, report: reports.Report) -> Entry:
    """The report's summary: its headline figures and the link to the page (the email adds the PDF)."""
    from stability import report_pdf

    team = notification.team
    period = report.period
    return Entry(
        title=report_title(notification.event, period, team.name),
        url=links.report_url(period_label=period.label, team_slug=team.slug),
        details=tuple(report_pdf.summary_lines(report)),
    )


def webhook_payload(notification: Notification, entry: Entry) -> dict:
    item, alert = notification.action_item, notification.alert
    return {
        "key": notification.key,
        "event": notification.event,
        "step": notification.step,
        "title": entry.title,
        "text": "\n".join([*entry.details, *(f"- {text}: {url}" for text, url in entry.links)]),
        "url": entry.url,
        "language": notification.language,
        "ids": {
            "notification": notification.pk,
            "action_item": item.pk if item else None,
            "incident": item.incident_id if item else notification.incident_id,
            "alert": alert.pk if alert else None,
            "team": notification.team_id,
            "recipient": notification.recipient_id,
        },
    }


@dataclass
class Rendered:
    entries: list[tuple[Notification, Entry]] = field(default_factory=list)
    empty: list[int] = field(default_factory=list)  # notifications with nothing to say
    report_of: dict[int, reports.Report] = field(default_factory=dict)  # a report notification's report


def render(rows: list[Notification], *, now: datetime) -> Rendered:
    """Entries in each notification's language. A team's weekly or monthly report is computed once,
    whatever the number of its notifications here, and kept for the email's PDF and for publishing."""
    open_items = _open_items_of({n.recipient_id for n in rows if n.event == Event.DIGEST})
    update_ids = [_update_entry_id(n) for n in rows if n.event == Event.INCIDENT_UPDATE]
    updates = TimelineEntry.objects.select_related("author").in_bulk(update_ids) if update_ids else {}
    rendered = Rendered()
    computed: dict[tuple, reports.Report] = {}
    for notification in rows:
        report = None
        if notification.event in REPORT_EVENTS:
            key = (notification.team_id, notification.step, notification.fire_at)
            if key not in computed:
                computed[key] = _team_report(notification)
            report = rendered.report_of[notification.pk] = computed[key]
        with translation.override(notification.language):
            if notification.incident_id is not None:
                entry = _incident_entry(notification, updates)
            else:
                entry = _entry(notification, open_items=open_items, report=report, now=now)
        if entry is None:
            rendered.empty.append(notification.pk)
        else:
            rendered.entries.append((notification, entry))
    return rendered


def _open_items_of(owners: set[int]) -> dict[int, list[ActionItem]]:
    """The digests' owners' open items, soonest due first (one query)."""
    open_items: dict[int, list[ActionItem]] = defaultdict(list)
    if owners:
        for item in ActionItem.objects.filter(owner_id__in=owners, status__in=ActionItem.OPEN_STATUSES).order_by(
            "due_at", "id"
        ):
            open_items[item.owner_id].append(item)
    return open_items


def _entry(
    notification: Notification, *, open_items: dict[int, list[ActionItem]], report: reports.Report | None, now: datetime
) -> Entry | None:
    if notification.event == Event.DIGEST:
        return _digest_entry(notification, open_items.get(notification.recipient_id, []), now=now)
    if report is not None:
        return _report_entry(notification, report)
    if notification.alert_id is not None:
        return _alert_entry(notification)
    return _item_entry(notification)
