"""GET /metrics (stability.exposition): the figures, parsed with prometheus_client's own parser, worked out
by hand on data made here and checked against the selectors that define them; who may read them; the
Grafana dashboard's queries; the webhook counters across several gunicorn processes.

The clock: N = 2026-11-15T02:00:00Z, 10:00 on Nov 15 in Asia/Shanghai; "this month" is
[2026-10-31T16:00Z, 2026-11-30T16:00Z).
"""

import json
import os
import re
from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path

import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families

from incidents import periods
from incidents.models import ActionItem, Incident, Status, System
from incidents.selectors import closed_loop_metrics, incident_metrics
from incidents.services import severity_override_set
from stability import exposition, follow_up, process_figures, tasks
from stability.models import AlertOccurrence, Integration, Notification, NotificationChannel, OutboundMessage
from stability.selectors import follow_up_breakdown, follow_up_rate
from stability.services import alerts_follow_up, integration_create
from tests.factories import ActionItemFactory, IncidentFactory, SystemFactory, TeamFactory, UserFactory

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
N = datetime(2026, 11, 15, 2, 0, tzinfo=UTC)
NOVEMBER = periods.month(2026, 11)
LEVELS, STATUSES = ("A", "B", "C", "D"), ("open", "recovered", "resolved")
_names = count(1)


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def seconds(n: float) -> timedelta:
    return timedelta(seconds=n)


@pytest.fixture(autouse=True)
def _fresh_figures(settings, tmp_path):
    """Each test counts its own messages and sweeps: the delivery counts of this process forgotten, the
    sweep timing emptied (Redis when configured, else a file under a VAR_DIR of the test's own)."""
    settings.VAR_DIR = tmp_path
    exposition.notification_deliveries.forget()
    process_figures.forget_sweep_timing()
    yield
    process_figures.forget_sweep_timing()


def scrape(client: Client | None = None, **headers) -> dict[tuple, float]:
    """/metrics parsed: {(sample name, (label, value)...): value}."""
    answer = (client or Client()).get("/metrics", **headers)
    assert answer.status_code == 200, answer.content
    assert answer["Content-Type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, *sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(answer.content.decode())
        for sample in family.samples
    }


def value(samples: dict[tuple, float], name: str, **labels) -> float | None:
    return samples.get((name, *sorted(labels.items())))


def named(samples: dict[tuple, float], name: str) -> dict[tuple, float]:
    return {key[1:]: v for key, v in samples.items() if key[0] == name}


# --- incidents and items ---------------------------------------------------------------------------


@pytest.fixture
def teams(db):
    payments, clearing, quiet = TeamFactory(slug="payments"), TeamFactory(slug="clearing"), TeamFactory(slug="quiet")
    SystemFactory(code="cashier", team=payments)
    SystemFactory(code="ledger", team=clearing)
    return payments, clearing, quiet


def incident(system: str, level: str, **timestamps):
    with time_machine.travel(N - minutes(30), tick=False):
        made = IncidentFactory(systems=[System.objects.get(code=system)], occurred_at=N - minutes(90), **timestamps)
        return severity_override_set(incident_id=made.pk, by=UserFactory(), level=level, reason="set for the test")


def test_incidents_not_closed_by_team_level_and_status(teams):
    payments, clearing, quiet = teams
    for _ in range(3):
        incident("cashier", "B")
    incident("cashier", "A", recovered_at=N - minutes(60))
    incident("cashier", "D", recovered_at=N - minutes(60), resolved_at=N - minutes(45))
    closed = incident("cashier", "B", recovered_at=N - minutes(60))
    Incident.objects.filter(pk=closed.pk).update(status=Status.CLOSED)  # closing needs a review: not the point
    incident("ledger", "C")
    incident("ledger", "C")

    with time_machine.travel(N, tick=False):
        samples = scrape()

    incidents = named(samples, "stability_incidents")
    # Every team, level and status, zeros included: 3 teams x 4 levels x 3 statuses.
    assert len(incidents) == 3 * 4 * 3
    assert value(samples, "stability_incidents", team="payments", level="B", status="open") == 3  # the closed B not
    assert value(samples, "stability_incidents", team="payments", level="A", status="recovered") == 1
    assert value(samples, "stability_incidents", team="payments", level="D", status="resolved") == 1
    assert value(samples, "stability_incidents", team="clearing", level="C", status="open") == 2
    assert sum(incidents.values()) == 3 + 1 + 1 + 2
    assert all(
        value(samples, "stability_incidents", team="quiet", level=lv, status=st) == 0
        for lv in LEVELS
        for st in STATUSES
    )
    # The open ones are the report's "not yet recovered" (incidents.selectors.incident_metrics).
    for team in (payments, clearing):
        unrecovered = sum(
            value(samples, "stability_incidents", team=team.slug, level=lv, status="open") for lv in LEVELS
        )
        assert unrecovered == incident_metrics(incidents=team.incidents.all())["unrecovered"]


def test_overdue_items_by_team(teams):
    payments_incident, clearing_incident = incident("cashier", "C"), incident("ledger", "C")

    def item(of, due: timedelta, status=ActionItem.Status.OPEN, **fields):
        return ActionItemFactory(incident=of, due_at=N + due, status=status, **fields)

    item(payments_incident, -timedelta(days=1))  # overdue
    item(payments_incident, -timedelta(days=3), ActionItem.Status.IN_PROGRESS)  # overdue
    item(payments_incident, -timedelta(days=1), ActionItem.Status.DONE, completed_at=N - timedelta(hours=1))
    item(
        payments_incident, -timedelta(days=1), ActionItem.Status.WAIVED, waive_reason="no longer needed"
    )  # never overdue
    item(payments_incident, timedelta(days=1))  # not due yet
    item(payments_incident, seconds(0))  # due exactly now: not yet past due
    item(clearing_incident, -minutes(60))  # overdue

    with time_machine.travel(N, tick=False):
        samples = scrape()
        by_team = {
            row["team"]: row["count"] for row in closed_loop_metrics(period=NOVEMBER, now=N)["overdue"]["by_team"]
        }

    assert named(samples, "stability_action_items_overdue") == {
        (("team", "clearing"),): 1,
        (("team", "payments"),): 2,
        (("team", "quiet"),): 0,
    }
    assert by_team == {"payments": 2, "clearing": 1}  # the selector agrees (every due date is in November)


# --- alerts: this month's follow-up -----------------------------------------------------------------


class Source:
    """An alerting system posting the generic format to the real webhook."""

    def __init__(self, *, is_test: bool = False, name: str | None = None, **fields):
        self.integration, self.token = integration_create(
            kind="generic", name=name or f"generic-{next(_names)}", is_test=is_test, **fields
        )

    def post(self, alerts: list[dict], *, kind: str = "generic", token: str | None = None):
        return Client().post(
            f"/api/v1/integrations/{kind}/",
            json.dumps({"alerts": alerts}),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {token or self.token}",
        )

    def fire(self, at: datetime, system: str) -> AlertOccurrence:
        name = f"alert-{next(_names)}"
        with time_machine.travel(at, tick=False):
            answer = self.post([{"labels": {"alertname": name, "system": system}, "starts_at": at.isoformat()}])
        assert answer.status_code == 200, answer.content
        return AlertOccurrence.objects.get(alertname=name)


def followed_up(occurrence: AlertOccurrence, after: timedelta) -> None:
    with time_machine.travel(occurrence.received_at + after, tick=False):
        alerts_follow_up(occurrence_ids=[occurrence.pk], by=UserFactory(), action="acknowledge")


@pytest.mark.parametrize("day_counts", [False, True], ids=["from-occurrences", "from-day-counts"])
def test_follow_up_figures_of_this_month_by_team(teams, day_counts):
    payments, clearing, _quiet = teams
    source, test_source = Source(), Source(is_test=True)
    followed_up(source.fire(N - minutes(60), "cashier"), seconds(60))  # in time
    followed_up(source.fire(N - minutes(120), "cashier"), seconds(300))  # in time: the window is inclusive
    followed_up(source.fire(N - minutes(180), "cashier"), seconds(301))  # missed: late
    source.fire(N - minutes(50), "cashier")  # missed: never followed up
    source.fire(N - minutes(2), "cashier")  # pending: received less than 5 minutes ago
    source.fire(datetime(2026, 10, 31, 16, 0, tzinfo=UTC), "cashier")  # Nov 1 00:00 local: November, missed
    source.fire(datetime(2026, 10, 31, 15, 59, 59, tzinfo=UTC), "cashier")  # Oct 31 23:59:59 local: October
    followed_up(source.fire(N - minutes(10), "ledger"), seconds(30))  # in time
    source.fire(N - minutes(1), "ledger")  # pending
    test_source.fire(N - minutes(40), "ledger")  # a test integration's: excluded, never counted
    source.fire(N - minutes(30), "unknown-system")  # no team found: missed, under team ""
    if day_counts:
        follow_up.refresh_day_counts(now=N)

    with time_machine.travel(N, tick=False):
        samples = scrape()
        breakdown = {
            row["key"]: row
            for row in follow_up_breakdown(period=NOVEMBER, dimensions=("team",), now=N, all_keys={"team": ["quiet"]})[
                "team"
            ]
        }
        payments_rate = follow_up_rate(
            occurrences=AlertOccurrence.objects.filter(team=payments), period=NOVEMBER, now=N
        )

    # payments: counted 5 (2 in time, 3 missed: late, never, Nov 1 00:00), 1 pending; rate 2 / 5 = 0.4.
    # clearing: counted 1 (in time), 1 pending, the test integration's excluded; rate 1 / 1 = 1.0.
    # no team: counted 1, missed 1, rate 0 / 1 = 0.0. quiet: nothing counted, no rate.
    expected = {
        "stability_alerts_counted_this_month": {"payments": 5, "clearing": 1, "": 1, "quiet": 0},
        "stability_alerts_in_time_this_month": {"payments": 2, "clearing": 1, "": 0, "quiet": 0},
        "stability_alerts_missed_this_month": {"payments": 3, "clearing": 0, "": 1, "quiet": 0},
        "stability_follow_up_rate_this_month": {"payments": 0.4, "clearing": 1.0, "": 0.0},
        # Pending: of the last window; alerts without a team only show when some are there.
        "stability_alerts_pending": {"payments": 1, "clearing": 1, "quiet": 0},
    }
    for name, by_team in expected.items():
        assert {dict(key)["team"]: v for key, v in named(samples, name).items()} == by_team, name
    # The selectors' figures, the one engine's.
    for team, row in breakdown.items():
        label = team or ""
        assert value(samples, "stability_alerts_missed_this_month", team=label) == row["missed"]
        assert value(samples, "stability_alerts_counted_this_month", team=label) == row["denominator"]
        assert value(samples, "stability_follow_up_rate_this_month", team=label) == row["rate"]
    assert payments_rate["overall"]["rate"] == 0.4


def test_alerts_pending_in_the_first_minutes_of_a_month_include_the_last_month(teams):
    source = Source()
    source.fire(datetime(2026, 10, 31, 15, 59, tzinfo=UTC), "cashier")  # Oct 31 23:59 local
    start = datetime(2026, 10, 31, 16, 2, tzinfo=UTC)  # Nov 1 00:02 local: 3 minutes later, still pending
    with time_machine.travel(start, tick=False):
        samples = scrape()
    assert value(samples, "stability_alerts_pending", team="payments") == 1
    assert value(samples, "stability_alerts_counted_this_month", team="payments") == 0
    assert value(samples, "stability_follow_up_rate_this_month", team="payments") is None


# --- webhooks ----------------------------------------------------------------------------------------


def test_webhook_notifications_and_alerts_are_counted_by_integration_and_outcome(teams):
    source = Source(name="am-prod")
    limited = Source(name="limited", rate_limit_per_minute=1)
    disabled = Source(name="disabled")
    Integration.objects.filter(pk=disabled.integration.pk).update(enabled=False)
    before = scrape()

    good = {"labels": {"alertname": "CashierDown", "system": "cashier"}, "starts_at": "2026-11-15T09:00:00+08:00"}
    with time_machine.travel(N, tick=False):
        assert source.post([good, {"labels": {}}]).status_code == 200  # 1 new alert, 1 malformed
        assert source.post([good]).status_code == 200  # a repeat
        assert source.post([good], kind="alertmanager").status_code == 403  # another kind's endpoint
        assert source.post([good], token="st_i_wrong").status_code == 401
        assert limited.post([good]).status_code == 200
        assert limited.post([good]).status_code == 429  # over 1 a minute
        assert disabled.post([good]).status_code == 403
        after = scrape()

    def added(name: str, **labels) -> float:
        return (value(after, name, **labels) or 0) - (value(before, name, **labels) or 0)

    notifications = "stability_webhook_notifications_total"
    assert added(notifications, integration="am-prod", outcome="accepted", reason="") == 2
    assert added(notifications, integration="am-prod", outcome="rejected", reason="wrong_kind") == 1
    assert added(notifications, integration="", outcome="rejected", reason="unauthorised") == 1
    assert added(notifications, integration="limited", outcome="accepted", reason="") == 1
    assert added(notifications, integration="limited", outcome="rate_limited", reason="rate_limited") == 1
    assert added(notifications, integration="disabled", outcome="rejected", reason="disabled") == 1
    assert added("stability_webhook_alerts_total", integration="am-prod", outcome="new") == 1
    assert added("stability_webhook_alerts_total", integration="am-prod", outcome="repeated") == 1
    assert added("stability_webhook_alerts_total", integration="am-prod", outcome="rejected") == 1
    assert added("stability_webhook_alerts_total", integration="limited", outcome="new") == 1
    assert (
        sum(v for key, v in after.items() if key[0] == notifications)
        - sum(v for key, v in before.items() if key[0] == notifications)
        == 7
    )


# --- notifications out -------------------------------------------------------------------------------


@pytest.fixture
def channels(teams):
    payments = teams[0]
    wecom = NotificationChannel.objects.create(
        kind="wecom", name="ops robot", target="https://robot.example/", team=payments
    )
    hook = NotificationChannel.objects.create(
        kind="webhook", name="hook", target="https://hook.example/", team=payments
    )
    return wecom, hook


FIVE_MINUTES_BEFORE = N - minutes(5)


def message(channel, *, ok=None, entries=1, finished=True, attempted=True, started=FIVE_MINUTES_BEFORE):
    return OutboundMessage.objects.create(
        channel=channel,
        destination=f"channel:{channel.pk}" if channel else "email",
        started_at=started,
        attempted_at=started if attempted else None,
        finished_at=started + seconds(2) if finished else None,
        ok=ok,
        entries=entries,
    )


def deliveries(samples) -> dict[tuple[str, str], float]:
    return {
        (dict(key)["kind"], dict(key)["outcome"]): v
        for key, v in named(samples, "stability_notification_deliveries_total").items()
        if v
    }


def test_notification_deliveries_by_kind_and_outcome_count_only_what_came_since(channels):
    wecom, hook = channels
    message(wecom, ok=True, entries=3)
    message(wecom, ok=True, entries=1)
    message(wecom, ok=False, entries=2)
    in_flight = message(wecom, entries=2, finished=False)
    message(None, ok=True)  # an email
    message(None, ok=None)  # a timeout after the request went out: unknown
    message(None, ok=None, attempted=False)  # closed before its request went out: not a delivery
    message(hook, ok=False)

    with time_machine.travel(N, tick=False):
        first = scrape()
    # wecom: sent 3 + 1 = 4, failed 2 (the one in flight not yet); email: sent 1, unknown 1; webhook: failed 1.
    assert deliveries(first) == {("wecom", "sent"): 4, ("wecom", "failed"): 2, ("email", "sent"): 1,
                                 ("email", "unknown"): 1, ("webhook", "failed"): 1}  # fmt: skip
    # Settled up to the message in flight; what follows it is counted at each scrape.
    assert exposition.notification_deliveries._through == in_flight.pk - 1

    OutboundMessage.objects.filter(pk=in_flight.pk).update(finished_at=N - minutes(1), ok=True)
    message(wecom, ok=True, entries=5, started=N - minutes(1))
    with time_machine.travel(N, tick=False):
        second = scrape()
    assert deliveries(second)[("wecom", "sent")] == 4 + 2 + 5
    assert exposition.notification_deliveries._through == OutboundMessage.objects.latest("pk").pk

    # A fresh process counts the same from the whole table.
    exposition.notification_deliveries.forget()
    with time_machine.travel(N, tick=False):
        assert deliveries(scrape()) == deliveries(second)

    # A channel deleted: its counts move to the kind "deleted", in every process alike.
    wecom.delete()
    with time_machine.travel(N, tick=False):
        third = deliveries(scrape())
    assert ("wecom", "sent") not in third
    assert third[("deleted", "sent")] == 11 and third[("deleted", "failed")] == 2


def test_a_message_left_unfinished_for_a_day_does_not_hold_the_count_back(channels):
    wecom, _hook = channels
    message(wecom, finished=False, started=N - timedelta(days=2))  # its worker died; nothing went there since
    last = message(wecom, ok=True, entries=4)
    with time_machine.travel(N, tick=False):
        samples = scrape()
    assert deliveries(samples) == {("wecom", "sent"): 4}
    assert exposition.notification_deliveries._through == last.pk


def notification(destination: str, *, deliver_after: datetime, status=Notification.Status.PENDING):
    return Notification.objects.create(
        key=f"test:{next(_names)}",
        event="item_due",
        step="due",
        destination=destination,
        language="en",
        fire_at=deliver_after,
        created_at=N - minutes(60),
        deliver_after=deliver_after,
        status=status,
    )


def test_pending_notifications_and_how_late_the_oldest_due_one_is(channels):
    wecom, _hook = channels
    robot = f"channel:{wecom.pk}"
    notification(robot, deliver_after=N - minutes(10))  # due 10 minutes ago: 600 s late
    notification(robot, deliver_after=N + minutes(120))  # quiet hours: pending, not late
    notification(robot, deliver_after=N - minutes(90), status=Notification.Status.SENT)
    notification("email", deliver_after=N - seconds(30))
    with time_machine.travel(N, tick=False):
        samples = scrape()
    assert value(samples, "stability_notifications_pending", kind="wecom") == 2
    assert value(samples, "stability_notifications_pending", kind="email") == 1
    assert value(samples, "stability_notifications_pending", kind="webhook") == 0
    assert value(samples, "stability_notifications_oldest_pending_age_seconds", kind="wecom") == 600
    assert value(samples, "stability_notifications_oldest_pending_age_seconds", kind="email") == 30
    assert value(samples, "stability_notifications_oldest_pending_age_seconds", kind="webhook") == 0


# --- the reminder sweep ------------------------------------------------------------------------------

SHARED = ["file"] + (["redis"] if os.environ.get("REDIS_URL") else [])


@pytest.fixture(params=SHARED)
def shared(request, settings):
    """Where the sweep's timing is kept: a file under VAR_DIR (embedded mode), or Redis."""
    if request.param == "file":
        settings.REDIS_URL = ""
    process_figures.forget_sweep_timing()
    yield request.param
    process_figures.forget_sweep_timing()


def test_sweep_timing_is_shared_through_redis_or_a_file(db, shared):
    with time_machine.travel(N, tick=False):
        samples = scrape()
    assert value(samples, "stability_reminder_sweep_duration_seconds_count") == 0
    assert value(samples, "stability_reminder_sweep_last_success_timestamp_seconds") is None

    process_figures.sweep_finished(seconds=1.5, finished_at=1_000.0)
    process_figures.sweep_finished(seconds=2.5, finished_at=1_060.0)
    samples = scrape()
    assert value(samples, "stability_reminder_sweep_duration_seconds_count") == 2
    assert value(samples, "stability_reminder_sweep_duration_seconds_sum") == 1.5 + 2.5
    assert value(samples, "stability_reminder_sweep_last_duration_seconds") == 2.5
    assert value(samples, "stability_reminder_sweep_last_success_timestamp_seconds") == 1_060.0


def test_the_beat_sweep_is_timed_and_a_failed_one_is_not_counted(db, shared, monkeypatch):
    with time_machine.travel(N, tick=False):
        tasks.sweep_reminders()
    samples = scrape()
    assert value(samples, "stability_reminder_sweep_duration_seconds_count") == 1
    assert value(samples, "stability_reminder_sweep_last_success_timestamp_seconds") == N.timestamp()

    def broken(**kwargs):
        raise RuntimeError("database gone")

    monkeypatch.setattr(tasks.reminders, "sweep", broken)
    with pytest.raises(RuntimeError), time_machine.travel(N + minutes(1), tick=False):
        tasks.sweep_reminders()
    samples = scrape()
    assert value(samples, "stability_reminder_sweep_duration_seconds_count") == 1
    assert value(samples, "stability_reminder_sweep_last_success_timestamp_seconds") == N.timestamp()


# --- the scrape as a whole ----------------------------------------------------------------------------


def test_an_empty_installation_exposes_every_family_with_zeros(db):
    answer = Client().get("/metrics")
    assert answer.status_code == 200
    names = {family.name for family in text_string_to_metric_families(answer.content.decode())}
    assert names >= EXPOSED_FAMILIES
    samples = scrape()
    assert all(v == 0 for key, v in samples.items() if key[0].startswith("stability_notification"))
    assert named(samples, "stability_follow_up_rate_this_month") == {}


def test_a_scrape_costs_the_same_queries_whatever_the_data(teams, channels):
    def queries() -> int:
        exposition.notification_deliveries.forget()
        with time_machine.travel(N, tick=False), CaptureQueriesContext(connection) as captured:
            scrape()
        return len(captured)

    few = queries()
    source = Source()
    for i in range(5):
        source.fire(N - minutes(30 + i), "cashier")
        source.fire(N - timedelta(days=3 + i), "ledger")
        incident("cashier", "B")
        message(channels[0], ok=True)
        notification("email", deliver_after=N - minutes(i))
    follow_up.refresh_day_counts(now=N)
    assert queries() == few


def test_openmetrics_is_served_to_a_scraper_that_asks_for_it(teams):
    incident("cashier", "B")
    answer = Client().get("/metrics", HTTP_ACCEPT="application/openmetrics-text; version=1.0.0")
    assert answer.status_code == 200
    assert answer["Content-Type"].startswith("application/openmetrics-text")
    families = {family.name: family for family in openmetrics_families(answer.content.decode())}
    open_b = [
        s
        for s in families["stability_incidents"].samples
        if s.labels == {"team": "payments", "level": "B", "status": "open"}
    ]
    assert [s.value for s in open_b] == [1]


def test_only_get_and_head_are_answered(db):
    assert Client().post("/metrics").status_code == 405
    assert Client().head("/metrics").status_code == 200


# --- access ------------------------------------------------------------------------------------------

TOKEN = "metrics-secret-token-0123456789"


def status(**request) -> int:
    return Client().get("/metrics", **request).status_code


def test_loopback_is_open_by_default_and_any_other_address_is_refused(db):
    assert status() == 200  # the test client's REMOTE_ADDR is 127.0.0.1
    assert status(REMOTE_ADDR="::1") == 200
    assert status(REMOTE_ADDR="::ffff:127.0.0.1") == 200  # a server listening on [::]
    answer = Client().get("/metrics", REMOTE_ADDR="10.1.2.3")
    assert answer.status_code == 403
    assert "METRICS_ALLOWED_NETWORKS" in answer.content.decode()
    assert status(REMOTE_ADDR="") == 403  # a Unix socket names no address


def test_a_bearer_token_opens_it_from_anywhere_and_a_wrong_one_from_nowhere(db, settings):
    settings.METRICS_TOKEN = TOKEN
    assert status(REMOTE_ADDR="10.1.2.3", HTTP_AUTHORIZATION=f"Bearer {TOKEN}") == 200
    missing = Client().get("/metrics", REMOTE_ADDR="10.1.2.3")
    assert missing.status_code == 401
    assert missing["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert status(REMOTE_ADDR="10.1.2.3", HTTP_AUTHORIZATION=f"Bearer {TOKEN}x") == 401
    assert status(REMOTE_ADDR="10.1.2.3", HTTP_AUTHORIZATION=f"Basic {TOKEN}") == 401  # only a bearer token
    # A wrong token is refused even from the loopback: a scraper's stale token shows.
    assert status(HTTP_AUTHORIZATION="Bearer stale") == 401
    assert status() == 200


def test_without_a_token_configured_no_token_is_right(db, settings):
    settings.METRICS_TOKEN = ""
    assert status(HTTP_AUTHORIZATION="Bearer ") == 200  # an empty bearer is no token: the loopback rule
    assert status(REMOTE_ADDR="10.1.2.3", HTTP_AUTHORIZATION="Bearer anything") == 401


def test_allowed_networks_replace_the_loopback(db, settings):
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8", "2001:db8::/32"]
    assert status(REMOTE_ADDR="10.1.2.3") == 200
    assert status(REMOTE_ADDR="2001:db8::7") == 200
    assert status(REMOTE_ADDR="192.168.1.1") == 403
    assert status() == 403  # the loopback is no longer in the list (a local proxy would open it to all)
    settings.METRICS_ALLOWED_NETWORKS = []
    assert status() == 403


def test_x_forwarded_for_opens_nothing_unless_proxies_are_trusted(db, settings):
    assert status(REMOTE_ADDR="10.1.2.3", HTTP_X_FORWARDED_FOR="127.0.0.1") == 403
    # Behind one trusted proxy on this machine: the client is the address the proxy saw, not the proxy's.
    settings.TRUSTED_PROXY_COUNT = 1
    assert status(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9") == 403
    assert status(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9, 127.0.0.1") == 200


def test_a_signed_in_session_opens_nothing(db):
    client = Client()
    client.force_login(UserFactory(role="admin", is_staff=True, is_superuser=True))
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 403


def test_guessing_the_token_is_limited_like_the_apis(db, settings):
    settings.METRICS_TOKEN = TOKEN
    settings.TOKEN_FAILURES_PER_ADDRESS = 3
    for _ in range(3):
        assert status(REMOTE_ADDR="10.9.9.9", HTTP_AUTHORIZATION="Bearer guess") == 401
    refused = Client().get("/metrics", REMOTE_ADDR="10.9.9.9", HTTP_AUTHORIZATION="Bearer guess")
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) > 0
    # Even the right token waits, from that address only.
    assert status(REMOTE_ADDR="10.9.9.9", HTTP_AUTHORIZATION=f"Bearer {TOKEN}") == 429
    assert status(REMOTE_ADDR="10.9.9.10", HTTP_AUTHORIZATION=f"Bearer {TOKEN}") == 200


def test_refusals_are_in_the_readers_language(db, settings):
    settings.METRICS_TOKEN = TOKEN
    answer = Client().get("/metrics", REMOTE_ADDR="10.1.2.3", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert answer.status_code == 401
    assert re.search(r"[\u4e00-\u9fff]", answer.content.decode())


def test_a_network_that_is_not_one_stops_the_start(tmp_path):
    from tests.test_settings import run_settings

    result = run_settings(tmp_path, METRICS_ALLOWED_NETWORKS="10.0.0.0/8,10.0.0.300/32")
    assert result.returncode != 0
    assert "METRICS_ALLOWED_NETWORKS: '10.0.0.300/32' is not a network" in result.stderr
    assert run_settings(tmp_path, METRICS_ALLOWED_NETWORKS="10.0.0.0/8,::1").returncode == 0


# --- the Grafana dashboard ----------------------------------------------------------------------------

DASHBOARD = ROOT / "docs" / "grafana-dashboard.json"
EXPOSED_FAMILIES = {
    "stability_incidents",
    "stability_action_items_overdue",
    "stability_alerts_pending",
    "stability_alerts_missed_this_month",
    "stability_alerts_in_time_this_month",
    "stability_alerts_counted_this_month",
    "stability_follow_up_rate_this_month",
    "stability_notifications_pending",
    "stability_notifications_oldest_pending_age_seconds",
    "stability_notification_deliveries",
    "stability_reminder_sweep_duration_seconds",
    "stability_webhook_notifications",
    "stability_webhook_alerts",
}


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    queries += [v["definition"] for v in dashboard["templating"]["list"] if v.get("definition")]
    return queries


def test_the_dashboard_is_a_grafana_dashboard_with_a_datasource_variable():
    dashboard = json.loads(DASHBOARD.read_text())
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["schemaVersion"] >= 36
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert panels and all(p["datasource"]["uid"] == "${datasource}" and p["targets"] for p in panels)
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])


def test_every_series_the_dashboard_queries_is_exposed_and_every_family_is_shown(teams):
    # Webhook counters appear once a webhook was answered, the sweep's gauges once a sweep finished.
    Source().fire(N - minutes(10), "cashier")  # missed: this month's rate has a value
    process_figures.sweep_finished(seconds=0.5, finished_at=1_000.0)
    with time_machine.travel(N, tick=False):
        samples = scrape()
    exposed = {key[0] for key in samples}
    used = {name for query in dashboard_queries() for name in re.findall(r"\bstability_[a-z_]+", query)}
    assert used - exposed == set()
    shown = {name.removesuffix("_total").removesuffix("_sum").removesuffix("_count") for name in used}
    assert EXPOSED_FAMILIES - shown == set()


# --- several gunicorn processes, and a real Prometheus scraping them ---------------------------------

PORT = 8108  # this helper's port


@pytest.fixture(scope="module")
def gunicorn(django_db_setup, tmp_path_factory):
    """The web as the README deploys it (2 gthread workers) with prometheus_client's multiprocess mode
    (PROMETHEUS_MULTIPROC_DIR, empty at the start), on the test database; /metrics needs the token."""
    import signal
    import subprocess
    import sys
    import time
    import urllib.request
    from types import SimpleNamespace
    from urllib.parse import urlsplit, urlunsplit

    if not os.environ.get("DATABASE_URL", "").startswith(("postgres", "postgresql")):
        pytest.skip("needs PostgreSQL: set DATABASE_URL (gunicorn reads the test database)")
    var_dir = tmp_path_factory.mktemp("var")
    multiproc = tmp_path_factory.mktemp("prometheus-multiproc")
    database = urlsplit(os.environ["DATABASE_URL"])
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": urlunsplit(database._replace(path="/" + connection.settings_dict["NAME"])),
        "VAR_DIR": str(var_dir),
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
        "METRICS_TOKEN": TOKEN,
        "METRICS_ALLOWED_NETWORKS": "",
        "LOG_LEVEL": "WARNING",
    }
    access_log = var_dir / "access.log"
    command = [str(Path(sys.executable).with_name("gunicorn")), "config.wsgi", "--bind", f"127.0.0.1:{PORT}"]
    command += [
        "--worker-class",
        "gthread",
        "--workers",
        "2",
        "--threads",
        "4",
        "--error-logfile",
        str(var_dir / "error.log"),
    ]
    command += ["--access-logfile", str(access_log), "--access-logformat", "%(p)s %(s)s %(r)s"]
    process = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"gunicorn exited: {(var_dir / 'error.log').read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/healthz", timeout=5) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("gunicorn did not answer /healthz within 60 s")
            time.sleep(0.2)
        yield SimpleNamespace(
            url=f"http://127.0.0.1:{PORT}", access_log=access_log, var_dir=var_dir, multiproc=multiproc
        )
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def http(url: str, *, body: dict | None = None, token: str | None = None) -> tuple[int, bytes]:
    """One request on a new connection, so that either worker may take it."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        url, data=None if body is None else json.dumps(body).encode(), method="POST" if body is not None else "GET"
    )
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def answering_workers(access_log: Path, path: str) -> set[str]:
    return {line.split()[0] for line in access_log.read_text().splitlines() if f" {path}" in line}


@pytest.mark.django_db(transaction=True)
def test_webhook_counts_add_up_across_gunicorn_workers(gunicorn):
    integration, token = integration_create(kind="generic", name="multi-worker")
    webhook = f"{gunicorn.url}/api/v1/integrations/generic/"
    alert = {"labels": {"alertname": "CashierDown"}, "starts_at": "2026-11-15T09:00:00+08:00"}
    posted = 0
    # Until both workers have answered webhooks (each request on a new connection; 8 at least).
    while posted < 8 or len(answering_workers(gunicorn.access_log, "/api/v1/integrations/generic/")) < 2:
        assert http(webhook, body={"alerts": [alert]}, token=token)[0] == 200
        posted += 1
        assert posted < 200, "one worker answered every webhook"
    assert http(webhook, body={"alerts": [alert]}, token="st_i_wrong")[0] == 401

    values = []
    for _ in range(8):
        code, body = http(f"{gunicorn.url}/metrics", token=TOKEN)
        assert code == 200, body
        samples = {
            (s.name, *sorted(s.labels.items())): s.value
            for family in text_string_to_metric_families(body.decode())
            for s in family.samples
        }
        values.append(
            (
                value(
                    samples,
                    "stability_webhook_notifications_total",
                    integration="multi-worker",
                    outcome="accepted",
                    reason="",
                ),
                value(
                    samples,
                    "stability_webhook_notifications_total",
                    integration="",
                    outcome="rejected",
                    reason="unauthorised",
                ),
            )
        )
    # Both workers answered webhooks, so a worker's own count is short of `posted`: every scrape, on whichever
    # worker, adds up both.
    assert values == [(posted, 1)] * 8
    assert http(f"{gunicorn.url}/metrics")[0] == 401  # the token is needed: no network is allowed


PROMETHEUS = Path("/usr/bin/prometheus")


@pytest.mark.skipif(
    not PROMETHEUS.is_file(), reason="needs Prometheus: apt-get install prometheus (.ci/run installs it)"
)
@pytest.mark.django_db(transaction=True)
def test_prometheus_scrapes_with_the_documented_config_and_every_dashboard_query_answers(gunicorn, tmp_path, settings):
    """The scrape config of docs/metrics-endpoint.md (job, metrics_path, bearer token) in a real Prometheus,
    then each query of the dashboard through Prometheus' HTTP API: valid PromQL, and series behind it."""
    import socket
    import subprocess
    import time
    import urllib.parse

    SystemFactory(code="cashier", team=TeamFactory(slug="payments"))
    incident("cashier", "B")
    _integration, token = integration_create(kind="generic", name="prometheus-test")
    alert = {"labels": {"alertname": "CashierDown", "system": "cashier"}, "starts_at": "2026-11-15T09:00:00+08:00"}
    settings.VAR_DIR = gunicorn.var_dir  # the sweep's timing where the server reads it (file or Redis)
    process_figures.sweep_finished(seconds=0.25, finished_at=time.time())

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = tmp_path / "prometheus.yml"
    config.write_text(
        json.dumps(
            {
                "global": {"scrape_interval": "1s"},
                "scrape_configs": [
                    {
                        "job_name": "stability-tracker",
                        "metrics_path": "/metrics",
                        "authorization": {"type": "Bearer", "credentials": TOKEN},
                        "static_configs": [{"targets": [f"127.0.0.1:{PORT}"]}],
                    }
                ],
            }
        )
    )
    command = [str(PROMETHEUS), f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}"]
    command += [f"--web.listen-address=127.0.0.1:{port}"]
    log = (tmp_path / "prometheus.log").open("w")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)

    def query(expression: str) -> dict:
        parameters = urllib.parse.urlencode({"query": expression})
        code, body = http(f"http://127.0.0.1:{port}/api/v1/query?{parameters}")
        answer = json.loads(body)
        assert code == 200 and answer["status"] == "success", (expression, answer)
        return answer["data"]

    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if [r["value"][1] for r in query('up{job="stability-tracker"}')["result"]] == ["1"]:
                    break
            except (OSError, json.JSONDecodeError, AssertionError):
                pass
            assert server.poll() is None, (tmp_path / "prometheus.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "Prometheus did not scrape /metrics within 60 s"
            time.sleep(0.5)
        for _ in range(3):  # webhooks between scrapes: their rate is not zero
            assert http(f"{gunicorn.url}/api/v1/integrations/generic/", body={"alerts": [alert]}, token=token)[0] == 200
            time.sleep(1.2)
        # Followed up at once: counted, so this month's rate has a value.
        alerts_follow_up(occurrence_ids=[AlertOccurrence.objects.get().pk], by=UserFactory(), action="acknowledge")
        time.sleep(2)
        incidents = query('stability_incidents{team="payments", level="B", status="open"}')["result"]
        assert [r["value"][1] for r in incidents] == ["1"]
        for expression in dashboard_queries():
            expression = expression.replace("$__rate_interval", "1m").replace("$team", ".*")
            if expression.startswith("label_values("):
                continue
            assert query(expression)["result"], f"no series for {expression}"
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
