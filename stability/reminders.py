"""The reminder sweep: what is due now, read from the database's state, recorded once per key.

Celery beat runs `sweep` every minute (stability.tasks.sweep_reminders). One set-based pass reads the
open action items near or past their due date, the unfollowed alerts of the last day, the teams'
policies, channels and managers, works out in Python which step of each schedule has come, and
records one Notification per step and destination under a unique key (what, step, slot,
destination): two sweeps at once, or beat running twice, record each notification once. A sweep
records only the latest step of each schedule, so one that was down for three days sends one
overdue message, not three. Delivery is handed to stability.tasks.deliver_notifications after the
commit; when the broker is down, the next sweep hands over whatever is still pending.

The schedule of one action item (docs/reminders.md), under its team's ReminderPolicy or the settings:
- owner: before-N at due_at - N days (N in days_before; not when that moment came before the item
  existed), due at due_at, overdue-k at due_at + k days (k >= 1);
- managers: escalation-j at due_at + escalate_after_days + j * escalate_every_days (j >= 0), to the
  team's team channels when it has no managers.
Chat messages recorded in quiet hours wait for their end (deliver_after); email does not wait.

The weekly and monthly reports go the same way, recorded by send_reports (beat, Mondays and the 1st at
WEEKLY_REPORT_HOUR / MONTHLY_REPORT_HOUR local) for the ISO week or month that just ended.
"""

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from incidents import periods
from incidents.models import ActionItem, Team
from stability.models import AlertOccurrence, Event, Notification, NotificationChannel, ReminderPolicy

logger = logging.getLogger(__name__)

DAY = timedelta(days=1)
ITEM_EVENTS = (Event.ITEM_BEFORE_DUE, Event.ITEM_DUE, Event.ITEM_OVERDUE, Event.ITEM_ESCALATION)
ALERT_EVENTS = (Event.ALERT_UNFOLLOWED, Event.ALERT_ESCALATION)
# What a team channel carries when its `events` list is empty; a person's carries everything of theirs.
TEAM_DEFAULT_EVENTS = frozenset(
    {Event.ALERT_UNFOLLOWED, Event.ALERT_ESCALATION, Event.ITEM_ESCALATION, Event.WEEKLY_REPORT, Event.MONTHLY_REPORT}
)
EMAIL_DESTINATION = "email"
DELIVER_TASK = "stability.tasks.deliver_notifications"


# --- policy and steps ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    days_before: tuple[int, ...]  # ascending
    escalate_after_days: int
    escalate_every_days: int
    quiet_hours_start: time
    quiet_hours_end: time


def default_policy() -> Policy:
    return Policy(
        days_before=tuple(sorted(set(settings.REMINDER_DAYS_BEFORE))),
        escalate_after_days=settings.REMINDER_ESCALATE_AFTER_DAYS,
        escalate_every_days=max(1, settings.REMINDER_ESCALATE_EVERY_DAYS),
        quiet_hours_start=time.fromisoformat(settings.REMINDER_QUIET_HOURS_START),
        quiet_hours_end=time.fromisoformat(settings.REMINDER_QUIET_HOURS_END),
    )


def team_policies() -> dict[int, Policy]:
    """The teams that have their own policy (one query); the others follow default_policy()."""
    return {
        row.team_id: Policy(
            days_before=tuple(sorted({int(n) for n in row.days_before})),
            escalate_after_days=row.escalate_after_days,
            escalate_every_days=max(1, row.escalate_every_days),
            quiet_hours_start=row.quiet_hours_start,
            quiet_hours_end=row.quiet_hours_end,
        )
        for row in ReminderPolicy.objects.all()
    }


@dataclass(frozen=True)
class Step:
    name: str  # before-3, due, overdue-2, escalation-0, unfollowed, escalation, 2026-W48
    event: str
    fire_at: datetime


def owner_step(*, due_at: datetime, created_at: datetime, now: datetime, policy: Policy) -> Step | None:
    """The latest step of the owner's schedule whose time has come, or None."""
    if now >= due_at:
        days = (now - due_at) // DAY
        if days == 0:
            return Step("due", Event.ITEM_DUE, due_at)
        return Step(f"overdue-{days}", Event.ITEM_OVERDUE, due_at + days * DAY)
    for days in policy.days_before:  # ascending: the first that has come is the latest
        fire_at = due_at - days * DAY
        if fire_at <= now:
            # Came before the item existed: "due in 3 days" a day late would mislead; wait for the next.
            if fire_at < created_at:
                return None
            return Step(f"before-{days}", Event.ITEM_BEFORE_DUE, fire_at)
    return None


def escalation_step(*, due_at: datetime, now: datetime, policy: Policy) -> Step | None:
    """The latest escalation to the managers whose time has come, or None."""
    first = due_at + policy.escalate_after_days * DAY
    if now < first:
        return None
    every = policy.escalate_every_days * DAY
    count = (now - first) // every
    return Step(f"escalation-{count}", Event.ITEM_ESCALATION, first + count * every)


def quiet_hours_end(moment: datetime, policy: Policy) -> datetime | None:
    """When the quiet hours around `moment` end (local wall clock), or None outside them."""
    start, end = policy.quiet_hours_start, policy.quiet_hours_end
    if start == end:
        return None
    local = timezone.localtime(moment)
    clock = local.time()
    inside = start <= clock < end if start < end else (clock >= start or clock < end)
    if not inside:
        return None
    day = local.date() if clock < end else local.date() + DAY
    return datetime.combine(day, end, tzinfo=timezone.get_default_timezone())


def digest_slot(now: datetime) -> tuple[str, datetime] | None:
    """This ISO week's digest (label, time) when `now` lies in [digest time, + 1 day), else None."""
    local = timezone.localtime(now)
    year, week, weekday = local.isocalendar()
    day = local.date() + (settings.REMINDER_DIGEST_WEEKDAY - weekday) * DAY
    at = datetime.combine(day, time(settings.REMINDER_DIGEST_HOUR), tzinfo=timezone.get_default_timezone())
    if at <= now < at + DAY:
        return f"{year}-W{week:02d}", at
    return None


# --- who gets it, where ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    id: int
    language: str
    is_active: bool


@dataclass(frozen=True)
class Channel:
    id: int
    kind: str
    events: frozenset[str]
    language: str
    team_id: int | None
    user_id: int | None

    @property
    def is_chat(self) -> bool:
        return self.kind in NotificationChannel.CHAT_KINDS


@dataclass(frozen=True)
class Destination:
    suffix: str  # the key's last part: user:7:email, user:7:channel:3, channel:3
    destination: str
    channel_id: int | None
    recipient_id: int | None
    language: str
    is_chat: bool


@dataclass
class Directory:
    """Channels and managers, read in a few queries and looked up per item in memory."""

    personal: dict[int, list[Channel]] = field(default_factory=lambda: defaultdict(list))
    team: dict[int, list[Channel]] = field(default_factory=lambda: defaultdict(list))
    managers: dict[int, list[Person]] = field(default_factory=lambda: defaultdict(list))
    teams_read: set[int] = field(default_factory=set)

    @classmethod
    def load(cls, team_ids: Iterable[int]) -> "Directory":
        """Every enabled channel (one query) and the managers of these teams (one query)."""
        directory = cls()
        for row in NotificationChannel.objects.filter(enabled=True).values(
            "id", "kind", "events", "language", "team_id", "user_id"
        ):
            events = row["events"] if isinstance(row["events"], list) else []
            channel = Channel(
                id=row["id"],
                kind=row["kind"],
                events=frozenset(events),
                language=row["language"],
                team_id=row["team_id"],
                user_id=row["user_id"],
            )
            if channel.user_id is not None:
                directory.personal[channel.user_id].append(channel)
            else:
                directory.team[channel.team_id].append(channel)
        directory.read_managers(team_ids)
        return directory

    def read_managers(self, team_ids: Iterable[int]) -> None:
        """The managers of the teams not read yet, in one query."""
        team_ids = set(team_ids) - self.teams_read
        if not team_ids:
            return
        self.teams_read |= team_ids
        for row in Team.managers.through.objects.filter(team_id__in=team_ids).values(
            "team_id", "user_id", "user__language", "user__is_active"
        ):
            self.managers[row["team_id"]].append(
                Person(id=row["user_id"], language=row["user__language"], is_active=row["user__is_active"])
            )

    def for_person(self, person: Person, event: str) -> list[Destination]:
        """The person's channels that carry the event; none: email to their address."""
        if not person.is_active:
            return []
        language = person.language or settings.LANGUAGE_CODE
        channels = [c for c in self.personal.get(person.id, ()) if not c.events or event in c.events]
        if not channels:
            return [Destination(f"user:{person.id}:email", EMAIL_DESTINATION, None, person.id, language, False)]
        return [
            Destination(
                f"user:{person.id}:channel:{c.id}",
                _channel_destination(c),
                c.id,
                person.id,
                c.language or language,
                c.is_chat,
            )
            for c in channels
        ]

    def for_reader(self, person: Person, event: str) -> list[Destination]:
        """A report's reader: their channels that carry the report (or everything); a person with no
        channel of their own, email. One whose channels all leave the report out chose not to get it
        (unlike a reminder, which always finds its person)."""
        if not self.personal.get(person.id):
            return self.for_person(person, event)
        return [d for d in self.for_person(person, event) if d.channel_id is not None]

    def for_team(self, team_id: int, event: str, *, by_default: bool) -> list[Destination]:
        """The team's channels that carry the event (`by_default`: also those with no event list)."""
        return [
            Destination(
                f"channel:{c.id}",
                _channel_destination(c),
                c.id,
                None,
                c.language or settings.LANGUAGE_CODE,
                c.is_chat,
            )
            for c in self.team.get(team_id, ())
            if event in c.events or (by_default and not c.events and event in TEAM_DEFAULT_EVENTS)
        ]

    def escalation(self, team_id: int, event: str) -> list[Destination]:
        """The team's active managers; a team without any: its team channels."""
        managers = [m for m in self.managers.get(team_id, ()) if m.is_active]
        if managers:
            return [d for manager in managers for d in self.for_person(manager, event)]
        return self.for_team(team_id, event, by_default=True)


def _channel_destination(channel: Channel) -> str:
    # Every email goes through one delivery task (one SMTP connection); robots each have their own.
    return EMAIL_DESTINATION if channel.kind == NotificationChannel.Kind.EMAIL else f"channel:{channel.id}"


# --- the sweep -------------------------------------------------------------------------------------


def _utc_stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class _Recorder:
    now: datetime
    rows: dict[str, Notification] = field(default_factory=dict)
    items: list[dict] = field(default_factory=list)  # the open items read
    directory: Directory = field(default_factory=Directory)

    def add(
        self,
        *,
        prefix: str,
        step: Step,
        destinations: list[Destination],
        policy: Policy | None,
        action_item_id: int | None = None,
        alert_id: int | None = None,
        team_id: int | None = None,
        due_at: datetime | None = None,
    ) -> None:
        for destination in destinations:
            deliver_after = self.now
            if destination.is_chat and policy is not None:
                deliver_after = quiet_hours_end(self.now, policy) or self.now
            key = f"{prefix}:{step.name}:{destination.suffix}"
            self.rows[key] = Notification(
                key=key,
                event=step.event,
                step=step.name,
                action_item_id=action_item_id,
                alert_id=alert_id,
                team_id=team_id,
                recipient_id=destination.recipient_id,
                channel_id=destination.channel_id,
                destination=destination.destination,
                language=destination.language,
                due_at=due_at,
                fire_at=step.fire_at,
                created_at=self.now,
                deliver_after=deliver_after,
            )


@dataclass(frozen=True)
class SweepResult:
    considered: int  # notifications the state calls for now (recorded now or by an earlier sweep)
    skipped: int  # pending ones the state no longer calls for
    destinations: tuple[str, ...]  # handed to delivery


def _record_items(recorder: _Recorder, *, now: datetime, policies: dict[int, Policy], fallback: Policy) -> None:
    """The open items' steps: the items due within the longest days_before, in one query."""
    horizon = max(max(p.days_before, default=0) for p in [fallback, *policies.values()])
    items = ActionItem.objects.filter(status__in=ActionItem.OPEN_STATUSES, due_at__lte=now + horizon * DAY).values(
        "id", "due_at", "created_at", "owner_id", "owner__language", "owner__is_active", "team_id"
    )
    recorder.items = items = list(items)
    recorder.directory = directory = Directory.load({item["team_id"] for item in items})
    for item in items:
        team_id = item["team_id"]
        policy = policies.get(team_id, fallback)
        due_at = item["due_at"]
        prefix = f"item:{item['id']}:due={_utc_stamp(due_at)}"
        common = {"prefix": prefix, "policy": policy, "action_item_id": item["id"], "due_at": due_at}
        step = owner_step(due_at=due_at, created_at=item["created_at"], now=now, policy=policy)
        if step is not None:
            owner = Person(id=item["owner_id"], language=item["owner__language"], is_active=item["owner__is_active"])
            destinations = directory.for_person(owner, step.event) + directory.for_team(
                team_id, step.event, by_default=False
            )
            recorder.add(step=step, destinations=destinations, **common)
        step = escalation_step(due_at=due_at, now=now, policy=policy)
        if step is not None:
            recorder.add(step=step, destinations=directory.escalation(team_id, step.event), **common)


def _record_digests(recorder: _Recorder, *, now: datetime, fallback: Policy) -> None:
    slot = digest_slot(now)
    if slot is None:
        return
    label, at = slot
    owners = (
        ActionItem.objects.filter(status__in=ActionItem.OPEN_STATUSES)
        .values("owner_id", "owner__language", "owner__is_active")
        .distinct()
        .order_by()
    )
    step = Step(label, Event.DIGEST, at)
    for row in owners:
        person = Person(id=row["owner_id"], language=row["owner__language"], is_active=row["owner__is_active"])
        destinations = recorder.directory.for_person(person, Event.DIGEST)
        recorder.add(prefix="digest", step=step, destinations=destinations, policy=fallback)


def _record_alerts(recorder: _Recorder, *, now: datetime) -> None:
    """Unfollowed alerts of the last day: the team's channels once the window has passed (a follow-up at
    exactly the window is still in time), its managers at REMINDER_ALERT_ESCALATE_AFTER_SECONDS. Alerts
    with no team have no one to tell. Quiet hours do not hold these back: late, they are noise."""
    window = timedelta(seconds=settings.FOLLOW_UP_WINDOW_SECONDS)
    escalate_after = timedelta(seconds=settings.REMINDER_ALERT_ESCALATE_AFTER_SECONDS)
    alerts = list(
        AlertOccurrence.objects.filter(
            excluded=AlertOccurrence.Exclusion.NONE,
            followed_up_at__isnull=True,
            team__isnull=False,
            received_at__lt=now - window,
            received_at__gte=now - timedelta(seconds=settings.REMINDER_ALERT_LOOKBACK_SECONDS),
        ).values("id", "received_at", "team_id")
    )
    directory = recorder.directory
    directory.read_managers({a["team_id"] for a in alerts})
    for alert in alerts:
        prefix = f"alert:{alert['id']}"
        received_at = alert["received_at"]
        step = Step("unfollowed", Event.ALERT_UNFOLLOWED, received_at + window)
        recorder.add(
            prefix=prefix,
            step=step,
            destinations=directory.for_team(alert["team_id"], step.event, by_default=True),
            policy=None,
            alert_id=alert["id"],
        )
        if received_at + escalate_after <= now:
            step = Step("escalation", Event.ALERT_ESCALATION, received_at + escalate_after)
            recorder.add(
                prefix=prefix,
                step=step,
                destinations=directory.escalation(alert["team_id"], step.event),
                policy=None,
                alert_id=alert["id"],
            )


def _pending_item_rows(*, now: datetime) -> list[dict]:
    """The pending item notifications this sweep may judge, read BEFORE it reads the state: each was
    committed by a sweep that read the state earlier than this one will, so this sweep's view is at least
    as new. Rows a concurrent sweep records later (from a newer read) are not among them, and neither are
    rows stamped with a later clock than ours, nor those a worker holds (its own check decides)."""
    free = Q(claimed_at__isnull=True) | Q(claimed_at__lt=now - timedelta(seconds=settings.REMINDER_CLAIM_LEASE_SECONDS))
    return list(
        Notification.objects.filter(
            free, status=Notification.Status.PENDING, event__in=ITEM_EVENTS, created_at__lte=now
        ).values("id", "key", "action_item_id", "due_at")
    )


def _skip_what_the_state_no_longer_calls_for(
    *, now: datetime, keys: set[str], items: list[dict], candidates: list[dict]
) -> int:
    """Of the pending item notifications read before the state (`candidates`), those the state would not
    record now (the item is done, its due date or owner changed, a later step came) are skipped with the
    reason; so are alert notices of alerts followed up meanwhile. A skip is only ever decided on a row
    older than this sweep's view, and the item's own reasons are checked again by the UPDATE itself, so
    an item reopened or moved back since this sweep read it keeps its reminders."""
    free = Q(claimed_at__isnull=True) | Q(claimed_at__lt=now - timedelta(seconds=settings.REMINDER_CLAIM_LEASE_SECONDS))
    pending = Notification.objects.filter(free, status=Notification.Status.PENDING)
    stale = [row for row in candidates if row["key"] not in keys]
    skipped = 0
    with translation.override(settings.LANGUAGE_CODE):
        if stale:
            skipped += _skip_stale_item_rows(pending, stale=stale, items=items)
        skipped += pending.filter(event__in=ALERT_EVENTS, alert__followed_up_at__isnull=False).update(
            status=Notification.Status.SKIPPED, last_error=_("Stale: the alert was followed up.")
        )
    return skipped


def _why_stale(stale: list[dict], items: list[dict]) -> tuple[list[int], list[int], list[int]]:
    """The stale rows' ids by reason: item closed, due date moved, superseded (a later step or other
    recipients), as the sweep read the items."""
    open_due = {item["id"]: item["due_at"] for item in items}
    read_open = set(open_due)
    unknown = {row["action_item_id"] for row in stale} - read_open
    # Open items beyond the horizon (the due date moved out) are not among `items`.
    open_due.update(
        ActionItem.objects.filter(pk__in=unknown, status__in=ActionItem.OPEN_STATUSES).values_list("id", "due_at")
    )
    closed, moved, superseded = [], [], []
    for row in stale:
        due_at = open_due.get(row["action_item_id"])
        if due_at is None:
            closed.append(row["id"])
        elif due_at != row["due_at"]:
            moved.append(row["id"])
        elif row["action_item_id"] in read_open:
            superseded.append(row["id"])
        # else: done when read, open again now: this sweep computed no steps for it; the next one will.
    return closed, moved, superseded


def _skip_stale_item_rows(pending, *, stale: list[dict], items: list[dict]) -> int:
    closed, moved, superseded = _why_stale(stale, items)
    skipped = 0
    # The state as it is when the UPDATE runs, not as this sweep read it.
    if closed:
        skipped += (
            pending.filter(pk__in=closed)
            .exclude(action_item__status__in=ActionItem.OPEN_STATUSES)
            .update(status=Notification.Status.SKIPPED, last_error=_("Stale: the action item is no longer open."))
        )
    if moved:
        skipped += (
            pending.filter(pk__in=moved)
            .exclude(action_item__due_at=F("due_at"))
            .update(status=Notification.Status.SKIPPED, last_error=_("Stale: the due date changed."))
        )
    if superseded:
        skipped += pending.filter(pk__in=superseded).update(
            status=Notification.Status.SKIPPED,
            last_error=_("Superseded by a later reminder, or the recipients changed."),
        )
    return skipped


@dataclass(frozen=True)
class ReportKind:
    """A report delivered on the first day of each period of its kind, for the period just ended."""

    period_kind: str  # incidents.periods: week (ISO, from Monday), month
    event: str
    hour_setting: str  # the local hour of that first day it goes out from


REPORT_KINDS = {
    "week": ReportKind("week", Event.WEEKLY_REPORT, "WEEKLY_REPORT_HOUR"),
    "month": ReportKind("month", Event.MONTHLY_REPORT, "MONTHLY_REPORT_HOUR"),
}
REPORT_EVENTS = tuple(kind.event for kind in REPORT_KINDS.values())


def report_slot(kind: str, now: datetime) -> tuple[str, datetime] | None:
    """The label of the period of `kind` that just ended and the report's sending time, when `now` lies on
    the first day of the next one (Monday for a week, the 1st for a month), cut in TIME_ZONE, from its hour
    (WEEKLY_REPORT_HOUR, MONTHLY_REPORT_HOUR) to the end of that day; else None (a later run sends nothing)."""
    report = REPORT_KINDS[kind]
    current = periods.containing(report.period_kind, now)
    zone = timezone.get_default_timezone()
    first_day = timezone.localtime(current.start, zone).date()
    at = datetime.combine(first_day, time(getattr(settings, report.hour_setting)), tzinfo=zone)
    if not at <= now < datetime.combine(first_day + DAY, time.min, tzinfo=zone):
        return None
    return current.previous().label, at


def send_reports(
    kind: str, *, now: datetime | None = None, enqueue: Callable[[Iterable[str]], int] | None = None
) -> SweepResult:
    """Record the report of the period of `kind` ("week", "month") that just ended, for every team, once per
    destination, on the next period's first day from its hour local (report_slot): to each of the team's
    active managers (Directory.for_reader: their own channels that carry the report's event; a manager
    with no channel of their own, email with the PDF) and to the team's channels that carry it (by default
    all of them). Key:
    report:team:<id>:<label>:<destination> (label 2026-W48, 2026-11), so a second run records nothing new.
    Delivery (stability.delivery) renders the report when it sends, and publishes what it sent."""
    now = (now or timezone.now()).replace(microsecond=0)
    slot = report_slot(kind, now)
    if slot is None:
        return SweepResult(considered=0, skipped=0, destinations=())
    label, at = slot
    policies, fallback = team_policies(), default_policy()
    teams = list(Team.objects.order_by("pk").values_list("pk", flat=True))
    recorder = _Recorder(now=now, directory=Directory.load(teams))
    step = Step(label, REPORT_KINDS[kind].event, at)
    for team_id in teams:
        managers = [m for m in recorder.directory.managers.get(team_id, ()) if m.is_active]
        destinations = [d for manager in managers for d in recorder.directory.for_reader(manager, step.event)]
        destinations += recorder.directory.for_team(team_id, step.event, by_default=True)
        recorder.add(
            prefix=f"report:team:{team_id}",
            step=step,
            destinations=destinations,
            policy=policies.get(team_id, fallback),
            team_id=team_id,
        )
    with transaction.atomic():
        Notification.objects.bulk_create(sorted(recorder.rows.values(), key=lambda n: n.key), ignore_conflicts=True)
        destinations = tuple(ready_destinations(now=now))
        if destinations:
            transaction.on_commit(lambda: (enqueue or enqueue_deliveries)(destinations))
    return SweepResult(considered=len(recorder.rows), skipped=0, destinations=destinations)


def ready_destinations(*, now: datetime) -> list[str]:
    """Destinations with pending notifications that may go now and no worker holds (one query)."""
    lease = timedelta(seconds=settings.REMINDER_CLAIM_LEASE_SECONDS)
    return sorted(
        Notification.objects.filter(status=Notification.Status.PENDING, deliver_after__lte=now)
        .filter(Q(claimed_at__isnull=True) | Q(claimed_at__lt=now - lease))
        .values_list("destination", flat=True)
        .distinct()
        .order_by()
    )


def enqueue_deliveries(destinations: Iterable[str]) -> int:
    """Hand each destination to a delivery task; returns how many were handed over. A broker that
    refuses is logged and the rest wait for the next sweep, which finds them still pending."""
    handed = 0
    for destination in destinations:
        try:
            # By name: the task module imports this one, never the other way round (its route, the
            # deliveries queue, is looked up by name too: config/celery.py).
            current_app.send_task(DELIVER_TASK, args=[destination])
        except Exception:
            logger.exception("Cannot hand deliveries to the broker; the next sweep tries again.")
            break
        handed += 1
    return handed


def record_due_notifications(*, now: datetime) -> tuple[dict[str, Notification], list[dict]]:
    """What the state calls for at `now`, keyed, without writing; and the open items read."""
    policies = team_policies()
    fallback = default_policy()
    recorder = _Recorder(now=now)
    _record_items(recorder, now=now, policies=policies, fallback=fallback)
    _record_digests(recorder, now=now, fallback=fallback)
    _record_alerts(recorder, now=now)
    return recorder.rows, recorder.items


def sweep(*, now: datetime | None = None, enqueue: Callable[[Iterable[str]], int] | None = None) -> SweepResult:
    """Record every notification due at `now` once, skip pending ones the state no longer calls for,
    and hand what may go now to delivery after the commit. Queries do not grow with items or alerts;
    nothing here talks to the network, so no lock is held across it."""
    now = (now or timezone.now()).replace(microsecond=0)
    with transaction.atomic():
        # First, before the state: the rows this sweep may judge (a newer sweep's rows are never among them).
        candidates = _pending_item_rows(now=now)
        rows, items = record_due_notifications(now=now)
        # One INSERT ... ON CONFLICT DO NOTHING, in an order every sweep shares (concurrent ones wait on the
        # same keys in the same order, never on each other crosswise), which is also the order of delivery.
        ordered = sorted(rows.values(), key=lambda n: (n.action_item_id or 0, n.alert_id or 0, n.key))
        Notification.objects.bulk_create(ordered, ignore_conflicts=True)
        skipped = _skip_what_the_state_no_longer_calls_for(now=now, keys=set(rows), items=items, candidates=candidates)
        destinations = tuple(ready_destinations(now=now))
        if destinations:
            transaction.on_commit(lambda: (enqueue or enqueue_deliveries)(destinations))
    return SweepResult(considered=len(rows), skipped=skipped, destinations=destinations)
