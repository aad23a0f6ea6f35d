"""Browser journey of issue 13: a manager opens last week's and last month's report from the report page's
quick links, in English and in Chinese, on a desktop and at phone width (390 px). Both open with the
narrative a manager forwards (系统运行数据, 生产稳定性事件, ...) naming the period's incident, and fit the
screen. A screenshot of each report opened is kept in ARTEFACT_DIR (default var/artefacts/journeys/); a failed
journey leaves one too (tests/web/test_journeys.py's page fixture)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from incidents import periods
from tests.conftest import seed_severity_policy
from tests.web import test_journeys as journeys
from tests.web.test_incident_roles import artefacts
from tests.web.test_journeys import sign_in

page = journeys.page
people = journeys.people
screenshots_dir = journeys.screenshots_dir

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
SCREENS = [
    pytest.param(DESKTOP, "en", id="desktop-en"),
    pytest.param(PHONE, "en", id="phone-en"),
    pytest.param(DESKTOP, "zh-hans", id="desktop-zh"),
    pytest.param(PHONE, "zh-hans", id="phone-zh"),
]
WORDS = {
    "en": {
        "reports": "Reports",
        "last week": "Last week",
        "last month": "Last month",
        "weekly": "Weekly report {label} (",
        "monthly": "Monthly report {label}",
        "operation": "System operation",
        "events": "Production stability events",
        "counts": "Incidents: A/B-level 0, C/D-level 1.",
        "main": "Main",
    },
    "zh-hans": {
        "reports": "报告",
        "last week": "上周",
        "last month": "上月",
        "weekly": "周报 {label}（",
        "monthly": "月报 {label}",
        "operation": "系统运行数据",
        "events": "生产稳定性事件",
        "counts": "事故数：AB级 0 次，CD级 1 次。",
        "main": "主导航",
    },
}


@pytest.mark.parametrize("page, language", SCREENS, indirect=["page"])
def test_a_manager_opens_last_weeks_and_last_months_report(page, people, language):
    from tests.factories import IncidentFactory, SystemFactory

    seed_severity_policy()
    now = timezone.now()
    last_week = periods.containing("week", now).previous()
    last_month = periods.containing("month", now).previous()
    # A C- or D-level incident in the middle of last week (which may fall in this month or the last).
    at = last_week.start + timedelta(days=2, hours=3)
    IncidentFactory(
        title="收银台支付超时",
        systems=[SystemFactory(code="gateway", name="Gateway", tier="P1")],
        occurred_at=at,
        detected_at=at + timedelta(minutes=4),
        recovered_at=at + timedelta(minutes=50),
    )
    words = WORDS[language]
    sign_in(page, "luna")
    if language != "en":
        page.locator("form.language-switch button[value=zh-hans]").click()
        page.wait_for_load_state()
    assert page.locator("html").get_attribute("lang") == language
    page.get_by_role("navigation", name=words["main"]).get_by_role("link", name=words["reports"], exact=True).click()

    page.get_by_role("link", name=words["last week"], exact=True).click()
    heading = page.get_by_role("heading", level=1)
    assert heading.inner_text().startswith(words["weekly"].format(label=last_week.label))
    operation = page.locator("#narrative-operation")
    assert operation.get_by_role("heading", name=words["operation"]).is_visible()
    assert words["counts"] in operation.inner_text()
    events = page.locator("#narrative-events")
    assert events.get_by_role("heading", name=words["events"]).is_visible()
    assert "收银台支付超时" in events.inner_text()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    screen = f"{language}_{page.viewport_size['width']}"
    page.screenshot(path=str(artefacts() / f"report_last_week_{screen}.png"), full_page=True)

    page.get_by_role("link", name=words["last month"], exact=True).click()
    assert page.get_by_role("heading", level=1).inner_text() == words["monthly"].format(label=last_month.label)
    events = page.locator("#narrative-events")
    in_last_month = last_month.start <= at < last_month.end
    assert ("收银台支付超时" in events.inner_text()) is in_last_month
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    page.screenshot(path=str(artefacts() / f"report_last_month_{screen}.png"))
    assert page.csp_violations == []
