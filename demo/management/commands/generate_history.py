import time

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from demo.history import HistoryRefused, Scale, generate_history, history_window


class Command(BaseCommand):
    help = (
        "Generate a realistic year of records for the monthly report's benchmark: teams, people, systems, "
        "one alert integration per team, incidents (classified by the current severity policy), closed-loop "
        "items, alert occurrences and their follow-ups. Default window: from the 1st of the month twelve "
        "months ago to now; --year for a calendar year. Refuses a database that already holds incidents "
        "unless --append. Progress (phase, rows, rate, ETA) goes to stderr, the summary to stdout."
    )

    def add_arguments(self, parser):
        defaults = Scale()
        parser.add_argument("--year", type=int, help="A calendar year in TIME_ZONE (up to now), e.g. 2026.")
        parser.add_argument("--teams", type=int, default=defaults.teams)
        parser.add_argument("--systems", type=int, default=defaults.systems)
        parser.add_argument("--incidents", type=int, default=defaults.incidents)
        parser.add_argument("--items", type=int, default=defaults.items, help="Closed-loop (action) items.")
        parser.add_argument("--alerts", type=int, default=defaults.alerts, help="Alert occurrences.")
        parser.add_argument("--seed", type=int, default=2024, help="Same seed and scale, same records.")
        parser.add_argument("--append", action="store_true", help="Add to a database that already holds incidents.")

    def handle(self, *args, year, teams, systems, incidents, items, alerts, seed, append, **options):
        now = timezone.now()
        scale = Scale(teams=teams, systems=systems, incidents=incidents, items=items, alerts=alerts)
        try:
            window = history_window(year=year, now=now)
            first, last = (timezone.localtime(moment) for moment in (window.start, window.end))
            self.stderr.write(
                f"Generating {first:%Y-%m-%d %H:%M} .. {last:%Y-%m-%d %H:%M} ({timezone.get_current_timezone_name()}): "
                f"{teams:,} teams, {systems:,} systems, {incidents:,} incidents, "
                f"{items:,} items, {alerts:,} alerts (seed {seed})"
            )
            counts = generate_history(
                window=window, scale=scale, seed=seed, now=now, append=append, progress=self._progress()
            )
        except HistoryRefused as exc:
            raise CommandError(str(exc)) from None
        seconds = counts.pop("seconds")
        summary = ", ".join(f"{name.replace('_', ' ')} {n:,}" for name, n in counts.items())
        self.stdout.write(self.style.SUCCESS(f"Generated in {seconds // 60} min {seconds % 60} s: {summary}"))

    def _progress(self):
        """A progress line per phase, at most every 2 seconds: rows done, rate, estimated time left."""
        state = {"phase": None, "started": 0.0, "shown": 0.0}

        def show(phase: str, done: int, total: int) -> None:
            moment = time.monotonic()
            if phase != state["phase"]:
                state.update(phase=phase, started=moment, shown=moment)
            if done == 0:
                return  # the phase starts
            finished = done >= total
            if (not finished and moment - state["shown"] < 2) or state.get("finished") == phase:
                return
            if finished:
                state["finished"] = phase
            state["shown"] = moment
            elapsed = moment - state["started"]
            rate = done / elapsed if elapsed > 0 else 0
            left = (total - done) / rate if rate and not finished else 0
            share = f"{100 * done / total:3.0f} %" if total else "100 %"
            ending = "done" if finished else f"ETA {left:,.0f} s"
            self.stderr.write(f"  {phase:<17} {done:>10,} / {total:<10,} {share}  {rate:>9,.0f} rows/s  {ending}")

        return show
