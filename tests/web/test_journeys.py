"""Browser journeys: Playwright drives Debian's Chromium (/usr/bin/chromium, `apt-get install
chromium`; no browser is downloaded) against pytest-django's live server.

When a journey fails, a screenshot of the page as it was is saved under var/test-screenshots/
(or SCREENSHOT_DIR) and its path printed. Skipped, with the reason, where Chromium is missing.
"""

import os
import re
import shutil
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.utils import timezone

from incidents.models import Incident, Status, TimelineEntry
from stability.models import AlertOccurrence
from stability.services import integration_create
from tests.factories import UserFactory
from tests.stability.test_follow_up import fire, generic_alert

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ZONE = "Asia/Shanghai"
PASSWORD = "journey-password"

pytestmark = pytest.mark.skipif(
    not shutil.which(CHROMIUM), reason=f"needs Chromium at {CHROMIUM} (apt-get install chromium; CI installs it)"
)


@pytest.fixture
def screenshots_dir() -> Path:
    folder = Path(os.environ.get("SCREENSHOT_DIR", settings.BASE_DIR / "var" / "test-screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def page(request, live_server, monkeypatch, screenshots_dir):
    """A phone-sized or desktop page (parametrise `viewport`) in the organisation's zone."""
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are still
    # plain synchronous code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    viewport = getattr(request, "param", {"width": 1280, "height": 900})
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(viewport=viewport, timezone_id=ZONE, locale="en-US")
        context.set_default_timeout(10_000)
        tab = context.new_page()
        tab.base = live_server.url
        # Chromium reports each Content-Security-Policy violation on the console ("Refused to ...").
        tab.csp_violations = []
        tab.on(
            "console",
            lambda message: "Content Security Policy" in message.text and tab.csp_violations.append(message.text),
        )
        yield tab
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            path = screenshots_dir / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', request.node.name)}.png"
            tab.screenshot(path=str(path), full_page=True)
            print(f"\nscreenshot of the failed journey: {path}")
        context.close()
        browser.close()


@pytest.fixture
def people(transactional_db):
    from tests.factories import SystemFactory, TeamFactory

    payments = TeamFactory(slug="payments", name="Payments")
    SystemFactory(code="cashier", name="Cashier", tier="P0", team=payments)
    SystemFactory(code="payout", name="Payout", tier="P0", team=payments)
    return {
        "engineer": UserFactory(username="lei", first_name="Lei", last_name="Wang", password=PASSWORD),
        "manager": UserFactory(username="luna", role="manager", password=PASSWORD),
    }


def sign_in(page, username: str):
    page.goto(page.base + "/")
    assert "/accounts/login/" in page.url
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(page.base + "/")


def local_input(moment) -> str:
    return moment.astimezone(ZoneInfo(ZONE)).strftime("%Y-%m-%dT%H:%M:%S")


def test_an_engineer_logs_an_incident_while_it_burns_recovers_it_and_completes_an_item(page, people):
    sign_in(page, "lei")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Log incident").click()

    started = timezone.now().replace(microsecond=0) - timedelta(minutes=35)
    page.get_by_label("Title").fill("收银台支付超时 / cashier payments timing out")
    page.get_by_label("Cashier · P0").check()
    page.get_by_label("Occurred at").fill(local_input(started))
    page.get_by_label("Monitoring alert").check()
    # P0 impacted for 35 minutes: B (>= 30 min), suggested before anything is saved
    suggestion = page.locator("#level-suggestion")
    suggestion.get_by_text(re.compile(r"B: P0 system impacted 3[56] min \(>= 30 min\)")).wait_for()
    assert Incident.objects.count() == 0

    page.get_by_role("button", name="Log incident").click()
    page.wait_for_url(re.compile(r"/incidents/\d+/$"))
    incident = Incident.objects.get()
    assert incident.level == "B"
    assert incident.occurred_at == started
    assert (
        page.get_by_role("heading", level=1).inner_text()
        == f"#{incident.pk} 收银台支付超时 / cashier payments timing out"
    )

    for note in ("16:40 switched traffic to the backup channel", "bank confirmed the channel is healthy again"):
        page.get_by_label("What happened").fill(note)
        page.get_by_role("button", name="Add to timeline").click()
        page.locator("#timeline").get_by_text(note).wait_for()
    assert page.get_by_label("What happened").input_value() == ""
    assert list(incident.timeline.filter(kind=TimelineEntry.Kind.NOTE).values_list("author__username", flat=True)) == [
        "lei",
        "lei",
    ]

    page.get_by_role("button", name="Mark recovered").click()
    page.get_by_text("Status changed.").wait_for()
    incident.refresh_from_db()
    assert incident.status == Status.RECOVERED
    assert page.locator(".incident-head .status").inner_text() == "Recovered"
    assert page.locator("#timeline").get_by_text("Status: Open → Recovered").count() == 1

    # the follow-up work: an item, added and then marked done by its owner
    page.get_by_text("Add an action item").click()
    new_item = page.locator("#items form[action$='/items/']")
    new_item.get_by_label("Title").fill("Alert on DB pool exhaustion")
    new_item.get_by_label("Owner").select_option(label="Lei Wang (lei)")
    new_item.get_by_label("Due at").fill(local_input(timezone.now() + timedelta(days=7)))
    new_item.get_by_role("button", name="Add item").click()
    page.get_by_text("Action item #").first.wait_for()
    item = incident.action_items.get()
    row = page.locator(f"#item-{item.pk}")
    assert row.locator(".tag").inner_text() == "Open"
    row.get_by_role("button", name="Mark done").click()
    page.locator(f"#item-{item.pk} .tag").get_by_text("Done, awaiting verification").wait_for()
    item.refresh_from_db()
    assert item.status == "done" and item.completed_at is not None


def test_an_engineer_acknowledges_an_alert_within_the_window_and_sees_the_rate_move(page, people):
    _hook, token = integration_create(kind="generic", name="prod")
    now = timezone.now().replace(microsecond=0)
    fire(token, [generic_alert("CashierLatency", starts_at="2026-11-01T00:00:00Z")], at=now - timedelta(minutes=10))
    (fresh,) = fire(token, [generic_alert("PayoutErrors", system="payout")], at=now - timedelta(seconds=20))

    sign_in(page, "lei")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Alerts").click()
    rate = page.locator("#follow-up-rate")
    # the old one was missed, the new one is still within its window: 0 of 1
    assert rate.locator("[data-rate]").inner_text() == "0.0 %"
    row = page.locator(f"#alert-{fresh}")
    page.locator(".alert-group", has=row).locator("details > summary").click()  # the group unfolds
    assert re.fullmatch(r"4:[34]\d left", row.locator(".countdown").inner_text())

    row.get_by_role("button", name="Acknowledge").click()
    # in time: 1 of the 2 decided
    page.locator("#follow-up-rate [data-rate]").get_by_text("50.0 %").wait_for()
    assert page.locator(f"#alert-{fresh}").count() == 0
    alert = AlertOccurrence.objects.get(pk=fresh)
    assert alert.followed_up_by.username == "lei"
    assert alert.followed_up_at - alert.received_at <= timedelta(seconds=settings.FOLLOW_UP_WINDOW_SECONDS)


def test_a_user_switches_to_chinese_and_back(page, people):
    sign_in(page, "luna")
    switch = page.locator("form.language-switch")
    assert page.locator("html").get_attribute("lang") == "en"

    switch.locator("button[value=zh-hans]").click()
    page.wait_for_load_state()
    assert page.locator("html").get_attribute("lang") == "zh-hans"
    assert switch.locator("button[value=zh-hans]").get_attribute("aria-pressed") == "true"
    assert page.url == page.base + "/"

    switch.locator("button[value=en]").click()
    page.wait_for_load_state()
    assert page.locator("html").get_attribute("lang") == "en"
    assert switch.locator("button[value=en]").get_attribute("aria-pressed") == "true"
    assert page.get_by_role("heading", level=1).inner_text() == "Hello, luna"


def test_a_manager_opens_last_months_report_and_downloads_the_pdf(page, people):
    from tests.factories import IncidentFactory, SystemFactory

    now = timezone.now().replace(microsecond=0)
    last_month = (timezone.localtime(now).replace(day=1) - timedelta(days=1)).replace(hour=12)
    IncidentFactory(
        title="收银台支付超时", systems=[SystemFactory(code="cashier")], occurred_at=last_month, detected_at=last_month
    )

    sign_in(page, "luna")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Reports").click()
    label = f"{last_month:%Y-%m}"
    page.get_by_role("heading", level=1, name=f"Monthly report {label}").wait_for()
    assert page.locator(".report-charts svg").count() >= 1

    # The PDF of a whole month (a dozen pages, every table fitted to the paper) takes several seconds.
    with page.expect_download(timeout=60_000) as download_info:
        page.locator(".report-exports").get_by_role("link", name="PDF").click()
    download = download_info.value
    assert download.suggested_filename == f"stability-report-{label}.pdf"
    with open(download.path(), "rb") as pdf:
        assert pdf.read(5) == b"%PDF-"


def test_key_pages_keep_the_content_security_policy_and_their_scripts_work(page, people):
    """Every page a person uses, the API docs and the admin: no CSP violation, and the scripts run."""
    from playwright.sync_api import expect

    from tests.factories import IncidentFactory, SystemFactory

    now = timezone.now().replace(microsecond=0)
    last_month = (timezone.localtime(now).replace(day=1) - timedelta(days=1)).replace(hour=12)
    IncidentFactory(title="收银台支付超时", systems=[SystemFactory(code="cashier")], occurred_at=last_month)
    _hook, token = integration_create(kind="generic", name="prod")
    (fresh,) = fire(token, [generic_alert("PayoutErrors", system="payout")], at=now - timedelta(seconds=20))
    UserFactory(username="root", password=PASSWORD, is_superuser=True, is_staff=True)

    sign_in(page, "root")
    assert page.context.cookies(page.base)  # signed in
    response = page.goto(page.base + "/")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'self'" in csp and "unsafe-inline" not in csp

    page.goto(page.base + "/incidents/")
    page.get_by_role("heading", level=1).wait_for()

    # the live severity preview (htmx) still suggests a level as the facts are typed
    page.goto(page.base + "/incidents/new/")
    page.get_by_label("Cashier · P0").check()
    page.get_by_label("Occurred at").fill(local_input(now - timedelta(minutes=65)))
    page.locator("#level-suggestion").get_by_text(re.compile(r"A: P0 system impacted 6\d min")).wait_for()

    # the alerts inbox: the countdown ticks (app.js) and the list refreshes itself (htmx, every 10 s)
    page.goto(page.base + "/alerts/")
    countdown = page.locator(f"#alert-{fresh} .countdown")
    first = countdown.inner_text()
    expect(countdown).not_to_have_text(first)
    with page.expect_response(
        lambda r: "/alerts/" in r.url and r.request.headers.get("hx-request") == "true", timeout=25_000
    ) as refreshed:
        pass
    assert refreshed.value.status == 200

    # the report: its stylesheet and charts carry the nonce; Print calls window.print without an inline handler
    page.goto(page.base + "/reports/")
    page.locator(".report-charts svg").first.wait_for()
    # (the trailing 0: an expression whose value is a function is called by Playwright)
    page.evaluate("window.__printed = 0; window.print = function () { window.__printed += 1; }; 0")
    page.locator(".report-exports").get_by_role("button", name="Print").click()
    assert page.evaluate("window.__printed") == 1
    assert page.locator(".report-scope").evaluate("el => getComputedStyle(el).display") == "flex"

    # Swagger UI renders the operations from its start-up script served by URL
    page.goto(page.base + "/api/docs/")
    page.locator(".opblock").first.wait_for()

    # the admin: its list, its change form and its own scripts
    page.goto(page.base + "/admin/")
    page.goto(page.base + "/admin/incidents/incident/")
    page.locator("#result_list").wait_for()
    page.goto(page.base + "/admin/axes/accessattempt/")
    page.get_by_role("heading", level=1).wait_for()
    page.goto(page.base + "/admin/accounts/user/add/")
    page.locator("#user_form").wait_for()

    assert page.csp_violations == []
