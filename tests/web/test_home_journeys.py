"""Browser journeys for issue 15 parts 7 and 8, in English and Chinese, on a desktop and at phone width
(390 px): the manager's and the engineer's home pages, the severity policy form with its preview, a
channel's test message. A failed journey leaves a screenshot (tests/web/test_journeys.py's page fixture);
with JOURNEY_SHOTS=<folder> every journey leaves one of its last page there, to look at."""

import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from stability.channels import channel_create
from tests.factories import ActionItemFactory, IncidentFactory, UserFactory
from tests.stability.test_channels import Robots
from tests.web import test_journeys as journeys
from tests.web.test_forms_scale_journeys import SCREENS, _fits_the_screen, _in
from tests.web.test_journeys import PASSWORD, sign_in

page = journeys.page
people = journeys.people
screenshots_dir = journeys.screenshots_dir

WORDS = {
    "en": {
        "major": "Open A/B incidents",
        "overdue": "Overdue items by team",
        "rate": "Alerts followed up within 5 minutes, by team",
        "mine": "Incidents you own or command",
        "add": "Add a condition",
        "preview": "Preview",
        "previewed": "Preview: the last quarter under this edit",
        "changed": "Of the 1 incidents of the last 90 days, 1 would change level.",
        "test": "Send a test message",
        "delivered": "Delivered: WeCom group robot accepted the test message.",
    },
    "zh-hans": {
        "major": "处理中的 A/B 级事件",
        "overdue": "各团队逾期闭环项",
        "rate": "各团队报警5分钟跟进率",
        "mine": "你负责或指挥的事件",
        "add": "添加条件",
        "preview": "预览",
        "previewed": "预览：按本次修改对最近一个季度重新定级",
        "changed": "最近 90 天的 1 起事件中，有 1 起的级别会改变。",
        "test": "发送测试消息",
        "delivered": "已送达：企业微信群机器人接收了测试消息。",
    },
}


def _shot(page, name: str, request) -> None:
    folder = os.environ.get("JOURNEY_SHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=f"{folder}/{name}-{request.node.callspec.id}.png", full_page=True)


@pytest.fixture
def admin(people):
    return UserFactory(username="ada", role="admin", first_name="Ada", last_name="Admin", password=PASSWORD)


@pytest.mark.parametrize("page, language", SCREENS, indirect=["page"])
def test_the_managers_home_says_what_needs_attention(page, people, language, request):
    from incidents.models import System

    cashier = System.objects.get(code="cashier")
    now = timezone.now()
    incident = IncidentFactory(title="Cashier down", systems=[cashier], occurred_at=now - timedelta(minutes=70))
    ActionItemFactory(incident=incident, title="Add a pool alert", due_at=now - timedelta(days=2))
    words = WORDS[language]
    sign_in(page, "luna")
    _in(page, language)

    major = page.locator("section", has=page.get_by_role("heading", name=words["major"]))
    assert major.get_by_role("link", name=f"#{incident.pk} Cashier down").is_visible()
    overdue = page.locator("section", has=page.get_by_role("heading", name=words["overdue"]))
    assert overdue.locator("li").all_inner_texts()[0].startswith("Payments")
    assert page.get_by_role("heading", name=words["rate"]).is_visible()
    _fits_the_screen(page)
    _shot(page, "home-manager", request)
    overdue.get_by_role("link", name="Payments").click()
    page.wait_for_load_state()
    assert "overdue=1" in page.url
    assert page.get_by_role("link", name="Add a pool alert").first.is_visible()
    assert not page.csp_violations


@pytest.mark.parametrize("page, language", SCREENS, indirect=["page"])
def test_the_engineers_home_shows_what_is_theirs(page, people, language, request):
    from incidents.models import System

    now = timezone.now()
    IncidentFactory(
        title="Payout slow",
        systems=[System.objects.get(code="payout")],
        occurred_at=now - timedelta(minutes=40),
        commander=people["engineer"],
    )
    words = WORDS[language]
    sign_in(page, "lei")
    _in(page, language)
    mine = page.locator("section", has=page.get_by_role("heading", name=words["mine"]))
    assert mine.get_by_role("link", name="Payout slow").is_visible()
    _fits_the_screen(page)
    _shot(page, "home-engineer", request)
    assert not page.csp_violations


@pytest.mark.parametrize("page, language", SCREENS, indirect=["page"])
def test_the_severity_policy_form_adds_a_condition_and_previews_the_quarter(page, people, admin, language, request):
    from incidents.models import System

    now = timezone.now()
    # P0 for 45 minutes: B under version 1; A once A reads "P0 >= 45 min".
    IncidentFactory(
        title="Cashier down",
        systems=[System.objects.get(code="cashier")],
        occurred_at=now - timedelta(days=3),
        recovered_at=now - timedelta(days=3) + timedelta(minutes=45),
    )
    words = WORDS[language]
    sign_in(page, "ada")
    _in(page, language)
    page.goto(page.base + "/settings/severity-policy/")
    level_a = page.locator('fieldset.policy-level[data-level="A"]')
    rows = level_a.locator("li.condition-row")
    before = rows.count()
    # Version 1's A[3] is the data-breach flag: a yes/no, no threshold to type.
    assert rows.nth(3).locator("select").input_value() == "flag:data_or_security_breach"
    assert rows.nth(3).locator('input[type="text"]').is_hidden()
    assert rows.nth(0).locator('input[type="text"]').is_visible()
    level_a.get_by_role("button", name=words["add"]).click()  # shown by the script
    assert rows.count() == before + 1
    rows.last.locator("select").select_option("tier_impact:P0")
    rows.last.locator('input[type="text"]').fill("45")
    page.get_by_role("button", name=words["preview"], exact=True).click()
    page.wait_for_load_state()
    preview = page.locator("#preview")
    assert preview.get_by_role("heading", name=words["previewed"]).is_visible()
    assert words["changed"] in preview.inner_text()
    assert "B → A" in " ".join(preview.locator("table.stack-on-phone tbody td").nth(1).inner_text().split())
    _fits_the_screen(page)
    _shot(page, "policy-preview", request)
    assert not page.csp_violations


@pytest.mark.parametrize("page, language", SCREENS, indirect=["page"])
def test_a_channel_gets_a_test_message_from_its_page(page, people, admin, language, request):
    robots = Robots()
    try:
        from incidents.models import Team

        channel = channel_create(
            kind="wecom",
            name="Payments robot",
            target=robots.url("/wecom/journey"),
            team=Team.objects.get(slug="payments"),
            language="en",
        )
        words = WORDS[language]
        sign_in(page, "ada")
        _in(page, language)
        page.goto(page.base + f"/settings/channels/{channel.pk}/")
        page.get_by_role("button", name=words["test"]).click()
        page.wait_for_load_state()
        assert page.get_by_text(words["delivered"]).is_visible()
        assert len(robots.requests) == 1
        _fits_the_screen(page)
        _shot(page, "channel-test", request)
        assert not page.csp_violations
    finally:
        robots.stop()
