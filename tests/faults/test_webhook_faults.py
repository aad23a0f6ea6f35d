"""The webhook faults of issue #11, reproduced as the README deploys the tracker: a real gunicorn
(production mode, 2 gthread workers) in front of PostgreSQL and Redis, spoken to over HTTP. Each test
failed on the code before the fix:

- a chunked body (no Content-Length) was "not valid JSON"; now read to its end, 413 over the limit;
- a receiver URL without its trailing slash was a 301 that Alertmanager follows as a GET (405, lost);
- 200 alerts without starts_at, each sent 8 times at once, made more than 200 open occurrences (in some
  runs: the race is narrow);
- a new integration's token was 401 on the other worker, a disabled one accepted, for the routing TTL;
- an alert starting at 9999-12-31T23:59:59-14:00 was stored, then /api/v1/alerts/, / and /alerts/ were
  500 for everyone.

The routing TTL is set to 30 s here (default 5 s) so that the old behaviour cannot pass by luck.
"""

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client

from accounts.models import Role
from accounts.services import api_token_create
from stability.models import AlertOccurrence
from stability.services import integration_create
from tests.conftest import needs_postgres, needs_redis
from tests.factories import SystemFactory, TeamFactory, UserFactory

pytestmark = [
    needs_postgres,
    needs_redis,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
]

ROOT = Path(__file__).resolve().parents[2]
MAX_BODY = 200_000
WEBHOOK = "/api/v1/integrations/{kind}/"


@dataclass(frozen=True)
class Server:
    port: int
    access_log: Path  # "<pid> <status> <request line>": names the worker that answered each request


def _collect_static(var_dir: Path, env: dict[str, str]) -> None:
    """DEBUG=false pages need the static manifest. Hashed names without WhiteNoise's compression: the
    same manifest in a second instead of half a minute."""
    script = (
        "import django; django.setup(); from django.conf import settings; "
        "settings.STORAGES['staticfiles']['BACKEND'] = "
        "'django.contrib.staticfiles.storage.ManifestStaticFilesStorage'; "
        "from django.core.management import call_command; "
        "call_command('collectstatic', interactive=False, verbosity=0)"
    )
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, check=True, timeout=120)


@pytest.fixture(scope="module")
def environment(django_db_setup, tmp_path_factory) -> dict[str, str]:
    """Production mode on the test database, over plain HTTP on the loopback."""
    var_dir = tmp_path_factory.mktemp("var")
    database = urlsplit(os.environ["DATABASE_URL"])
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DEBUG": "false",
        "SECRET_KEY": settings.SECRET_KEY,  # the session this process signs in is read there
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_COOKIES": "false",
        "SECURE_SSL_REDIRECT": "false",
        "DATABASE_URL": urlunsplit(database._replace(path="/" + connection.settings_dict["NAME"])),
        "VAR_DIR": str(var_dir),
        "INGEST_MAX_BODY_BYTES": str(MAX_BODY),
        "LOG_LEVEL": "WARNING",
    }
    _collect_static(var_dir, env)
    return env


def _free_port() -> int:
    """A port nothing listens on now, picked by the system (so that two runs of the suite never collide)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def _gunicorn(name: str, env: dict[str, str]):
    """2 gthread workers, as the README deploys the web process; stopped (its process group) at the end."""
    var_dir = Path(env["VAR_DIR"])
    port, access_log, error_log = _free_port(), var_dir / f"{name}-access.log", var_dir / f"{name}-error.log"
    command = [str(Path(sys.executable).with_name("gunicorn")), "config.wsgi", "--bind", f"127.0.0.1:{port}"]
    command += ["--worker-class", "gthread", "--workers", "2", "--threads", "4", "--error-logfile", str(error_log)]
    command += ["--access-logfile", str(access_log), "--access-logformat", "%(p)s %(s)s %(r)s"]
    process = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"gunicorn exited: {error_log.read_text()[-3000:]}")
            try:
                if _request(port, "GET", "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("gunicorn did not answer /healthz within 60 s")
            time.sleep(0.2)
        yield Server(port=port, access_log=access_log)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def server(environment):
    """Each worker re-reads its routing on every request (TTL 0): the faults reproduced with it are not
    masked by a worker that has not seen the test's integration yet."""
    with _gunicorn("faults", environment | {"INGEST_CONFIG_TTL": "0"}) as running:
        yield running


@pytest.fixture(scope="module")
def routing_server(environment):
    """The routing snapshot kept 30 s (default 5): the old per-process cache cannot pass by luck."""
    with _gunicorn("routing", environment | {"INGEST_CONFIG_TTL": "30"}) as running:
        yield running


def _request(
    port: int, method: str, path: str, body: bytes | Iterable[bytes] | None = None, headers: dict | None = None
) -> tuple[int, bytes]:
    """One request on a new connection (so that either worker may take it). An iterable body is sent
    chunked (Transfer-Encoding: chunked, no Content-Length), as Go's and curl's streamed bodies are."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        headers = {"Content-Type": "application/json", **(headers or {})}
        chunked = body is not None and not isinstance(body, bytes)
        conn.request(method, path, body=body, headers=headers, encode_chunked=chunked)
        answer = conn.getresponse()
        return answer.status, answer.read()
    finally:
        conn.close()


def _post(server: Server, kind: str, token: str, body, *, path: str | None = None) -> tuple[int, dict]:
    raw = body if isinstance(body, bytes) or not isinstance(body, dict) else json.dumps(body).encode()
    path = path or WEBHOOK.format(kind=kind)
    status, content = _request(server.port, "POST", path, raw, {"Authorization": f"Bearer {token}"})
    return status, json.loads(content) if content.startswith(b"{") else {}


def _am_alert(n, *, starts_at: str = "2026-11-20T03:00:00Z", **labels) -> dict:
    return {
        "status": "firing",
        "labels": {"alertname": "PayoutQueueStuck", "instance": f"payout-worker-{n}:8080", **labels},
        "annotations": {"summary": f"代付队列积压 on worker {n}"},
        "startsAt": starts_at,
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.pay.example.org:9090/graph",
        "fingerprint": f"fp{n}",
    }


def _am_body(alerts: list[dict]) -> dict:
    return {"version": "4", "status": "firing", "receiver": "stability-tracker", "alerts": alerts}


def _workers_answering(server: Server, marker: str, status: int) -> set[str]:
    pattern = re.compile(rf"^<(\d+)> {status} POST \S*\?{re.escape(marker)} ")
    return {m.group(1) for line in server.access_log.read_text().splitlines() if (m := pattern.match(line))}


def _until_both_workers(server: Server, token: str, marker: str, status: int, *, seconds: float = 20) -> list[int]:
    """Post 1-alert notifications on new connections until both workers have answered `status` (bounded in
    time); returns every status seen. The marker, a query string Django ignores, tags them in the log."""
    path = WEBHOOK.format(kind="alertmanager") + f"?{marker}"
    seen, deadline = [], time.monotonic() + seconds
    while len(_workers_answering(server, marker, status)) < 2 and time.monotonic() < deadline:
        seen.append(_post(server, "alertmanager", token, _am_body([_am_alert(marker)]), path=path)[0])
    return seen


# --- 5. chunked bodies -------------------------------------------------------------------------------


def test_a_chunked_body_is_stored_and_one_over_the_limit_is_413(server):
    _hook, token = integration_create(kind="alertmanager", name="chunked")
    body = json.dumps(_am_body([_am_alert(n) for n in range(3)])).encode()
    status, answer = _post(server, "alertmanager", token, (body[i : i + 100] for i in range(0, len(body), 100)))
    assert (status, answer.get("new")) == (200, 3), answer
    assert sorted(AlertOccurrence.objects.values_list("fingerprint", flat=True)) == ["fp0", "fp1", "fp2"]

    padded = _am_body([_am_alert(9)]) | {"padding": "x" * MAX_BODY}
    raw = json.dumps(padded).encode()
    status, answer = _post(server, "alertmanager", token, (raw[i : i + 16_384] for i in range(0, len(raw), 16_384)))
    assert status == 413, answer
    assert not AlertOccurrence.objects.filter(fingerprint="fp9").exists()


# --- 6. the receiver URL without its trailing slash ---------------------------------------------------


@pytest.mark.parametrize("kind", ["alertmanager", "grafana"])
def test_a_receiver_url_without_the_trailing_slash_stores_the_alert(server, kind):
    _hook, token = integration_create(kind=kind, name=f"no slash {kind}")
    path = WEBHOOK.format(kind=kind).rstrip("/")
    status, answer = _post(server, kind, token, _am_body([_am_alert(1)]), path=path)
    assert (status, answer.get("new")) == (200, 1), answer
    assert AlertOccurrence.objects.get().fingerprint == "fp1"


# --- 7. alerts without starts_at, each sent 8 times at once ----------------------------------------


def test_200_alerts_without_starts_at_sent_8_times_at_once_open_200_occurrences(server):
    """8 senders post each of 200 alerts at the same moment (a barrier per alert), one alert a request.
    Where the 8 deliveries of one alert straddle a second boundary they get different receipt seconds while
    each looks for the others' occurrence: before the fix, each such group opened two or more (201 here in
    about one run in four on a busy 2-core machine: the race is narrow). The deterministic proofs of the
    fix are in tests/stability/test_webhooks.py (a stale first look; threads with receipts a second apart)."""
    _hook, token = integration_create(kind="generic", name="generic 8x")
    copies, alerts = 8, 200
    barrier = threading.Barrier(copies)
    statuses: list[int] = []
    errors: list[BaseException] = []

    def sender():
        try:
            for n in range(alerts):
                barrier.wait(timeout=30)
                body = {"alerts": [{"labels": {"alertname": "SettlementLag", "batch": f"b{n}"}}]}
                statuses.append(_post(server, "generic", token, body)[0])
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=sender) for _ in range(copies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert not errors, errors
    assert statuses == [200] * (copies * alerts)
    assert AlertOccurrence.objects.count() == alerts
    assert set(AlertOccurrence.objects.values_list("status", "notifications")) == {("firing", copies)}

    # The resolve of each closes its one occurrence: nothing fires forever.
    resolves = [
        {"labels": {"alertname": "SettlementLag", "batch": f"b{n}"}, "status": "resolved"} for n in range(alerts)
    ]
    status, answer = _post(server, "generic", token, {"alerts": resolves})
    assert (status, answer["new"], answer["repeated"]) == (200, 0, alerts), answer
    assert not AlertOccurrence.objects.filter(status="firing").exists()


# --- 8. the routing snapshot of each worker ---------------------------------------------------------


def test_a_new_integrations_token_works_at_once_on_every_worker(routing_server):
    _hook, old_token = integration_create(kind="alertmanager", name="known")
    assert set(_until_both_workers(routing_server, old_token, "warm", 200)) == {200}  # both hold a snapshot

    _new_hook, new_token = integration_create(kind="alertmanager", name="created a moment ago")
    seen = _until_both_workers(routing_server, new_token, "new", 200)
    assert set(seen) == {200}, seen  # never a 401, on the worker that saw it last or the other
    assert len(_workers_answering(routing_server, "new", 200)) == 2


def test_a_disabled_integration_is_refused_by_every_worker_within_a_second(routing_server):
    hook, token = integration_create(kind="alertmanager", name="to disable")
    assert set(_until_both_workers(routing_server, token, "enabled", 200)) == {200}

    hook.enabled = False
    hook.save()  # here, in the test process: the workers learn it from the database alone
    disabled_at = time.monotonic()
    _until_both_workers(routing_server, token, "disabled", 403, seconds=15)
    elapsed = time.monotonic() - disabled_at
    assert len(_workers_answering(routing_server, "disabled", 403)) == 2
    # A worker checks the version at most VERSION_CHECK_SECONDS (1 s) after its last check; the rest of the
    # margin is for a busy 2-core CI box. The TTL alone took 30 s here.
    assert elapsed < 5, elapsed


# --- 2. a poison timestamp, then every read -----------------------------------------------------------


def test_an_alert_starting_in_the_year_9999_is_rejected_and_every_read_still_answers(server):
    team = TeamFactory(slug="payments", name="Payments")
    SystemFactory(code="payout", team=team)
    engineer = UserFactory(username="oncall", role=Role.ENGINEER)
    _hook, token = integration_create(kind="alertmanager", name="poison")
    poison = _am_alert(1, system="payout", starts_at="9999-12-31T23:59:59-14:00")
    status, answer = _post(server, "alertmanager", token, _am_body([poison, _am_alert(2, system="payout")]))
    assert status == 200, answer
    assert answer["accepted"] == 1
    assert [r["index"] for r in answer["rejected"]] == [0]
    assert "startsAt" in answer["rejected"][0]["reason"]

    _token, secret = api_token_create(user=engineer)
    status, content = _request(server.port, "GET", "/api/v1/alerts/", headers={"Authorization": f"Bearer {secret}"})
    assert status == 200, content[:500]
    assert [a["fingerprint"] for a in json.loads(content)["results"]] == ["fp2"]

    browser = Client()
    browser.force_login(engineer)
    cookie = {"Cookie": f"sessionid={browser.cookies['sessionid'].value}"}
    for page in ("/", "/alerts/"):
        status, content = _request(server.port, "GET", page, headers=cookie)
        assert status == 200, (page, content[:500])
    assert b"PayoutQueueStuck" in content
