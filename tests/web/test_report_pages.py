"""The report page (/reports/) and its PDF (/reports/pdf/): who may see them, what they show (the narrative
first, in human units, the appendix's long tables cut to their first rows), its weight on a busy month, and
that every download link answers with its file."""

import re
import shutil
import subprocess
import zlib
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from incidents import periods
from incidents.models import Incident, System, Tier
from incidents.selectors import current_severity_policy
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


def test_managers_read_every_report_engineers_their_teams(engineer, manager, administrator, client, world):
    assert get(client, "/reports/").status_code == 302  # anonymous: sign in first
    assert get(manager, "/reports/").status_code == 200
    assert get(administrator, "/reports/", team="accounts").status_code == 200
    # An engineer in no team has no report to read.
    assert get(engineer, "/reports/").status_code == 403
    assert get(engineer, "/reports/pdf/").status_code == 403
    world["payments"].members.add(engineer.user)
    # Without a team: their team's report; their team's and its systems' reports; no other team's, nor all teams'.
    own = get(engineer, "/reports/")
    assert own.status_code == 200 and "Scope: Payments" in text_of(own.content.decode())
    assert get(engineer, "/reports/", team="payments", period="2026-W48").status_code == 200
    assert get(engineer, "/reports/", system="cashier").status_code == 200
    assert get(engineer, "/reports/", team="accounts").status_code == 403
    assert get(engineer, "/reports/", system="portal").status_code == 403
    assert get(engineer, "/reports/pdf/", team="accounts").status_code == 403
    assert get(engineer, "/reports/pdf/", team="payments").status_code == 200
    # The team picker offers their teams only, and no "all teams".
    picker = re.search(r'<select name="team".*?</select>', own.content.decode(), re.S).group(0)
    assert re.findall(r'<option value="([^"]*)"', picker) == ["payments"]


def test_last_month_by_default_and_a_bad_period_is_refused(manager, world):
    page = get(manager, "/reports/")
    # 2026-12-05 in Shanghai: last month is November
    text = text_of(page.content.decode())
    assert "Monthly report 2026-11" in text
    # Quick links: last week (2026-12-05 is in W49: W48, Nov 23-29) and last month.
    html = page.content.decode()
    assert 'href="/reports/?period=2026-W48">Last week</a>' in html
    assert 'href="/reports/?period=2026-11">Last month</a>' in html
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
    # The narrative first, before any table; then the key figures, the charts, the appendix.
    order = [
        html.index(marker)
        for marker in (
            'id="narrative-operation"',
            'id="narrative-events"',
            'id="narrative-health"',
            'id="narrative-focus"',
            'id="narrative-closed_loop"',
            'id="report-headline"',
            'id="report-charts"',
            'id="report-appendix"',
        )
    ]
    assert order == sorted(order) and order[-1] < html.index("<table")
    # the key figures of the report, as the page formats them
    for item in report_pdf.headline(report):
        assert item["label"] in text and item["value"] in text
    # every section of the report has its heading
    for section in report_pdf.context(report)["sections"]:
        assert f'id="section-{section["key"]}"' in html
    # server-drawn SVG, no script from anywhere
    assert html.count("<svg") >= 2
    assert "kozea.github.io" not in html and '<script type="text/javascript">window.pygal' not in html


def test_human_units_names_before_codes_no_internal_names(manager, november):
    """Three incidents on the P0 cashier, unrecovered since Nov 3, 12 and 30 09:00 local (level A), as of
    Dec 5 10:00: each counted to the end of November (Dec 1 00:00 local). Downtime is their union: from
    Nov 3 09:00 to Dec 1 00:00 = 27 d 15 h = 2,386,800 s of November's 2,592,000 s:
    100 - 100 x 2,386,800 / 2,592,000 = 7.916666.. -> 7.916 %."""
    html = get(manager, "/reports/", period="2026-11", team="payments").content.decode()
    text = text_of(html)
    assert "Cashier cashier : availability 7.916 %, below its target of 99.99 %" in text
    assert '<strong>Cashier</strong> <small class="code">cashier</small>' in html
    # Durations in words, never seconds: the period (30 d), the downtime (27 d 15 h).
    assert "2592000" not in html and "2386800" not in html
    assert "30 d" in text and "27 d 15 h" in text
    assert "Numerator" not in text and "denominator" not in text.lower()
    # The health score's weights and penalties only in the appendix.
    appendix = html.index('id="report-appendix"')
    assert html.index("Weights") > appendix and html.index("Penalties") > appendix
    # Wide tables (more than six columns) are marked for the PDF's landscape pages; narrow ones are not.
    assert '<div class="table-scroll wide">' in html
    assert re.search(r'id="section-availability".*?<div class="table-scroll wide">', html, re.S)


def test_a_weekly_report(manager, november):
    page = get(manager, "/reports/", period="2026-W48", team="payments")
    assert page.status_code == 200
    text = text_of(page.content.decode())
    # Week 48 is Nov 23-29: of the payments team's incidents, the one on Nov 12 and Nov 30 are outside.
    assert "Weekly report 2026-W48 (Nov 23 – Nov 29)" in text
    assert "Incidents: A/B-level 0, C/D-level 0." in text
    manager.cookies["django_language"] = "zh-hans"
    text = text_of(get(manager, "/reports/", period="2026-W48", team="payments").content.decode())
    assert "周报 2026-W48（11-23 – 11-29）" in text
    assert "事故数：AB级 0 次，CD级 0 次。" in text


def test_incidents_read_as_the_weekly_report_writes_them_in_the_readers_language(manager, november):
    manager.cookies["django_language"] = "zh-hans"
    html = get(manager, "/reports/", period="2026-11", team="payments").content.decode()
    text = text_of(html)
    # One entry per incident, in the Markdown's words, linked to the incident; no 17-column table.
    first = november["payments"].incidents.get(title="收银台支付超时")
    assert f'href="/incidents/{first.pk}/">#{first.pk}</a>' in html
    assert "生产稳定性事件" in text and "系统运行数据" in text and "重点跟进" in text
    # (an unrecovered P0 incident that has run for a month: level A)
    assert "11-03 09:00 收银台支付超时【A级，发现来源：监控报警】。尚未恢复。闭环：0 项中已完成 0 项。" in text
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


def test_the_busiest_month_stays_light_and_takes_the_queries_of_an_empty_one(manager, world):
    """2,000 incidents in November (bulk_create) on 60 systems: the page shows the first 25 of each list and
    links the rest, so it stays under 300 KB; the same queries as an empty month."""
    systems = System.objects.bulk_create(
        System(code=f"sys-{n:03d}", name=f"系统 {n:03d}", tier=Tier.P1, team=world["payments"]) for n in range(60)
    )
    policy = current_severity_policy()
    # Every 20 minutes from Nov 1 00:00 local (2,000 x 20 min = 27.8 days), each recovered after 10 min.
    incidents = Incident.objects.bulk_create(
        Incident(
            title=f"支付通道抖动 {n}",
            team=world["payments"],
            level="C",
            classified_level="C",
            severity_policy=policy,
            recovery_target=timedelta(hours=4),
            status="recovered",
            occurred_at=local("2026-11-01 00:00") + timedelta(minutes=20 * n),
            detected_at=local("2026-11-01 00:00") + timedelta(minutes=20 * n),
            recovered_at=local("2026-11-01 00:10") + timedelta(minutes=20 * n),
            detection_source="monitoring",
            cause="证书过期导致握手失败" * 3,
            handling="切换备用通道并重新签发证书" * 3,
        )
        for n in range(2000)
    )
    Incident.systems.through.objects.bulk_create(
        Incident.systems.through(incident_id=incident.pk, system_id=systems[n % 60].pk)
        for n, incident in enumerate(incidents)
    )

    def page(period):
        with CaptureQueriesContext(connection) as captured:
            answer = get(manager, "/reports/", period=period)
        assert answer.status_code == 200
        return answer.content.decode(), len(captured)

    busy, busy_queries = page("2026-11")
    empty, empty_queries = page("2000-01")
    assert busy_queries == empty_queries
    assert len(busy.encode()) < 300_000, len(busy.encode())
    text = text_of(busy)
    assert "The first 25 of 2,000." in text
    assert 'href="/incidents/?period=2026-11&amp;ordering=occurred_at">All of them</a>' in busy
    # 63 systems: the first 25 rows of the availability table, and every row a link away.
    assert "The first 25 of 63 rows." in text
    every = get(manager, "/reports/", period="2026-11", appendix="availability")
    assert every.status_code == 200
    table = re.search(r'<section class="report-section" id="appendix-table".*?</section>', every.content.decode(), re.S)
    assert text_of(table.group(0)).count("系统 0") == 60
    assert get(manager, "/reports/", period="2026-11", appendix="nonsense").status_code == 400


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
    assert {link.split("?")[0] for link in links} - {"/alerts/missed/"} == set(expected_types)
    links = [link for link in links if not link.startswith("/alerts/missed/")]
    markdown = [link for link in links if "/markdown/" in link]
    assert len(markdown) == 2
    with time_machine.travel(NOW, tick=False):
        # One link per language: the titles say so.
        titles = sorted(manager.get(link).content.decode().splitlines()[0] for link in markdown)
    assert titles[0].startswith("# Monthly report 2026-11")
    assert titles[1].startswith("# 月报 2026-11")
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
    assert b"(Monthly report 2026-11)" in objects  # the document's title (and its first bookmark)
    # A4 is 595.28 x 841.89 points
    assert re.search(rb"/MediaBox \[0 0 595\.\d+ 841\.\d+\]", objects)


def test_the_pdf_prints_links_to_records_not_to_pages(manager, november):
    """The narrative links the missed alerts or a table on the page; the PDF, forwarded, prints the links
    to incidents only."""
    html = get(manager, "/reports/", period="2026-11", team="payments").content.decode()
    # Cashier missed its target: a focus line linking the availability table.
    assert 'class="aside-link">the table</a>' in html
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed")
    content = get(manager, "/reports/pdf/", period="2026-11", team="payments").content
    text = subprocess.run(["pdftotext", "-", "-"], input=content, capture_output=True, check=True).stdout.decode()
    first = november["payments"].incidents.get(title="收银台支付超时")
    assert f"#{first.pk}" in text and "the table" not in text


def test_the_pdf_follows_the_language(manager, november):
    answer = manager.get("/reports/pdf/?period=2026-11", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert answer.status_code == 200
    assert answer.content.startswith(b"%PDF")
