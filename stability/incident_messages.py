"""The team's channels hear of their major incidents: an A or B incident logged or raised
(Event.INCIDENT_MAJOR), and each update its commander posts on the timeline (Event.INCIDENT_UPDATE).

incidents.signals is sent inside the incident's write; the receivers here record one Notification per
channel of the incident's team subscribed to the event, in the same transaction, under a key that says
what it is about:
- incident:<id>:level-<A|B>:channel:<channel id>: once per level reached, so a retry, an edit that keeps
  the level or a raise back to a level already announced records nothing new; C -> B, then B -> A send
  twice (two levels), lowering sends nothing (incidents.signals.level_changed);
- incident:<id>:update-<timeline entry id>:channel:<channel id>: once per update.
Delivery is the reminders' path: the task is handed the channels after the commit, and when the broker is
down the next sweep finds the notifications still pending (stability.reminders.ready_destinations).
Quiet hours do not hold these back: an A incident at 3 a.m. is exactly when the channel must hear it.
"""

from django.db import transaction
from django.utils import timezone

from incidents.models import Incident, TimelineEntry
from stability.models import Event, Notification
from stability.reminders import Directory, Step, enqueue_deliveries


def _record(*, incident: Incident, step: Step) -> None:
    now = timezone.now().replace(microsecond=0)
    directory = Directory.load(())
    rows = [
        Notification(
            key=f"incident:{incident.pk}:{step.name}:{destination.suffix}",
            event=step.event,
            step=step.name,
            incident_id=incident.pk,
            channel_id=destination.channel_id,
            destination=destination.destination,
            language=destination.language,
            fire_at=step.fire_at,
            created_at=now,
            deliver_after=now,
        )
        for destination in directory.for_team(incident.team_id, step.event, by_default=False)
    ]
    if not rows:
        return
    Notification.objects.bulk_create(rows, ignore_conflicts=True)
    destinations = sorted({row.destination for row in rows})
    transaction.on_commit(lambda: enqueue_deliveries(destinations))


def on_level_reached(sender, *, incident: Incident, level: str, old_level: str, **kwargs) -> None:
    _record(incident=incident, step=Step(f"level-{level}", Event.INCIDENT_MAJOR, timezone.now()))


def on_update_posted(sender, *, incident: Incident, entry: TimelineEntry, **kwargs) -> None:
    _record(incident=incident, step=Step(f"update-{entry.pk}", Event.INCIDENT_UPDATE, entry.at))
