"""Browser journey of the review (复盘), in English and Chinese, on a desktop and at phone width (390 px):
close is refused while the team's required sections are missing, the incident is on the awaiting-review
list, the review is written (its impact started from the facts), and then the incident closes.
A failed journey leaves a screenshot (tests/web/test_journeys.py's page fixture); with REVIEW_SHOTS set to a
folder, each page is also photographed there."""

import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from incidents.models import Incident, System
from tests.factories import IncidentFactory
from tests.web import test_forms_scale_journeys as screens
from tests.web import test_journeys as journeys
from tests.web.test_journeys import sign_in

page = journeys.page
people = journeys.people
screenshots_dir = journeys.screenshots_dir

WORDS = {
    "en": {
        "close": "Close",
        "refused": (
            "Write the review's required sections before closing: Summary, Impact, Root cause (5 whys), Lessons."
        ),
        "write": "Write the review",
        "summary": "Summary",
        "root_cause": "Root cause (5 whys)",
        "lessons": "Lessons",
        "save": "Save review",
    },
    "zh-hans": {
        "close": "闭环",
        "refused": "关闭前请写完复盘的必填部分：摘要，影响，根因（5 个为什么），经验教训。",
        "write": "写复盘",
        "summary": "摘要",
        "root_cause": "根因（5 个为什么）",
        "lessons": "经验教训",
        "save": "保存复盘",
    },
}


def _shot(page, name: str, language: str) -> None:
    folder = os.environ.get("REVIEW_SHOTS")
    if folder:
        width = page.viewport_size["width"]
        page.screenshot(path=str(Path(folder) / f"{name}-{language}-{width}.png"), full_page=True)


@pytest.mark.parametrize("page, language", screens.SCREENS, indirect=["page"])
def test_an_engineer_writes_the_review_and_then_closes_the_incident(page, people, language):
    words = WORDS[language]
    now = timezone.now().replace(microsecond=0)
    incident = IncidentFactory(
        by=people["engineer"],
        title="Cashier pool exhausted",
        systems=[System.objects.get(code="cashier")],
        occurred_at=now - timedelta(days=2, hours=1),
        recovered_at=now - timedelta(days=2),
        resolved_at=now - timedelta(days=1),
        affected_users=1200,
    )
    sign_in(page, "lei")
    screens._in(page, language)

    # Close is refused, naming what is missing in the reader's language.
    page.goto(f"{page.base}/incidents/{incident.pk}/")
    page.get_by_role("button", name=words["close"], exact=True).click()
    page.wait_for_load_state()
    assert page.get_by_text(words["refused"]).is_visible()
    assert page.locator("#review").get_by_role("link", name=words["write"]).is_visible()

    # The incident waits on the review meeting's list.
    page.goto(f"{page.base}/reviews/")
    _shot(page, "awaiting", language)
    screens._fits_the_screen(page)
    page.get_by_role("link", name=f"#{incident.pk} Cashier pool exhausted").click()
    page.wait_for_load_state()

    # The edit page: impact started from the facts; the author writes the rest.
    assert page.url.endswith(f"/incidents/{incident.pk}/review/")
    assert (
        page.locator("textarea[name=impact]")
        .input_value()
        .startswith("- " + ("Affected users: 1,200" if language == "en" else "影响用户：1,200"))
    )
    page.get_by_label(words["summary"]).fill("Pool ran dry at the evening peak.\n连接池耗尽。")
    page.locator("textarea[name=root_cause]").fill("1. Payments failed: no connection.\n2. Why? The pool leaked.")
    page.locator("textarea[name=lessons]").fill("Alert on pool usage.")
    _shot(page, "edit", language)
    screens._fits_the_screen(page)
    page.get_by_role("button", name=words["save"]).click()
    page.wait_for_load_state()

    review = page.locator("#review")
    assert "连接池耗尽。" in review.inner_text()
    _shot(page, "incident", language)
    screens._fits_the_screen(page)
    page.get_by_role("button", name=words["close"], exact=True).click()
    page.wait_for_load_state()
    assert Incident.objects.get(pk=incident.pk).status == "closed"
    assert not page.csp_violations
