"""The report page (/reports/) and its PDF (/reports/pdf/): who may see them, what they show, and that
every download link answers with its file."""

import re
import zlib
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from incidents import periods
from stability import report_pdf
from stability.reports import build_report
from tests.factories import IncidentFactory
from tests.web.conftest import text_of

ZONE = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 12, 5, 10, 0, tzinfo=ZONE)


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZONE)


@pytest.fixture
def november(world):
    """Three incidents of the payments team in November (local), one in December, one of accounts."""
    with time_machine.travel(NOW, tick=False):
        for day, title in ((3, "收银台支付超时"), (12, "Payout batch stuck"), (30, "Refund errors")):
            IncidentFactory(
                title=title,
                systems=[world["cashier"]],
                occurred_at=local(f"2026-11-{day:02d} 09:00"),
                detected_at=local(f"2026-11-{day:02d} 09:05"),
            )
        IncidentFactory(
            systems=[world["cashier"]], occurred_at=local("2026-12-01 00:00"), detected_at=local("2026-12-01 00:01")
        )
        IncidentFactory(
            systems=[world["portal"]], occurred_at=local("2026-11-20 12:00"), detected_at=local("2026-11-20 12:00")
        )
    return world


def pdf_objects(content: bytes) -> bytes:
    """The PDF's objects with their compressed streams inflated, to find its title and page size."""
    inflated = [content]
    for stream in re.finditer(rb"stream\r?\n(.*?)endstream", content, re.S):
        try:
            inflated.append(zlib.decompress(stream.group(1)))
        except zlib.error:
            continue
    return b"\n".join(inflated)


def get(client, url, **params):
    with time_machine.travel(NOW, tick=False):
        return client.get(url, params)


def test_only_managers_and_administrators_see_reports(engineer, manager, administrator, client, world):
    assert get(engineer, "/reports/").status_code == 403
    assert get(engineer, "/reports/pdf/").status_code == 403
    assert get(client, "/reports/").status_code == 302  # anonymous: sign in first
    assert get(manager, "/reports/").status_code == 200
    assert get(administrator, "/reports/").status_code == 200
    # the nav shows the page to those who may open it
    assert 'href="/reports/"' in get(manager, "/").content.decode()
    assert 'href="/reports/"' not in get(engineer, "/").content.decode()


def test_last_month_by_default_and_a_bad_period_is_refused(manager, world):
    page = get(manager, "/reports/")
    # 2026-12-05 in Shanghai: last month is November
    assert "Stability report 2026-11" in text_of(page.content.decode())
    bad = get(manager, "/reports/", period="November")
    assert bad.status_code == 400
    assert "Not a period" in text_of(bad.content.decode())
    assert get(manager, "/reports/", team="nobody").status_code == 400


def test_the_page_shows_the_reports_figures_and_charts(manager, november):
    page = get(manager, "/reports/", period="2026-11", team="payments")
    html = page.content.decode()
    text = text_of(html)
    with time_machine.travel(NOW, tick=False):
        report = build_report(period=periods.parse("2026-11"), team=november["payments"], now=NOW)
    assert "Scope: Payments" in text
    # the headline figures of the report, as the page formats them
    for item in report_pdf.headline(report):
        assert item["label"] in text
    # every section of the report has its heading
    for section in report_pdf.context(report)["sections"]:
        assert f'id="section-{section["key"]}"' in html
    # server-drawn SVG, no script from anywhere
    assert html.count("<svg") >= 2
    assert "kozea.github.io" not in html and '<script type="text/javascript">window.pygal' not in html


def test_incidents_read_as_the_weekly_report_writes_them_in_the_readers_language(manager, november):
    manager.cookies["django_language"] = "zh-hans"
    html = get(manager, "/reports/", period="2026-11", team="payments").content.decode()
    text = text_of(html)
    # One entry per incident, in the Markdown's words, linked to the incident; no 17-column table.
    first = november["payments"].incidents.get(title="收银台支付超时")
    assert f'href="/incidents/{first.pk}/">#{first.pk}</a>' in html
    # (an unrecovered P0 incident that has run for a month: level A)
    assert "11-03 09:00 收银台支付超时【A级，发现来源：监控报警】。 尚未恢复。 闭环：0 项中已完成 0 项。" in text
    assert "故障开始时间" not in text  # the list's former column heading
    # Choices read as their labels (the cashier's tier), yes or no as words.
    assert "P0 – 核心资金链路" in text
    assert "True" not in text and "False" not in text
    assert "恢复时长达标率 · 按等级" in text  # a nested table's title, each part translated


def test_queries_do_not_grow_with_incidents(manager, november):
    def queries():
        with CaptureQueriesContext(connection) as captured:
            assert get(manager, "/reports/", period="2026-11").status_code == 200
        return len(captured)

    before = queries()
    with time_machine.travel(NOW, tick=False):
        for day in range(1, 6):
            IncidentFactory(
                systems=[november["payout"]],
                occurred_at=local(f"2026-11-{day:02d} 10:00"),
                detected_at=local(f"2026-11-{day:02d} 10:00"),
            )
    assert queries() == before


def test_every_download_link_answers_with_its_file(manager, november):
    html = get(manager, "/reports/", period="2026-11", team="payments").content.decode()
    exports = re.search(r'<nav class="card report-exports".*?</nav>', html, re.S).group(0)
    links = [href.replace("&amp;", "&") for href in re.findall(r'href="([^"]+)"', exports)]
    expected_types = {
        "/reports/pdf/": "application/pdf",
        "/api/v1/reports/stability/": "application/json",
        "/api/v1/reports/stability/zip/": "application/zip",
        "/api/v1/reports/stability/markdown/": "text/markdown; charset=utf-8",
    }
    assert {link.split("?")[0] for link in links} == set(expected_types)
    markdown = [link for link in links if "/markdown/" in link]
    assert len(markdown) == 2
    with time_machine.travel(NOW, tick=False):
        # One link per language: the titles say so.
        titles = sorted(manager.get(link).content.decode().splitlines()[0] for link in markdown)
    assert titles[0].startswith("# Stability report 2026-11")
    assert titles[1].startswith("# 稳定性报告 2026-11")
    for link in links:
        with time_machine.travel(NOW, tick=False):
            answer = manager.get(link)
        assert answer.status_code == 200, link
        content_type = answer["Content-Type"]
        path = link.split("?")[0]
        if path in expected_types:
            assert content_type == expected_types[path]
        assert content_type.split(";")[0] in {
            "application/pdf",
            "application/json",
            "application/zip",
            "text/csv",
            "text/markdown",
        }, (link, content_type)


def test_the_pdf_is_a4_with_the_period(manager, november):
    answer = get(manager, "/reports/pdf/", period="2026-11", team="payments")
    assert answer.status_code == 200
    assert answer["Content-Type"] == "application/pdf"
    assert answer["Content-Disposition"] == 'attachment; filename="stability-report-2026-11-payments.pdf"'
    content = answer.content
    assert content.startswith(b"%PDF")
    objects = pdf_objects(content)
    assert b"(Stability report 2026-11)" in objects  # the document's title (and its first bookmark)
    # A4 is 595.28 x 841.89 points
    assert re.search(rb"/MediaBox \[0 0 595\.\d+ 841\.\d+\]", objects)


def test_the_pdf_follows_the_language(manager, november):
    answer = manager.get("/reports/pdf/?period=2026-11", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert answer.status_code == 200
    assert answer.content.startswith(b"%PDF")
