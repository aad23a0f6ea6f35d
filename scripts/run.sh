#!/usr/bin/env bash
# `make run`: migrate, load the demo, then serve the web app with a Celery worker and beat.
# Ctrl-C stops everything this script started.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
# Links in reminders and reports point at this server unless SITE_URL says otherwise.
export SITE_URL=${SITE_URL:-http://$HOST:$PORT}

$PY manage.py migrate --no-input
$PY manage.py load_demo

pids=()
stop() {
  trap - INT TERM EXIT
  echo
  echo "Stopping web, worker and beat..."
  kill "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
}
trap stop INT TERM EXIT

.venv/bin/celery -A config worker --loglevel INFO --concurrency 2 &
pids+=($!)
.venv/bin/celery -A config beat --loglevel INFO &
pids+=($!)
$PY manage.py runserver --noreload "$HOST:$PORT" &
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
