"""End to end with a real Prometheus Alertmanager (Debian's prometheus-alertmanager; .ci/run installs it).

Alertmanager runs with a webhook receiver pointed at the live test server and the integration's
bearer token. Alerts are pushed into Alertmanager's own API; each must arrive exactly once, its
repeat notifications (repeat_interval) must update that one occurrence, and its resolution must
close it with ends_at recorded.
"""

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from stability.models import AlertOccurrence
from stability.services import integration_create
from tests.factories import SystemFactory, TeamFactory

ALERTMANAGER = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"

pytestmark = [
    pytest.mark.skipif(
        not Path(ALERTMANAGER).is_file(),
        reason="needs Prometheus Alertmanager: apt-get install prometheus-alertmanager (.ci/run installs it)",
    ),
    pytest.mark.django_db(transaction=True),
]

DEADLINE = 30.0  # seconds for each stage; every stage takes a few seconds normally


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Alertmanager:
    def __init__(self, directory: Path, webhook_url: str, token: str):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = directory / "alertmanager.log"
        config = directory / "alertmanager.yml"
        # JSON is YAML: no quoting surprises with the token or the URL.
        config.write_text(
            json.dumps(
                {
                    "route": {
                        "receiver": "stability-tracker",
                        "group_by": ["alertname", "instance"],
                        "group_wait": "1s",
                        "group_interval": "1s",
                        "repeat_interval": "2s",
                    },
                    "receivers": [
                        {
                            "name": "stability-tracker",
                            "webhook_configs": [
                                {
                                    "url": webhook_url,
                                    "send_resolved": True,
                                    "http_config": {"authorization": {"type": "Bearer", "credentials": token}},
                                }
                            ],
                        }
                    ],
                },
                indent=2,
            )
        )
        storage = directory / "data"
        storage.mkdir()
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [
                ALERTMANAGER,
                f"--config.file={config}",
                f"--storage.path={storage}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",  # no clustering: no gossip port, no settle wait
                "--log.level=debug",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def wait_ready(self) -> None:
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"Alertmanager exited with {self.process.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        pytest.fail(f"Alertmanager not ready after {DEADLINE} s:\n{self.log()}")

    def push(self, alerts: list[dict]) -> None:
        request = urllib.request.Request(
            f"{self.url}/api/v2/alerts",
            data=json.dumps(alerts).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as answer:
            assert answer.status == 200, answer.read()

    def alerts(self) -> list[dict]:
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts", timeout=5) as answer:
            return json.load(answer)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()


def _wait_for(condition, what: str, alertmanager: Alertmanager):
    deadline = time.monotonic() + DEADLINE
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            rows = list(
                AlertOccurrence.objects.values_list("fingerprint", "status", "notifications", "starts_at", "ends_at")
            )
            pytest.fail(f"after {DEADLINE} s still waiting for {what}; occurrences: {rows}\n{alertmanager.log()}")
        if alertmanager.process.poll() is not None:
            pytest.fail(f"Alertmanager exited with {alertmanager.process.returncode}:\n{alertmanager.log()}")
        time.sleep(0.2)


def test_alerts_pushed_into_alertmanager_arrive_once_repeat_deduplicated_and_resolve(live_server, settings, tmp_path):
    team = TeamFactory(slug="payments")
    cashier = SystemFactory(code="cashier", team=team)
    hook, token = integration_create(kind="alertmanager", name="Prometheus (real Alertmanager)")

    # Alertmanager (Go) may resolve "localhost" to ::1: give it the address the server is bound to.
    host, port = live_server.thread.httpd.server_address[:2]
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, host]
    webhook_url = f"http://{host}:{port}/api/v1/integrations/alertmanager/"

    starts_at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
    alerts = [
        {
            "labels": {
                "alertname": alertname,
                "instance": instance,
                "severity": "critical",
                "team": "payments",
                "system": "cashier",
            },
            "annotations": {"summary": f"{alertname} on {instance}"},
            "startsAt": _rfc3339(starts_at),
            "generatorURL": "http://prometheus.example.com/graph",
        }
        for alertname, instance in [
            ("PaymentLatencyHigh", "cashier-01:9100"),
            ("PaymentLatencyHigh", "cashier-02:9100"),
            ("CashierErrorsHigh", "cashier-01:9100"),
        ]
    ]
    instances = {(a["labels"]["alertname"], a["labels"]["instance"]) for a in alerts}

    def arrived():
        return {(o.alertname, o.labels.get("instance")): o for o in AlertOccurrence.objects.filter(integration=hook)}

    alertmanager = Alertmanager(tmp_path, webhook_url, token)
    try:
        alertmanager.wait_ready()
        alertmanager.push(alerts)

        # Each alert arrives...
        _wait_for(lambda: arrived().keys() == instances, "the three alerts", alertmanager)
        # ... and repeat notifications come (repeat_interval 2 s) ...
        _wait_for(
            lambda: all(o.notifications >= 2 for o in arrived().values()),
            "repeat notifications of every alert",
            alertmanager,
        )
        # ... without ever making a second occurrence.
        occurrences = AlertOccurrence.objects.filter(integration=hook)
        assert occurrences.count() == 3
        fingerprints = {a["fingerprint"] for a in alertmanager.alerts()}
        assert set(occurrences.values_list("fingerprint", flat=True)) == fingerprints
        for occurrence in occurrences:
            assert occurrence.starts_at == starts_at
            assert occurrence.status == AlertOccurrence.Status.FIRING
            assert (occurrence.team, occurrence.system) == (team, cashier)
            assert occurrence.severity == "critical"
            assert occurrence.received_at < occurrence.last_received_at
            assert occurrence.ends_at is None

        # Resolve them: the same alerts with an end in the past.
        ends_at = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=5)
        alertmanager.push([{**alert, "endsAt": _rfc3339(ends_at)} for alert in alerts])
        _wait_for(
            lambda: all(o.status == AlertOccurrence.Status.RESOLVED for o in arrived().values()),
            "the resolved notifications",
            alertmanager,
        )
        occurrences = AlertOccurrence.objects.filter(integration=hook)
        assert occurrences.count() == 3
        for occurrence in occurrences:
            assert occurrence.ends_at == ends_at
            assert occurrence.resolved_at is not None and occurrence.resolved_at >= occurrence.received_at
            assert occurrence.resolved_by is None
            assert occurrence.starts_at == starts_at
    finally:
        alertmanager.stop()
