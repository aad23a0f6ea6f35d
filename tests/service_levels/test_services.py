"""Sources, indicators and pulls (service_levels.services) against a fake Prometheus on a real socket."""

import threading
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.db import connection

from service_levels import services
from service_levels.models import DailyValue, Indicator, PrometheusSource
from service_levels.prometheus import Problem
from tests.conftest import needs_postgres
from tests.factories import SystemFactory, TeamFactory
from tests.service_levels.fake_prometheus import error, vector

GOOD = 'sum(increase(payments_total{outcome="success"}[$window]))'
TOTAL = "sum(increase(payments_total[$window]))"
# Day 2026-11-03 in Asia/Shanghai (UTC+8) is [2026-11-02T16:00Z, 2026-11-03T16:00Z).
NOV_3_END = datetime(2026, 11, 3, 16, 0, tzinfo=UTC)
AFTER_NOV_3 = datetime(2026, 11, 4, 2, 0, tzinfo=UTC)


def counts(good, total):
    """A fake answer giving `good` to the good events' expression and `total` to the total's."""

    def answer(query, at):
        value = good if "success" in query else total
        return vector() if value is None else vector(value)

    return answer


@pytest.fixture
def indicator(source, p0_system) -> Indicator:
    return services.indicator_create(
        system=p0_system,
        source=source,
        name="入金有效成功率",
        objective=Decimal("99.99"),
        good_query=GOOD,
        total_query=TOTAL,
    )


# --- sources ---------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url", ["ftp://prometheus:21", "prometheus:9090", "http://", "http://host/ path", "http://h:99999"]
)
def test_a_source_url_must_be_http_or_https_with_a_host(url):
    with pytest.raises(ValidationError) as refused:
        services.source_create(name="p", url=url)
    assert "url" in refused.value.message_dict
    assert not PrometheusSource.objects.exists()


@pytest.mark.django_db
def test_an_in_cluster_name_without_a_dot_is_a_url():
    assert services.source_create(name="p", url="http://prometheus:9090").url == "http://prometheus:9090"


@pytest.mark.django_db
def test_bearer_authentication_needs_its_token_and_other_credentials_are_dropped():
    with pytest.raises(ValidationError) as refused:
        services.source_create(name="p", url="http://prom:9090", auth="bearer")
    assert "bearer_token" in refused.value.message_dict
    source = services.source_create(name="p", url="http://prom:9090", auth="bearer", bearer_token="t", password="x")
    assert (source.bearer_token, source.password) == ("t", "")


@pytest.mark.django_db
def test_an_empty_secret_on_a_change_keeps_the_stored_one_and_another_auth_drops_it():
    source = services.source_create(name="p", url="http://prom:9090", auth="bearer", bearer_token="first")
    kept = services.source_update(source_id=source.pk, changes={"bearer_token": "", "timeout_seconds": 5})
    assert (kept.bearer_token, kept.timeout_seconds) == ("first", 5)
    changed = services.source_update(source_id=source.pk, changes={"bearer_token": "second"})
    assert changed.bearer_token == "second"
    basic = services.source_update(source_id=source.pk, changes={"auth": "basic", "username": "u", "password": "pw"})
    assert (basic.bearer_token, basic.username, basic.password) == ("", "u", "pw")


@pytest.mark.django_db
@pytest.mark.parametrize("seconds", [0, 301])
def test_the_timeout_is_1_to_300_seconds(seconds):
    with pytest.raises(ValidationError) as refused:
        services.source_create(name="p", url="http://prom:9090", timeout_seconds=seconds)
    assert "timeout_seconds" in refused.value.message_dict


def test_a_source_used_by_an_indicator_cannot_be_deleted(indicator, source):
    with pytest.raises(ValidationError):
        services.source_delete(source_id=source.pk)
    assert PrometheusSource.objects.filter(pk=source.pk).exists()


# --- indicators ------------------------------------------------------------------------------------


@pytest.mark.parametrize("objective", ["0", "-1", "100.0001"])
def test_an_objective_is_above_0_and_at_most_100(source, p0_system, objective):
    with pytest.raises(ValidationError) as refused:
        services.indicator_create(
            system=p0_system, source=source, name="x", objective=Decimal(objective), ratio_query="avg(up[$window])"
        )
    assert "objective" in refused.value.message_dict
    assert not Indicator.objects.exists()


def test_an_objective_of_100_is_allowed(source, p0_system):
    created = services.indicator_create(
        system=p0_system, source=source, name="x", objective=Decimal(100), ratio_query="avg(up[$window])"
    )
    assert created.objective == 100


@pytest.mark.parametrize(
    ("queries", "field"),
    [
        ({"good_query": GOOD}, "total_query"),
        ({"total_query": TOTAL}, "good_query"),
        ({}, "good_query"),
        ({"good_query": GOOD, "total_query": TOTAL, "ratio_query": "avg(up[$window])"}, "ratio_query"),
    ],
)
def test_good_and_total_or_a_ratio(source, p0_system, queries, field):
    with pytest.raises(ValidationError) as refused:
        services.indicator_create(system=p0_system, source=source, name="x", objective=Decimal("99.9"), **queries)
    assert field in refused.value.message_dict


def test_promql_prometheus_refuses_is_refused_with_its_words(source, p0_system, fake_prometheus):
    words = "1:14: parse error: unclosed left parenthesis"
    fake_prometheus.answer = lambda query, at: error(400, "bad_data", words) if "((" in query else vector("1")
    with pytest.raises(ValidationError) as refused:
        services.indicator_create(
            system=p0_system, source=source, name="x", objective=Decimal("99.9"), good_query="sum((x", total_query=TOTAL
        )
    assert list(refused.value.message_dict) == ["good_query"]
    assert words in refused.value.message_dict["good_query"][0]
    assert not Indicator.objects.exists()


def test_the_check_asks_over_the_last_24_hours(source, p0_system, fake_prometheus):
    fake_prometheus.answer = lambda query, at: vector("1")
    services.indicator_create(
        system=p0_system, source=source, name="x", objective=Decimal("99.9"), ratio_query="avg(up[$window])"
    )
    assert [asked.query for asked in fake_prometheus.asked] == ["avg(up[86400s])"]


def test_a_prometheus_that_is_down_does_not_stop_the_indicator_being_saved(p0_system):
    source = services.source_create(name="down", url="http://127.0.0.1:9", timeout_seconds=1)
    created = services.indicator_create(
        system=p0_system, source=source, name="x", objective=Decimal("99.9"), good_query=GOOD, total_query=TOTAL
    )
    assert created.pk


def test_a_teams_source_serves_only_that_teams_systems(fake_prometheus, p0_system):
    other = services.source_create(name="other", url=fake_prometheus.url, team=TeamFactory(slug="other"))
    with pytest.raises(ValidationError) as refused:
        services.indicator_create(
            system=p0_system, source=other, name="x", objective=Decimal("99.9"), ratio_query="avg(up[$window])"
        )
    assert "source" in refused.value.message_dict


def test_two_indicators_of_a_system_have_different_names(indicator, source, p0_system):
    with pytest.raises(ValidationError):
        services.indicator_create(
            system=p0_system,
            source=source,
            name=indicator.name,
            objective=Decimal("99"),
            ratio_query="avg(up[$window])",
        )


# --- pulls -----------------------------------------------------------------------------------------


def test_a_day_is_asked_at_its_local_end_over_86400s(indicator, fake_prometheus):
    fake_prometheus.answer = counts(9990, 10000)
    fake_prometheus.asked.clear()
    value, _measurement = services.pull_day(indicator=indicator, day=date(2026, 11, 3), now=AFTER_NOV_3)
    assert {asked.time for asked in fake_prometheus.asked} == {NOV_3_END.timestamp()}
    assert sorted(asked.query for asked in fake_prometheus.asked) == sorted(
        [GOOD.replace("$window", "86400s"), TOTAL.replace("$window", "86400s")]
    )
    # 9,990 good of 10,000: 0.999
    assert (value.status, value.good, value.total, value.ratio) == ("ok", 9990, 10000, 0.999)


def test_a_day_not_over_is_not_pulled(indicator):
    with pytest.raises(ValueError):
        services.pull_day(indicator=indicator, day=date(2026, 11, 3), now=datetime(2026, 11, 3, 15, 59, tzinfo=UTC))


@pytest.mark.parametrize(
    ("good", "total", "status", "problem"),
    [
        (None, None, "missing", Problem.NO_DATA),  # nothing at all that day
        (0, 0, "missing", Problem.NO_EVENTS),  # no requests: no ratio, never 100 %
        ("NaN", "NaN", "missing", Problem.NAN),
        (None, 500, "failed", Problem.GOOD_MISSING),  # a good-events expression that gives nothing instead of 0
        (600, 500, "failed", Problem.GOOD_ABOVE_TOTAL),  # swapped expressions
        (-1, 500, "failed", Problem.NEGATIVE),  # a gauge's difference, not a counter's increase
        (0, 500, "ok", ""),  # a full outage: 0 %
    ],
)
def test_a_day_without_a_value_says_why(indicator, fake_prometheus, good, total, status, problem):
    fake_prometheus.answer = counts(good, total)
    value, _m = services.pull_day(indicator=indicator, day=date(2026, 11, 3), now=AFTER_NOV_3)
    assert (value.status, value.problem) == (status, problem)
    assert (value.ratio is None) == (status != "ok")


def test_a_ratio_indicator_stores_its_ratio_and_refuses_a_percentage(source, p0_system, fake_prometheus):
    fake_prometheus.answer = lambda query, at: vector("0.9995")
    ratio = services.indicator_create(
        system=p0_system, source=source, name="up", objective=Decimal("99.9"), ratio_query="avg_over_time(up[$window])"
    )
    value, _m = services.pull_day(indicator=ratio, day=date(2026, 11, 3), now=AFTER_NOV_3)
    assert (value.status, value.ratio, value.good, value.total) == ("ok", 0.9995, None, None)
    fake_prometheus.answer = lambda query, at: vector("99.95")
    value, _m = services.pull_day(indicator=ratio, day=date(2026, 11, 4), now=datetime(2026, 11, 5, tzinfo=UTC))
    assert (value.status, value.problem, value.detail) == ("failed", Problem.RATIO_RANGE, "99.95")


def test_a_re_pull_updates_the_day_and_a_failure_keeps_a_measured_value(indicator, fake_prometheus):
    day = date(2026, 11, 3)
    fake_prometheus.answer = counts(9990, 10000)
    services.pull_day(indicator=indicator, day=day, now=AFTER_NOV_3)
    fake_prometheus.answer = counts(9995, 10000)
    services.pull_day(indicator=indicator, day=day, now=AFTER_NOV_3)
    fake_prometheus.answer = lambda query, at: error(503, "unavailable", "overloaded")
    value, measurement = services.pull_day(indicator=indicator, day=day, now=AFTER_NOV_3)
    assert measurement.status == "failed"
    assert DailyValue.objects.filter(indicator=indicator).count() == 1
    assert (value.status, value.good, value.attempts) == ("ok", 9995, 3)


def test_no_data_replaces_a_measured_value_on_a_re_pull(indicator, fake_prometheus):
    # What Prometheus says now is the truth (e.g. its data was deleted): the day becomes missing, not kept.
    fake_prometheus.answer = counts(9990, 10000)
    services.pull_day(indicator=indicator, day=date(2026, 11, 3), now=AFTER_NOV_3)
    fake_prometheus.answer = counts(None, None)
    value, _m = services.pull_day(indicator=indicator, day=date(2026, 11, 3), now=AFTER_NOV_3)
    assert (value.status, value.ratio) == ("missing", None)


def test_the_beat_run_retries_what_is_not_measured_and_leaves_measured_days(indicator, fake_prometheus):
    now = datetime(2026, 11, 6, 2, 0, tzinfo=UTC)  # Nov 6 10:00 local: Nov 3, 4 and 5 are over
    fake_prometheus.answer = lambda query, at: (
        error(503, "unavailable", "down") if at == NOV_3_END.timestamp() else counts(99, 100)(query, at)
    )
    first = services.pull_due(days=3, now=now)
    assert sorted((p.day.day, p.value.status) for p in first) == [(3, "failed"), (4, "ok"), (5, "ok")]
    assert "down" in DailyValue.objects.get(day=date(2026, 11, 3)).detail
    fake_prometheus.answer = counts(99, 100)
    fake_prometheus.asked.clear()
    second = services.pull_due(days=3, now=now)
    assert [(p.day.day, p.value.status) for p in second] == [(3, "ok")]
    assert {asked.time for asked in fake_prometheus.asked} == {NOV_3_END.timestamp()}
    assert services.pull_due(days=3, now=now) == []


def test_a_disabled_indicator_or_source_is_not_pulled(indicator, source, fake_prometheus):
    now = datetime(2026, 11, 6, 2, 0, tzinfo=UTC)
    fake_prometheus.answer = counts(99, 100)
    services.indicator_update(indicator_id=indicator.pk, changes={"enabled": False}, check=False)
    assert services.pull_due(days=3, now=now) == []
    services.indicator_update(indicator_id=indicator.pk, changes={"enabled": True}, check=False)
    services.source_update(source_id=source.pk, changes={"enabled": False})
    assert services.pull_due(days=3, now=now) == []


def test_a_source_that_is_down_is_asked_once_per_run(indicator, source, fake_prometheus):
    fake_prometheus.answer = lambda query, at: (401, b"no")
    fake_prometheus.asked.clear()
    pulls = services.pull_due(days=3, now=datetime(2026, 11, 6, 2, 0, tzinfo=UTC))
    assert len(fake_prometheus.asked) == 1
    assert [(p.value.status, p.value.problem) for p in pulls] == [("failed", Problem.AUTH)] * 3


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_first_pulls_of_a_day_store_one_row(fake_prometheus):
    source = services.source_create(name="p", url=fake_prometheus.url)
    system = SystemFactory(code="race")
    race = services.indicator_create(
        system=system, source=source, name="x", objective=Decimal("99"), good_query=GOOD, total_query=TOTAL, check=False
    )
    fake_prometheus.answer = counts(99, 100)
    fake_prometheus.delay = 0.2  # both measure first, then both store
    errors = []

    def pull():
        try:
            services.pull_day(indicator=race, day=date(2026, 11, 3), now=AFTER_NOV_3)
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=pull) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    stored = DailyValue.objects.get(indicator=race)
    assert (stored.status, stored.attempts) == ("ok", 4)


def test_the_test_query_covers_the_last_24_hours_and_stores_nothing(indicator, fake_prometheus):
    fake_prometheus.answer = counts(990, 1000)
    fake_prometheus.asked.clear()
    with time_machine.travel(datetime(2026, 11, 20, 8, 30, 15, tzinfo=UTC), tick=False):
        trial = services.measure_last_24_hours(indicator)
    assert trial.end == datetime(2026, 11, 20, 8, 30, 15, tzinfo=UTC)
    assert (trial.end - trial.start).total_seconds() == 86400
    assert {asked.time for asked in fake_prometheus.asked} == {trial.end.timestamp()}
    assert trial.measurement.ratio == 0.99
    assert not DailyValue.objects.exists()


def test_the_beat_task_pulls_the_days_due(indicator, fake_prometheus, settings):
    from service_levels.tasks import pull_service_levels

    settings.SERVICE_LEVELS_RETRY_DAYS = 2
    fake_prometheus.answer = counts(99, 100)
    with time_machine.travel(datetime(2026, 11, 6, 2, 0, tzinfo=UTC), tick=False):
        assert pull_service_levels() == {"ok": 2}
        assert pull_service_levels() == {}
    assert sorted(DailyValue.objects.values_list("day", flat=True)) == [date(2026, 11, 4), date(2026, 11, 5)]
