#!/usr/bin/env python3
"""Reminder sweep benchmark: how long one sweep takes to record what is due, and in how many queries.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/stability_bench_reminders \\
    .venv/bin/python bench/reminders.py

Every run starts from scratch:
1. (Re)creates the bench database (its name must contain "bench"; --keep-db keeps it and its data) and
   runs `manage.py migrate`.
2. Creates 40 teams with a manager each, 2,000 owners (every 4th with a WeCom robot of their own, the
   others on email), one incident per team, and --items open action items (default 100,000), of
   which --due (default 10,000) need a reminder now: due between 20 days ago and 3 days ahead, so every
   step occurs (before-3, before-1, due, overdue-k, escalations to the managers); the others are due
   10 to 60 days ahead. Items are written with bulk_create, as if created 30 days ago.
3. Times stability.reminders.sweep (the recording: read, compute, one INSERT, stale check, the
   destinations to hand over; the hand-over itself is replaced by a no-op, delivery is not measured)
   and counts its queries; then a second sweep a minute later, when everything is recorded already
   (the steady state of beat's every-minute run).

Target of the issue: under 10 s for the first sweep, with a number of queries that does not grow per
item (run with other --items/--due to see the same count). Figures are printed, never asserted.
"""

import argparse
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".venv" / "bin"
PYTHON = BIN / "python" if (BIN / "python").exists() else Path(sys.executable)
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/stability_bench_reminders"
TARGET_SECONDS = 10.0
TEAMS, OWNERS = 40, 2_000


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100_000, help="open action items (default 100,000)")
    parser.add_argument("--due", type=int, default=10_000, help="of which need a reminder now (default 10,000)")
    parser.add_argument("--keep-db", action="store_true", help="reuse the database and its items")
    return parser.parse_args()


def bench_env(database_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url,
        DEBUG="false",  # no query log kept in memory
        SECRET_KEY="bench-only-" + uuid.uuid4().hex,
        LOG_LEVEL="WARNING",
        DJANGO_SETTINGS_MODULE="config.settings",
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.pop("REDIS_URL", None)  # nothing is handed to a broker
    return env


def recreate_database(database_url: str) -> None:
    import psycopg

    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    if "bench" not in name:
        sys.exit(f"refusing to drop database {name!r}: its name must contain 'bench' (or pass --keep-db)")
    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def create_world(items: int, due: int) -> None:
    import random
    from datetime import timedelta

    from django.db import transaction
    from django.utils import timezone

    from accounts.models import User
    from incidents.models import ActionItem, DetectionSource, System, Team, Tier
    from incidents.services import incident_create
    from stability.models import NotificationChannel

    if ActionItem.objects.exists():
        print(f"-- reusing {ActionItem.objects.count():,} items", flush=True)
        return
    rng = random.Random(2026)
    now = timezone.now().replace(microsecond=0)
    started = time.perf_counter()
    with transaction.atomic():
        teams = Team.objects.bulk_create(Team(name=f"Team {n}", slug=f"team-{n}") for n in range(TEAMS))
        managers = User.objects.bulk_create(
            User(username=f"manager-{n}", email=f"manager-{n}@example.com", role="manager") for n in range(TEAMS)
        )
        for team, manager in zip(teams, managers, strict=True):
            team.managers.add(manager)
        owners = User.objects.bulk_create(
            User(username=f"owner-{n}", email=f"owner-{n}@example.com", language="zh-hans" if n % 3 else "")
            for n in range(OWNERS)
        )
        NotificationChannel.objects.bulk_create(
            NotificationChannel(
                kind="wecom", name=f"robot {o.username}", target="https://robot.example.com/send", user=o
            )
            for o in owners[::4]
        )
        incidents = []
        for team in teams:
            system = System.objects.create(code=f"sys-{team.slug}", name=team.name, tier=Tier.P2, team=team)
            incidents.append(
                incident_create(
                    by=None,
                    title=f"Incident of {team.name}",
                    systems=[system],
                    occurred_at=now - timedelta(days=40),
                    detected_at=now - timedelta(days=40),
                    detection_source=DetectionSource.MONITORING,
                )
            )

        def due_at(n: int):
            if n < due:  # 20 days ago .. 3 days ahead (minus a minute: before-3 has come)
                return now + timedelta(seconds=rng.randint(-20 * 86400, 3 * 86400 - 60))
            return now + timedelta(seconds=rng.randint(10 * 86400, 60 * 86400))

        ActionItem.objects.bulk_create(
            (
                ActionItem(
                    incident=incidents[n % TEAMS],
                    title=f"Action item {n}",
                    owner=owners[n % OWNERS],
                    due_at=due_at(n),
                    status="in_progress" if n % 5 == 0 else "open",
                )
                for n in range(items)
            ),
            batch_size=5_000,
        )
        # As if created a month ago: every step of the window came after the item existed.
        ActionItem.objects.update(created_at=now - timedelta(days=30))
    print(
        f"-- created {items:,} items ({due:,} due for a reminder) in {time.perf_counter() - started:.1f} s", flush=True
    )


def timed_sweep(label: str, now) -> tuple[float, int, int]:
    from django.db import connection

    from stability import reminders
    from stability.models import Notification

    queries = []

    def count(execute, sql, params, many, context):
        queries.append(sql[:60])
        return execute(sql, params, many, context)

    before = Notification.objects.count()
    with connection.execute_wrapper(count):
        started = time.perf_counter()
        result = reminders.sweep(now=now, enqueue=lambda destinations: len(destinations))
        seconds = time.perf_counter() - started
    recorded = Notification.objects.count() - before
    verdict = "MET" if seconds < TARGET_SECONDS else "MISSED"
    print(
        f"{label}: {seconds:.2f} s, {recorded:,} notifications recorded ({result.considered:,} called for), "
        f"{len(queries)} queries, {len(result.destinations):,} destinations to hand over"
        + (f"  [target < {TARGET_SECONDS:.0f} s: {verdict}]" if recorded else ""),
        flush=True,
    )
    return seconds, recorded, len(queries)


def main() -> int:
    args = parse_args()
    database_url = os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    if not database_url.startswith(("postgres://", "postgresql://")):
        sys.exit("DATABASE_URL must point at PostgreSQL")
    if not args.keep_db:
        recreate_database(database_url)
    env = bench_env(database_url)
    print("-- manage.py migrate", flush=True)
    subprocess.run([str(PYTHON), "manage.py", "migrate", "--no-input", "-v", "0"], cwd=ROOT, env=env, check=True)
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from datetime import timedelta

    from django.utils import timezone

    create_world(args.items, args.due)
    from stability.models import Notification

    Notification.objects.all().delete()
    now = timezone.now().replace(microsecond=0)
    timed_sweep("first sweep (everything due is new)", now)
    timed_sweep("next sweep, a minute later (all recorded)", now + timedelta(minutes=1))
    hidden = re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", database_url)  # never print a password
    print(f"reproduce: DATABASE_URL={hidden} .venv/bin/python bench/reminders.py --items {args.items} --due {args.due}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
