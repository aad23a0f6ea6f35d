"""Background work of the stability app: the reminder sweep (beat, every minute), the follow-up day
counts (beat, every 5 minutes), the weekly and monthly reports (beat, Mondays and the 1st) and
deliveries."""

import logging

from celery import shared_task
from django.conf import settings
from django.db import DatabaseError

from stability import delivery, follow_up, process_figures, reminders

logger = logging.getLogger(__name__)

# A retry further away than this is left to the sweep, which re-enqueues every minute what is ready:
# long countdowns sit in the broker (Redis redelivers unacknowledged tasks after its visibility timeout).
LONGEST_COUNTDOWN = 300


@shared_task
def sweep_reminders() -> dict:
    """Beat, every minute: record the notifications due now and hand what is ready to delivery. Timed for
    /metrics (stability.process_figures)."""
    with process_figures.sweep_timed():
        result = reminders.sweep()
    return {"considered": result.considered, "skipped": result.skipped, "destinations": len(result.destinations)}


@shared_task
def day_counts_refresh() -> dict:
    """Beat, every 5 minutes: count the days settled since and recount those with changed alerts, so
    readers count few days from the occurrences (stability.follow_up, the day counts' only writer)."""
    return {"counted_until": follow_up.refresh_day_counts().isoformat()}


def _send_reports(kind: str) -> dict:
    result = reminders.send_reports(kind)
    return {"considered": result.considered, "destinations": len(result.destinations)}


@shared_task
def send_weekly_reports() -> dict:
    """Beat, Mondays at WEEKLY_REPORT_HOUR local: record the report notifications of the ISO week that just
    ended (once per key: a second run records nothing) and hand them to delivery."""
    return _send_reports("week")


@shared_task
def send_monthly_reports() -> dict:
    """Beat, the 1st at MONTHLY_REPORT_HOUR local: record the previous month's report notifications
    (once per key: a second run records nothing) and hand them to delivery."""
    return _send_reports("month")


@shared_task(
    bind=True,
    max_retries=settings.REMINDER_MAX_ATTEMPTS,
    autoretry_for=(DatabaseError,),
    retry_backoff=settings.REMINDER_RETRY_BACKOFF_SECONDS,
    retry_backoff_max=LONGEST_COUNTDOWN,
    acks_late=True,
)
def deliver_notifications(self, destination: str) -> dict:
    """Send the ready notifications of one destination ("email" or "channel:<id>"). Failures are recorded
    on each notification with the reason; the task comes back after the backoff or, for a chat robot
    out of budget, after its minute. Running twice at once is harmless: claims are exclusive."""
    outcome = delivery.deliver(destination=destination)
    if outcome.retry_after is not None and outcome.retry_after <= LONGEST_COUNTDOWN:
        if self.request.retries < self.max_retries:
            raise self.retry(countdown=outcome.retry_after)
        logger.info("Deliveries to %s wait for the next sweep", destination)
    return {"sent": outcome.sent, "failed": outcome.failed, "skipped": outcome.skipped}
