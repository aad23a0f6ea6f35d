"""Browser journeys of the on-call inbox (issue 15, part 1), in English and Chinese, on a desktop and at
phone width (390 px): filter by system (kept in the URL and remembered), acknowledge a group of alerts
at once, silence a system from an alert; the page stays short on a phone, grouped.
A failed journey leaves a screenshot (tests/web/test_journeys.py's page fixture)."""

import os
from datetime import timedelta

import pytest
from django.utils import timezone

from stability.models import AlertOccurrence, MaintenanceWindow
from stability.services import integration_create
from tests.stability.test_follow_up import fire, generic_alert
from tests.web import test_forms_scale_journeys as scale
from tests.web import test_journeys as journeys
from tests.web.test_journeys import sign_in

page = journeys.page
people = journeys.people
screenshots_dir = journeys.screenshots_dir

WORDS = {
    "en": {
        "filter": "Filter",
        "system": "System",
        "apply": "Apply",
        "ack": "Acknowledge all 12",
        "acked": "Acknowledged: 12 alerts of Latency.",
        "silence": "Silence payout",
        "silenced": "payout silenced until",
        "act_now": "Act now",
    },
    "zh-hans": {
        "filter": "筛选",
        "system": "系统",
        "apply": "应用",
        "ack": "全部认领（12 条）",
        "acked": "已认领 Latency 的 12 条报警。",
        "silence": "静默 payout",
        "silenced": "payout 已静默至",
        "act_now": "立即处理",
    },
}


def _alert(name: str, fingerprint: str, **options) -> dict:
    return generic_alert(name, **options) | {"fingerprint": fingerprint}


def _shot(page, name: str) -> None:
    """With INBOX_SHOTS set (a folder), keep a picture of the page to look at."""
    folder = os.environ.get("INBOX_SHOTS")
    if folder:
        page.screenshot(path=os.path.join(folder, f"{name}.png"), full_page=True)


@pytest.mark.parametrize("page, language", scale.SCREENS, indirect=["page"])
def test_on_call_filters_acknowledges_a_group_and_silences_a_system(page, people, language, request):
    words = WORDS[language]
    _hook, token = integration_create(kind="generic", name="prod")
    now = timezone.now().replace(microsecond=0)
    # 12 Latency alerts on cashier and 12 on payout, 6 Queue alerts on payout, a minute ago: 30 to act on now
    fire(
        token,
        [_alert("Latency", f"c{n}") for n in range(12)]
        + [_alert("Latency", f"p{n}", system="payout") for n in range(12)]
        + [_alert("Queue", f"q{n}", system="payout", severity="warning") for n in range(6)],
        at=now - timedelta(minutes=1),
    )
    screen = request.node.callspec.id

    sign_in(page, "lei")
    scale._in(page, language)
    page.goto(page.base + "/alerts/")
    tabs = page.get_by_role("navigation", name="Which alerts" if language == "en" else "报警范围")
    assert tabs.locator("[aria-current=page]").inner_text() == f"{words['act_now']} 30"
    assert page.locator(".alert-group").count() == 3
    # 30 alerts in 3 groups, folded: a short page even on a phone
    assert page.evaluate("document.documentElement.scrollHeight") < 2600
    scale._fits_the_screen(page)
    _shot(page, f"inbox-{screen}")

    page.locator("details.filters > summary").click()
    page.get_by_label(words["system"], exact=True).fill("payout")
    page.get_by_role("button", name=words["apply"]).click()
    page.wait_for_url("**/alerts/?*system=payout*")
    assert page.locator(".alert-group").count() == 2

    group = page.locator(".alert-group[data-rule=Latency]")
    group.get_by_role("button", name=words["ack"]).click()
    page.get_by_role("status").get_by_text(words["acked"]).wait_for()
    assert page.locator(".alert-group").count() == 1
    assert (
        AlertOccurrence.objects.filter(
            system__code="payout", alertname="Latency", acknowledged_by__username="lei"
        ).count()
        == 12
    )
    assert AlertOccurrence.objects.filter(system__code="cashier", followed_up_at__isnull=False).count() == 0

    queue = page.locator(".alert-group[data-rule=Queue]")
    queue.locator("select").select_option("120")
    queue.get_by_role("button", name=words["silence"]).click()
    page.get_by_role("status").get_by_text(words["silenced"]).wait_for()
    window = MaintenanceWindow.objects.get()
    assert (window.system.code, window.ends_at - window.starts_at) == ("payout", timedelta(minutes=120))
    scale._fits_the_screen(page)
    _shot(page, f"inbox-acted-{screen}")

    # opened again without filters, the inbox shows the ones chosen last
    page.goto(page.base + "/alerts/")
    assert "system=payout" in page.url
    page.locator(".alert-group[data-rule=Queue] details > summary").click()
    # a group lists its newest 5 alerts (stability.selectors.INBOX_GROUP_ALERTS) and says so
    assert page.locator(".alert-group[data-rule=Queue] tbody tr").count() == 5
    assert page.locator(".alert-group[data-rule=Queue] details > p.meta").is_visible()
    scale._fits_the_screen(page)
    assert not page.csp_violations


def test_a_group_unfolded_stays_unfolded_through_the_refresh(page, people):
    _hook, token = integration_create(kind="generic", name="prod")
    now = timezone.now().replace(microsecond=0)
    fire(token, [_alert("Latency", f"c{n}") for n in range(3)], at=now - timedelta(seconds=30))

    sign_in(page, "lei")
    page.goto(page.base + "/alerts/")
    group = page.locator(".alert-group[data-rule=Latency]")
    group.locator("details > summary").click()
    assert group.locator("tbody tr").count() == 3
    # a new alert of the group arrives; the refresh (every 10 s) shows it, the group still unfolded
    fire(token, [_alert("Latency", "c3")], at=timezone.now())
    page.locator(".alert-group[data-rule=Latency] .tag", has_text="×4").wait_for(timeout=15_000)
    assert page.locator(".alert-group[data-rule=Latency] > details").get_attribute("open") is not None
    assert page.locator(".alert-group[data-rule=Latency] tbody tr").count() == 4
