"""The admin of the service levels: written through service_levels.services (credentials write-only and kept when
left empty, Prometheus asked about the expressions); daily values only looked at."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.urls import reverse

from accounts.models import Role
from service_levels import services
from service_levels.models import DailyValue, Indicator, PrometheusSource
from service_levels.services import Measurement
from tests.factories import UserFactory
from tests.service_levels.fake_prometheus import error, vector


@pytest.fixture
def admin_browser(client, db):
    client.force_login(UserFactory(username="root", role=Role.ADMIN, is_staff=True, is_superuser=True))
    return client


def _source_form(**values) -> dict:
    return {"name": "prod", "url": "http://prom:9090", "auth": "none", "timeout_seconds": 10, "enabled": "on"} | values


def test_a_source_is_added_and_its_token_never_shown_or_lost(admin_browser):
    add = admin_browser.post(
        reverse("admin:service_levels_prometheussource_add"), _source_form(auth="bearer", bearer_token="tok-1")
    )
    assert add.status_code == 302, add.content.decode()[:3000]
    source = PrometheusSource.objects.get()
    url = reverse("admin:service_levels_prometheussource_change", args=[source.pk])
    assert "tok-1" not in admin_browser.get(url).content.decode()
    change = admin_browser.post(url, _source_form(auth="bearer", bearer_token="", timeout_seconds=20))
    assert change.status_code == 302
    source.refresh_from_db()
    assert (source.bearer_token, source.timeout_seconds) == ("tok-1", 20)


def test_a_source_without_its_token_or_with_a_bad_url_is_refused(admin_browser):
    refused = admin_browser.post(reverse("admin:service_levels_prometheussource_add"), _source_form(auth="bearer"))
    assert refused.status_code == 200 and "Give the bearer token." in refused.content.decode()
    refused = admin_browser.post(reverse("admin:service_levels_prometheussource_add"), _source_form(url="prom"))
    assert refused.status_code == 200 and "An http:// or https:// URL" in refused.content.decode()
    assert not PrometheusSource.objects.exists()


def test_an_indicator_prometheus_refuses_is_not_saved(admin_browser, source, p0_system, fake_prometheus):
    fake_prometheus.answer = lambda query, at: error(400, "bad_data", "1:4: parse error: unexpected end of input")
    form = {
        "system": p0_system.pk,
        "source": source.pk,
        "name": "入金有效成功率",
        "kind": "success_ratio",
        "good_query": "sum(",
        "total_query": "sum(increase(all_total[$window]))",
        "objective": "99.99",
        "enabled": "on",
    }
    refused = admin_browser.post(reverse("admin:service_levels_indicator_add"), form)
    assert refused.status_code == 200
    assert "Prometheus refused the expression: 1:4: parse error: unexpected end of input" in refused.content.decode()
    assert not Indicator.objects.exists()
    fake_prometheus.answer = lambda query, at: vector("1")
    assert (
        admin_browser.post(reverse("admin:service_levels_indicator_add"), form | {"good_query": "sum(x)"}).status_code
        == 302
    )
    assert Indicator.objects.get().good_query == "sum(x)"


def test_daily_values_are_only_looked_at(admin_browser, source, p0_system):
    indicator = services.indicator_create(
        system=p0_system, source=source, name="x", objective=Decimal("99"), ratio_query="up", check=False
    )
    value = services.daily_value_store(
        indicator=indicator,
        day=date(2026, 11, 3),
        measurement=Measurement("ok", ratio=1.0),
        now=datetime(2026, 11, 4, tzinfo=UTC),
    )
    assert admin_browser.get(reverse("admin:service_levels_dailyvalue_changelist")).status_code == 200
    assert admin_browser.get(reverse("admin:service_levels_dailyvalue_change", args=[value.pk])).status_code == 200
    assert admin_browser.get(reverse("admin:service_levels_dailyvalue_add")).status_code == 403
    assert DailyValue.objects.count() == 1
