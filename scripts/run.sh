#!/usr/bin/env bash
# `make run`: migrate, load the demo, then serve the web app with Celery workers and beat.
# Ctrl-C stops everything this script started, within STOP_SECONDS (10): each child leads a process group
# of its own (setsid), which gets TERM, then KILL at the deadline; a Celery worker waiting on a slow
# delivery, and the pool processes it forked, go with it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
STOP_SECONDS=${STOP_SECONDS:-10}
# Links in reminders and reports point at this server unless SITE_URL says otherwise.
export SITE_URL=${SITE_URL:-http://$HOST:$PORT}

$PY manage.py migrate --no-input
$PY manage.py load_demo

pids=()
stop() {
  trap - INT TERM EXIT
  echo
  echo "Stopping web, workers and beat..."
  local pid deadline
  for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  deadline=$((SECONDS + STOP_SECONDS - 2))
  while ((SECONDS < deadline)); do
    alive=0
    for pid in "${pids[@]}"; do kill -0 -- "-$pid" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.2
  done
  for pid in "${pids[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
  wait "${pids[@]}" 2>/dev/null || true
}
trap stop INT TERM EXIT

# The deployment of README's "Deployment": the periodic tasks (the minute's reminder sweep) on a worker of
# their own, deliveries on another, so a slow robot never holds a sweep back.
setsid .venv/bin/celery -A config worker --loglevel INFO --queues celery --concurrency 1 -n periodic@%h &
pids+=($!)
setsid .venv/bin/celery -A config worker --loglevel INFO --queues deliveries --concurrency 2 -n deliveries@%h &
pids+=($!)
setsid .venv/bin/celery -A config beat --loglevel INFO &
pids+=($!)
setsid $PY manage.py runserver --noreload "$HOST:$PORT" &
pids+=($!)

# Never print a password that a URL carries.
hide_password() { sed -E 's#//[^/@]*@#//***@#' <<<"$1"; }
db=$(hide_password "${DATABASE_URL:-SQLite in var/}")
broker=$(hide_password "${REDIS_URL:-embedded (file system, var/broker)}")

cat <<MSG

  Stability Tracker is running at http://$HOST:$PORT/
    API docs   http://$HOST:$PORT/api/docs/
    Admin      http://$HOST:$PORT/admin/
  Demo logins (password: demo-password): engineer, manager, admin
  Database: $db   Broker: $broker
  Press Ctrl-C to stop.

MSG
# Stop everything as soon as any one of them exits.
wait -n "${pids[@]}"
