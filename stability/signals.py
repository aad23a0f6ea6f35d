"""Saves that change what ingestion routes by drop this process's routing snapshot at once."""

from django.db.models.signals import post_delete, post_save

from incidents.models import System, Team
from stability.ingestion import invalidate_routing
from stability.models import Integration, MaintenanceWindow


def connect() -> None:
    for model in (Integration, System, Team, MaintenanceWindow):
        post_save.connect(invalidate_routing, sender=model, dispatch_uid=f"routing-save-{model.__name__}")
        post_delete.connect(invalidate_routing, sender=model, dispatch_uid=f"routing-delete-{model.__name__}")
