"""GET /metrics: the tracker's own figures in Prometheus' text format (docs/metrics-endpoint.md).

Figures are read at scrape time, each from where it is defined: the follow-up figures of this month from
stability.selectors.follow_up_breakdown (the day counts: a handful of queries whatever the history),
incidents and overdue items with incidents.selectors' conditions, notifications from their tables, and
what no table records (webhook answers, the sweep's timing) from stability.process_figures. Every query
reads a bounded set through an index: incidents not closed, open items past due, pending notifications,
the messages finished since the last scrape (NotificationDeliveries).

Access: open to METRICS_ALLOWED_NETWORKS (default the loopback), else to `Authorization: Bearer
METRICS_TOKEN`; never to a session. The client address is accounts.guessing.client_address (REMOTE_ADDR,
or behind TRUSTED_PROXY_COUNT proxies the address the outermost one saw): X-Forwarded-For opens nothing
by itself. Wrong tokens count against the address like the API's (429 past the limit).
"""

import hmac
import ipaddress
import logging
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Case, Count, Min, Q, QuerySet, Sum, Value, When
from django.db.models.aggregates import Max
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from accounts.guessing import client_address, token_failure, token_refusal
from incidents.models import ActionItem, Incident, Level, Status, Team
from incidents.periods import Period, this_month
from incidents.selectors import overdue
from stability import process_figures
from stability.models import Notification, NotificationChannel, OutboundMessage
from stability.reminders import EMAIL_DESTINATION
from stability.selectors import follow_up_breakdown

logger = logging.getLogger(__name__)

# Incidents shown by status: all but closed (their count only grows; the report has them).
NOT_CLOSED = (Status.OPEN, Status.RECOVERED, Status.RESOLVED)
NO_TEAM = ""  # the label of alerts no team was found for
DELETED_CHANNEL = "deleted"  # the kind label of messages to a channel deleted since


# --- the figures --------------------------------------------------------------------------------


def _team_slugs() -> dict[int, str]:
    return dict(Team.objects.values_list("pk", "slug").order_by("slug"))


def incident_families(teams: dict[int, str]) -> Iterator[Metric]:
    """Incidents not closed by team, level and status: open (not recovered yet: the status follows the
    timestamps), recovered, resolved (the closed loop still to do). Every team and level, zeros included;
    one query on the index (status, occurred_at)."""
    counts = Counter(
        {
            (team_id, level, status): n
            for team_id, level, status, n in Incident.objects.filter(status__in=NOT_CLOSED)
            .values_list("team_id", "level", "status")
            .annotate(n=Count("pk"))
            .order_by()
        }
    )
    family = GaugeMetricFamily(
        "stability_incidents",
        "Incidents not closed, by team, level (A-D) and status: open (impact not over: not recovered), "
        "recovered, resolved (the closed loop still to do).",
        labels=["team", "level", "status"],
    )
    for team_id, slug in teams.items():
        for level in Level.values:
            for status in NOT_CLOSED:
                family.add_metric([slug, level, status], counts[(team_id, level, status)])
    yield family


def item_families(teams: dict[int, str], *, now: datetime) -> Iterator[Metric]:
    """Action items overdue by their incident's team (incidents.selectors.overdue: open or in progress,
    due before now); every team, zeros included."""
    counts = dict(ActionItem.objects.filter(overdue(now)).values_list("team_id").annotate(n=Count("pk")).order_by())
    family = GaugeMetricFamily(
        "stability_action_items_overdue",
        "Closed-loop action items overdue (open or in progress, due date passed), by the incident's team.",
        labels=["team"],
    )
    for team_id, slug in teams.items():
        family.add_metric([slug], counts.get(team_id, 0))
    yield family


def follow_up_families(teams: dict[int, str], *, now: datetime) -> Iterator[Metric]:
    """This month's follow-up figures per team from the one engine (stability.selectors.follow_up_breakdown),
    and the alerts pending now (received less than a window ago, from a breakdown of the last window, so
    that the first minutes of a month still see the previous month's last alerts)."""
    slugs = list(teams.values())
    month = follow_up_breakdown(period=this_month(now), dimensions=("team",), now=now, all_keys={"team": slugs})
    window = timedelta(seconds=settings.FOLLOW_UP_WINDOW_SECONDS)
    recent = Period("range", now - window, now + window)
    pending = follow_up_breakdown(period=recent, dimensions=("team",), now=now, all_keys={"team": slugs})

    def gauge(name: str, documentation: str) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, documentation, labels=["team"])

    families = {
        "missed": gauge(
            "stability_alerts_missed_this_month",
            "Alerts of this month (TIME_ZONE) not followed up within the follow-up window, late or never, by team.",
        ),
        "in_time": gauge(
            "stability_alerts_in_time_this_month",
            "Alerts of this month followed up within the follow-up window (the rate's numerator), by team.",
        ),
        "denominator": gauge(
            "stability_alerts_counted_this_month",
            "Alerts of this month the follow-up rate counts (its denominator: not excluded, not pending), by team.",
        ),
    }
    rate = gauge(
        "stability_follow_up_rate_this_month",
        "This month's follow-up rate (in time / counted, 0-1), by team; absent while a team has no alert counted.",
    )
    for row in month["team"]:
        team = row["key"] or NO_TEAM
        for key, family in families.items():
            family.add_metric([team], row[key])
        if row["rate"] is not None:
            rate.add_metric([team], row["rate"])
    waiting = gauge(
        "stability_alerts_pending",
        "Alerts waiting for a follow-up, received less than the follow-up window ago, by team.",
    )
    for row in pending["team"]:
        waiting.add_metric([row["key"] or NO_TEAM], row["pending"])
    yield from families.values()
    yield rate
    yield waiting


def _channel_kinds() -> dict[str, str]:
    """The kind of each destination a notification or message names ("email", "channel:<id>")."""
    kinds = {f"channel:{pk}": kind for pk, kind in NotificationChannel.objects.values_list("pk", "kind")}
    return kinds | {EMAIL_DESTINATION: NotificationChannel.Kind.EMAIL}


def _kinds() -> list[str]:
    return [*NotificationChannel.Kind.values, DELETED_CHANNEL]


def pending_notification_families(kinds: dict[str, str], *, now: datetime) -> Iterator[Metric]:
    """Pending notifications by channel kind, and how late the oldest of those already due is (one query
    on the partial index notification_pending)."""
    count: Counter[str] = Counter()
    oldest: dict[str, datetime] = {}
    for destination, n, due in (
        Notification.objects.filter(status=Notification.Status.PENDING)
        .values_list("destination")
        .annotate(n=Count("pk"), due=Min("deliver_after", filter=Q(deliver_after__lte=now)))
        .order_by()
    ):
        kind = kinds.get(destination, DELETED_CHANNEL)
        count[kind] += n
        if due is not None:
            oldest[kind] = min(due, oldest.get(kind, due))
    pending = GaugeMetricFamily(
        "stability_notifications_pending",
        "Notifications recorded and not delivered yet (waiting for quiet hours, a retry or a worker), by channel kind.",
        labels=["kind"],
    )
    age = GaugeMetricFamily(
        "stability_notifications_oldest_pending_age_seconds",
        "Seconds since the oldest pending notification could have gone (its deliver-after time: quiet hours "
        "and retry waits are not lateness), by channel kind; 0 when none is due.",
        labels=["kind"],
    )
    for kind in _kinds():
        pending.add_metric([kind], count[kind])
        age.add_metric([kind], max(0.0, (now - oldest[kind]).total_seconds()) if kind in oldest else 0.0)
    yield pending
    yield age


class NotificationDeliveries:
    """The notifications carried by finished messages (OutboundMessage: sent, failed, unknown outcome) per
    destination, counted from the start of the table, so the counts only grow: a counter.

    Counting the whole table on every scrape would cost more as history grows. A message is settled once
    finished (its outcome is not written again) or a day old: this process keeps the counts of the
    messages up to the last id before the first unsettled one, and each scrape counts only the messages
    after it (three queries on the primary key). Every process counts the same rows, so their counts agree.
    A message still unfinished after a day (its worker died and its destination got nothing since) is not
    counted; destinations, not kinds, are kept, so a channel deleted later moves its counts to the kind
    "deleted" in every process at once."""

    SETTLED_AFTER = timedelta(days=1)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.forget()

    def forget(self) -> None:
        """Count again from the start (tests: their rows are rolled back)."""
        with self._lock:
            self._through = 0  # every message with id <= this is counted in _settled
            self._settled: Counter[tuple[str, str]] = Counter()

    @staticmethod
    def _counted(messages: QuerySet) -> Iterable[tuple[str, str, int]]:
        outcome = Case(
            When(ok=True, then=Value("sent")),
            When(ok=False, then=Value("failed")),
            # The request went out and no answer came back (a timeout, a worker killed mid-send).
            When(attempted_at__isnull=False, then=Value("unknown")),
            default=Value(""),  # closed before its request went out: sent again in another message
        )
        return (
            messages.filter(finished_at__isnull=False)
            .annotate(outcome=outcome)
            .exclude(outcome="")
            .values_list("destination", "outcome")
            .annotate(n=Sum("entries"))
            .order_by()
        )

    def counts(self, *, now: datetime) -> Counter[tuple[str, str]]:
        """{(destination, outcome): notifications}, as of now."""
        with self._lock:
            newer = OutboundMessage.objects.filter(pk__gt=self._through)
            bounds = newer.aggregate(
                last=Max("pk"),
                first_open=Min("pk", filter=Q(finished_at__isnull=True, started_at__gt=now - self.SETTLED_AFTER)),
            )
            through = bounds["first_open"] - 1 if bounds["first_open"] else bounds["last"] or self._through
            # Asked even when nothing settled since (an empty range): the same queries whatever the data.
            for destination, outcome, n in self._counted(newer.filter(pk__lte=through)):
                self._settled[(destination, outcome)] += n
            self._through = max(self._through, through)
            counts = Counter(self._settled)
            for destination, outcome, n in self._counted(OutboundMessage.objects.filter(pk__gt=self._through)):
                counts[(destination, outcome)] += n
            return counts


notification_deliveries = NotificationDeliveries()


def delivery_families(kinds: dict[str, str], *, now: datetime) -> Iterator[Metric]:
    by_kind: Counter[tuple[str, str]] = Counter()
    for (destination, outcome), n in notification_deliveries.counts(now=now).items():
        by_kind[(kinds.get(destination, DELETED_CHANNEL), outcome)] += n
    family = CounterMetricFamily(
        "stability_notification_deliveries",
        "Notifications carried by finished messages, by channel kind and outcome: sent, failed (each failed "
        "attempt; a retry may send it later) or unknown (the request went out, no answer came back).",
        labels=["kind", "outcome"],
    )
    for kind in _kinds():
        for outcome in ("sent", "failed", "unknown"):
            family.add_metric([kind, outcome], by_kind[(kind, outcome)])
    yield family


def sweep_families() -> Iterator[Metric]:
    """The reminder sweep's timing, shared by the worker that ran it (stability.process_figures)."""
    try:
        timing = process_figures.sweep_timing()
    except Exception:  # Redis down: the other figures still go out
        logger.warning("Cannot read the reminder sweep's timing", exc_info=True)
        return
    durations = SummaryMetricFamily(
        "stability_reminder_sweep_duration_seconds",
        "Time the reminder sweep (beat, every minute) took, over the sweeps that finished.",
        count_value=timing.count if timing else 0,
        sum_value=timing.total_seconds if timing else 0.0,
    )
    yield durations
    if timing is None:
        return
    yield GaugeMetricFamily(
        "stability_reminder_sweep_last_duration_seconds",
        "Time the last reminder sweep that finished took.",
        value=timing.last_seconds,
    )
    yield GaugeMetricFamily(
        "stability_reminder_sweep_last_success_timestamp_seconds",
        "When the last reminder sweep finished (Unix time): more than a few minutes ago, the sweep is stalled.",
        value=timing.last_finished_at,
    )


class TrackerFigures(Collector):
    """The figures read from the database (and the sweep's shared timing), at each scrape."""

    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        teams = _team_slugs()
        kinds = _channel_kinds()
        yield from incident_families(teams)
        yield from item_families(teams, now=now)
        yield from follow_up_families(teams, now=now)
        yield from pending_notification_families(kinds, now=now)
        yield from delivery_families(kinds, now=now)
        yield from sweep_families()


# --- access --------------------------------------------------------------------------------------


def _in_allowed_network(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:  # no address (a Unix socket), or not one
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 from a server listening on [::]
    return any(ip in ipaddress.ip_network(network, strict=False) for network in settings.METRICS_ALLOWED_NETWORKS)


def _bearer(request: HttpRequest) -> str | None:
    scheme, _sep, token = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _text(message: str, status: int, headers: dict | None = None) -> HttpResponse:
    return HttpResponse(message + "\n", status=status, content_type="text/plain; charset=utf-8", headers=headers)


def refusal(request: HttpRequest) -> HttpResponse | None:
    """Why this request may not read /metrics, as the answer to give; None when it may. A bearer token,
    when sent, decides: right (METRICS_TOKEN) lets in from anywhere, wrong is 401 from anywhere (a
    scraper's stale token shows, even from an allowed network)."""
    token = _bearer(request)
    if token is not None:
        if (wait := token_refusal(scope="metrics", request=request)) is None:
            expected = settings.METRICS_TOKEN
            if expected and hmac.compare_digest(token.encode(), expected.encode()):
                return None
            wait = token_failure(scope="metrics", request=request)
        if wait is not None:
            message = _("Too many wrong tokens from this address; retry in %(wait)s s.") % {"wait": wait}
            return _text(message, 429, {"Retry-After": str(wait)})
        return _text(_("Wrong metrics token."), 401, {"WWW-Authenticate": 'Bearer realm="metrics"'})
    if _in_allowed_network(client_address(request)):
        return None
    if settings.METRICS_TOKEN:
        message = _("The metrics need a bearer token (METRICS_TOKEN) from this address.")
        return _text(message, 401, {"WWW-Authenticate": 'Bearer realm="metrics"'})
    return _text(_("The metrics are open to the allowed networks only (METRICS_ALLOWED_NETWORKS)."), 403)


@never_cache
@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    """The figures in the format the scraper asks for (Prometheus text, or OpenMetrics by Accept)."""
    if (refused := refusal(request)) is not None:
        return refused
    registry = CollectorRegistry(auto_describe=False)  # no describe: the queries run once, at generation
    registry.register(TrackerFigures())
    process_figures.register_counters(registry)
    encoder, content_type = choose_encoder(request.META.get("HTTP_ACCEPT", ""))
    return HttpResponse(encoder(registry), content_type=content_type)
