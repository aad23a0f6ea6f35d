"""Saves that change what ingestion routes by make every process's routing snapshot stale (stability.ingest_routing);
major incidents and commanders' updates become messages to the team's channels (stability.incident_messages)."""

from django.db.models.signals import post_delete, post_save

from incidents import signals as incident_signals
from incidents.models import System, Team
from stability import incident_messages
from stability.ingest_routing import routing_changed
from stability.models import Integration, MaintenanceWindow


def connect() -> None:
    for model in (Integration, System, Team, MaintenanceWindow):
        post_save.connect(routing_changed, sender=model, dispatch_uid=f"routing-save-{model.__name__}")
        post_delete.connect(routing_changed, sender=model, dispatch_uid=f"routing-delete-{model.__name__}")
    incident_signals.incident_level_reached.connect(incident_messages.on_level_reached, dispatch_uid="incident-major")
    incident_signals.timeline_update_posted.connect(incident_messages.on_update_posted, dispatch_uid="incident-update")
