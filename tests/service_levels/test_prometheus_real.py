"""End to end with a real Prometheus (Debian's `prometheus` package, with `promtool`; .ci/run installs it).

Prometheus cannot scrape the past, so the past is built with `promtool tsdb create-blocks-from openmetrics`
from counters written here, sampled every 5 minutes over four local days (Asia/Shanghai, where a day starts
at 16:00 UTC), with a burst of failures straddling midnight, a counter reset, a six-hour gap in the samples
and, after them, a day without any data. Prometheus then runs on that data directory, also scraping a tiny
exporter the test runs, and the tracker pulls through its real HTTP API. Every figure is worked by hand.

The day boundaries fall on samples, so increase() needs no extrapolation and gives exact counts: Prometheus
2.x (Debian's) selects a range's samples with both ends included.
"""

import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from incidents import periods
from incidents.models import Tier
from service_levels import services
from service_levels.models import DailyValue
from service_levels.selectors import daily_values, possible_unlogged_incidents, service_level_figures
from tests.factories import SystemFactory

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"

pytestmark = [
    pytest.mark.skipif(
        not (Path(PROMETHEUS).is_file() and Path(PROMTOOL).is_file()),
        reason="needs Prometheus and promtool: apt-get install prometheus (.ci/run installs it)",
    ),
    pytest.mark.django_db,
]

STEP = 300  # seconds between samples
# Local day D (Asia/Shanghai) is [D-1 16:00Z, D 16:00Z). The samples run from the start of Nov 2 to the end of Nov 5.
START = datetime(2026, 11, 1, 16, 0, tzinfo=UTC)
DAYS = 4
GAP = (datetime(2026, 11, 5, 2, 0, tzinfo=UTC), datetime(2026, 11, 5, 8, 0, tzinfo=UTC))  # Nov 5 10:00-16:00 local
RESET_AT = datetime(2026, 11, 4, 4, 0, tzinfo=UTC)  # Nov 4 12:00 local: the service restarts, its counters at 0
# The tracker's clock when it pulls: Nov 7 10:00 local, so Nov 2 to 6 are over.
NOW = datetime(2026, 11, 7, 2, 0, tzinfo=UTC)
DEADLINE = 30.0


def _events() -> dict[datetime, tuple[int, int]]:
    """(good, total) requests counted in each 5-minute step, by the time of the sample that first shows them.
    Step k of a day is its k-th sample after midnight (k = 1..288)."""
    events: dict[datetime, tuple[int, int]] = {}

    def day_step(day: int, k: int) -> datetime:
        return START + timedelta(days=day, seconds=k * STEP)

    for day in range(DAYS):
        for k in range(1, 201):
            events[day_step(day, k)] = (50, 50)  # steady traffic: 200 steps x 50 = 10,000 requests a day
    events[day_step(0, 100)] = (49, 50)  # Nov 2: 1 failure
    events[day_step(1, 50)] = (40, 50)  # Nov 3: 10 failures
    # A burst of 200 failing requests across midnight Nov 3 -> Nov 4 (local 23:55 and 00:05).
    events[day_step(1, 287)] = (0, 100)
    events[day_step(2, 1)] = (0, 100)
    events[day_step(2, 200)] = (0, 0)  # Nov 4: steps 2..199 only, so its day is 100 + 198 x 50 = 10,000
    events[day_step(3, 150)] = (45, 50)  # Nov 5: 5 failures, inside the gap in the samples
    return events


# Hand-worked days, (good, total):
#   Nov 2: 9,999 / 10,000 (one failure)                               -> 99.99 %
#   Nov 3: 9,990 + 0 / 10,000 + 100 = 9,990 / 10,100 (the burst's first half) -> 98.910891 %
#   Nov 4: 0 + 198 x 50 / 100 + 198 x 50 = 9,900 / 10,000 (the burst's second half; the reset changes nothing)
#          -> 99.0 %
#   Nov 5: 9,995 / 10,000 (the gap hides the samples, not the requests) -> 99.95 %
#   Nov 6: no sample after its first instant -> no data
EXPECTED = {
    date(2026, 11, 2): (9_999, 10_000),
    date(2026, 11, 3): (9_990, 10_100),
    date(2026, 11, 4): (9_900, 10_000),
    date(2026, 11, 5): (9_995, 10_000),
}


def _openmetrics() -> str:
    """The counters sampled every STEP seconds from START to the end of Nov 5, as promtool reads them."""
    events = _events()
    good, total = 1_000, 1_000  # counted before the data starts
    samples = []
    moment = START
    end = START + timedelta(days=DAYS)
    while moment <= end:
        add_good, add_total = events.get(moment, (0, 0))
        if moment == RESET_AT:
            good, total = 0, 0  # a new process: counting from 0, this step's requests included
        good, total = good + add_good, total + add_total
        if not GAP[0] < moment < GAP[1]:
            samples.append((int(moment.timestamp()), good, total))
        moment += timedelta(seconds=STEP)
    lines = ["# TYPE sli_good counter"]
    lines += [f'sli_good_total{{job="payments"}} {good} {at}' for at, good, _total in samples]
    lines += ["# TYPE sli_requests counter"]
    lines += [f'sli_requests_total{{job="payments"}} {total} {at}' for at, _good, total in samples]
    return "\n".join([*lines, "# EOF", ""])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Exporter:
    """A tiny exporter whose two counters the test sets; Prometheus scrapes it every second."""

    def __init__(self):
        self.good = 1_000
        self.total = 1_000
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                body = (
                    "# TYPE live_good_total counter\n"
                    f"live_good_total {exporter.good}\n"
                    "# TYPE live_requests_total counter\n"
                    f"live_requests_total {exporter.total}\n"
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return answer.read()


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    directory = tmp_path_factory.mktemp("prometheus")
    data = directory / "data"
    data.mkdir()
    (directory / "history.om").write_text(_openmetrics())
    subprocess.run(
        [PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", str(directory / "history.om"), str(data)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    exporter = Exporter()
    (directory / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"scrape_configs:\n  - job_name: live\n    static_configs:\n      - targets: ['{exporter.address}']\n"
    )
    port = _free_port()
    log = (directory / "prometheus.log").open("w")
    process = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={directory / 'prometheus.yml'}",
            f"--storage.tsdb.path={data}",
            "--storage.tsdb.retention.time=100y",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + DEADLINE
    while True:
        try:
            _get(f"{url}/-/ready")
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(f"Prometheus did not get ready:\n{(directory / 'prometheus.log').read_text()[-3000:]}")
            time.sleep(0.2)
    yield url, exporter
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
    exporter.stop()
    log.close()


@pytest.fixture
def indicator(prometheus):
    url, _exporter = prometheus
    source = services.source_create(name="real", url=url, timeout_seconds=10)
    system = SystemFactory(code="collection", name="Collection (入金)", tier=Tier.P0)
    return services.indicator_create(
        system=system,
        source=source,
        name="入金有效成功率",
        objective=Decimal("99"),
        good_query='sum(increase(sli_good_total{job="payments"}[$window]))',
        total_query='sum(increase(sli_requests_total{job="payments"}[$window]))',
    )


def test_daily_values_and_period_figures_through_the_real_api(indicator):
    pulls = services.pull_due(days=5, now=NOW)
    assert [p.day for p in pulls] == [date(2026, 11, d) for d in range(2, 7)]
    stored = {v.day: v for v in DailyValue.objects.filter(indicator=indicator)}
    for day, (good, total) in EXPECTED.items():
        assert (stored[day].status, stored[day].good, stored[day].total) == ("ok", good, total), day
    assert (stored[date(2026, 11, 6)].status, stored[date(2026, 11, 6)].problem) == ("missing", "no_data")

    days = daily_values(indicator, periods.date_range(date(2026, 11, 2), date(2026, 11, 6)), now=NOW)
    assert [d["value"] for d in days] == [
        Decimal("99.990000"),  # 9,999 / 10,000
        Decimal("98.910891"),  # 9,990 / 10,100 = 0.98910891...
        Decimal("99.000000"),  # 9,900 / 10,000
        Decimal("99.950000"),  # 9,995 / 10,000
        None,
    ]

    (row,) = service_level_figures(periods.date_range(date(2026, 11, 2), date(2026, 11, 6)), now=NOW)
    # (9,999 + 9,990 + 9,900 + 9,995) / (10,000 + 10,100 + 10,000 + 10,000) = 39,884 / 40,100 = 0.99461346...
    assert (row["good"], row["total"]) == (39_884, 40_100)
    assert row["value"] == Decimal("99.461346")
    # 5 days counted, 4 measured, Nov 6 missing (never 100 %)
    assert (row["days"], row["days_measured"], row["days_missing"]) == (5, 4, 1)
    # 1 - (216 / 40,100) / (1 - 0.99) = 1 - 0.53865336... = 0.461347; the objective (99 %) is met
    assert (row["error_budget_left"], row["met"]) == (Decimal("0.461347"), True)

    # Nov 3 fell below 99 % and no incident of the system was logged; Nov 4 is exactly 99 %, not below.
    flagged = possible_unlogged_incidents(periods.month(2026, 11), now=NOW)
    assert [(f["day"], f["value"]) for f in flagged] == [(date(2026, 11, 3), Decimal("98.910891"))]

    # A second run changes nothing: every day is measured but Nov 6, which is asked again and still has no data.
    again = services.pull_due(days=5, now=NOW)
    assert [(p.day, p.value.status) for p in again] == [(date(2026, 11, 6), "missing")]
    assert DailyValue.objects.filter(indicator=indicator).count() == 5


def test_bad_promql_is_refused_with_prometheus_words(indicator):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as refused:
        services.indicator_update(indicator_id=indicator.pk, changes={"good_query": "sum(increase(x[$window])"})
    (message,) = refused.value.message_dict["good_query"]
    assert message.startswith("Prometheus refused the expression:") and "parse error" in message


def _wait_for(url: str, query: str, value: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        answer = _get(f"{url}/api/v1/query?{urllib.parse.urlencode({'query': query})}").decode()
        if f'"{value}"]' in answer:
            return
        time.sleep(0.2)
    pytest.fail(f"Prometheus never saw {query} = {value}")


def test_the_test_query_reads_the_last_24_hours_of_the_live_exporter(prometheus, indicator):
    url, exporter = prometheus
    live = services.indicator_update(
        indicator_id=indicator.pk,
        changes={
            "good_query": "sum(increase(live_good_total[$window]))",
            "total_query": "sum(increase(live_requests_total[$window]))",
        },
    )
    _wait_for(url, "live_requests_total", "1000")
    time.sleep(2.5)  # a few scrapes before the change, so that extrapolation treats both counters alike
    exporter.good, exporter.total = 1_990, 2_000
    _wait_for(url, "live_requests_total", "2000")
    time.sleep(1.5)  # the test query ends at a whole second: the new sample must lie before it
    trial = services.measure_last_24_hours(live)
    # 990 good of 1,000 more requests. Prometheus extrapolates both counters by the same factor (they are scraped
    # together), so the counts are not whole but their ratio is 990 / 1,000 = 99 %.
    assert trial.measurement.status == "ok", trial.measurement.text
    assert trial.measurement.ratio == pytest.approx(0.99, abs=1e-9)
    assert trial.measurement.good < trial.measurement.total


def test_a_day_prometheus_has_nothing_for_is_missing(indicator):
    value, measurement = services.pull_day(indicator=indicator, day=date(2026, 10, 1), now=NOW)
    assert (value.status, measurement.text) == ("missing", "No data: Prometheus has no samples for it.")
