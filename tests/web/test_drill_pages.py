"""Drills and items beyond incidents through the pages: /drills/ (by team and quarter), /drills/new/, a
drill's page (its outcome, a finding turned into an item), /items/new/ from the team's list (a review
meeting's, an audit's or governance work's item) and such an item's own page, in English and Chinese."""

import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from incidents import drills, services
from incidents.models import ActionItem, Drill
from tests.factories import UserFactory
from tests.web import test_journeys as journeys
from tests.web.conftest import field_errors, text_of
from tests.web.test_forms_scale_journeys import SCREENS, _fits_the_screen, _in
from tests.web.test_journeys import local_input, sign_in

# the journeys' fixtures: a Chromium page (desktop or phone, screenshot on failure) and its people
page = journeys.page
people = journeys.people
screenshots_dir = journeys.screenshots_dir

T0 = datetime(2026, 11, 22, 8, 30, tzinfo=UTC)  # 16:30 in Asia/Shanghai


@pytest.fixture(autouse=True)
def _at_t0(request):
    if "page" in request.fixturenames:  # a browser journey runs on the live server's real clock
        yield
        return
    with time_machine.travel(T0, tick=False):
        yield


def plan(world, *, planned_at=T0, team="payments", systems=("cashier",), title="银行通道切换演练") -> Drill:
    return drills.drill_create(
        by=None,
        team=world[team],
        title=title,
        scenario="bank_channel_switch",
        systems=[world[code] for code in systems],
        planned_at=planned_at,
    )


def test_planning_a_drill(engineer, world):
    page = engineer.get("/drills/new/")
    assert page.status_code == 200
    response = engineer.post(
        "/drills/new/",
        {
            "title": "Switch the bank channel",
            "team": world["payments"].pk,
            "scenario": "bank_channel_switch",
            "systems": [world["cashier"].pk, world["payout"].pk],
            "planned_at": "2026-11-25T22:00:00",
        },
    )
    drill = Drill.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/drills/{drill.pk}/"
    # Typed in the reader's zone (Asia/Shanghai).
    assert (drill.planned_at, drill.team, drill.created_by) == (
        datetime(2026, 11, 25, 14, 0, tzinfo=UTC),
        world["payments"],
        engineer.user,
    )
    assert sorted(drill.systems.values_list("code", flat=True)) == ["cashier", "payout"]


def test_a_drill_without_systems_is_refused_next_to_the_field(engineer, world):
    response = engineer.post(
        "/drills/new/",
        {"title": "x", "team": world["payments"].pk, "scenario": "failover", "planned_at": "2026-11-25T22:00:00"},
    )
    assert response.status_code == 400
    assert field_errors(response, "id_systems") == ["This field is required."]
    assert not Drill.objects.exists()


def test_recording_the_outcome_and_turning_a_finding_into_an_item(engineer, world):
    drill = plan(world)
    response = engineer.post(
        f"/drills/{drill.pk}/outcome/",
        {
            "held_at": "2026-11-22T15:00:00",
            "result": "partly",
            "switch_minutes": "1",
            "switch_seconds": "35",
            "findings": "3 duplicated callbacks",
        },
    )
    assert response.status_code == 302
    drill.refresh_from_db()
    assert (drill.held_at, drill.result, drill.switch_over_seconds, drill.findings) == (
        datetime(2026, 11, 22, 7, 0, tzinfo=UTC),
        "partly",
        95,
        "3 duplicated callbacks",
    )
    response = engineer.post(
        f"/drills/{drill.pk}/items/",
        {
            "title": "Dedupe callbacks",
            "owner": engineer.user.pk,
            "due_at": "2026-12-10T18:00:00",
            "kind": "drill",
            "priority": "high",
        },
    )
    item = ActionItem.objects.get()
    assert response["Location"] == f"/drills/{drill.pk}/#item-{item.pk}"
    assert (item.source, item.drill, item.team) == ("drill", drill, world["payments"])
    shown = text_of(engineer.get(f"/drills/{drill.pk}/").content.decode())
    assert "Partly passed" in shown and "1 min 35 s" in shown and f"#{item.pk} Dedupe callbacks" in shown
    # The item's steps answer back on the drill's page.
    response = engineer.post(f"/items/{item.pk}/step/", {"action": "start", "expected_version": item.version})
    assert response["Location"] == f"/drills/{drill.pk}/#item-{item.pk}"
    assert engineer.get(f"/items/{item.pk}/")["Location"] == f"/drills/{drill.pk}/#item-{item.pk}"


def test_an_outcome_in_the_future_is_refused(engineer, world):
    drill = plan(world)
    response = engineer.post(f"/drills/{drill.pk}/outcome/", {"held_at": "2026-11-23T15:00:00", "result": "passed"})
    assert response.status_code == 400
    assert field_errors(response, "id_held_at") == [
        "A drill is recorded as held once it has happened; this time is in the future."
    ]


def test_the_drill_page_in_chinese(engineer, world):
    drill = plan(world)
    drills.drill_hold(drill_id=drill.pk, held_at=T0, result="passed", switch_over_seconds=3725)
    shown = text_of(engineer.get(f"/drills/{drill.pk}/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode())
    assert "银行通道切换" in shown and "通过" in shown and "切换耗时" in shown and "1 小时 2 分钟" in shown
    assert "把发现转为整改项" in shown


def test_the_list_by_team_and_quarter_in_both_languages(manager, world):
    plan(world, title="十一月切换")
    plan(world, title="九月主备", planned_at=datetime(2026, 9, 10, 2, 0, tzinfo=UTC))
    plan(world, title="账户容量压测", team="accounts", systems=("portal",))

    def titles(**query) -> str:
        return text_of(manager.get("/drills/", query).content.decode())

    assert all(title in titles() for title in ("十一月切换", "九月主备", "账户容量压测"))
    q4 = titles(team="payments", quarter="2026-Q4")
    assert "十一月切换" in q4 and "九月主备" not in q4 and "账户容量压测" not in q4
    assert "Give a quarter as 2026-Q4" in titles(quarter="2026-11")
    chinese = text_of(manager.get("/drills/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode())
    assert "演练" in chinese and "计划时间" in chinese
    assert "Plan a drill" not in titles()  # managers read drills; engineers plan them


def test_the_list_takes_as_many_queries_for_many_drills(engineer, world):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert engineer.get("/drills/").status_code == 200
        return len(captured)

    plan(world)
    few = queries()
    for n in range(8):
        plan(world, systems=("cashier", "payout"), planned_at=T0 - timedelta(days=n))
    assert queries() == few


def test_a_review_meetings_item_from_the_teams_list(engineer, world):
    lists = text_of(engineer.get("/items/team/", {"team": "payments"}).content.decode())
    assert "New item" in lists
    assert engineer.get("/items/new/", {"team": "payments"}).status_code == 200
    owner = UserFactory(username="lei")
    response = engineer.post(
        "/items/new/",
        {
            "team": world["payments"].pk,
            "source": "review_meeting",
            "source_note": "稳定性双月会 2026-11",
            "title": "Review the payout thresholds",
            "owner": owner.pk,
            "due_at": "2026-12-10T18:00:00",
            "kind": "process",
            "priority": "high",
        },
    )
    item = ActionItem.objects.get()
    assert response["Location"] == f"/items/{item.pk}/"
    assert (item.source, item.source_note, item.team, item.incident) == (
        "review_meeting",
        "稳定性双月会 2026-11",
        world["payments"],
        None,
    )
    page = text_of(engineer.get(f"/items/{item.pk}/").content.decode())
    assert "Review meeting · 稳定性双月会 2026-11" in page and "Payments" in page
    # Its steps answer back on its own page, and its history is its timestamps.
    engineer.post(f"/items/{item.pk}/step/", {"action": "complete", "expected_version": item.version})
    item.refresh_from_db()
    assert (item.status, item.completed_at) == ("done", T0)
    listed = text_of(engineer.get("/items/team/", {"team": "payments"}).content.decode())
    assert f"#{item.pk} Review the payout thresholds" in listed and "Review meeting · 稳定性双月会 2026-11" in listed
    chinese = text_of(engineer.get(f"/items/{item.pk}/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode())
    assert "评审会议 · 稳定性双月会 2026-11" in chinese


def test_a_meetings_item_needs_its_team(engineer, world):
    response = engineer.post(
        "/items/new/",
        {"source": "audit", "title": "x", "owner": engineer.user.pk, "due_at": "2026-12-10T18:00:00"},
    )
    assert response.status_code == 400
    assert field_errors(response, "id_team") == ["This field is required."]


def test_the_team_list_shows_items_of_every_source(engineer, world):
    drill = plan(world)
    owner = engineer.user
    services.action_item_create(
        by=None, team=world["payments"], source="governance", title="default null", owner=owner, due_at=T0
    )
    drills.drill_finding_to_item(drill_id=drill.pk, by=None, title="switch script", owner=owner, due_at=T0)
    listed = text_of(engineer.get("/items/team/", {"team": "payments"}).content.decode())
    assert f"Drill #{drill.pk} 银行通道切换演练" in listed and "Governance" in listed


# -- the browser journey ----------------------------------------------------------------------------

JOURNEY_WORDS = {
    "en": {"nav": "Drills", "plan": "Plan a drill", "save": "Save drill", "outcome": "Save outcome", "add": "Add item"},
    "zh-hans": {"nav": "演练", "plan": "计划演练", "save": "保存演练", "outcome": "保存结果", "add": "添加"},
}


@pytest.mark.parametrize("page, language", SCREENS, indirect=["page"])
def test_an_engineer_logs_a_drill_and_turns_a_finding_into_an_item(page, people, language):

    words = JOURNEY_WORDS[language]
    sign_in(page, "lei")
    _in(page, language)
    page.get_by_role("navigation", name=re.compile("Main|主")).get_by_role("link", name=words["nav"]).click()
    page.get_by_role("link", name=words["plan"]).click()
    form = page.locator("form.card")
    form.locator("[name=title]").fill("银行通道切换演练 / bank channel switch-over")
    form.locator("[name=team]").select_option(label="Payments")
    form.locator("[name=scenario]").select_option("bank_channel_switch")
    form.get_by_label("Cashier · P0").check()
    form.get_by_label("Payout · P0").check()
    _fits_the_screen(page)
    form.get_by_role("button", name=words["save"]).click()
    page.wait_for_url(re.compile(r"/drills/\d+/$"))
    drill = Drill.objects.get()
    assert sorted(drill.systems.values_list("code", flat=True)) == ["cashier", "payout"]

    now = timezone.now().replace(microsecond=0)
    outcome = page.locator(f"form[action='/drills/{drill.pk}/outcome/']")
    outcome.locator("[name=held_at]").fill(local_input(now - timedelta(hours=1)))
    outcome.locator("[name=result][value=partly]").check()
    outcome.locator("[name=switch_minutes]").fill("1")
    outcome.locator("[name=switch_seconds]").fill("35")
    outcome.locator("[name=findings]").fill("切换后 3 笔交易重复回调")
    outcome.get_by_role("button", name=words["outcome"]).click()
    page.locator(".drill-result-partly").first.wait_for()
    drill.refresh_from_db()
    assert (drill.result, drill.switch_over_seconds, drill.held_at) == ("partly", 95, now - timedelta(hours=1))

    finding = page.locator(f"form[action='/drills/{drill.pk}/items/']")
    finding.locator("[name=title]").fill("切换时对回调去重 / dedupe callbacks")
    finding.locator("[name=owner]").select_option(label="Lei Wang (lei)")
    finding.locator("[name=due_at]").fill(local_input(now + timedelta(days=14)))
    finding.get_by_role("button", name=words["add"]).click()
    page.wait_for_url(re.compile(rf"/drills/{drill.pk}/#item-\d+$"))
    item = ActionItem.objects.get()
    assert (item.source, item.drill_id, item.team.slug, item.owner.username) == ("drill", drill.pk, "payments", "lei")
    page.locator(f"#item-{item.pk}").get_by_text("切换时对回调去重").wait_for()
    _fits_the_screen(page)
    assert not page.csp_violations


def test_the_home_page_links_an_item_of_no_incident_to_its_page(engineer, world):
    item = services.action_item_create(
        by=None, team=world["payments"], source="audit", title="Rotate keys", owner=engineer.user, due_at=T0
    )
    assert f'href="/items/{item.pk}/"' in engineer.get("/").content.decode()


def test_the_report_page_tells_the_drill_coverage_in_both_languages(manager, world):
    drill = plan(world, planned_at=datetime(2026, 11, 10, 2, 0, tzinfo=UTC))
    drills.drill_hold(drill_id=drill.pk, held_at=datetime(2026, 11, 10, 2, 0, tzinfo=UTC), result="passed")
    english = text_of(manager.get("/reports/", {"period": "2026-11"}).content.decode())
    # P0 systems: cashier (drilled) and payout; the P2 portal is not counted.
    assert "Drills held in 2026-Q4 covered 1 of 2 P0 systems (50.0 %). Not drilled: payout." in english
    chinese = text_of(manager.get("/reports/", {"period": "2026-11"}, HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode())
    assert "2026-Q4 已执行的演练覆盖了 2 个 P0 系统中的 1 个（50.0 %）。 未演练：payout。" in chinese
    appendix = text_of(manager.get("/reports/", {"period": "2026-11", "appendix": "drill_uncovered"}).content.decode())
    assert "Drill coverage of P0 systems · Not drilled" in appendix
