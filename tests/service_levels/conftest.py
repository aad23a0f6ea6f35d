"""Fixtures of the service levels' tests: a fake Prometheus (tests/service_levels/fake_prometheus.py), a
source asking it, a P0 system."""

import pytest

from service_levels import services
from service_levels.models import PrometheusSource
from tests.factories import SystemFactory
from tests.service_levels import fake_prometheus as fake


@pytest.fixture
def fake_prometheus():
    with fake.serving() as server:
        yield server


@pytest.fixture
def source(db, fake_prometheus) -> PrometheusSource:
    return services.source_create(name="Prometheus", url=fake_prometheus.url, timeout_seconds=2)


@pytest.fixture
def p0_system(db):
    from incidents.models import Tier

    return SystemFactory(code="collection", name="Collection (入金)", tier=Tier.P0)
