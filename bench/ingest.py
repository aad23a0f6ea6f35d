#!/usr/bin/env python3
"""Alert ingestion benchmark: gunicorn in front, PostgreSQL behind, wrk on the same machine.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/stability_bench \\
    REDIS_URL=redis://127.0.0.1:6379/3 \\
    .venv/bin/python bench/ingest.py

Every run starts from scratch:
1. (Re)creates the bench database (its name must contain "bench"; --keep-db keeps it), runs
   `manage.py migrate`, creates team "payments", system "cashier" and one alertmanager integration
   per measurement, with a rate limit far above what is sent.
2. Counts the SQL queries of one notification in-process (Django test client and
   CaptureQueriesContext, against the same PostgreSQL): 1 and 50 new alerts, then their repeats.
3. For each measurement, starts gunicorn in production mode (DEBUG=false, persistent database
   connections, the rate-limit counters in Redis), warms up with wrk, then measures with wrk and
   bench/ingest.lua: (1) Alertmanager notifications of 1 alert, (2) of 50 alerts; every alert is
   new (a fingerprint of its own). gunicorn is always stopped (gracefully) afterwards.
4. Checks what was stored against what was acknowledged: every notification stored whole (all its
   alerts or none), every notification wrk saw a 2xx for stored, nothing stored that was not sent.
   The only difference allowed is the requests still in flight when wrk stopped, which the server
   completes after wrk stopped counting. --access-log makes the check exact against gunicorn's own
   count of 2xx answers (at the cost of a few % of throughput).

Worker setup (default): 2 gthread workers x 8 threads for 2 CPUs, the setup the README's
deployment section recommends. Threads keep connections alive (Alertmanager's Go client and wrk
both reuse connections), which saves the accept/close of every request that sync workers pay:
measured here, gunicorn CPU per 1-alert notification fell from ~1.4 ms (4 sync workers) to ~0.95
ms. Each thread waits on PostgreSQL's commit (synchronous_commit stays on) and Redis, so 8 threads
per worker keep both CPUs busy; wrk holds 16 connections for 1-alert bodies (more only lengthen
the queue: 24 gave the same rate with p99 about twice as long) and 8 for 50-alert ones. Try others with
--worker-class/--workers/--threads/--connections-*.

Timed figures live here only, never in the test suite. Targets of the issue are marked MET/MISSED;
the exit status is 1 only when the verification of stored alerts or the query count fails.
"""

import argparse
import json
import os
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".venv" / "bin"
PYTHON = BIN / "python" if (BIN / "python").exists() else Path(sys.executable)
LUA = ROOT / "bench" / "ingest.lua"
WEBHOOK = "/api/v1/integrations/alertmanager/"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/stability_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/3"
TARGETS = {1: (1_000, 50.0), 50: (10_000, None)}  # alerts per notification: (alerts/s, p99 ms)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=20, help="seconds of each measurement (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up before each (default 3)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes (default 2)")
    parser.add_argument("--worker-class", default="gthread", choices=["sync", "gthread"], help="default gthread")
    parser.add_argument("--threads", type=int, default=8, help="threads per gthread worker (default 8)")
    parser.add_argument("--keep-alive", type=int, default=75, help="gthread keep-alive seconds (default 75)")
    parser.add_argument("--connections-1", type=int, default=16, help="wrk connections, 1-alert bodies (16)")
    parser.add_argument("--connections-50", type=int, default=8, help="wrk connections, 50-alert bodies (8)")
    parser.add_argument("--wrk-threads", type=int, default=1, help="wrk threads (default 1)")
    parser.add_argument("--only", choices=["1", "50"], help="run one of the two measurements")
    parser.add_argument("--port", type=int, default=0, help="gunicorn port (default: a free one)")
    parser.add_argument("--keep-db", action="store_true", help="do not drop and recreate the database")
    parser.add_argument("--access-log", action="store_true", help="exact check against gunicorn's access log")
    return parser.parse_args()


# --- environment -------------------------------------------------------------------------------


def bench_env(database_url: str, redis_url: str, allowed_hosts: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        DEBUG="false",
        SECRET_KEY="bench-only-" + uuid.uuid4().hex,
        ALLOWED_HOSTS=allowed_hosts,
        CONN_MAX_AGE="600",  # persistent connections, as in production
        LOG_LEVEL="WARNING",
        SECURE_COOKIES="false",
        DJANGO_SETTINGS_MODULE="config.settings",
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


def recreate_database(database_url: str) -> None:
    import psycopg

    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    if "bench" not in name:
        sys.exit(f"refusing to drop database {name!r}: its name must contain 'bench' (or pass --keep-db)")
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def background_load(seconds: float = 1.0) -> float:
    busy0, total0 = machine_ticks()
    time.sleep(seconds)
    busy1, total1 = machine_ticks()
    return (busy1 - busy0) / max(1, total1 - total0)


# --- in-process part: set-up, query count, what was stored --------------------------------------


def django_setup(env: dict[str, str]) -> None:
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def create_world() -> None:
    from incidents.models import System, Team, Tier

    team, _ = Team.objects.get_or_create(slug="payments", defaults={"name": "Payments"})
    System.objects.get_or_create(code="cashier", defaults={"name": "Cashier", "tier": Tier.P0, "team": team})


def new_integration(name: str) -> tuple[int, str]:
    from django.db import connection

    from stability.services import integration_create

    integration, token = integration_create(kind="alertmanager", name=name, rate_limit_per_minute=2_000_000_000)
    connection.close()
    return integration.pk, token


def alertmanager_body(run: str, first: int, count: int) -> str:
    alerts = [
        {
            "status": "firing",
            "labels": {
                "alertname": "PaymentLatencyHigh",
                "instance": f"cashier-{run}-{n}:9100",
                "job": "cashier",
                "severity": "critical",
                "team": "payments",
                "system": "cashier",
            },
            "annotations": {"summary": "收银台支付耗时过高", "description": f"p99 latency 2.4s on {n}"},
            "startsAt": "2026-09-01T02:10:00.000Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus.example.com:9090/graph?g0.expr=pay_latency",
            "fingerprint": f"{run}-q-{n}",
        }
        for n in range(first, first + count)
    ]
    return json.dumps({"version": "4", "status": "firing", "receiver": "stability-tracker", "alerts": alerts})


def count_queries(run: str) -> dict[str, tuple[int, list[str]]]:
    """SQL queries of one notification, through the whole Django stack, routing snapshot warm."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    _pk, token = new_integration(f"bench {run} queries")
    client = Client()

    def post(body: str) -> tuple[int, list[str]]:
        with CaptureQueriesContext(connection) as queries:
            answer = client.post(WEBHOOK, body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}")
        if answer.status_code != 200:
            sys.exit(f"query count: {answer.status_code} {answer.content[:300]!r}")
        return len(queries), [" ".join(q["sql"].split()[:3]) + " ..." for q in queries.captured_queries]

    post(alertmanager_body(run, 10_000, 1))  # warm: the routing snapshot is loaded once per process
    one, fifty = alertmanager_body(run, 0, 1), alertmanager_body(run, 1, 50)
    result = {"1 new": post(one), "50 new": post(fifty), "1 repeated": post(one), "50 repeated": post(fifty)}
    connection.close()
    return result


def stored(integration_id: int) -> tuple[int, int]:
    """(alerts, notifications) stored for the integration: fingerprints are <run>-<thread>-<request>-<alert>."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), count(DISTINCT regexp_replace(fingerprint, '-[0-9]+$', '')) "
            "FROM stability_alertoccurrence WHERE integration_id = %s",
            [integration_id],
        )
        alerts, notifications = cursor.fetchone()
    connection.close()
    return alerts, notifications


# --- CPU accounting from /proc ------------------------------------------------------------------


def _proc_stat(pid: int) -> tuple[str, int, int] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()
    return comm, int(fields[1]), int(fields[11]) + int(fields[12])  # comm, ppid, utime + stime


def cpu_by_group(gunicorn_pid: int) -> dict[str, int]:
    """CPU ticks so far of gunicorn (master and workers), PostgreSQL and Redis."""
    ticks = {"gunicorn": 0, "postgres": 0, "redis": 0}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        stat = _proc_stat(int(entry.name))
        if stat is None:
            continue
        comm, ppid, used = stat
        if int(entry.name) == gunicorn_pid or ppid == gunicorn_pid:
            ticks["gunicorn"] += used
        elif comm == "postgres":
            ticks["postgres"] += used
        elif comm.startswith("redis-server"):
            ticks["redis"] += used
    return ticks


def machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


# --- gunicorn and wrk ---------------------------------------------------------------------------


@dataclass
class Server:
    command: list[str]
    env: dict[str, str]
    access_log: Path | None
    error_log: Path
    port: int
    process: subprocess.Popen | None = None

    def start(self) -> None:
        # Its own session, so that stop() signals gunicorn and its workers, and nothing else.
        self.process = subprocess.Popen(self.command, cwd=ROOT, env=self.env, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                sys.exit(f"gunicorn exited with {self.process.returncode}:\n{self.error_log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        self.stop()
        sys.exit("gunicorn did not answer /healthz within 30 s")

    def stop(self) -> None:
        """Graceful: gunicorn finishes the requests in progress, then exits."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def acknowledged(self) -> int | None:
        """Webhook requests the server answered 2xx (its access log), when it keeps one."""
        if self.access_log is None:
            return None
        return sum(
            1
            for line in self.access_log.read_text().splitlines()
            if line.startswith("2") and line.split()[-1] == WEBHOOK
        )


def gunicorn_command(args, port: int, access_log: Path | None, error_log: Path) -> list[str]:
    command = [str(BIN / "gunicorn"), "config.wsgi", "--bind", f"127.0.0.1:{port}"]
    command += ["--workers", str(args.workers), "--worker-class", args.worker_class]
    if args.worker_class == "gthread":
        command += ["--threads", str(args.threads), "--keep-alive", str(args.keep_alive)]
    command += ["--backlog", "2048", "--error-logfile", str(error_log), "--log-level", "warning"]
    if access_log is not None:
        command += ["--access-logfile", str(access_log), "--access-logformat", "%(s)s %(U)s"]
    return command


def wrk_command(args, port: int, connections: int, seconds: int, token: str, per: int, run: str) -> list[str]:
    return [
        "wrk",
        f"-t{min(args.wrk_threads, connections)}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA.relative_to(ROOT)),
        f"http://127.0.0.1:{port}{WEBHOOK}",
        "--",
        token,
        str(per),
        run,
    ]


def run_wrk(command: list[str]) -> dict:
    """wrk's figures (BENCH-JSON of bench/ingest.lua), with its own CPU ticks under "wrk_ticks"."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_ticks = round((after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * CLOCK_TICKS)
    if done.returncode != 0:
        sys.exit(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    for line in done.stdout.splitlines():
        if line.startswith("BENCH-JSON "):
            return json.loads(line.removeprefix("BENCH-JSON ")) | {"wrk_ticks": wrk_ticks}
    sys.exit(f"wrk printed no BENCH-JSON line:\n{done.stdout}\n{done.stderr}")


@dataclass
class Measurement:
    per: int
    connections: int
    wrk: dict  # the measured run
    seconds: float
    ok_requests: int  # answered 2xx, in the measured run
    alerts_per_s: float
    cpu_busy: float  # share of the machine's CPU time
    cpu_split: dict[str, float]  # share of the machine's CPU time, by process group
    cpu_ms: dict[str, float]  # CPU milliseconds per notification answered, by process group
    sent: int  # requests wrk generated, warm-up included (those in flight at its stop included)
    acknowledged: int  # requests wrk saw a 2xx for, warm-up included
    server_acknowledged: int | None  # 2xx answers in gunicorn's access log (--access-log)
    stored_alerts: int
    stored_notifications: int
    commands: list[str]

    @property
    def errors(self) -> int:
        w = self.wrk
        return w["errors_status"] + w["errors_connect"] + w["errors_read"] + w["errors_write"] + w["errors_timeout"]


def measure(args, env, run: str, per: int, connections: int, workdir: Path) -> Measurement:
    integration_id, token = new_integration(f"bench {run} x{per}")
    port = args.port or free_port()
    access_log = workdir / f"access-{per}.log" if args.access_log else None
    error_log = workdir / f"error-{per}.log"
    server = Server(gunicorn_command(args, port, access_log, error_log), env, access_log, error_log, port)
    print(f"-- {per}-alert notifications: gunicorn on 127.0.0.1:{port}, wrk -c{connections}", flush=True)
    try:
        server.start()
        warm = run_wrk(wrk_command(args, port, connections, args.warmup, token, per, f"{run}w"))
        busy0, total0 = machine_ticks()
        split0 = cpu_by_group(server.process.pid)
        result = run_wrk(wrk_command(args, port, connections, args.duration, token, per, run))
        busy1, total1 = machine_ticks()
        split1 = cpu_by_group(server.process.pid)
    finally:
        server.stop()
    seconds = result["duration_us"] / 1e6
    ok = result["requests"] - result["errors_status"]
    spent = max(1, total1 - total0)
    busy = (busy1 - busy0) / spent
    split = {k: (split1[k] - split0[k]) / spent for k in split1} | {"wrk": result["wrk_ticks"] / spent}
    split["other"] = max(0.0, busy - sum(split.values()))
    alerts, notifications = stored(integration_id)
    masked = wrk_command(args, port, connections, args.duration, "$TOKEN", per, "$RUN")
    return Measurement(
        per=per,
        connections=connections,
        wrk=result,
        seconds=seconds,
        ok_requests=ok,
        alerts_per_s=ok * per / seconds,
        cpu_busy=busy,
        cpu_split=split,
        cpu_ms={k: v * spent / CLOCK_TICKS * 1000 / max(1, ok) for k, v in split.items() if k != "other"},
        sent=warm["sent"] + result["sent"],
        acknowledged=warm["requests"] - warm["errors_status"] + ok,
        server_acknowledged=server.acknowledged(),
        stored_alerts=alerts,
        stored_notifications=notifications,
        commands=[
            shlex.join(server.command).replace(str(workdir), "/tmp/bench"),
            shlex.join(masked).replace("'$TOKEN'", "$TOKEN").replace("'$RUN'", "$RUN"),
        ],
    )


# --- report --------------------------------------------------------------------------------------


def _print_table(results: list[Measurement]) -> None:
    header = (
        f"{'notification':<14}{'conns':>6}{'requests':>10}{'alerts/s':>11}{'req/s':>9}{'p50 ms':>8}{'p90 ms':>8}"
        f"{'p99 ms':>8}{'max ms':>8}{'errors':>7}{'CPU':>6}  target"
    )
    print(header)
    print("-" * (len(header) + 36))
    for m in results:
        w = m.wrk
        target_rate, target_p99 = TARGETS[m.per]
        met = m.alerts_per_s >= target_rate and (target_p99 is None or w["p99_us"] / 1000 < target_p99)
        target = f">= {target_rate:,} alerts/s" + (f", p99 < {target_p99:.0f} ms" if target_p99 else "")
        print(
            f"{f'{m.per} alert(s)':<14}{m.connections:>6}{w['requests']:>10,}{m.alerts_per_s:>11,.0f}"
            f"{m.ok_requests / m.seconds:>9,.0f}{w['p50_us'] / 1000:>8.1f}{w['p90_us'] / 1000:>8.1f}"
            f"{w['p99_us'] / 1000:>8.1f}{w['max_us'] / 1000:>8.1f}{m.errors:>7}{m.cpu_busy:>6.0%}  "
            f"{target}: {'MET' if met else 'MISSED'}"
        )


def _print_cpu(results: list[Measurement]) -> None:
    print("Machine CPU during each measurement, by process group ('other': anything else running):")
    for m in results:
        split = ", ".join(f"{k} {v:.0%}" for k, v in m.cpu_split.items())
        print(f"  {m.per} alert(s): {split} (busy {m.cpu_busy:.0%})")
    print("CPU ms per notification (not inflated by other load), and the rate that allows on idle CPUs:")
    for m in results:
        total = sum(m.cpu_ms.values())
        split = ", ".join(f"{k} {v:.2f}" for k, v in m.cpu_ms.items())
        capacity = (os.cpu_count() or 1) * 1000 / total if total else 0
        print(
            f"  {m.per} alert(s): {split}; total {total:.2f} -> ~{capacity:,.0f} notifications/s"
            f" = {capacity * m.per:,.0f} alerts/s"
        )


def _print_queries(queries: dict) -> bool:
    print("SQL queries per notification (in-process, Django test client + CaptureQueriesContext):")
    for label, (n, sql) in queries.items():
        print(f"  {label:<12} {n}  {'; '.join(sql)}")
    constant = len({n for n, _sql in queries.values()}) == 1
    print(f"  constant: {'yes' if constant else 'NO'}")
    return constant


def _print_stored(m: Measurement) -> bool:
    """Whether what was stored matches what was acknowledged (see the module's docstring, step 4)."""
    whole = m.stored_alerts == m.stored_notifications * m.per
    kept = m.stored_notifications >= m.acknowledged
    invented = m.stored_notifications > m.sent
    print(
        f"  {m.per} alert(s): {m.stored_alerts:,} alerts stored = {m.stored_notifications:,} whole notifications"
        f" x {m.per}: {'OK' if whole else 'PARTIAL NOTIFICATIONS'}"
    )
    print(
        f"    wrk saw a 2xx for {m.acknowledged:,} notifications: {'all stored' if kept else 'SOME LOST'};"
        f" stored after wrk stopped counting (in flight): {m.stored_notifications - m.acknowledged:,};"
        f" wrk generated {m.sent:,}{': MORE STORED THAN SENT' if invented else ''}"
    )
    ok = whole and kept and not invented
    if m.server_acknowledged is not None:
        exact = m.stored_alerts == m.server_acknowledged * m.per
        print(
            f"    gunicorn answered 2xx for {m.server_acknowledged:,} notifications"
            f" = {m.server_acknowledged * m.per:,} alerts: {'equal to the stored alerts' if exact else 'MISMATCH'}"
        )
        ok &= exact
    return ok


def _print_reproduce(database_url: str, redis_url: str, results: list[Measurement]) -> None:
    print("Reproduce:")
    print(f"  DATABASE_URL={database_url} REDIS_URL={redis_url} \\")
    print(f"    .venv/bin/python bench/ingest.py {' '.join(sys.argv[1:])}".rstrip())
    print("  which runs, with DEBUG=false SECRET_KEY=... ALLOWED_HOSTS=127.0.0.1 CONN_MAX_AGE=600 and those URLs:")
    for m in results:
        print(f"    {m.commands[0]}")
        print(f"    {m.commands[1]}")
    print("  ($TOKEN: `manage.py create_integration --kind alertmanager --name bench`, its rate_limit_per_minute")
    print("   raised; $RUN: any fresh prefix, so that every alert is new.)")


def report(args, database_url: str, redis_url: str, queries: dict, results: list[Measurement]) -> bool:
    """Prints the figures; False when the query count or the stored alerts fail their check."""
    print()
    print(f"Machine: {os.cpu_count()} CPUs; gunicorn, PostgreSQL (synchronous_commit on), Redis and wrk all on it.")
    workers = f"{args.workers} x {args.worker_class}"
    if args.worker_class == "gthread":
        workers += f" x {args.threads} threads, keep-alive {args.keep_alive} s"
    print(
        f"gunicorn: {workers}; wrk: {args.wrk_threads} thread(s), closed loop, {args.duration} s"
        f" after {args.warmup} s of warm-up; every alert new."
    )
    print()
    _print_table(results)
    print()
    _print_cpu(results)
    print()
    ok = _print_queries(queries)
    print()
    print("Stored against acknowledged (warm-up included):")
    for m in results:
        ok &= _print_stored(m)
    print()
    _print_reproduce(database_url, redis_url, results)
    return ok


def main() -> int:
    args = parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    database_url = os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    redis_url = os.environ.get("REDIS_URL", DEFAULT_REDIS_URL)
    if not database_url.startswith(("postgres://", "postgresql://")):
        sys.exit("DATABASE_URL must point at PostgreSQL")
    run = uuid.uuid4().hex[:8]

    if not args.keep_db:
        recreate_database(database_url)
    server_env = bench_env(database_url, redis_url, "127.0.0.1")
    print("-- manage.py migrate", flush=True)
    subprocess.run([str(PYTHON), "manage.py", "migrate", "--no-input", "-v", "0"], cwd=ROOT, env=server_env, check=True)

    django_setup(bench_env(database_url, redis_url, "127.0.0.1,testserver"))
    create_world()
    print("-- counting queries in-process", flush=True)
    queries = count_queries(run)

    load = background_load()
    if load > 0.1:
        print(f"!! the machine is already {load:.0%} busy before the benchmark: figures will be lower", flush=True)
    plan = [(1, args.connections_1), (50, args.connections_50)]
    if args.only:
        plan = [p for p in plan if p[0] == int(args.only)]
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as workdir:
        for per, connections in plan:
            results.append(measure(args, server_env, run, per, connections, Path(workdir)))
    return 0 if report(args, database_url, redis_url, queries, results) else 1


if __name__ == "__main__":
    sys.exit(main())
