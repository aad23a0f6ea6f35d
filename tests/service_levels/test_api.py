"""The service levels API: sources and indicators (administrators write; credentials never come back), the
test query, an indicator's days, and the figures under the report's access rule."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
import time_machine

from incidents.models import Tier
from service_levels import services
from service_levels.models import DailyValue, Indicator, PrometheusSource
from service_levels.services import Measurement
from tests.factories import SystemFactory, TeamFactory
from tests.service_levels.fake_prometheus import error, vector

SOURCES = "/api/v1/service-levels/sources/"
INDICATORS = "/api/v1/service-levels/indicators/"
FIGURES = "/api/v1/metrics/service-levels/"
GOOD = "sum(increase(ok_total[$window]))"
TOTAL = "sum(increase(all_total[$window]))"


@pytest.fixture
def payments(db):
    return TeamFactory(slug="payments", name="Payments")


@pytest.fixture
def collection(payments):
    return SystemFactory(code="collection", name="Collection", tier=Tier.P0, team=payments)


@pytest.fixture
def indicator(source, collection):
    return services.indicator_create(
        system=collection,
        source=source,
        name="入金有效成功率",
        objective=Decimal("99.99"),
        good_query=GOOD,
        total_query=TOTAL,
    )


# --- sources ---------------------------------------------------------------------------------------


def test_an_admin_creates_a_source_and_its_token_never_comes_back(admin_client_api):
    answer = admin_client_api.post(
        SOURCES,
        {"name": "prod", "url": "https://prometheus.example:9090", "auth": "bearer", "bearer_token": "s3cret-token"},
        format="json",
    )
    assert answer.status_code == 201, answer.content
    assert "s3cret-token" not in answer.content.decode()
    assert answer.data["has_bearer_token"] is True and "bearer_token" not in answer.data
    listed = admin_client_api.get(SOURCES)
    assert "s3cret-token" not in listed.content.decode()
    assert PrometheusSource.objects.get().bearer_token == "s3cret-token"


def test_an_empty_token_on_a_change_keeps_the_stored_one(admin_client_api):
    source = services.source_create(name="prod", url="http://prom:9090", auth="basic", username="u", password="pw")
    answer = admin_client_api.patch(f"{SOURCES}{source.pk}/", {"password": "", "timeout_seconds": 20}, format="json")
    assert answer.status_code == 200, answer.content
    source.refresh_from_db()
    assert (source.password, source.timeout_seconds) == ("pw", 20)
    assert answer.data["has_password"] is True


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "p", "url": "not a url"}, "url"),
        ({"name": "p", "url": "ftp://prom:21"}, "url"),
        ({"name": "p", "url": "http://prom:9090", "auth": "bearer"}, "bearer_token"),
        ({"name": "p", "url": "http://prom:9090", "timeout_seconds": 0}, "timeout_seconds"),
        ({"name": "p", "url": "http://prom:9090", "auth": "kerberos"}, "auth"),
    ],
)
def test_a_bad_source_is_a_400_naming_the_field_and_saves_nothing(admin_client_api, body, field):
    answer = admin_client_api.post(SOURCES, body, format="json")
    assert answer.status_code == 400
    assert field in answer.data
    assert not PrometheusSource.objects.exists()


def test_engineers_and_managers_read_sources_but_do_not_write_them(engineer_client, manager_client, anonymous_client):
    services.source_create(name="prod", url="http://prom:9090")
    body = {"name": "x", "url": "http://x:9090"}
    assert engineer_client.get(SOURCES).status_code == 200
    assert engineer_client.post(SOURCES, body, format="json").status_code == 403
    assert manager_client.post(SOURCES, body, format="json").status_code == 403
    assert anonymous_client.get(SOURCES).status_code == 401
    assert PrometheusSource.objects.count() == 1


def test_a_used_source_is_not_deleted(admin_client_api, indicator, source):
    assert admin_client_api.delete(f"{SOURCES}{source.pk}/").status_code == 400
    unused = services.source_create(name="unused", url="http://prom:9090")
    assert admin_client_api.delete(f"{SOURCES}{unused.pk}/").status_code == 204
    assert list(PrometheusSource.objects.values_list("name", flat=True)) == ["Prometheus"]


# --- indicators ------------------------------------------------------------------------------------


def test_an_admin_creates_an_indicator(admin_client_api, source, collection, fake_prometheus):
    fake_prometheus.answer = lambda query, at: vector("1")
    answer = admin_client_api.post(
        INDICATORS,
        {
            "system": "collection",
            "source": source.pk,
            "name": "入金有效成功率",
            "objective": "99.99",
            "good_query": GOOD,
            "total_query": TOTAL,
        },
        format="json",
    )
    assert answer.status_code == 201, answer.content
    assert (answer.data["team"], answer.data["objective"]) == ("payments", Decimal("99.99"))


def test_bad_promql_is_a_400_with_prometheus_words(admin_client_api, source, collection, fake_prometheus):
    words = '1:8: parse error: unexpected "}"'
    fake_prometheus.answer = lambda query, at: error(400, "bad_data", words) if "}" in query else vector("1")
    answer = admin_client_api.post(
        INDICATORS,
        {
            "system": "collection",
            "source": source.pk,
            "name": "x",
            "objective": "99.9",
            "good_query": "sum(x})",
            "total_query": TOTAL,
        },
        format="json",
    )
    assert answer.status_code == 400
    assert words in answer.data["good_query"][0]
    assert not Indicator.objects.exists()


@pytest.mark.parametrize("objective", ["0", "100.5", "-3"])
def test_an_objective_outside_0_to_100_is_a_400(admin_client_api, source, collection, objective):
    answer = admin_client_api.post(
        INDICATORS,
        {
            "system": "collection",
            "source": source.pk,
            "name": "x",
            "objective": objective,
            "ratio_query": "avg(up[$window])",
        },
        format="json",
    )
    assert answer.status_code == 400
    assert "objective" in answer.data
    assert not Indicator.objects.exists()


def test_an_unknown_field_or_system_is_a_400(admin_client_api, source):
    answer = admin_client_api.post(
        INDICATORS,
        {"system": "nope", "source": source.pk, "name": "x", "objective": "99", "ratio_query": "avg(up[$window])"},
        format="json",
    )
    assert answer.status_code == 400 and "system" in answer.data


def test_an_engineer_does_not_create_indicators(engineer_client, source, collection):
    body = {"system": "collection", "source": source.pk, "name": "x", "objective": "99", "ratio_query": "up"}
    assert engineer_client.post(INDICATORS, body, format="json").status_code == 403


def test_the_test_query_gives_the_value_or_the_error_in_words(admin_client_api, indicator, fake_prometheus):
    fake_prometheus.answer = lambda query, at: vector("990" if "ok_total" in query else "1000")
    answer = admin_client_api.post(f"{INDICATORS}{indicator.pk}/test/")
    assert answer.status_code == 200
    # 990 / 1,000 = 99 %
    assert (answer.data["status"], answer.data["value"], answer.data["message"]) == ("ok", "99.000000", "")
    fake_prometheus.answer = lambda query, at: (401, b"no")
    answer = admin_client_api.post(f"{INDICATORS}{indicator.pk}/test/")
    assert answer.data["status"] == "failed"
    assert (
        answer.data["message"] == "Prometheus refused the credentials (HTTP 401): check the source's token or password."
    )
    assert not DailyValue.objects.exists()


def test_the_days_of_an_indicator(engineer_client, indicator):
    services.daily_value_store(
        indicator=indicator,
        day=date(2026, 11, 1),
        measurement=Measurement("ok", good=9_999, total=10_000, ratio=0.9999),
        now=datetime(2026, 11, 2, tzinfo=UTC),
    )
    with time_machine.travel(datetime(2026, 11, 3, 2, 0, tzinfo=UTC), tick=False):
        answer = engineer_client.get(f"{INDICATORS}{indicator.pk}/days/?period=2026-11")
    assert answer.status_code == 200
    # Nov 3 10:00 local: Nov 1 and 2 are over; 9,999 / 10,000 = 99.99 %
    assert [(d["day"], d["status"], d["value"]) for d in answer.data] == [
        ("2026-11-01", "ok", "99.990000"),
        ("2026-11-02", "not_pulled", None),
    ]


def test_a_bad_period_is_a_400(engineer_client, indicator):
    answer = engineer_client.get(f"{INDICATORS}{indicator.pk}/days/?period=2026-13")
    assert answer.status_code == 400 and "period" in answer.data


# --- figures ---------------------------------------------------------------------------------------


@pytest.fixture
def measured(indicator):
    for day, good in ((1, 9_990), (2, 10_000)):
        services.daily_value_store(
            indicator=indicator,
            day=date(2026, 11, day),
            measurement=Measurement("ok", good=good, total=10_000, ratio=good / 10_000),
            now=datetime(2026, 12, 1, tzinfo=UTC),
        )
    return indicator


def test_the_figures_of_a_period(manager_client, measured):
    with time_machine.travel(datetime(2026, 12, 2, 2, 0, tzinfo=UTC), tick=False):
        answer = manager_client.get(f"{FIGURES}?period=2026-11")
    assert answer.status_code == 200, answer.content
    (row,) = answer.data["indicators"]
    # (9,990 + 10,000) / 20,000 = 19,990 / 20,000 = 99.95 %; 30 days counted, 2 measured.
    assert (row["name"], row["value"], row["objective"]) == ("入金有效成功率", "99.950000", "99.99")
    assert (row["days"], row["days_measured"], row["days_missing"]) == (30, 2, 28)
    # 1 - 0.0005 / 0.0001 = -4: the budget four times overspent
    assert row["error_budget_left"] == "-4.000000"
    # Nov 1 is 99.9 % < 99.99 % with no incident: flagged
    assert [(f["day"], f["value"]) for f in answer.data["possible_unlogged"]] == [("2026-11-01", "99.900000")]


def test_an_engineer_reads_the_figures_of_their_team_only(engineer_client, measured, payments):
    other = TeamFactory(slug="settlement")
    assert engineer_client.get(f"{FIGURES}?period=2026-11&team=payments").status_code == 403
    payments.members.add(engineer_client.user)
    assert engineer_client.get(f"{FIGURES}?period=2026-11&team=payments").status_code == 200
    assert engineer_client.get(f"{FIGURES}?period=2026-11&system=collection").status_code == 200
    assert engineer_client.get(f"{FIGURES}?period=2026-11&team={other.slug}").status_code == 403
    refused = engineer_client.get(f"{FIGURES}?period=2026-11")
    assert refused.status_code == 403 and "payments" in refused.data["detail"]


@pytest.mark.parametrize(
    ("query", "field"), [("period=2026-13", "period"), ("team=nope", "team"), ("system=nope", "system")]
)
def test_a_bad_parameter_is_a_400_naming_it(manager_client, query, field):
    answer = manager_client.get(f"{FIGURES}?{query}")
    assert answer.status_code == 400 and field in answer.data


def test_anonymous_gets_401(anonymous_client):
    assert anonymous_client.get(FIGURES).status_code == 401
