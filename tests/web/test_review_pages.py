"""The review (复盘) through the pages (web/views/reviews.py): the edit page started from the record, a save
and a stale save (refused, the typed text kept), the incident page's review, the exports (Markdown, PDF),
the list of incidents awaiting their review, and the team's required sections on the settings page."""

import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from incidents import selectors
from incidents.models import Team
from tests.factories import IncidentFactory, write_review
from tests.web.conftest import text_of

T0 = datetime(2026, 11, 22, 8, 30, tzinfo=UTC)  # 16:30 in Asia/Shanghai
SECTIONS = [
    "summary",
    "impact",
    "timeline",
    "detection",
    "response",
    "root_cause",
    "went_well",
    "went_badly",
    "lessons",
    "items",
]


@pytest.fixture(autouse=True)
def _at_t0():
    with time_machine.travel(T0, tick=False):
        yield


@pytest.fixture
def incident(engineer, world):
    return IncidentFactory(
        by=engineer.user,
        title="Cashier timeouts",
        systems=[world["cashier"]],
        occurred_at=T0 - timedelta(hours=3),
        detected_at=T0 - timedelta(hours=3) + timedelta(minutes=5),
        recovered_at=T0 - timedelta(hours=1, minutes=30),
        affected_users=2500,
        cause="Pool leak.",
    )


def post_review(client, incident, version, **texts):
    return client.post(
        f"/incidents/{incident.pk}/review/", {"expected_version": version, **dict.fromkeys(SECTIONS, ""), **texts}
    )


def test_the_edit_page_starts_the_empty_sections_from_the_record(engineer, incident):
    page = engineer.get(f"/incidents/{incident.pk}/review/")
    assert page.status_code == 200
    form = page.context["form"]
    assert form["impact"].value().splitlines()[:1] == ["- Affected users: 2,500"]
    assert "- Duration (occurred to recovered): 1 h 30 min" in form["impact"].value()
    assert form["detection"].value() == "Detected by Monitoring alert, 5 min after it started."
    assert form["root_cause"].value() == "Pool leak."
    assert form["summary"].value() == ""
    # The team's required sections are marked.
    assert [f.name for f in form.section_fields() if f.field.review_required] == [
        "summary",
        "impact",
        "root_cause",
        "lessons",
    ]
    zh = engineer.get(f"/incidents/{incident.pk}/review/", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert "根因（5 个为什么）" in text_of(zh.content.decode())
    assert zh.context["form"]["impact"].value().startswith("- 影响用户：2,500")


def test_saving_shows_the_review_on_the_incident_page(engineer, incident):
    saved = post_review(engineer, incident, 0, summary="Pool ran dry.", lessons="Alert on pool usage.")
    assert saved.status_code == 302
    assert saved["Location"] == f"/incidents/{incident.pk}/#review"
    page = text_of(engineer.get(f"/incidents/{incident.pk}/").content.decode())
    assert "Summary Pool ran dry." in page
    assert "Required to close, not written yet: Impact, Root cause (5 whys)" in page
    assert "Review (version 1) written: Summary, Lessons" in page
    zh = text_of(engineer.get(f"/incidents/{incident.pk}/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode())
    assert "闭环必填、尚未填写： 影响，根因（5 个为什么）" in zh


def test_a_stale_save_is_refused_and_the_typed_text_kept(engineer, administrator, incident):
    assert post_review(administrator, incident, 0, summary="The other summary.").status_code == 302
    stale = post_review(engineer, incident, 0, summary="My long summary, typed for an hour.")
    assert stale.status_code == 409
    html = stale.content.decode()
    assert "My long summary, typed for an hour." in html
    assert "Someone else changed this review while you were writing (now version 1)." in text_of(html)
    assert selectors.review_texts(incident=incident)["summary"] == "The other summary."
    zh = engineer.post(
        f"/incidents/{incident.pk}/review/",
        {"expected_version": 0, "summary": "我的摘要"},
        HTTP_ACCEPT_LANGUAGE="zh-hans",
    )
    assert zh.status_code == 409
    assert "你编写期间别人修改了这份复盘（现在是第 1 版）" in text_of(zh.content.decode())


def test_the_versions_page_shows_every_text_newest_first(engineer, incident):
    post_review(engineer, incident, 0, summary="First text.")
    post_review(engineer, incident, 1, summary="Second text.")
    page = text_of(engineer.get(f"/incidents/{incident.pk}/review/versions/").content.decode())
    assert "Summary Version 2 · Engineer Person · 2026-11-22 16:30:00 (Asia/Shanghai) Second text. Version 1" in page
    assert page.index("Second text.") < page.index("First text.")
    zh = text_of(
        engineer.get(f"/incidents/{incident.pk}/review/versions/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    )
    assert "摘要 第 2 版" in zh


def test_the_markdown_export(engineer, incident):
    write_review(incident, summary="复盘：连接池耗尽")
    response = engineer.get(f"/incidents/{incident.pk}/review.md")
    assert response["Content-Type"] == "text/markdown; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="review-{incident.pk}.md"'
    text = response.content.decode()
    assert text.startswith(f"# Review: #{incident.pk} Cashier timeouts")
    assert "## Summary\n\n复盘：连接池耗尽\n\n## Impact\n\nImpact." in text


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="pdftotext (poppler-utils) is not installed")
def test_the_pdf_has_every_section_heading(engineer, incident, tmp_path):
    write_review(incident, summary="复盘：连接池耗尽")
    response = engineer.get(f"/incidents/{incident.pk}/review.pdf", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert response["Content-Type"] == "application/pdf"
    pdf = tmp_path / "review.pdf"
    pdf.write_bytes(response.content)
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    for heading in [
        "摘要",
        "影响",
        "时间线",
        "发现",
        "响应",
        "根因（5 个为什么）",
        "做得好的",
        "做得不好的",
        "经验教训",
        "闭环项",
    ]:
        assert heading in text
    assert "复盘：连接池耗尽" in text


def test_the_awaiting_review_list(engineer, world, incident):
    older = IncidentFactory(
        title="Portal down",
        systems=[world["portal"]],
        occurred_at=T0 - timedelta(days=2, hours=1),
        recovered_at=T0 - timedelta(days=2),
    )
    write_review(older, summary="", impact="")
    with CaptureQueriesContext(connection) as few:
        engineer.get("/reviews/")
    for n in range(3):  # recovered after the others: listed last
        IncidentFactory(
            systems=[world["payout"]], occurred_at=T0 - timedelta(hours=2 + n), recovered_at=T0 - timedelta(hours=1)
        )
    with CaptureQueriesContext(connection) as many:
        response = engineer.get("/reviews/")
    assert len(many) == len(few)  # the same queries for 2 incidents or 5
    listed = response.context["incidents"]
    assert len(listed) == 5
    assert [(i.title, i.missing_sections) for i in listed[:2]] == [
        ("Portal down", ["summary", "impact"]),
        ("Cashier timeouts", ["summary", "impact", "root_cause", "lessons"]),
    ]
    page = text_of(response.content.decode())
    assert f"#{older.pk} Portal down" in page and "2 d" in page and "Summary, Impact" in page
    only_accounts = engineer.get("/reviews/?team=accounts")
    assert [i.title for i in only_accounts.context["incidents"]] == ["Portal down"]
    zh = text_of(engineer.get("/reviews/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode())
    assert "待复盘的事故" in zh and "摘要，影响" in zh


def test_a_team_names_its_required_sections_on_the_settings_page(administrator, world):
    page = administrator.get("/settings/teams/payments/").content.decode()
    ticked = re.findall(r'<input type="checkbox" name="review_required_sections" value="(\w+)"[^>]*checked', page)
    assert ticked == ["summary", "impact", "root_cause", "lessons"]
    saved = administrator.post(
        "/settings/teams/payments/",
        {"name": "Payments", "slug": "payments", "review_required_sections": ["summary", "went_well"]},
    )
    assert saved.status_code == 302
    assert Team.objects.get(slug="payments").review_required_sections == ["summary", "went_well"]


def test_no_posted_or_query_value_makes_a_review_page_fail(administrator, world, incident):
    from tests.faults.test_page_poison import POISON

    for value in POISON:
        body = "&".join(f"{field}={value}" for field in ["expected_version", "summary", "root_cause"])
        posted = administrator.post(
            f"/incidents/{incident.pk}/review/", body, content_type="application/x-www-form-urlencoded"
        )
        assert posted.status_code in (400, 409), (repr(value), posted.status_code)
        listed = administrator.get(f"/reviews/?team={value}")
        assert listed.status_code < 500, (repr(value), listed.status_code)
    assert selectors.review_texts(incident=incident)["summary"] == ""
