from celery import shared_task

from incidents.services import reevaluate_unrecovered


@shared_task
def reevaluate_unrecovered_incidents() -> list[int]:
    """Beat, every minute: raise the level of unrecovered incidents as their impact grows."""
    return [incident.pk for incident in reevaluate_unrecovered()]
