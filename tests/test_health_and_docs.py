"""Probes (/healthz, /readyz) and the API's schema and interactive docs (contracts.md, HTTP)."""

import re

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders
from django.test import Client

from tests.conftest import needs_redis


@pytest.fixture
def client() -> Client:
    return Client()


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.django_db
def test_readyz_ok(client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}
    assert "no-cache" in response["Cache-Control"]


def test_broker_is_embedded_unless_redis_url_is_set():
    if settings.REDIS_URL:
        assert settings.CELERY_BROKER_URL == settings.REDIS_URL
    else:
        assert settings.CELERY_BROKER_URL == "filesystem://"


@needs_redis
def test_readyz_with_redis(client, db):
    assert settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://"))
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["broker"] == "ok"


@pytest.mark.django_db
def test_readyz_names_a_failed_database(client, monkeypatch):
    monkeypatch.setattr("config.health._check_database", lambda: "OperationalError: connection refused")
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"database": "OperationalError: connection refused", "broker": "ok"},
    }


@pytest.mark.django_db
def test_readyz_names_a_failed_broker(client, monkeypatch):
    monkeypatch.setattr("config.health._check_broker", lambda: "OperationalError: broker down")
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "broker": "OperationalError: broker down"}


@pytest.mark.django_db
def test_readyz_with_a_real_database_failure(client, monkeypatch):
    """The check itself turns a database error into a named failure, not a 500."""

    class BrokenConnection:
        def cursor(self):
            raise RuntimeError("database is gone")

    monkeypatch.setattr("config.health.connection", BrokenConnection())
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "RuntimeError: database is gone"


def test_schema(client):
    response = client.get("/api/schema/")
    assert response.status_code == 200
    text = response.content.decode()
    assert text.startswith("openapi: 3")
    for path in (
        "/api/v1/incidents/",
        "/api/v1/incidents/{id}/transitions/",
        "/api/v1/incidents/{id}/severity-override/",
        "/api/v1/severity/preview/",
        "/api/v1/severity-policies/reevaluate/",
        "/api/v1/metrics/incidents/",
    ):
        assert f"{path}:" in text, path
    assert "Bearer" in text


def test_schema_as_json(client):
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert schema["info"]["title"] == "Stability Tracker API"
    assert set(schema["paths"]["/api/v1/incidents/{id}/"]) >= {"get", "patch"}


def test_docs_are_served_without_a_cdn(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    lowered = html.lower()
    for host in ("cdn", "unpkg", "jsdelivr", "googleapis", "cloudflare"):
        assert host not in lowered, host
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", html)
    # The assets it references are shipped with the project (drf-spectacular-sidecar).
    assets = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+\.(?:js|css|png))["']""", html)
    assert any("swagger-ui" in asset for asset in assets), assets
    for asset in assets:
        assert asset.startswith("/" + settings.STATIC_URL.lstrip("/")), asset
        assert finders.find(asset.removeprefix("/" + settings.STATIC_URL.lstrip("/"))), asset
    # The start-up script is served by URL (the Content-Security-Policy allows no inline script).
    assert "/api/schema/" in client.get("/api/docs/?script=").content.decode()


def test_schema_declares_bearer_authentication(client):
    schema = client.get("/api/schema/", {"format": "json"}).json()
    schemes = schema["components"]["securitySchemes"]
    bearer = [
        name for name, scheme in schemes.items() if scheme.get("type") == "http" and scheme.get("scheme") == "bearer"
    ]
    assert bearer
    assert {bearer[0]: []} in schema["paths"]["/api/v1/incidents/"]["get"]["security"]
