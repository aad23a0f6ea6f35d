import os
from importlib import import_module

import pytest
from rest_framework.test import APIClient

from accounts.models import Role
from accounts.services import api_token_create
from tests.factories import UserFactory

needs_postgres = pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith(("postgres", "postgresql")),
    reason="needs PostgreSQL: set DATABASE_URL (make test does on CI)",
)
needs_redis = pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs a real Redis: set REDIS_URL")


def pytest_collection_modifyitems(config, items):
    """Browser journeys (a Chromium page: the `page` fixture of tests/web/test_journeys.py) are marked
    `browser`, so a run can leave them out (`-m "not browser"`: CI's SQLite pass; the PostgreSQL pass
    runs them)."""
    for item in items:
        if "page" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _english(settings):
    settings.LANGUAGE_CODE = "en"


def _client_for(role: str) -> APIClient:
    user = UserFactory(username=role, role=role)
    _token, secret = api_token_create(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    client.user = user
    return client


@pytest.fixture
def engineer_client(db) -> APIClient:
    return _client_for(Role.ENGINEER)


@pytest.fixture
def manager_client(db) -> APIClient:
    return _client_for(Role.MANAGER)


@pytest.fixture
def admin_client_api(db) -> APIClient:
    return _client_for(Role.ADMIN)


@pytest.fixture
def anonymous_client() -> APIClient:
    return APIClient()


@pytest.fixture(autouse=True)
def _fresh_ingestion_routing():
    """Each test starts from the database it made, not a routing snapshot of an earlier test."""
    from stability.ingest_routing import invalidate_routing

    invalidate_routing()
    yield
    invalidate_routing()


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    """Webhook rate windows live in Redis when it is configured; a test starts with none counted."""
    from django.core.cache import cache

    from stability.ingest_rates import reset_rate_counters

    cache.clear()
    reset_rate_counters()
    if os.environ.get("REDIS_URL"):
        from stability.ingest_rates import _redis

        client = _redis()
        for key in client.scan_iter("st:ingest-rate:*"):
            client.delete(key)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """A reused test database (--reuse-db) may have been left empty by a transactional test of an
    earlier run: seed the policy once when the session starts."""
    with django_db_blocker.unblock():
        seed_severity_policy()


@pytest.fixture(autouse=True)
def _seeded_severity_policy(request, django_db_blocker):
    """Transactional tests (live_server, real workers, django_db(transaction=True)) empty every table when
    they end, the rows of incidents' data migration included: put the seeded policy back before and
    after them."""

    def transactional() -> bool:
        marker = request.node.get_closest_marker("django_db")
        by_marker = marker is not None and (marker.kwargs.get("transaction") or (marker.args[:1] == (True,)))
        return by_marker or bool({"transactional_db", "live_server"} & set(request.fixturenames))

    if transactional():
        seed_severity_policy()
    yield
    if transactional():
        with django_db_blocker.unblock():
            seed_severity_policy()


def seed_severity_policy() -> None:
    from django.apps import apps

    from incidents.models import SeverityPolicy

    if not SeverityPolicy.objects.exists():
        import_module("incidents.migrations.0002_default_severity_policy").seed(apps, None)


@pytest.fixture(autouse=True)
def _fresh_guessing_counts():
    """Wrong-token counts (accounts/guessing.py) are per address, and every test client is 127.0.0.1:
    a test starts with none counted and no address refused."""
    from django.core.cache import caches

    from accounts.guessing import token_refusals_forget

    caches["guessing"].clear()
    token_refusals_forget()
