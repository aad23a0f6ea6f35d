"""service_levels.prometheus against a fake query API on a real socket: numbers, no data, and every way a
query fails, each in words."""

import base64
import socket
from datetime import UTC, datetime

import pytest

from service_levels.models import PrometheusSource
from service_levels.prometheus import Problem, QueryFailed, instant_query, problem_text
from tests.service_levels.fake_prometheus import error, vector

AT = datetime(2026, 11, 3, 16, 0, tzinfo=UTC)


def _source(fake, **options) -> PrometheusSource:
    # Not saved: the client only reads the source's fields.
    return PrometheusSource(name="p", url=fake.url, timeout_seconds=options.pop("timeout_seconds", 2), **options)


def test_one_number_is_the_answer_and_the_query_is_asked_at_the_given_time(fake_prometheus):
    fake_prometheus.answer = lambda query, at: vector("9990")
    answer = instant_query(_source(fake_prometheus), "sum(x)", at=AT)
    assert answer.value == 9990.0 and answer.problem == ""
    assert fake_prometheus.asked[0].query == "sum(x)"
    assert fake_prometheus.asked[0].time == AT.timestamp()


def test_a_scalar_is_a_number_too(fake_prometheus):
    fake_prometheus.answer = lambda query, at: (
        200,
        {"status": "success", "data": {"resultType": "scalar", "result": [1.0, "0.5"]}},
    )
    assert instant_query(_source(fake_prometheus), "0.5", at=AT).value == 0.5


def test_an_empty_answer_is_no_data_not_zero(fake_prometheus):
    answer = instant_query(_source(fake_prometheus), "sum(x)", at=AT)
    assert answer.value is None and answer.problem == Problem.NO_DATA


def test_nan_is_no_data(fake_prometheus):
    fake_prometheus.answer = lambda query, at: vector("NaN")
    answer = instant_query(_source(fake_prometheus), "x / y", at=AT)
    assert answer.value is None and answer.problem == Problem.NAN


def test_infinity_is_refused(fake_prometheus):
    fake_prometheus.answer = lambda query, at: vector("+Inf")
    with pytest.raises(QueryFailed) as failed:
        instant_query(_source(fake_prometheus), "x / 0", at=AT)
    assert failed.value.problem == Problem.INFINITE


def test_several_series_are_refused_with_how_many(fake_prometheus):
    fake_prometheus.answer = lambda query, at: vector("1", "2", "3")
    with pytest.raises(QueryFailed) as failed:
        instant_query(_source(fake_prometheus), "x", at=AT)
    assert failed.value.problem == Problem.MANY_SERIES
    assert "3 series" in str(failed.value) and "sum(" in str(failed.value)


def test_a_range_vector_is_refused(fake_prometheus):
    fake_prometheus.answer = lambda query, at: (
        200,
        {"status": "success", "data": {"resultType": "matrix", "result": []}},
    )
    with pytest.raises(QueryFailed) as failed:
        instant_query(_source(fake_prometheus), "x[5m]", at=AT)
    assert failed.value.problem == Problem.NOT_A_NUMBER and "matrix" in str(failed.value)


def test_bad_promql_carries_prometheus_own_words(fake_prometheus):
    words = '1:5: parse error: unexpected "(" in aggregation'
    fake_prometheus.answer = lambda query, at: error(400, "bad_data", words)
    with pytest.raises(QueryFailed) as failed:
        instant_query(_source(fake_prometheus), "sum((x)", at=AT)
    assert failed.value.problem == Problem.BAD_QUERY
    assert words in str(failed.value)


def test_an_expression_prometheus_cannot_evaluate_is_a_bad_query(fake_prometheus):
    fake_prometheus.answer = lambda query, at: error(422, "execution", "many-to-many matching not allowed")
    with pytest.raises(QueryFailed) as failed:
        instant_query(_source(fake_prometheus), "a / b", at=AT)
    assert failed.value.problem == Problem.BAD_QUERY and "many-to-many" in str(failed.value)


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_say_so(fake_prometheus, status):
    fake_prometheus.answer = lambda query, at: (status, b"Unauthorized")
    with pytest.raises(QueryFailed) as failed:
        instant_query(_source(fake_prometheus), "x", at=AT)
    assert failed.value.problem == Problem.AUTH and f"HTTP {status}" in str(failed.value)


def test_a_server_error_that_is_not_prometheus_json_is_quoted(fake_prometheus):
    fake_prometheus.answer = lambda query, at: (502, b"<html>Bad Gateway</html>")
    with pytest.raises(QueryFailed) as failed:
        instant_query(_source(fake_prometheus), "x", at=AT)
    assert failed.value.problem == Problem.HTTP and "502" in str(failed.value) and "Bad Gateway" in str(failed.value)


def test_a_page_that_is_not_a_query_answer_is_refused(fake_prometheus):
    fake_prometheus.answer = lambda query, at: (200, b"<html>Grafana</html>")
    with pytest.raises(QueryFailed) as failed:
        instant_query(_source(fake_prometheus), "x", at=AT)
    assert failed.value.problem == Problem.BAD_ANSWER


def test_a_slow_prometheus_is_a_timeout_after_the_sources_seconds(fake_prometheus):
    fake_prometheus.delay = 2.5
    fake_prometheus.answer = lambda query, at: vector("1")
    with pytest.raises(QueryFailed) as failed:
        instant_query(_source(fake_prometheus, timeout_seconds=1), "x", at=AT)
    assert failed.value.problem == Problem.TIMEOUT
    assert str(failed.value) == "Prometheus gave no answer within 1 s."


def test_a_server_that_is_not_there_is_unreachable():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again when the block ends: nothing listens there
    source = PrometheusSource(name="p", url=f"http://127.0.0.1:{port}", timeout_seconds=2)
    with pytest.raises(QueryFailed) as failed:
        instant_query(source, "x", at=AT)
    assert failed.value.problem == Problem.UNREACHABLE
    assert str(failed.value).startswith("Prometheus could not be reached:")


def test_bearer_and_basic_credentials_are_sent(fake_prometheus):
    fake_prometheus.answer = lambda query, at: vector("1")
    instant_query(_source(fake_prometheus, auth="bearer", bearer_token="s3cret"), "x", at=AT)
    instant_query(_source(fake_prometheus, auth="basic", username="grafana", password="pw"), "x", at=AT)
    instant_query(_source(fake_prometheus), "x", at=AT)
    bearer, basic, none = (asked.headers.get("Authorization") for asked in fake_prometheus.asked)
    assert bearer == "Bearer s3cret"
    assert basic == "Basic " + base64.b64encode(b"grafana:pw").decode()
    assert none is None


def test_a_base_url_with_a_path_keeps_it(fake_prometheus):
    fake_prometheus.answer = lambda query, at: vector("1")
    # A trailing slash is not doubled: the fake answers any path, the request line shows it.
    source = PrometheusSource(name="p", url=fake_prometheus.url + "/", timeout_seconds=2)
    assert instant_query(source, "x", at=AT).value == 1.0


def test_problem_texts_are_translated():
    from django.utils import translation

    with translation.override("zh-hans"):
        text = problem_text(Problem.TIMEOUT, "10")
    assert text == "Prometheus 在 10 秒内没有应答。"
