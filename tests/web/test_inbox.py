"""The on-call inbox page (web/views/alerts.py): its filters kept in the URL and remembered per person,
the act now / missed / resolved tabs with their counts, groups acknowledged at once, a system silenced
from an alert, the home page's alerts opening their page, and a cost that does not grow with the alerts.
Alerts arrive through the real generic webhook at fixed times."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from incidents import periods
from stability.models import AlertActivity, AlertOccurrence, InboxPreference, MaintenanceWindow
from stability.services import integration_create
from tests.stability.test_follow_up import fire, generic_alert
from tests.web.conftest import text_of

T0 = datetime(2026, 11, 2, 8, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
INBOX = "/alerts/"
GROUP_ACK = "/alerts/group/acknowledge/"
SILENCE = "/alerts/silence/"


def at(moment):
    return time_machine.travel(moment, tick=False)


def alert(name: str, fingerprint: str, **options) -> dict:
    return generic_alert(name, **options) | {"fingerprint": fingerprint}


@pytest.fixture
def token(world) -> str:
    return integration_create(kind="generic", name="g")[1]


@pytest.fixture
def alerts(token) -> dict:
    """At T0: Latency twice on cashier (critical), and Latency, Queue (warning) on payout; at T0+7:
    DiskFull on portal (accounts). Seen at T0+8: the four first are missed, DiskFull is to act on now."""
    ids = fire(
        token,
        [
            alert("Latency", "c1"),
            alert("Latency", "c2"),
            alert("Latency", "p1", system="payout"),
            alert("Queue", "p2", system="payout", severity="warning"),
        ],
        at=T0,
    )
    (disk,) = fire(token, [alert("DiskFull", "d1", system="portal", team="accounts")], at=T0 + 7 * MINUTE)
    return {"c1": ids[0], "c2": ids[1], "p1": ids[2], "p2": ids[3], "disk": disk}


NOW = T0 + 8 * MINUTE


def groups_of(response) -> list[tuple[str, str, int]]:
    return [(g.alertname, g.system.code, g.count) for g in response.context["groups"]]


def test_the_tabs_split_act_now_from_missed_with_their_counts(engineer, alerts):
    with at(NOW):
        act_now = engineer.get(INBOX)
        missed = engineer.get(INBOX, {"state": "missed"})

    assert groups_of(act_now) == [("DiskFull", "portal", 1)]
    assert "Act now 1 Missed 4 Resolved by the source 0 All of the last day 5" in text_of(act_now.content.decode())
    # the group whose last alert arrived last first; one card per rule and system
    assert groups_of(missed) == [("Latency", "cashier", 2), ("Latency", "payout", 1), ("Queue", "payout", 1)]
    text = text_of(missed.content.decode())
    # received 8 minutes ago: 3 minutes past the window
    assert "late by 3:00 Latency ×2 cashier · Payments" in text
    assert "Acknowledge all 2" in text


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"team": "accounts", "state": "all"}, [("DiskFull", "portal", 1)]),
        ({"system": "payout", "state": "missed"}, [("Latency", "payout", 1), ("Queue", "payout", 1)]),
        ({"severity": "warning", "state": "all"}, [("Queue", "payout", 1)]),
        ({"rule": "Latency", "state": "missed"}, [("Latency", "cashier", 2), ("Latency", "payout", 1)]),
        ({"rule": "Latency", "state": "act_now"}, []),
    ],
)
def test_filters(engineer, alerts, query, expected):
    with at(NOW):
        response = engineer.get(INBOX, query)
    assert response.status_code == 200
    assert groups_of(response) == expected


def test_an_unknown_team_is_an_error_not_everything(engineer, alerts):
    with at(NOW):
        response = engineer.get(INBOX, {"team": "nobody"})
    assert response.status_code == 400
    assert response.context["groups"] == []


def test_the_filters_stay_in_the_url_and_are_remembered(engineer, manager, alerts):
    with at(NOW):
        chosen = engineer.get(INBOX, {"system": "payout", "state": "missed"})
        refresh = engineer.get(chosen.context["query"] and f"{INBOX}?{chosen.context['query']}", HTTP_HX_REQUEST="true")
        back = engineer.get(INBOX)
        others = manager.get(INBOX)
    # the refresh, the tabs and the forms carry them
    assert 'hx-get="/alerts/?system=payout&amp;state=missed"' in chosen.content.decode()
    assert groups_of(refresh) == [("Latency", "payout", 1), ("Queue", "payout", 1)]
    # opened without filters, the inbox shows this person's last ones; another person's are their own
    assert (back.status_code, back["Location"]) == (302, "/alerts/?system=payout&state=missed")
    assert others.status_code == 200 and groups_of(others) == [("DiskFull", "portal", 1)]
    assert InboxPreference.objects.get(user=engineer.user).query == "system=payout&state=missed"

    with at(NOW):
        cleared = engineer.get(INBOX, {"clear": ""})
        fresh = engineer.get(INBOX)
    assert (cleared.status_code, cleared["Location"]) == (302, "/alerts/")
    assert fresh.status_code == 200 and groups_of(fresh) == [("DiskFull", "portal", 1)]


def test_a_group_is_acknowledged_at_once_and_a_second_click_does_nothing(engineer, alerts, world):
    group = f"{world['cashier'].pk}:Latency"
    query = "state=missed"
    with at(NOW):
        done = engineer.post(GROUP_ACK, {"group": group, "query": query}, HTTP_HX_REQUEST="true")
        again = engineer.post(GROUP_ACK, {"group": group, "query": query}, HTTP_HX_REQUEST="true")
        whole_page = engineer.post(GROUP_ACK, {"group": group, "query": query})

    assert done.status_code == 200
    acknowledged = AlertOccurrence.objects.filter(acknowledged_by=engineer.user)
    assert set(acknowledged.values_list("pk", flat=True)) == {alerts["c1"], alerts["c2"]}
    # received T0, acknowledged T0+8: 480 s, late
    assert {(o.followed_up_at - o.received_at) for o in acknowledged} == {8 * MINUTE}
    assert AlertActivity.objects.count() == 2
    assert "Acknowledged: 2 alerts of Latency." in text_of(done.content.decode())
    assert groups_of(done) == [("Latency", "payout", 1), ("Queue", "payout", 1)]
    assert "Nothing to acknowledge: somebody already followed these alerts up." in text_of(again.content.decode())
    assert (whole_page.status_code, whole_page["Location"]) == (302, "/alerts/?state=missed")
    assert AlertActivity.objects.count() == 2


def test_managers_neither_acknowledge_groups_nor_silence(manager, alerts, world):
    with at(NOW):
        page = manager.get(INBOX, {"state": "all"})
        ack = manager.post(GROUP_ACK, {"group": f"{world['cashier'].pk}:Latency"})
        silence = manager.post(SILENCE, {"alert": alerts["c1"], f"minutes-{alerts['c1']}": "30"})
    assert 'form="acknowledge-group"' not in page.content.decode()
    assert (ack.status_code, silence.status_code) == (403, 403)
    assert not AlertActivity.objects.exists() and not MaintenanceWindow.objects.exists()


def test_a_system_is_silenced_from_an_alert_and_its_next_alerts_are_not_counted(engineer, alerts, token, world):
    with at(NOW):
        response = engineer.post(
            SILENCE,
            {"alert": alerts["p2"], f"minutes-{alerts['p2']}": "60", "query": "state=all"},
            HTTP_HX_REQUEST="true",
        )
    assert response.status_code == 200
    window = MaintenanceWindow.objects.get()
    assert (window.system, window.starts_at, window.ends_at) == (world["payout"], NOW, NOW + 60 * MINUTE)
    assert (window.reason, window.created_by) == (f"Queue #{alerts['p2']}", engineer.user)
    # 16:09 in Asia/Shanghai (UTC+8)
    assert "payout silenced until 17:09: its new alerts are not counted." in text_of(response.content.decode())

    (silenced,) = fire(token, [alert("Queue", "p3", system="payout")], at=NOW + 10 * MINUTE)
    assert AlertOccurrence.objects.get(pk=silenced).excluded == "maintenance"
    with at(NOW + 11 * MINUTE):
        act_now = engineer.get(INBOX, {"state": "act_now"})
        every = engineer.get(INBOX, {"state": "all", "system": "payout"})
    assert groups_of(act_now) == []
    assert ("Queue", "payout", 2) in groups_of(every)
    assert "not counted: Maintenance window" in text_of(every.content.decode())


def test_a_silence_needs_minutes_and_a_system(engineer, alerts):
    with at(NOW):
        response = engineer.post(SILENCE, {"alert": alerts["p2"], f"minutes-{alerts['p2']}": ""})
        too_long = engineer.post(SILENCE, {"alert": alerts["p2"], f"minutes-{alerts['p2']}": "99999"})
    assert response.status_code == 400
    assert "Choose for how many minutes." in text_of(response.content.decode())
    assert too_long.status_code == 400
    assert "Silence for 1 to 10080 minutes." in text_of(too_long.content.decode())
    assert not MaintenanceWindow.objects.exists()


def test_the_inbox_costs_the_same_with_5_or_50_alerts(engineer, token):
    counts = []
    for count in (5, 50):
        fire(
            token,
            [alert(f"Rule{n % 4}", f"{count}-{n}", system=("cashier", "payout")[n % 2]) for n in range(count)],
            at=T0,
        )
        with at(T0 + MINUTE):
            engineer.get(INBOX, {"state": "all"})  # remembers the filters once
            with CaptureQueriesContext(connection) as queries:
                response = engineer.get(INBOX, {"state": "all"})
        assert response.status_code == 200
        counts.append(len(queries))
    # Rule0..3 on cashier and payout by parity: 4 groups of 55 alerts; each lists its newest 5
    groups = response.context["groups"]
    assert sorted(g.count for g in groups) == [13, 13, 14, 15] and [len(g.alerts) for g in groups] == [5, 5, 5, 5]
    assert counts[0] == counts[1]


def test_the_inbox_reads_in_chinese(engineer, alerts):
    with at(NOW):
        response = engineer.get(INBOX, {"state": "missed"}, HTTP_ACCEPT_LANGUAGE="zh-hans")
    text = text_of(response.content.decode())
    assert "立即处理 1 未按时跟进 4 来源已恢复 0 最近一天全部 5" in text
    assert "全部认领（2 条）" in text and "静默 payout" in text
    assert "已超时 3:00 Latency ×2 cashier · Payments" in text


def test_the_home_pages_alerts_open_their_page(engineer, alerts):
    with at(NOW):
        home = engineer.get("/")
    assert f'<a href="/alerts/{alerts["disk"]}/">DiskFull</a>' in home.content.decode()


def test_an_alerts_own_page_silences_its_system(engineer, alerts, world):
    url = f"/alerts/{alerts['p1']}/"
    with at(NOW):
        page = engineer.get(url)
        done = engineer.post(SILENCE, {"alert": alerts["p1"], "minutes": "240", "from": "alert"})
        refused = engineer.post(SILENCE, {"alert": alerts["p1"], "minutes": "", "from": "alert"})
        unknown = engineer.post(SILENCE, {"alert": "abc", "minutes": "30"})
    assert "Silence payout" in text_of(page.content.decode())
    assert (done.status_code, done["Location"]) == (302, url)
    window = MaintenanceWindow.objects.get()
    assert (window.system, window.ends_at - window.starts_at) == (world["payout"], 240 * MINUTE)
    assert refused.status_code == 400 and "Choose for how many minutes." in text_of(refused.content.decode())
    assert unknown.status_code == 404


def test_a_busy_day_is_paged_and_the_refresh_keeps_the_page(engineer, token, monkeypatch):
    from stability import selectors

    monkeypatch.setattr(selectors, "INBOX_GROUPS", 2)
    fire(token, [alert(f"Rule{n}", f"p{n}") for n in range(3)], at=T0)
    with at(T0 + MINUTE):
        first = engineer.get(INBOX, {"state": "all"}).content.decode()
        second = engineer.get(INBOX, {"state": "all", "page": "2"}).content.decode()
        beyond = engineer.get(INBOX, {"state": "all", "page": "99999999999999999999"})
        nonsense = engineer.get(INBOX, {"state": "all", "page": "-1"})
    assert "Page 1 of 2" in text_of(first) and 'href="?state=all&amp;page=2" rel="next"' in first
    assert "Page 2 of 2" in text_of(second) and 'rel="prev"' in second and 'rel="next"' not in second
    assert 'hx-get="/alerts/?state=all&amp;page=2"' in second
    assert [len(r.context["groups"]) for r in (beyond, nonsense)] == [1, 2]  # the last page, the first


def test_the_cards_rate_is_the_months_read_from_the_day_counts(token, django_assert_max_num_queries):
    """The inbox's card: this month's rate as the report has it, its settled days from the day counts.
    November 2 (T0): four alerts, followed up after 1, 2 and 10 minutes and never; November 3: one more,
    seen a minute after it came (pending, not counted). In time 2 of 4 (the never followed up one is late)."""
    from stability import follow_up
    from stability.selectors import follow_up_rate
    from web.views.alerts import month_follow_up_rate

    ids = fire(token, [alert("Latency", f"c{n}") for n in range(4)], at=T0)
    for alert_id, after in zip(ids, (MINUTE, 2 * MINUTE, 10 * MINUTE), strict=False):
        AlertOccurrence.objects.filter(pk=alert_id).update(followed_up_at=T0 + after, changed_at=T0 + after)
    next_day = T0 + timedelta(days=1)
    fire(token, [alert("Latency", "d1")], at=next_day)
    now = next_day + MINUTE
    with at(now):
        follow_up.refresh_day_counts(now)
        with django_assert_max_num_queries(8):
            card = month_follow_up_rate(now=now)
        whole = follow_up_rate(occurrences=AlertOccurrence.objects.all(), period=periods.this_month(now), now=now)
    figures = ("rate", "in_time", "denominator", "pending", "received")
    assert {k: card["overall"][k] for k in figures} == {
        "rate": 0.5,
        "in_time": 2,
        "denominator": 4,
        "pending": 1,
        "received": 5,
    }
    assert {k: whole["overall"][k] for k in figures} == {k: card["overall"][k] for k in figures}
    assert card["period"] == "2026-11"
