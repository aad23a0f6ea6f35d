from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from service_levels import services
from service_levels.models import DailyValue, Indicator
from service_levels.selectors import day_percent


class Command(BaseCommand):
    help = (
        "Pull the last N finished days of every enabled indicator (or of one) from Prometheus and record them, "
        "replacing what was stored (a failed pull keeps a measured value). Prints each day as it goes."
    )

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, required=True, help="How many finished days before today (1 to 3660).")
        parser.add_argument("--indicator", type=int, help="Only this indicator (its id), even when disabled.")

    def handle(self, *args, days: int, indicator: int | None, **options):
        if not 1 <= days <= 3660:
            raise CommandError("--days must be between 1 and 3660.")
        if indicator is not None:
            chosen = list(Indicator.objects.filter(pk=indicator).select_related("source", "system"))
            if not chosen:
                raise CommandError(f"No indicator with id {indicator}.")
        else:
            chosen = list(services.pullable_indicators())
            if not chosen:
                self.stdout.write("No enabled indicator of an enabled source: nothing to pull.")
                return
        now = timezone.now()
        window = services.finished_days(days=days, now=now)
        plan = [(each, day) for each in chosen for day in window]
        self.stdout.write(f"Pulling {len(window)} days of {len(chosen)} indicators ({len(plan)} pulls).")
        statuses = {status: 0 for status in DailyValue.Status.values}
        for n, pull in enumerate(services.pulls(plan, now=now), start=1):
            statuses[pull.measurement.status] += 1
            self.stdout.write(f"[{n}/{len(plan)}] {pull.indicator} {pull.day}: {self._outcome(pull)}")
        summary = ", ".join(f"{status} {count}" for status, count in statuses.items())
        style = self.style.WARNING if statuses[DailyValue.Status.FAILED] else self.style.SUCCESS
        self.stdout.write(style(f"Done: {summary}."))

    def _outcome(self, pull: services.Pull) -> str:
        measurement = pull.measurement
        if measurement.status == DailyValue.Status.OK:
            counts = f" ({measurement.good:,.0f} / {measurement.total:,.0f})" if measurement.total else ""
            return f"{day_percent(pull.value):.3f} %{counts}"
        if measurement.status == DailyValue.Status.FAILED and pull.value.status == DailyValue.Status.OK:
            return f"failed, the measured value is kept: {measurement.text}"
        return f"{measurement.status}: {measurement.text}"
