"""Browser journeys for forms that scale (issue 15, part 8), in English and Chinese, on a desktop and at
phone width (390 px): the system picker's filter, a number field under the scroll wheel, the incident
list's labelled filters with the team chooser, the integration's address copied with one click.
A failed journey leaves a screenshot (tests/web/test_journeys.py's page fixture)."""

import pytest

from stability.services import integration_create
from tests.factories import UserFactory
from tests.web import test_journeys as journeys
from tests.web.test_journeys import PASSWORD, sign_in

# the journeys' fixtures: a Chromium page (desktop or phone, screenshot on failure) and its people
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
    "en": {"find": "Find a system", "none": "No system matches.", "team": "Team", "copy": "Copy address"},
    "zh-hans": {"find": "查找系统", "none": "没有匹配的系统。", "team": "团队", "copy": "复制地址"},
}


def _in(page, language: str) -> None:
    if language != "en":
        page.locator("form.language-switch button[value=zh-hans]").click()
        page.wait_for_load_state()
    assert page.locator("html").get_attribute("lang") == language


def _fits_the_screen(page) -> None:
    # nothing wider than the viewport (no sideways scrolling on a phone)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


@pytest.mark.parametrize("page, language", SCREENS, indirect=["page"])
def test_the_system_picker_filters_the_systems_grouped_by_team(page, people, language):
    from tests.factories import SystemFactory, TeamFactory

    accounts = TeamFactory(slug="accounts", name="Accounts")
    SystemFactory(code="portal", name="Portal", tier="P2", team=accounts)
    words = WORDS[language]
    sign_in(page, "lei")
    _in(page, language)
    page.goto(page.base + "/incidents/new/")

    picker = page.locator(".system-picker")
    search = picker.get_by_label(words["find"])
    assert search.is_visible()  # shown by the script
    assert picker.locator("legend").all_inner_texts() == ["Accounts", "Payments"]
    picker.get_by_label("Cashier · P0").check()

    search.fill("pay")  # matches the team Payments: cashier and payout, not portal
    assert picker.get_by_label("Payout · P0").is_visible()
    assert picker.get_by_label("Cashier · P0").is_visible()
    assert not picker.get_by_label("Portal · P2").is_visible()
    assert not picker.locator("fieldset", has_text="Accounts").is_visible()

    search.fill("nothing-like-this")
    assert picker.get_by_text(words["none"]).is_visible()
    assert picker.get_by_label("Cashier · P0").is_visible()  # chosen: kept in sight
    assert not picker.get_by_label("Payout · P0").is_visible()

    search.press("Enter")  # filters, does not send the form
    assert page.url == page.base + "/incidents/new/"
    _fits_the_screen(page)
    assert not page.csp_violations


@pytest.mark.parametrize("page, language", SCREENS[:2], indirect=["page"])
def test_the_scroll_wheel_does_not_change_a_number(page, people, language):
    sign_in(page, "lei")
    _in(page, language)
    page.goto(page.base + "/incidents/new/")
    page.locator("details.impact > summary").click()
    field = page.locator("input[name=affected_transactions]")
    field.fill("15000")
    field.focus()
    field.hover()

    page.mouse.wheel(0, 120)
    page.mouse.wheel(0, -120)

    assert field.input_value() == "15000"
    assert not field.evaluate("element => element === document.activeElement")


@pytest.mark.parametrize("page, language", SCREENS, indirect=["page"])
def test_the_incident_lists_filters_are_labelled_with_a_team_chooser(page, people, language):
    words = WORDS[language]
    sign_in(page, "lei")
    _in(page, language)
    page.goto(page.base + "/incidents/")
    page.locator("details.filters > summary").click()

    text = page.locator("form.filter-form").inner_text()
    assert "[invalid name]" not in text and "greater than" not in text
    page.get_by_label(words["team"], exact=True).select_option("payments")
    page.locator("form.filter-form button[type=submit]").click()
    page.wait_for_load_state()

    assert "team=payments" in page.url
    assert page.get_by_label(words["team"], exact=True).input_value() == "payments"
    _fits_the_screen(page)


@pytest.mark.parametrize("page, language", SCREENS, indirect=["page"])
def test_an_administrator_copies_the_webhook_address(page, people, language):
    UserFactory(username="ada", role="admin", password=PASSWORD)
    integration, _token = integration_create(kind="alertmanager", name="prod-am")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    sign_in(page, "ada")
    _in(page, language)
    page.goto(page.base + f"/settings/integrations/{integration.pk}/")

    address = page.locator("#webhook-url").inner_text()
    assert address == page.base + "/api/v1/integrations/alertmanager/"
    page.get_by_role("button", name=WORDS[language]["copy"]).click()

    assert page.evaluate("navigator.clipboard.readText()") == address
    assert "webhook_configs" in page.locator("#alertmanager-snippet").inner_text()
    _fits_the_screen(page)
    assert not page.csp_violations
