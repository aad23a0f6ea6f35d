"""Service level pages (web/views/service_levels.py): the figures, a system's and an indicator's pages with
the test query, the settings pages (credentials never shown), the "possible unlogged incident" on a team
manager's home page and the log form it opens, prefilled. In English and Chinese."""

import re
from datetime import UTC, date, datetime
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
import time_machine
from django.utils import timezone

from service_levels import services
from service_levels.models import Indicator, PrometheusSource
from service_levels.services import Measurement
from tests.factories import IncidentFactory
from tests.service_levels import fake_prometheus as fake
from tests.service_levels.fake_prometheus import error, vector
from tests.web.conftest import field_errors, text_of

GOOD = "sum(increase(ok_total[$window]))"
TOTAL = "sum(increase(all_total[$window]))"
NOW = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)  # Dec 2 10:00 local


@pytest.fixture
def fake_prometheus():
    with fake.serving() as server:
        yield server


@pytest.fixture
def source(db, fake_prometheus):
    return services.source_create(name="Prod Prometheus", url=fake_prometheus.url, timeout_seconds=2)


@pytest.fixture
def indicator(world, source, fake_prometheus):
    fake_prometheus.answer = lambda query, at: vector("1")
    return services.indicator_create(
        system=world["payout"],
        source=source,
        name="出金有效成功率",
        objective=Decimal("99.95"),
        good_query=GOOD,
        total_query=TOTAL,
    )


def store(indicator, day: date, good: int, total: int):
    services.daily_value_store(
        indicator=indicator, day=day, measurement=Measurement("ok", good=good, total=total, ratio=good / total), now=NOW
    )


@pytest.fixture
def november(indicator):
    store(indicator, date(2026, 11, 10), 99_990, 100_000)  # 99.99 %
    store(indicator, date(2026, 11, 11), 99_000, 100_000)  # 99.0 %: below 99.95 %, no incident
    return indicator


def test_a_manager_reads_the_figures_in_english_and_chinese(manager, november):
    with time_machine.travel(NOW, tick=False):
        english = text_of(manager.get("/service-levels/?period=2026-11").content.decode())
        chinese = manager.get("/service-levels/?period=2026-11", HTTP_ACCEPT_LANGUAGE="zh-hans")
    # (99,990 + 99,000) / 200,000 = 198,990 / 200,000 = 99.495 %
    assert "出金有效成功率" in english and "99.495 %" in english and "99.95 %" in english
    # 1 - 0.00505 / 0.0005 = -9.1: -910.0 % of the budget left
    assert "-910.0 %" in english
    assert "Possible unlogged incidents" in english and "2026-11-11" in english
    assert chinese.status_code == 200
    chinese_text = text_of(chinese.content.decode())
    assert "可能未登记的事件" in chinese_text and "99.495 %" in chinese_text


def test_an_engineer_reads_the_figures_of_their_team_only(engineer, november, world):
    assert engineer.get("/service-levels/?period=2026-11").status_code == 403
    assert engineer.get("/service-levels/systems/payout/").status_code == 403
    world["payments"].members.add(engineer.user)
    assert engineer.get("/service-levels/?period=2026-11").status_code == 200  # their team by default
    assert engineer.get("/service-levels/systems/payout/?period=2026-11").status_code == 200
    assert engineer.get(f"/service-levels/indicators/{november.pk}/").status_code == 200
    assert engineer.get("/service-levels/?team=accounts").status_code == 403


def test_a_bad_period_is_a_400_next_to_the_field(manager, november):
    response = manager.get("/service-levels/?period=2026-13")
    assert response.status_code == 400
    assert field_errors(response, "id_period")


def test_the_system_page_shows_its_indicators_and_each_day(manager, november):
    with time_machine.travel(NOW, tick=False):
        page = text_of(manager.get("/service-levels/systems/payout/?period=2026-11").content.decode())
    assert "出金有效成功率" in page
    assert "99.990 %" in page and "99.000 %" in page and "below objective" in page
    assert "not pulled yet" in page  # Nov 1, before any pull: shown, not 100 %


def test_the_test_query_button_shows_the_value_or_the_error_in_words(administrator, indicator, fake_prometheus):
    url = f"/service-levels/indicators/{indicator.pk}/"
    fake_prometheus.answer = lambda query, at: vector("999" if "ok_total" in query else "1000")
    shown = text_of(administrator.post(url, HTTP_HX_REQUEST="true").content.decode())
    # 999 / 1,000 = 99.9 %
    assert "99.900 %" in shown and "999 good of 1,000 events" in shown
    fake_prometheus.answer = lambda query, at: error(422, "execution", "many-to-many matching not allowed")
    shown = text_of(administrator.post(url).content.decode())
    assert "Prometheus refused the expression: many-to-many matching not allowed" in shown


def test_only_administrators_run_the_test_query(manager, indicator):
    assert manager.post(f"/service-levels/indicators/{indicator.pk}/").status_code == 403


def test_settings_add_a_source_whose_token_is_never_shown(administrator, db):
    assert administrator.get("/settings/service-levels/").status_code == 200
    response = administrator.post(
        "/settings/service-levels/sources/new/",
        {
            "name": "Prod",
            "url": "https://prom.example:9090",
            "auth": "bearer",
            "bearer_token": "tok-123",
            "timeout_seconds": 10,
            "verify_tls": "on",
            "enabled": "on",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    source = PrometheusSource.objects.get()
    assert source.bearer_token == "tok-123"
    edit = administrator.get(f"/settings/service-levels/sources/{source.pk}/").content.decode()
    assert "tok-123" not in edit and "One is set; leave this empty to keep it." in text_of(edit)
    assert "tok-123" not in administrator.get("/settings/service-levels/").content.decode()
    kept = administrator.post(
        f"/settings/service-levels/sources/{source.pk}/",
        {
            "name": "Prod",
            "url": "https://prom.example:9090",
            "auth": "bearer",
            "bearer_token": "",
            "timeout_seconds": 30,
        },
    )
    assert kept.status_code == 302
    source.refresh_from_db()
    assert (source.bearer_token, source.timeout_seconds, source.verify_tls) == ("tok-123", 30, False)


def test_settings_refuse_a_bad_url_next_to_the_field(administrator, db):
    response = administrator.post(
        "/settings/service-levels/sources/new/",
        {"name": "Prod", "url": "prom:9090", "auth": "none", "timeout_seconds": 10},
    )
    assert response.status_code == 400
    assert field_errors(response, "id_url") == [
        "An http:// or https:// URL of the server, e.g. http://prometheus:9090."
    ]
    assert not PrometheusSource.objects.exists()


def test_settings_refuse_promql_with_prometheus_words(administrator, world, source, fake_prometheus):
    fake_prometheus.answer = lambda query, at: error(400, "bad_data", '1:6: parse error: unexpected "]"')
    response = administrator.post(
        "/settings/service-levels/indicators/new/",
        {
            "system": world["payout"].pk,
            "source": source.pk,
            "name": "x",
            "kind": "success_ratio",
            "objective": "99.9",
            "good_query": "sum(x])",
            "total_query": TOTAL,
            "enabled": "on",
        },
    )
    assert response.status_code == 400
    (message,) = field_errors(response, "id_good_query")
    assert message == 'Prometheus refused the expression: 1:6: parse error: unexpected "]"'
    assert not Indicator.objects.exists()


def test_the_settings_are_for_administrators(manager, engineer, db):
    for client in (manager, engineer):
        assert client.get("/settings/service-levels/").status_code == 403
        assert client.post("/settings/service-levels/sources/new/", {"name": "x"}).status_code == 403


# --- possible unlogged incidents on the home page --------------------------------------------------------


def test_a_team_manager_sees_the_possible_unlogged_incident_with_a_prefilled_log_link(manager, indicator, world):
    world["payments"].managers.add(manager.user)
    store(indicator, date(2026, 11, 28), 99_000, 100_000)  # 99.0 % < 99.95 %
    with time_machine.travel(NOW, tick=False):
        html = manager.get("/").content.decode()
    page = text_of(html)
    assert "Possible unlogged incidents" in page and "2026-11-28" in page and "出金有效成功率" in page
    link = next(part.split('"')[0] for part in html.split('href="') if part.startswith("/incidents/new/past/"))
    query = parse_qs(urlsplit(link.replace("&amp;", "&")).query)
    assert query["systems"] == ["payout"]
    # Nov 28 00:00 in Asia/Shanghai
    assert datetime.fromisoformat(query["occurred_at"][0]) == datetime(2026, 11, 27, 16, 0, tzinfo=UTC)
    assert "出金有效成功率" in query["title"][0]


def test_a_logged_incident_of_that_day_removes_it(manager, indicator, world):
    world["payments"].managers.add(manager.user)
    store(indicator, date(2026, 11, 28), 99_000, 100_000)
    IncidentFactory(
        systems=[world["payout"]],
        occurred_at=datetime(2026, 11, 28, 3, 0, tzinfo=UTC),
        detected_at=datetime(2026, 11, 28, 3, 0, tzinfo=UTC),
        recovered_at=datetime(2026, 11, 28, 3, 30, tzinfo=UTC),
    )
    with time_machine.travel(NOW, tick=False):
        assert "Possible unlogged incidents" not in manager.get("/").content.decode()


def test_other_managers_do_not_see_it(manager, indicator, world):
    world["accounts"].managers.add(manager.user)  # not payments
    store(indicator, date(2026, 11, 28), 99_000, 100_000)
    with time_machine.travel(NOW, tick=False):
        assert "Possible unlogged incidents" not in manager.get("/").content.decode()


def test_the_log_form_opens_prefilled(engineer, world):
    occurred = datetime(2026, 11, 27, 16, 0, tzinfo=UTC)
    query = f"?systems=payout&occurred_at={occurred.isoformat().replace('+', '%2B')}&title=Payout+below+objective"
    html = engineer.get("/incidents/new/past/" + query).content.decode()
    assert 'value="Payout below objective"' in html
    assert re.search(rf'<input type="checkbox" name="systems" value="{world["payout"].pk}"[^>]*checked', html)
    local = timezone.localtime(occurred).strftime("%Y-%m-%dT%H:%M:%S")
    assert f'value="{local}"' in html


def test_a_prefill_that_reads_as_nothing_is_left_out(engineer, world):
    response = engineer.get("/incidents/new/past/?systems=nope&occurred_at=2026-13-45T99:00&title=")
    assert response.status_code == 200
