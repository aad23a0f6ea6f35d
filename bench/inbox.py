#!/usr/bin/env python3
"""Inbox benchmark: what every engineer on duty reads every 10 s, at 1M or 10M alerts stored.

One database per data set (PostgreSQL), made as for bench/report.py (generate_history), then:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/stability_report_10m .venv/bin/python bench/inbox.py

It measures, in this process (Django's test client signed in as an engineer; production settings: DEBUG
off, compiled templates; no HTTP server, so "server time": middleware, view, queries, rendering):

- the inbox page, GET /alerts/?state=all (the last day's alerts nobody followed up, grouped);
- its 10-second refresh, the same with HX-Request (the live part only);
- the API the same people poll, GET /api/v1/alerts/?followed_up=false (the last day by default).

A generated history ends when it was generated: when the last day holds no alert, the clock is set a
minute after the newest alert (time_machine), so the inbox has its day to read. Each figure: a cold
request, then --runs warm ones (default 7, taken in turn), printed as median and range, with its
query count (one more request) and the alerts the inbox holds. The target of issue 15: each < 100 ms at
10M alerts. Then the plan of the inbox's main query (EXPLAIN ANALYZE): an index range of the last day.

It prints figures and never fails on a timing. Timed assertions do not belong in the test suite.
"""

import argparse
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/stability_report_1m")
os.environ["DEBUG"] = "false"
os.environ.setdefault("SECRET_KEY", "bench-inbox-not-a-secret")
os.environ.setdefault("ALLOWED_HOSTS", "testserver")

import django  # noqa: E402

django.setup()

import time_machine  # noqa: E402
from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client, override_settings  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402

from accounts.models import Role, User  # noqa: E402
from stability import selectors  # noqa: E402
from stability.models import AlertOccurrence  # noqa: E402
from stability.selectors import InboxState  # noqa: E402

TARGET_MS = 100
FIGURES = [
    ("page", "/alerts/?state=all", {}),
    ("refresh", "/alerts/?state=all", {"HTTP_HX_REQUEST": "true"}),
    ("api", "/api/v1/alerts/?followed_up=false", {}),
]


def measure(client: Client, url: str, headers: dict) -> float:
    started = time.perf_counter()
    answer = client.get(url, secure=True, **headers)
    elapsed = (time.perf_counter() - started) * 1000
    if answer.status_code != 200:
        raise SystemExit(f"{url}: {answer.status_code} {answer.content[:300]!r}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="warm runs per figure (default 7)")
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        print("Needs PostgreSQL: set DATABASE_URL (see the docstring).")
        return 2
    newest = AlertOccurrence.objects.order_by("-received_at").values_list("received_at", flat=True).first()
    if newest is None:
        print("No alert stored: generate a history first (see bench/report.py).")
        return 2
    now = timezone.now()
    if newest < selectors.inbox_since(now):
        now = newest + timedelta(minutes=1)
    engineer, _created = User.objects.get_or_create(username="bench-engineer", defaults={"role": Role.ENGINEER})
    client = Client()
    client.force_login(engineer)

    with time_machine.travel(now, tick=True):
        counts = selectors.inbox_counts(now=timezone.now())
        print(
            f"Database {connection.settings_dict['NAME']}: {AlertOccurrence.objects.count():,} alerts; "
            f"PostgreSQL {connection.pg_version // 10000}, DEBUG={settings.DEBUG}; as of {now:%Y-%m-%d %H:%M} UTC"
        )
        print(
            f"the inbox's day: {counts['all']:,} alerts nobody followed up ({counts['act_now']} act now, "
            f"{counts['missed']} missed, {counts['resolved']} resolved by the source)"
        )
        timings = {name: [] for name, _url, _headers in FIGURES}
        cold = {name: measure(client, url, headers) for name, url, headers in FIGURES}
        for _run in range(args.runs):
            for name, url, headers in FIGURES:
                timings[name].append(measure(client, url, headers))
        queries = {}
        for name, url, headers in FIGURES:
            with CaptureQueriesContext(connection) as captured:
                measure(client, url, headers)
            queries[name] = len(captured)
        load = os.getloadavg()
        print(f"load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} on {os.cpu_count()} CPUs\n")
        print(f"{'figure':<8} {'cold ms':>8} {'median ms':>10} {'range ms':>10} {'queries':>8}  target")
        for name, _url, _headers in FIGURES:
            median = statistics.median(timings[name])
            spread = f"{min(timings[name]):.0f}-{max(timings[name]):.0f}"
            verdict = "MET" if median < TARGET_MS else "MISSED"
            print(
                f"{name:<8} {cold[name]:>8.0f} {median:>10.0f} {spread:>10} {queries[name]:>8}  "
                f"< {TARGET_MS} ms: {verdict}"
            )

        main_query = selectors.inbox_alerts(now=timezone.now(), state=InboxState.ALL)
        print("\nEXPLAIN ANALYZE of the inbox's alerts:")
        print(main_query.explain(analyze=True, buffers=True))
    return 0


# DEBUG off names static files through the manifest collectstatic writes; the plain storage needs none.
PLAIN_STATIC = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}

if __name__ == "__main__":
    with override_settings(STORAGES={**settings.STORAGES, "staticfiles": PLAIN_STATIC}):
        sys.exit(main())
