#!/usr/bin/env python3
"""Monthly report benchmark: the JSON report of one month, all sections, all teams, on a year of data.

    createdb -h 127.0.0.1 -U postgres stability_bench_report
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/stability_bench_report .venv/bin/python manage.py migrate
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/stability_bench_report \\
        .venv/bin/python manage.py generate_history        # 1,000,000 alerts, 20,000 incidents, ...
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/stability_bench_report .venv/bin/python bench/report.py

Times GET /api/v1/reports/stability/?period=... through the Django test client (view, selectors and
JSON rendering; no HTTP server), for the busiest month of the data and for a month with no data at
all, each the median of --runs warm runs after one cold one, and counts the SQL queries of each. The
target of the issue: under 500 ms for the busy month, the same query count for both.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/stability_bench_report")
os.environ.setdefault("ALLOWED_HOSTS", "testserver")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.db.models.functions import TruncMonth  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402

from accounts.models import Role, User  # noqa: E402
from stability.models import AlertOccurrence  # noqa: E402

TARGET_MS = 500


def measure(client: Client, period: str, runs: int) -> tuple[float, float, int, int]:
    url = f"/api/v1/reports/stability/?period={period}"
    started = time.perf_counter()
    answer = client.get(url)
    cold = (time.perf_counter() - started) * 1000
    assert answer.status_code == 200, answer.content[:500]
    timings = []
    for _run in range(runs):
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            answer = client.get(url)
            timings.append((time.perf_counter() - started) * 1000)
    return cold, statistics.median(timings), len(queries), len(answer.content)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="warm runs per month (default 5)")
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        print("Needs PostgreSQL: set DATABASE_URL (see the docstring).")
        return 2
    alerts = AlertOccurrence.objects.count()
    if alerts < 1_000:
        print(f"{connection.settings_dict['NAME']} holds {alerts} alerts: generate a year first (see the docstring).")
        return 2
    zone = timezone.get_default_timezone()
    busiest = (
        AlertOccurrence.objects.annotate(month=TruncMonth("received_at", tzinfo=zone))
        .values("month")
        .order_by()
        .annotate(n=django.db.models.Count("pk"))
        .order_by("-n")
        .first()
    )
    busy_month = f"{busiest['month']:%Y-%m}"
    quiet_month = "2000-01"
    manager, _created = User.objects.get_or_create(username="bench-manager", defaults={"role": Role.MANAGER})
    client = Client()
    client.force_login(manager)

    print(
        f"Database {connection.settings_dict['NAME']}: {alerts:,} alerts, "
        f"{django.apps.apps.get_model('incidents', 'Incident').objects.count():,} incidents, "
        f"{django.apps.apps.get_model('incidents', 'ActionItem').objects.count():,} action items, "
        f"{django.apps.apps.get_model('incidents', 'Team').objects.count()} teams, "
        f"{django.apps.apps.get_model('incidents', 'System').objects.count()} systems"
    )
    print(f"busiest month {busy_month}: {busiest['n']:,} alerts received\n")
    print(f"{'month':<16} {'cold ms':>8} {'median ms':>10} {'queries':>8} {'JSON bytes':>11}  target")
    results = {}
    for name, month in (("busy " + busy_month, busy_month), ("quiet " + quiet_month, quiet_month)):
        cold, median, queries, size = measure(client, month, args.runs)
        results[name] = (median, queries)
        verdict = ""
        if name.startswith("busy"):
            verdict = f"< {TARGET_MS} ms: {'MET' if median < TARGET_MS else 'MISSED'}"
        print(f"{name:<16} {cold:>8.0f} {median:>10.0f} {queries:>8} {size:>11,}  {verdict}")
    counts = {q for _m, q in results.values()}
    print(f"\nsame query count busy and quiet: {'yes' if len(counts) == 1 else 'NO'}")
    print("\nReproduce:\n  DATABASE_URL=" + os.environ["DATABASE_URL"] + " .venv/bin/python bench/report.py")
    return 0 if len(counts) == 1 else 1


if __name__ == "__main__":
    sys.exit(main())
