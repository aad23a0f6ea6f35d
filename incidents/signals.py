"""What incidents tell the apps built on them (stability sends the team's channels a message), without
importing them: `incidents` never imports `stability`.

Both signals are sent inside the write's transaction, so a receiver's own rows (stability records one
Notification per channel under an idempotent key) commit or roll back with the write; a receiver hands
network work to after the commit.
"""

from django.dispatch import Signal

from incidents import severity
from incidents.models import Incident, Level, TimelineEntry

MAJOR_LEVELS = (Level.A, Level.B)

# An incident reached level A or B: logged at it, or raised to it (kwargs: incident, level, old_level;
# old_level is "" when it was just logged).
incident_level_reached = Signal()
# The commander (or a manager) posted an update on the timeline (kwargs: incident, entry).
timeline_update_posted = Signal()


def level_changed(incident: Incident, *, old_level: str) -> None:
    """Send incident_level_reached when the incident's level became A or B and is higher than before;
    lowering it, or a change that stays at the same level, sends nothing; nor does an incident already
    resolved (logged after the fact, or re-evaluated under a new policy): that is history, not news."""
    level = incident.level
    if level not in MAJOR_LEVELS or level == old_level or incident.resolved_at is not None:
        return
    if old_level and not severity.level_is_higher(level, old_level):
        return
    incident_level_reached.send(sender=Incident, incident=incident, level=level, old_level=old_level)


def update_posted(entry: TimelineEntry, *, incident: Incident) -> None:
    if entry.kind == TimelineEntry.Kind.UPDATE:
        timeline_update_posted.send(sender=Incident, incident=incident, entry=entry)
