"""Saves that change what ingestion routes by make every process's routing snapshot stale (stability.ingest_routing)."""

from django.db.models.signals import post_delete, post_save

from incidents.models import System, Team
from stability.ingest_routing import routing_changed
from stability.models import Integration, MaintenanceWindow


def connect() -> None:
    for model in (Integration, System, Team, MaintenanceWindow):
        post_save.connect(routing_changed, sender=model, dispatch_uid=f"routing-save-{model.__name__}")
        post_delete.connect(routing_changed, sender=model, dispatch_uid=f"routing-delete-{model.__name__}")
