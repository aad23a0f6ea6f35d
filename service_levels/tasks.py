"""Background work of the service-levels app: pulling the finished days from Prometheus (beat, hourly)."""

from collections import Counter

from celery import shared_task
from django.conf import settings

from service_levels import services


@shared_task
def pull_service_levels() -> dict:
    """Beat, every hour: each enabled indicator's last SERVICE_LEVELS_RETRY_DAYS finished days without a
    measured value (new, no data so far, or failed) are pulled from Prometheus and recorded. Measured days
    are left alone, so a run that overlaps another or repeats does no harm (one row per indicator and day)."""
    pulls = services.pull_due(days=settings.SERVICE_LEVELS_RETRY_DAYS)
    return dict(Counter(pull.value.status for pull in pulls))
