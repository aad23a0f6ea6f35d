"""The missed alerts page (/alerts/missed/, web/views/alerts.py): the alerts the follow-up rate counts as
missed (stability.follow_up's rule: followed up later than the window, or never), for a period and
scope, with how late each was and who followed it up; as many as the report's `missed`.

Alerts are made by hand at fixed times (window 300 s, flapping 120 s, TIME_ZONE Asia/Shanghai), so each
lateness below is worked out in its comment."""

import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from incidents import periods
from stability.models import AlertOccurrence
from stability.reports import build_report
from stability.services import integration_create
from tests.factories import UserFactory
from tests.web.conftest import field_errors, text_of

PAGE = "/alerts/missed/"
AFTER = datetime(2026, 12, 10, 2, 0, tzinfo=UTC)  # "now": last month is November 2026
NOVEMBER = periods.month(2026, 11)
S = timedelta(seconds=1)


@pytest.fixture(autouse=True)
def _rules(settings):
    settings.FOLLOW_UP_WINDOW_SECONDS = 300
    settings.FOLLOW_UP_FLAPPING_SECONDS = 120
    settings.TIME_ZONE = "Asia/Shanghai"


@pytest.fixture(autouse=True)
def _now():
    with time_machine.travel(AFTER, tick=False):
        yield


def occurrence(hook, name: str, *, system, received: datetime, delay=None, by=None, **fields) -> AlertOccurrence:
    """One occurrence of `system`'s team received at `received`, followed up `delay` later by `by`."""
    return AlertOccurrence.objects.create(
        integration=hook,
        fingerprint=f"{name}-{received.isoformat()}",
        starts_at=received,
        received_at=received,
        last_received_at=received,
        alertname=name,
        team=system.team,
        system=system,
        followed_up_at=None if delay is None else received + delay,
        followed_up_by=by if delay is not None else None,
        **fields,
    )


def utc(month: int, day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, second, tzinfo=UTC)


@pytest.fixture
def alerts(world) -> dict:
    hook, _secret = integration_create(kind="generic", name="g")
    wang = UserFactory(username="wang", first_name="Wang", last_name="Fang")
    cashier, payout, portal = world["cashier"], world["payout"], world["portal"]

    def cashier_alert(received, **fields):
        return occurrence(hook, "CashierLatency", system=cashier, received=received, **fields)

    return {
        # In time: 120 s, and exactly 300 s (the window is inclusive).
        "quick": cashier_alert(utc(11, 2, 8, 1), delay=120 * S, by=wang),
        "on_the_dot": cashier_alert(utc(11, 4, 1), delay=300 * S, by=wang),
        # Late: 17 min after receipt = 12 min past the 5-minute window; 301 s = 1 s past it.
        "late": cashier_alert(utc(11, 2, 9), delay=17 * 60 * S, by=wang),
        "just_late": cashier_alert(utc(11, 4, 2), delay=301 * S, by=wang),
        # Never followed up.
        "never": occurrence(hook, "PayoutErrors", system=payout, received=utc(11, 3, 10)),
        "accounts": occurrence(hook, "PortalDown", system=portal, received=utc(11, 5, 3)),
        # 2026-10-31T16:00Z is Nov 1 00:00 in Shanghai: November's first instant.
        "first_instant": cashier_alert(utc(10, 31, 16)),
        # Not counted: flapping (the source resolved it 60 s <= 120 s after, nobody followed up), excluded
        # at receipt (maintenance), and outside November (October's last second, December's first).
        "flapping": occurrence(
            hook, "PayoutErrors", system=payout, received=utc(11, 6, 1), resolved_at=utc(11, 6, 1, 1), status="resolved"
        ),
        "maintenance": cashier_alert(utc(11, 7, 1), excluded=AlertOccurrence.Exclusion.MAINTENANCE),
        "october": cashier_alert(utc(10, 31, 15, 59, 59)),
        "december": cashier_alert(utc(11, 30, 16)),
    }


def listed(response) -> list[int]:
    return [int(pk) for pk in re.findall(r'<tr id="missed-(\d+)"', response.content.decode())]


def ids(alerts: dict, *names: str) -> list[int]:
    return [alerts[name].pk for name in names]


def row_text(response, alert: AlertOccurrence) -> str:
    found = re.search(rf'<tr id="missed-{alert.pk}">(.*?)</tr>', response.content.decode(), re.S)
    return text_of(found.group(1))


# --- what is listed -----------------------------------------------------------------------------------


def test_the_page_lists_exactly_the_missed_alerts_oldest_first_with_how_late(manager, alerts):
    response = manager.get(PAGE, {"period": "2026-11"})

    assert response.status_code == 200
    assert listed(response) == ids(alerts, "first_instant", "late", "never", "just_late", "accounts")
    # received 09:00Z = 17:00 in Shanghai; followed up 17 min later (17:17) by Wang Fang: 12 min late
    assert row_text(response, alerts["late"]) == (
        "CashierLatency Cashier Payments 2026-11-02 17:00 12 min late Wang Fang 2026-11-02 17:17"
    )
    assert row_text(response, alerts["just_late"]).endswith("1 s late Wang Fang 2026-11-04 10:05")
    assert row_text(response, alerts["never"]) == "PayoutErrors Payout Payments 2026-11-03 18:00 never followed up –"
    assert "2026-11-01 00:00" in row_text(response, alerts["first_instant"])
    summary = text_of(re.search(r'<p class="summary".*?</p>', response.content.decode(), re.S).group(0))
    # Counted in November: 7 (not flapping, maintenance, October, December); in time: quick and
    # on_the_dot; 2 / 7 = 28.57 % -> 28.6 %
    assert summary == "5 missed alerts in 2026-11 followed up within 5 minutes: 28.6 % (2 of 7)"


def test_without_a_period_it_is_last_month(manager, alerts):
    response = manager.get(PAGE)

    assert response.status_code == 200
    assert listed(response) == ids(alerts, "first_instant", "late", "never", "just_late", "accounts")
    assert "in 2026-11" in text_of(response.content.decode())


def test_a_week_is_cut_at_local_midnight(manager, alerts):
    # 2026-W45 is Mon Nov 2 - Sun Nov 8 (Shanghai): first_instant (Sun Nov 1 00:00 local) is W44, as is
    # october (Sat Oct 31 23:59:59 local), W44 being Mon Oct 26 - Sun Nov 1.
    response = manager.get(PAGE, {"period": "2026-W45"})

    assert listed(response) == ids(alerts, "late", "never", "just_late", "accounts")
    assert listed(manager.get(PAGE, {"period": "2026-W44"})) == ids(alerts, "october", "first_instant")


def test_a_period_without_alerts_lists_nothing_and_says_so(manager, alerts):
    response = manager.get(PAGE, {"period": "2026-09"})

    assert response.status_code == 200
    assert listed(response) == []
    text = text_of(response.content.decode())
    assert "0 missed alerts in 2026-09" in text and "no data (0 of 0)" in text
    assert "No missed alert in this period and scope." in text


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"team": "accounts"}, ["accounts"]),
        ({"team": "payments"}, ["first_instant", "late", "never", "just_late"]),
        ({"system": "payout"}, ["never"]),
        ({"rule": "CashierLatency"}, ["first_instant", "late", "just_late"]),
        ({"rule": "CashierLatency", "team": "accounts"}, []),
        ({"rule": "NoSuchRule"}, []),
    ],
)
def test_filters(manager, alerts, query, expected):
    response = manager.get(PAGE, {"period": "2026-11", **query})

    assert response.status_code == 200
    assert listed(response) == ids(alerts, *expected)


@pytest.mark.parametrize(
    ("team", "system", "rule"),
    [
        (None, None, ""),
        ("payments", None, ""),
        ("accounts", None, ""),
        (None, "payout", ""),
        ("payments", None, "CashierLatency"),
    ],
)
def test_the_count_is_the_reports_missed_for_the_same_period_and_scope(manager, world, alerts, team, system, rule):
    report = build_report(period=NOVEMBER, team=team and world[team], system=system and world[system], now=AFTER)
    query = {"period": "2026-11", "team": team or "", "system": system or "", "rule": rule}

    response = manager.get(PAGE, query)

    shown = listed(response)
    summary = text_of(re.search(r'<p class="summary".*?</p>', response.content.decode(), re.S).group(0))
    if not rule:
        assert len(shown) == report.alerts.figures["overall"]["missed"]
    assert summary.startswith(f"{len(shown)} missed alert")


# --- pages --------------------------------------------------------------------------------------------


@pytest.fixture
def many(world) -> list[int]:
    """122 alerts never followed up: one a minute from Nov 10 00:00 local, and two more at the 50th's time.
    Their ids, oldest first (ties by id)."""
    hook, _secret = integration_create(kind="generic", name="g")
    start = datetime(2026, 11, 9, 16, 0, tzinfo=UTC)
    rows = [
        AlertOccurrence(
            integration=hook,
            fingerprint=f"f{i}",
            starts_at=start + i * timedelta(minutes=1),
            received_at=start + i * timedelta(minutes=1),
            last_received_at=start + i * timedelta(minutes=1),
            alertname="Disk",
            team=world["cashier"].team,
            system=world["cashier"],
        )
        for i in range(120)
    ]
    created = AlertOccurrence.objects.bulk_create(rows)
    # Two at the very same instant as the 50th: the keyset's tie on received_at is broken by id.
    twins = AlertOccurrence.objects.bulk_create(
        [
            AlertOccurrence(
                integration=hook,
                fingerprint=f"twin{i}",
                starts_at=rows[49].received_at,
                received_at=rows[49].received_at,
                last_received_at=rows[49].received_at,
                alertname="Disk",
                team=world["cashier"].team,
                system=world["cashier"],
            )
            for i in range(2)
        ]
    )
    ordered = sorted(created + twins, key=lambda a: (a.received_at, a.pk))
    return [a.pk for a in ordered]


def _link(response, rel: str) -> str | None:
    found = re.search(rf'<a href="([^"]+)" rel="{rel}"', response.content.decode())
    return found.group(1).replace("&amp;", "&") if found else None


def test_pages_of_50_by_keyset_cover_every_missed_alert_once(manager, many):
    first = manager.get(PAGE, {"period": "2026-11"})
    assert listed(first) == many[:50]
    assert _link(first, "prev") is None
    second = manager.get(PAGE + _link(first, "next"))
    assert listed(second) == many[50:100]  # the twins of the 50th are on it, after it by id
    third = manager.get(PAGE + _link(second, "next"))
    # 122 = 50 + 50 + 22
    assert listed(third) == many[100:]
    assert _link(third, "next") is None
    back = manager.get(PAGE + _link(third, "prev"))
    assert listed(back) == many[50:100]
    assert listed(manager.get(PAGE + _link(back, "prev"))) == many[:50]
    assert "122 missed alerts in 2026-11" in text_of(first.content.decode())


def test_the_page_reads_as_many_queries_for_a_busy_month_as_for_an_empty_one(manager, many):
    with CaptureQueriesContext(connection) as busy:
        assert manager.get(PAGE, {"period": "2026-11"}).status_code == 200
    with CaptureQueriesContext(connection) as empty:
        assert manager.get(PAGE, {"period": "2026-09"}).status_code == 200
    assert len(busy) == len(empty)


def test_a_cursor_that_is_not_a_number_is_the_first_page(manager, many):
    assert listed(manager.get(PAGE, {"period": "2026-11", "after": "x"})) == many[:50]
    assert listed(manager.get(PAGE, {"period": "2026-11", "before": "99999999999999999999999"})) == many[:50]


# --- who sees what ------------------------------------------------------------------------------------


def test_an_engineer_sees_their_teams_missed_alerts_and_no_others(engineer, world, alerts):
    world["payments"].members.add(engineer.user)

    mine = engineer.get(PAGE, {"period": "2026-11"})
    assert mine.status_code == 200
    assert listed(mine) == ids(alerts, "first_instant", "late", "never", "just_late")
    # The choices are theirs: payments and its systems, not accounts or portal.
    html = mine.content.decode()
    assert 'value="payments"' in html and 'value="accounts"' not in html and 'value="portal"' not in html
    assert listed(engineer.get(PAGE, {"period": "2026-11", "system": "payout"})) == ids(alerts, "never")

    for other in ({"team": "accounts"}, {"system": "portal"}, {"team": "payments", "system": "portal"}):
        assert engineer.get(PAGE, {"period": "2026-11", **other}).status_code == 403, other


def test_an_engineer_in_no_team_is_refused(engineer, alerts):
    assert engineer.get(PAGE).status_code == 403


def test_administrators_see_every_team(administrator, alerts):
    assert len(listed(administrator.get(PAGE, {"period": "2026-11"}))) == 5


def test_signed_out_people_are_sent_to_sign_in(client, alerts):
    response = client.get(PAGE)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


# --- bad input ----------------------------------------------------------------------------------------


def test_a_bad_period_or_unknown_team_is_a_400_next_to_the_field(manager, alerts):
    response = manager.get(PAGE, {"period": "2026-13"})
    assert response.status_code == 400
    assert field_errors(response, "id_period") == [
        "Not a period: '2026-13'. Use 2026-11, 2026-W36, 2026-Q4, 2026 or 2026-11-01..2026-11-15."
    ]
    assert listed(response) == []

    unknown = manager.get(PAGE, {"period": "2026-11", "team": "nope"})
    assert unknown.status_code == 400
    assert field_errors(unknown, "id_team") == [
        "Select a valid choice. That choice is not one of the available choices."
    ]


# --- in both languages, and linked ----------------------------------------------------------------------


def test_labels_in_chinese(manager, alerts):
    response = manager.get(PAGE, {"period": "2026-11"}, HTTP_ACCEPT_LANGUAGE="zh-hans")

    text = text_of(response.content.decode())
    for label in ("未及时跟进的报警", "报警规则", "接收时间", "超时多久", "跟进人", "周期", "团队", "系统"):
        assert label in text, label
    assert "超时 12 分钟" in row_text(response, alerts["late"])
    assert "从未跟进" in row_text(response, alerts["never"])
    assert "2026-11 有 5 条未及时跟进的报警" in text


def test_labels_in_english(manager, alerts):
    text = text_of(manager.get(PAGE, {"period": "2026-11"}).content.decode())

    for label in ("Missed alerts", "Alert rule", "Received at", "How late", "Followed up by", "Period", "Team"):
        assert label in text, label


def test_the_inbox_links_to_this_months_missed_alerts(manager, engineer, world):
    # December 10: this month is 2026-12.
    assert 'href="/alerts/missed/?period=2026-12"' in manager.get("/alerts/").content.decode()
    # An engineer in no team reads no report: no link.
    assert "/alerts/missed/" not in engineer.get("/alerts/").content.decode()
    world["payments"].members.add(engineer.user)
    assert 'href="/alerts/missed/?period=2026-12"' in engineer.get("/alerts/").content.decode()


def test_the_page_links_back_to_the_report_of_the_same_period_and_scope(manager, alerts):
    html = manager.get(PAGE, {"period": "2026-W45", "team": "payments"}).content.decode()

    assert 'href="/reports/?period=2026-W45&amp;team=payments"' in html


def test_the_report_links_to_its_missed_alerts(manager, alerts):
    html = manager.get("/reports/", {"period": "2026-11", "team": "payments"}).content.decode()

    assert 'href="/alerts/missed/?period=2026-11&amp;team=payments"' in html
