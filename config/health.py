"""Liveness and readiness probes (contracts.md: /healthz and /readyz)."""

from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache

from config.celery import app as celery_app


@never_cache
def healthz(request):
    return JsonResponse({"status": "ok"})


def _check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any failure means not ready; say which
        return f"{type(exc).__name__}: {exc}"
    return None


def _check_broker() -> str | None:
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


@never_cache
def readyz(request):
    failures = {name: err for name, err in (("database", _check_database()), ("broker", _check_broker())) if err}
    body = {
        "status": "unavailable" if failures else "ok",
        "checks": {name: failures.get(name, "ok") for name in ("database", "broker")},
    }
    return JsonResponse(body, status=503 if failures else 200)
