#!/usr/bin/env python3
"""Report benchmark: the stability report of the busiest month of a year of data, as a manager gets it.

One database per data set (PostgreSQL), made once:

    createdb -h 127.0.0.1 -U postgres stability_report_1m
    export DATABASE_URL=postgres://postgres@127.0.0.1:5432/stability_report_1m
    .venv/bin/python manage.py migrate
    .venv/bin/python manage.py generate_history           # 1,000,000 alerts, 20,000 incidents: minutes
    # and a second one, stability_report_10m, with: generate_history --alerts 10000000   (about an hour)

Then one command per data set (the first saves its figures, the second compares with them):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/stability_report_1m \\
        .venv/bin/python bench/report.py --save var/bench/report-1m.json
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/stability_report_10m \\
        .venv/bin/python bench/report.py --baseline var/bench/report-1m.json

What it measures, in this process (Django's test client signed in as a manager; production settings:
DEBUG off, so no query log and compiled templates; no HTTP server, so "server time": middleware, view,
queries, rendering), for the busiest month of the data (most alerts received) and for a month with no
data at all (2000-01):

- the JSON report, GET /api/v1/reports/stability/?period=...: time, queries, bytes;
- the report page, GET /reports/?period=... in Chinese: time, queries, HTML bytes;
- a published report of the busy month opened, GET /api/v1/reports/published/{id}/, where the API
  exists (the newest revision of the month; the script publishes one, once, if there is none).

Each figure: one cold request, then --runs warm ones (default 7; the figures taken in turn, so that a
burst of load on the machine falls on all of them), printed as median and range. Queries are counted in
one more request of each, apart from the timed ones. Every target of issue 13 is marked MET or MISSED:
JSON < 400 ms, page < 500 ms and < 300 KB of HTML, the same query count for the busy and the empty
month, a published report < 100 ms and, with --baseline (figures saved by --save on the 1M data set),
the JSON report and the page within 1.5 times the baseline's medians. The machine's load average is
printed with the figures: on a shared machine the timings move with it.

It prints figures and never fails on a timing (exit status 1 only when the query counts differ, as
that does not depend on the machine). Timed assertions do not belong in the test suite.
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/stability_report_1m")
# Production settings, as a served installation runs them.
os.environ["DEBUG"] = "false"
os.environ.setdefault("SECRET_KEY", "bench-report-not-a-secret")
os.environ.setdefault("ALLOWED_HOSTS", "testserver")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.db.models import Count, Sum  # noqa: E402
from django.db.models.functions import TruncMonth  # noqa: E402
from django.test import Client, override_settings  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402

from accounts.models import Role, User  # noqa: E402
from incidents.models import ActionItem, Incident, System, Team  # noqa: E402
from stability.models import AlertDayCount, AlertOccurrence  # noqa: E402

QUIET_MONTH = "2000-01"
TARGETS_MS = {"json busy": 400, "page busy": 500, "published": 100}
PAGE_BYTES = 300 * 1024
GROWTH = 1.5  # the 10M data set's JSON report and page, against the 1M one's


def busiest_month() -> tuple[str, int]:
    """The month with most alerts received: from the follow-up day counts (a few hundred thousand rows),
    else from the occurrences."""
    zone = timezone.get_default_timezone()
    by_day = AlertDayCount.objects.annotate(month=TruncMonth("day")).values("month").order_by()
    busiest = by_day.annotate(n=Sum("received")).order_by("-n").first()
    if busiest is None:
        by_received = AlertOccurrence.objects.annotate(month=TruncMonth("received_at", tzinfo=zone))
        busiest = by_received.values("month").order_by().annotate(n=Count("pk")).order_by("-n").first()
    return f"{busiest['month']:%Y-%m}", busiest["n"]


def published_url(client: Client, period: str) -> str | None:
    """The newest published report of `period` (published once, by the script, if there is none); None
    where the API does not exist."""
    listed = client.get("/api/v1/reports/published/", {"period": period}, secure=True)
    if listed.status_code == 404:
        return None
    body = listed.json() if listed.status_code == 200 else None
    rows = body.get("results", body) if isinstance(body, dict) else body
    if not rows:
        made = client.post(
            "/api/v1/reports/published/", {"period": period}, content_type="application/json", secure=True
        )
        if made.status_code != 201:
            print(f"(could not publish {period}: {made.status_code} {made.content[:200]!r})")
            return None
        rows = [made.json()]
    newest = max(rows, key=lambda row: row.get("revision", 0))
    return f"/api/v1/reports/published/{newest['id']}/"


class Figure:
    def __init__(self, name: str, url: str, *, target_ms: int | None = None, html: bool = False):
        self.name, self.url, self.target_ms, self.html = name, url, target_ms, html
        self.cold = 0.0
        self.timings: list[float] = []
        self.cpu: list[tuple[float, float]] = []  # (Python, PostgreSQL) CPU ms of each request
        self.queries = 0
        self.size = 0

    def request(self, client: Client) -> tuple[float, float, float]:
        """Wall-clock ms, Python CPU ms and PostgreSQL CPU ms of one request."""
        headers = {"HTTP_ACCEPT_LANGUAGE": "zh-hans"} if self.html else {}
        database_before, python_before = _database_cpu(), time.process_time()
        started = time.perf_counter()
        answer = client.get(self.url, secure=True, **headers)
        elapsed = (time.perf_counter() - started) * 1000
        python, database = (time.process_time() - python_before) * 1000, _database_cpu() - database_before
        if answer.status_code != 200:
            raise SystemExit(f"{self.url}: {answer.status_code} {answer.content[:300]!r}")
        self.size = len(answer.content)
        return elapsed, python, database

    def run(self, client: Client) -> None:
        elapsed, python, database = self.request(client)
        self.timings.append(elapsed)
        self.cpu.append((python, database))

    def count_queries(self, client: Client) -> None:
        with CaptureQueriesContext(connection) as queries:
            self.request(client)
        self.queries = len(queries)

    @property
    def median(self) -> float:
        return statistics.median(self.timings)

    @property
    def cpu_median(self) -> tuple[float, float]:
        """Median Python and PostgreSQL CPU ms: what the request costs, whatever else the machine runs."""
        return statistics.median(p for p, _d in self.cpu), statistics.median(d for _p, d in self.cpu)

    def verdicts(self, baseline: dict) -> list[str]:
        verdicts = []
        if self.target_ms is not None:
            verdicts.append(f"< {self.target_ms} ms: {_met(self.median < self.target_ms)}")
        if self.html and self.name.endswith("busy"):
            verdicts.append(f"< {PAGE_BYTES // 1024} KB: {_met(self.size < PAGE_BYTES)}")
        before = baseline.get(self.name)
        if before and self.name.endswith("busy"):
            ratio = self.median / before["median_ms"]
            verdicts.append(
                f"{ratio:.2f}x the baseline's {before['median_ms']:.0f} ms, <= {GROWTH}x: {_met(ratio <= GROWTH)}"
            )
            if before.get("python_cpu_ms") is not None:
                cpu, cpu_before = sum(self.cpu_median), before["python_cpu_ms"] + before["database_cpu_ms"]
                verdicts.append(f"CPU {cpu / cpu_before:.2f}x the baseline's {cpu_before:.0f} ms")
        return verdicts


def _database_cpu() -> float:
    """CPU ms the connection's PostgreSQL backend used so far (Linux /proc, in clock ticks); 0 elsewhere.
    The database server must run on this machine."""
    try:
        pid = connection.connection.info.backend_pid
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (AttributeError, OSError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def _met(condition: bool) -> str:
    return "MET" if condition else "MISSED"


def _conditions() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} on {os.cpu_count()} CPUs"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="warm runs per figure (default 7)")
    parser.add_argument("--period", help="the busy period to measure (default: the month with most alerts)")
    parser.add_argument("--save", type=Path, help="write the figures as JSON here (the baseline of another run)")
    parser.add_argument("--baseline", type=Path, help="figures saved by --save: mark the growth against them")
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        print("Needs PostgreSQL: set DATABASE_URL (see the docstring).")
        return 2
    alerts = AlertOccurrence.objects.count()
    if alerts < 1_000:
        print(f"{connection.settings_dict['NAME']} holds {alerts} alerts: generate a year first (see the docstring).")
        return 2
    busy, busy_alerts = (args.period, None) if args.period else busiest_month()
    baseline = json.loads(args.baseline.read_text())["figures"] if args.baseline else {}

    manager, _created = User.objects.get_or_create(username="bench-manager", defaults={"role": Role.MANAGER})
    client = Client()
    client.force_login(manager)
    figures = [
        Figure("json busy", f"/api/v1/reports/stability/?period={busy}", target_ms=TARGETS_MS["json busy"]),
        Figure("json empty", f"/api/v1/reports/stability/?period={QUIET_MONTH}"),
        Figure("page busy", f"/reports/?period={busy}", target_ms=TARGETS_MS["page busy"], html=True),
        Figure("page empty", f"/reports/?period={QUIET_MONTH}", html=True),
    ]
    published = published_url(client, busy)
    if published:
        figures.append(Figure("published", published, target_ms=TARGETS_MS["published"]))

    print(
        f"Database {connection.settings_dict['NAME']}: {alerts:,} alerts, {Incident.objects.count():,} incidents, "
        f"{ActionItem.objects.count():,} items, {Team.objects.count()} teams, {System.objects.count()} systems; "
        f"PostgreSQL {connection.pg_version // 10000}, DEBUG={settings.DEBUG}"
    )
    received = f" ({busy_alerts:,} alerts received)" if busy_alerts is not None else ""
    print(f"busy month {busy}{received}, empty month {QUIET_MONTH}; {args.runs} warm runs each, after a cold one")
    print(f"before: {_conditions()}")
    for figure in figures:
        figure.cold = figure.request(client)[0]
    for _run in range(args.runs):
        for figure in figures:
            figure.run(client)
    for figure in figures:
        figure.count_queries(client)
    print(f"after:  {_conditions()}\n")

    print(
        f"{'figure':<12} {'cold ms':>8} {'median ms':>10} {'range ms':>13} {'CPU ms py+pg':>14} {'queries':>8} "
        f"{'bytes':>11}  targets"
    )
    for f in figures:
        spread = f"{min(f.timings):.0f}-{max(f.timings):.0f}"
        python, database = f.cpu_median
        print(
            f"{f.name:<12} {f.cold:>8.0f} {f.median:>10.0f} {spread:>13} {f'{python:.0f}+{database:.0f}':>14} "
            f"{f.queries:>8} {f.size:>11,}  " + "; ".join(f.verdicts(baseline))
        )
    by_name = {f.name: f for f in figures}
    same = True
    for kind in ("json", "page"):
        busy_q, empty_q = by_name[f"{kind} busy"].queries, by_name[f"{kind} empty"].queries
        same &= busy_q == empty_q
        print(f"{kind} queries busy {busy_q}, empty {empty_q}, the same: {_met(busy_q == empty_q)}")
    if not published:
        print("published report: no published-report API here (GET /api/v1/reports/published/ is 404)")

    if args.save:
        args.save.parent.mkdir(parents=True, exist_ok=True)
        saved = {
            "database": connection.settings_dict["NAME"],
            "alerts": alerts,
            "period": busy,
            "measured_at": timezone.now().isoformat(),
            "figures": {
                f.name: {
                    "median_ms": round(f.median, 1),
                    "min_ms": round(min(f.timings), 1),
                    "max_ms": round(max(f.timings), 1),
                    "runs": len(f.timings),
                    "python_cpu_ms": round(f.cpu_median[0], 1),
                    "database_cpu_ms": round(f.cpu_median[1], 1),
                    "queries": f.queries,
                    "bytes": f.size,
                }
                for f in figures
            },
        }
        args.save.write_text(json.dumps(saved, indent=2) + "\n")
        print(f"\nsaved to {args.save}")
    return 0 if same else 1


# DEBUG off names static files through the manifest that collectstatic writes; the plain storage names them
# without one (a lookup either way), so the checkout needs no collectstatic.
PLAIN_STATIC = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}

if __name__ == "__main__":
    with override_settings(STORAGES={**settings.STORAGES, "staticfiles": PLAIN_STATIC}):
        sys.exit(main())
