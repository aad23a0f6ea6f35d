"""Delivery of recorded notifications, one destination at a time (stability.tasks.deliver_notifications).

1. Claim, in one short transaction: the destination's pending notifications whose deliver_after has
   come and that no worker holds (claimed_at empty or older than the lease), locked with SKIP LOCKED
   so two workers never take the same one, and stamped claimed_at = now (the stamp is the claim: only
   rows still carrying it are this worker's). For a chat robot, its row is locked and its budget
   counted first: at most its messages-per-minute in any 60 s, counting the messages in flight and
   those answered in the last 60 s, each message batching up to REMINDER_CHAT_ENTRIES_PER_MESSAGE.
   Then, holding no lock: each claimed notification is checked against the state (an item done or
   whose due date moved, an alert followed up, a channel disabled, a person deactivated -> skipped
   with the reason); a chat robot's inside their quiet hours wait for the end; the others are
   rendered (a team's weekly or monthly report computed once), batched and addressed. A second short
   transaction opens the messages: under the robot's lock its budget is counted again (what does not
   fit waits), and only the notifications still under this claim go in.
2. Send, holding no database lock: chat messages, emails (one per notification and recipient, in
   the recipient's language), webhook calls. Each message is stamped attempted_at (committed) just
   before its request goes out. A heartbeat renews the claim every REMINDER_CLAIM_HEARTBEAT_SECONDS
   while the worker lives, so a slow receiver never lets another worker take the claim over.
3. Record each outcome: sent; or the reason, and either a retry after an exponential backoff
   (deliver_after moves, and past quiet hours for chat) or, after REMINDER_MAX_ATTEMPTS or a
   configuration error, failed; or, when the request went out and no answer came (a timeout), unknown:
   a chat robot or mail server may have it, so it is not sent again; a generic webhook is retried with
   the same Idempotency-Key header. A report once sent is published (stability.published), the very
   Report the message carried.

A worker that dies (SIGKILL, a lost machine) stops beating: a lease later its claims are free. Its
messages left unfinished are closed: those whose request never went out are sent by the next worker;
those whose request went out are unknown (a webhook's: sent again, same Idempotency-Key).
"""

import logging
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core import mail
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connection, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from incidents.models import ActionItem
from stability import channels, links, notices, published, reminders, reports
from stability.channels import DeliveryError, Entry
from stability.models import Event, Notification, NotificationChannel, OutboundMessage
from stability.reminders import (
    EMAIL_DESTINATION,
    ITEM_EVENTS,
    Policy,
    default_policy,
    quiet_hours_end,
    team_policies,
)

logger = logging.getLogger(__name__)

BATCH = 200  # notifications claimed at once for email and webhooks
RETRY_CAP = timedelta(hours=1)


def retry_delay(attempts: int) -> timedelta:
    """After the n-th failed attempt: REMINDER_RETRY_BACKOFF_SECONDS x 2^(n-1), at most an hour."""
    return min(timedelta(seconds=settings.REMINDER_RETRY_BACKOFF_SECONDS * 2 ** max(0, attempts - 1)), RETRY_CAP)


# --- claiming --------------------------------------------------------------------------------------


def _stale_reason(notification: Notification) -> str | None:
    """Why the notification must not go any more, or None."""
    if notification.event == Event.CHANNEL_TEST:  # left pending by a process that died while testing
        return _("Skipped: a test message is sent only while an administrator waits for it.")
    if notification.destination != EMAIL_DESTINATION and notification.channel_id is None:
        return _("Skipped: the channel was deleted.")
    if notification.channel_id is not None and not notification.channel.enabled:
        return _("Skipped: the channel is disabled.")
    if notification.recipient_id is not None and not notification.recipient.is_active:
        return _("Skipped: the recipient is deactivated.")
    if notification.event in ITEM_EVENTS:
        return _stale_item_reason(notification)
    if notification.alert_id is not None and notification.alert.followed_up_at is not None:
        return _("Stale: the alert was followed up.")
    return None


def _stale_item_reason(notification: Notification) -> str | None:
    item = notification.action_item
    if item.status not in ActionItem.OPEN_STATUSES:
        return _("Stale: the action item is no longer open.")
    if item.due_at != notification.due_at:
        return _("Stale: the due date changed.")
    return None


@dataclass
class _Message:
    """One message to send, and the notifications it carries."""

    kind: str
    language: str
    notifications: list[Notification]
    entries: list[Entry]
    target: str = ""
    secret: str = ""
    addresses: list[str] = field(default_factory=list)
    payload: dict | None = None
    report: reports.Report | None = None  # a report's email: the report, drawn as the attached PDF when sent
    carried: tuple[reports.Report, ...] = ()  # the reports its notifications carry: published once sent
    row: OutboundMessage | None = None


@dataclass
class _Plan:
    messages: list[_Message] = field(default_factory=list)
    skipped: int = 0
    failed: int = 0
    wait: timedelta | None = None  # until more can go (chat budget)


@dataclass
class _Claim:
    """The notifications one worker took, stamped claimed_at = `now`: the stamp is the claim, so only rows
    still carrying it are this worker's (another takes a claim over only once it is a lease old)."""

    destination: str
    now: datetime
    channel: NotificationChannel | None
    rows: list[Notification]
    limit: int  # rows asked for: when as many came, more may be waiting
    wait: timedelta | None = None  # a robot out of budget: until a slot frees

    @property
    def chat(self) -> bool:
        return _is_chat(self.channel)

    def mine(self, ids: Iterable[int]):
        """These notifications, as long as they are still pending under this claim."""
        return Notification.objects.filter(pk__in=list(ids), status=Notification.Status.PENDING, claimed_at=self.now)


def _is_chat(channel: NotificationChannel | None) -> bool:
    return channel is not None and channel.enabled and channel.is_chat


def _chat_budget(channel: NotificationChannel, *, now: datetime) -> tuple[int, timedelta | None]:
    """Messages the robot may still get, and when the next slot frees when none. A sliding window: the
    messages in flight and those answered (finished_at, at full precision) less than 60 s ago are
    counted. A message reaches the robot before its answer comes back, and ours go out after `now`, so
    no 60 s window the robot looks at ever holds more than the limit."""
    limit = channel.messages_per_minute or settings.REMINDER_CHAT_MESSAGES_PER_MINUTE
    window = timedelta(seconds=60)
    counted = list(
        OutboundMessage.objects.filter(channel=channel)
        .filter(Q(finished_at__isnull=True) | Q(finished_at__gt=now - window, attempted_at__isnull=False))
        .values_list("finished_at", flat=True)
    )
    remaining = limit - len(counted)
    if remaining > 0:
        return remaining, None
    answered = sorted(moment for moment in counted if moment is not None)
    must_leave = len(counted) - limit + 1  # the window frees a slot when this many have left it
    if must_leave <= len(answered):
        return 0, answered[must_leave - 1] + window - now
    return 0, window  # messages still in flight: their answer, then a minute


def _close_abandoned(destination: str, *, now: datetime, lapsed: datetime) -> None:
    """Messages a dead worker left unfinished (no live claim on any of their notifications) are closed.
    One whose request never went out is simply closed: its notifications are claimed again. One whose
    request went out may have arrived: its notifications are unknown (never sent twice), except a generic
    webhook's, sent again with the same Idempotency-Key for the receiver to drop."""
    live = Notification.objects.filter(
        message=OuterRef("pk"), status=Notification.Status.PENDING, claimed_at__gte=lapsed
    )
    abandoned = list(
        OutboundMessage.objects.filter(destination=destination, finished_at__isnull=True, started_at__lt=lapsed)
        .filter(~Exists(live))
        .values_list("pk", "attempted_at", "channel__kind")
    )
    if not abandoned:
        return
    posted = [pk for pk, attempted_at, _kind in abandoned if attempted_at is not None]
    unknown = [pk for pk, attempted_at, kind in abandoned if attempted_at is not None and kind != "webhook"]
    OutboundMessage.objects.filter(pk__in=[pk for pk, *_rest in abandoned], attempted_at__isnull=True).update(
        finished_at=now, error=_("The worker stopped before sending it; sent again.")
    )
    OutboundMessage.objects.filter(pk__in=posted).update(
        finished_at=now, error=_("The worker sending it stopped after the request went out: outcome unknown.")
    )
    if unknown:
        Notification.objects.filter(message__in=unknown, status=Notification.Status.PENDING).update(
            status=Notification.Status.UNKNOWN,
            claimed_at=None,
            last_error=_(
                "Outcome unknown: the worker sending it stopped after the request went out; not sent again, "
                "so never twice."
            ),
        )


def _locked_channel(destination: str) -> NotificationChannel | None:
    if destination == EMAIL_DESTINATION:
        return None
    # Locked: a robot's budget is spent by one worker at a time.
    channel_id = int(destination.removeprefix("channel:"))
    return NotificationChannel.objects.select_for_update().filter(pk=channel_id).first()


def _claim(destination: str, *, now: datetime) -> _Claim:
    """One short transaction: close what a dead worker left, count a robot's budget, and take the ready
    notifications no live worker holds (SELECT ... FOR UPDATE SKIP LOCKED, then claimed_at = now), so two
    workers never take the same one. Nothing is judged, rendered or addressed here."""
    lapsed = now - timedelta(seconds=settings.REMINDER_CLAIM_LEASE_SECONDS)
    with transaction.atomic(), translation.override(settings.LANGUAGE_CODE):
        channel = _locked_channel(destination)
        _close_abandoned(destination, now=now, lapsed=lapsed)
        limit, wait = BATCH, None
        if _is_chat(channel):
            remaining, wait = _chat_budget(channel, now=now)
            limit = remaining * settings.REMINDER_CHAT_ENTRIES_PER_MESSAGE
            if not limit:
                return _Claim(destination=destination, now=now, channel=channel, rows=[], limit=0, wait=wait)
        rows = list(
            Notification.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(destination=destination, status=Notification.Status.PENDING, deliver_after__lte=now)
            .filter(Q(claimed_at__isnull=True) | Q(claimed_at__lt=lapsed))
            .select_related(
                "channel",
                "recipient",
                "team",
                "action_item__incident",
                "action_item__team",
                "action_item__owner",
                "alert__team",
                "alert__system",
                "incident__team",
                "incident__commander",
            )
            .prefetch_related("incident__systems")
            .order_by("id")[:limit]
        )
        if rows:
            Notification.objects.filter(pk__in=[n.pk for n in rows]).update(claimed_at=now)
    for notification in rows:
        notification.claimed_at = now
    return _Claim(destination=destination, now=now, channel=channel, rows=rows, limit=limit, wait=wait)


# --- from a claim to messages, holding no lock -------------------------------------------------------


def _quiet_policy(notification: Notification, policies: dict[int, Policy], fallback: Policy) -> Policy | None:
    """The policy whose quiet hours hold this chat notification back (as the sweep chose it); alert
    notices have none: late, they are noise; nor incident messages: a major incident at night is when
    they matter."""
    if notification.alert_id is not None or notification.incident_id is not None:
        return None
    if notification.action_item_id is not None:
        return policies.get(notification.action_item.team_id, fallback)
    if notification.team_id is not None:
        return policies.get(notification.team_id, fallback)
    return fallback


def _sort_out(claim: _Claim, plan: _Plan) -> tuple[list[Notification], list[datetime]]:
    """The claimed notifications still to go now; the stale ones are skipped with the reason, and a robot's
    inside quiet hours wait for their end (returned: those ends)."""
    skips: dict[str, list[int]] = defaultdict(list)
    quiet: dict[datetime, list[int]] = defaultdict(list)
    live = []
    policies, fallback = (team_policies(), default_policy()) if claim.chat else ({}, None)
    for notification in claim.rows:
        reason = _stale_reason(notification)
        if reason:
            skips[reason].append(notification.pk)
            continue
        if claim.chat:
            # Checked when it goes, not only when recorded: a retry, or a backlog, reaching quiet hours.
            notification.quiet_policy = _quiet_policy(notification, policies, fallback)
            end = notification.quiet_policy and quiet_hours_end(claim.now, notification.quiet_policy)
            if end:
                quiet[end].append(notification.pk)
                continue
        live.append(notification)
    for end, ids in quiet.items():
        claim.mine(ids).update(deliver_after=end, claimed_at=None)
    _skip(claim, plan, skips)
    return live, list(quiet)


def _skip(claim: _Claim, plan: _Plan, skips: dict[str, list[int]]) -> None:
    for reason, ids in skips.items():
        if not ids:
            continue
        plan.skipped += claim.mine(ids).update(status=Notification.Status.SKIPPED, last_error=reason, claimed_at=None)


def _pack(sender: channels.ChatSender, entries: list[tuple[Notification, Entry]]) -> list[list[tuple]]:
    """Greedy batches of at most REMINDER_CHAT_ENTRIES_PER_MESSAGE entries within the sender's size."""
    batches: list[list[tuple]] = []
    current: list[tuple] = []
    for pair in entries:
        candidate = [*current, pair]
        too_big = sender.content_size([e for _n, e in candidate]) > sender.max_bytes
        if current and (len(candidate) > settings.REMINDER_CHAT_ENTRIES_PER_MESSAGE or too_big):
            batches.append(current)
            current = [pair]
        else:
            current = candidate
    if current:
        batches.append(current)
    return batches


def _chat_messages(channel: NotificationChannel, rendered: notices.Rendered) -> list[_Message]:
    """A robot's entries batched into messages, per language."""
    sender = channels.CHAT_SENDERS[channel.kind]
    by_language: dict[str, list] = defaultdict(list)
    for pair in rendered.entries:
        by_language[pair[0].language].append(pair)
    messages = []
    for language, pairs in by_language.items():
        with translation.override(language):
            for batch in _pack(sender, pairs):
                messages.append(
                    _Message(
                        kind=channel.kind,
                        language=language,
                        notifications=[n for n, _e in batch],
                        entries=[e for _n, e in batch],
                        target=channel.target,
                        secret=channel.secret,
                        carried=_carried_reports(rendered, [n for n, _e in batch]),
                    )
                )
    return messages


def _carried_reports(rendered: notices.Rendered, notifications: list[Notification]) -> tuple[reports.Report, ...]:
    """The reports these notifications carry, each once (a team's report is one value per delivery)."""
    carried = {}
    for notification in notifications:
        report = rendered.report_of.get(notification.pk)
        if report is not None:
            carried[id(report)] = report
    return tuple(carried.values())


def _addressed_messages(rendered: notices.Rendered) -> tuple[list[_Message], list[int]]:
    """One email or webhook call per notification, addressed; and the notifications with no address."""
    messages, no_address = [], []
    for notification, entry in rendered.entries:
        channel = notification.channel
        message = _Message(
            kind=channel.kind if channel else NotificationChannel.Kind.EMAIL,
            language=notification.language,
            notifications=[notification],
            entries=[entry],
            carried=_carried_reports(rendered, [notification]),
        )
        if message.kind == NotificationChannel.Kind.WEBHOOK:
            message.target, message.secret = channel.target, channel.secret
            message.payload = notices.webhook_payload(notification, entry)
        else:
            # An email channel's addresses; a person's email channel with none, or no channel: theirs.
            recipient = notification.recipient
            message.addresses = channels.email_addresses(channel.target if channel else "") or (
                [recipient.email] if recipient is not None and recipient.email else []
            )
            if not message.addresses:
                no_address.append(notification.pk)
                continue
            message.report = rendered.report_of.get(notification.pk)
        messages.append(message)
    return messages, no_address


def _open_messages(claim: _Claim, messages: list[_Message], plan: _Plan) -> None:
    """One short transaction: the messages become rows (what a robot's budget counts and the heartbeat
    renews) carrying the notifications still this worker's (attempts + 1). A robot's budget is counted
    again under its lock: a message that no longer fits waits, its notifications released."""
    if not messages:
        return
    with transaction.atomic():
        if claim.chat:
            messages = _within_budget(claim, messages, plan)
        plan.messages = _still_mine(claim, messages)
        for message in plan.messages:
            message.row = OutboundMessage(
                channel=claim.channel or message.notifications[0].channel,
                destination=claim.destination,
                started_at=claim.now,
                entries=len(message.notifications),
            )
        OutboundMessage.objects.bulk_create([m.row for m in plan.messages])
        claimed = []
        for message in plan.messages:
            for notification in message.notifications:
                notification.attempts += 1
                notification.message = message.row
                claimed.append(notification)
        Notification.objects.bulk_update(claimed, ["attempts", "message"])


def _within_budget(claim: _Claim, messages: list[_Message], plan: _Plan) -> list[_Message]:
    """The messages the robot may still get, counted under its lock (another worker may have spent some
    since the claim, and long entries may have made more messages than the claim counted on); the others
    wait, their notifications released."""
    channel = _locked_channel(claim.destination)
    remaining, wait = _chat_budget(channel, now=claim.now) if channel else (0, None)
    if len(messages) <= remaining:
        return messages
    claim.mine([n.pk for message in messages[remaining:] for n in message.notifications]).update(claimed_at=None)
    plan.wait = wait or timedelta(seconds=60)
    return messages[:remaining]


def _still_mine(claim: _Claim, messages: list[_Message]) -> list[_Message]:
    """The messages with only the notifications still under this claim, locked until the messages open: a
    claim that outlived its lease (a long render) may have been taken over meanwhile, and those are the
    other worker's."""
    ids = [n.pk for message in messages for n in message.notifications]
    mine = set(claim.mine(ids).select_for_update().values_list("pk", flat=True))
    kept = []
    for message in messages:
        pairs = [(n, e) for n, e in zip(message.notifications, message.entries, strict=True) if n.pk in mine]
        if pairs:
            message.notifications, message.entries = [n for n, _e in pairs], [e for _n, e in pairs]
            kept.append(message)
    return kept


def _prepare(destination: str, *, now: datetime) -> _Plan:
    """Claim (a short transaction), then judge, render, batch and address what was claimed holding no
    lock, and open the messages to send (another short transaction)."""
    claim = _claim(destination, now=now)
    plan = _Plan(wait=claim.wait)
    if not claim.rows:
        return plan
    with translation.override(settings.LANGUAGE_CODE):
        live, quiet = _sort_out(claim, plan)
        rendered = notices.render(live, now=now)
        _skip(claim, plan, {_("Skipped: nothing open to list."): rendered.empty})
        if claim.chat:
            messages = _chat_messages(claim.channel, rendered)
        else:
            messages, no_address = _addressed_messages(rendered)
            if no_address:
                plan.failed += claim.mine(no_address).update(
                    status=Notification.Status.FAILED,
                    attempts=1,
                    claimed_at=None,
                    last_error=_("Failed: the recipient has no email address and no channel."),
                )
        _open_messages(claim, messages, plan)
    if quiet and plan.wait is None and not plan.messages:
        plan.wait = min(quiet) - now
    if len(claim.rows) == claim.limit and plan.wait is None:
        # More may be waiting: a robot's next minute, or the next batch of emails and webhook calls.
        plan.wait = timedelta(seconds=60) if claim.chat else timedelta(0)
    return plan


# --- sending and recording -------------------------------------------------------------------------


def _report_attachment(report: reports.Report) -> tuple[str, bytes, str]:
    """The weekly or monthly report as a PDF in the message's language (the report computed when it was
    rendered)."""
    from stability import report_pdf

    try:
        content = report_pdf.report_pdf_bytes(report)
    except Exception as error:  # a missing library or font: say so on the notification, and retry
        raise DeliveryError(_("Cannot draw the report PDF: %(error)s") % {"error": error}) from error
    return report_pdf.filename(report), content, "application/pdf"


def _send(message: _Message, smtp, *, timeout: float | None = None) -> None:
    with translation.override(message.language):
        if message.kind in channels.CHAT_SENDERS:
            sender = channels.CHAT_SENDERS[message.kind]
            sender.send(message.target, message.entries, secret=message.secret, timeout=timeout)
        elif message.kind == NotificationChannel.Kind.WEBHOOK:
            channels.send_webhook(message.target, message.payload, secret=message.secret, timeout=timeout)
        else:
            entry = message.entries[0]
            email = mail.EmailMessage(
                subject=entry.title[:200],
                body=entry.as_text(),
                from_email=settings.DEFAULT_FROM_EMAIL,
                to=message.addresses,
                connection=smtp,
            )
            if message.report is not None:
                email.attach(*_report_attachment(message.report))
            try:
                email.send()
            except TimeoutError as error:  # the server may have accepted it before going quiet
                raise DeliveryError(
                    _("Outcome unknown: the mail server did not answer in time (%(error)s).") % {"error": error},
                    unknown=True,
                ) from error
            except Exception as error:  # SMTP and socket errors alike: the reason is what matters
                raise DeliveryError(_("Mail server: %(error)s") % {"error": error}) from error


def _record(message: _Message, error: DeliveryError | None, *, now: datetime) -> tuple[int, int, timedelta | None]:
    """Store the outcome; returns (sent, failed for good, retry delay of the others). Only notifications
    this message still holds are written: one whose claim another worker took over is that worker's."""
    row = message.row
    ids = [n.pk for n in message.notifications]
    mine = Notification.objects.filter(pk__in=ids, message=row, status=Notification.Status.PENDING)
    unknown = error is not None and error.unknown
    with transaction.atomic():
        OutboundMessage.objects.filter(pk=row.pk).update(
            finished_at=now, ok=None if unknown else error is None, error=error.reason if error else ""
        )
        if error is None:
            sent = mine.update(status=Notification.Status.SENT, sent_at=now, claimed_at=None)
            return sent, 0, None
        if unknown and message.kind != NotificationChannel.Kind.WEBHOOK:
            # A robot or a mail server has no way to drop a repeat: better once or never than twice.
            mine.update(
                status=Notification.Status.UNKNOWN,
                claimed_at=None,
                last_error=error.reason + " " + _("Not sent again, so never twice."),
            )
            return 0, 0, None
        return _record_failure(message, mine, error, now=now)


def _record_failure(
    message: _Message, mine: QuerySet, error: DeliveryError, *, now: datetime
) -> tuple[int, int, timedelta | None]:
    """Failed for good after the last attempt or when retrying cannot help; else a retry after the backoff
    (for a chat message, past quiet hours)."""
    final = [n.pk for n in message.notifications if not error.retryable or n.attempts >= settings.REMINDER_MAX_ATTEMPTS]
    failed = mine.filter(pk__in=final).update(
        status=Notification.Status.FAILED, claimed_at=None, last_error=error.reason
    )
    retries: dict[datetime, list[int]] = defaultdict(list)
    for notification in message.notifications:
        if notification.pk in final:
            continue
        retry_at = now + retry_delay(notification.attempts)
        policy = getattr(notification, "quiet_policy", None)
        if policy is not None:  # a chat message: its retry waits out quiet hours too
            retry_at = quiet_hours_end(retry_at, policy) or retry_at
        retries[retry_at].append(notification.pk)
    for retry_at, group in retries.items():
        mine.filter(pk__in=group).update(claimed_at=None, last_error=error.reason, deliver_after=retry_at)
    return 0, failed, min((retry_at - now for retry_at in retries), default=None)


@dataclass(frozen=True)
class DeliveryOutcome:
    sent: int
    failed: int
    skipped: int
    retry_after: float | None  # seconds until this destination has more to send; None: nothing waits


class _Heartbeat(threading.Thread):
    """Renews the lease of the claimed notifications every REMINDER_CLAIM_HEARTBEAT_SECONDS while this
    worker lives, so a slow receiver never lets another worker take them over; a killed worker stops
    beating and its claims come free a lease after the last beat. Its own database connection."""

    def __init__(self, message_ids: list[int]):
        super().__init__(name="delivery-heartbeat", daemon=True)
        self.message_ids = message_ids
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopped.wait(settings.REMINDER_CLAIM_HEARTBEAT_SECONDS):
                try:
                    Notification.objects.filter(
                        message_id__in=self.message_ids, status=Notification.Status.PENDING
                    ).update(claimed_at=timezone.now())
                except DatabaseError:  # the next beat tries again, on a new connection; a lease is 4 beats
                    logger.warning("Cannot renew the delivery lease", exc_info=True)
                    connection.close()
        finally:
            connection.close()

    def stop(self) -> None:
        self.stopped.set()
        self.join()


def deliver(*, destination: str, now: datetime | None = None) -> DeliveryOutcome:
    """Send what is ready for one destination ("email" or "channel:<id>") and record each outcome."""
    now = (now or timezone.now()).replace(microsecond=0)
    plan = _prepare(destination, now=now)
    with _heartbeat(plan), _mail_session(destination, plan) as smtp:
        sent, failed, waits = _send_all(plan, destination, smtp)
    wait = min([*waits, plan.wait] if plan.wait is not None else waits, default=None)
    return DeliveryOutcome(
        sent=sent,
        failed=failed + plan.failed,
        skipped=plan.skipped,
        retry_after=None if wait is None else max(1.0, wait.total_seconds()),
    )


@contextmanager
def _heartbeat(plan: _Plan) -> Iterator[None]:
    """The claim of the planned messages renewed while they are sent."""
    if not plan.messages:
        yield
        return
    heartbeat = _Heartbeat([m.row.pk for m in plan.messages])
    heartbeat.start()
    try:
        yield
    finally:
        heartbeat.stop()


@contextmanager
def _mail_session(destination: str, plan: _Plan) -> Iterator[Any]:
    """One SMTP session for a batch of emails (None for robots and webhooks). One that cannot be opened is
    logged: each email then records why it failed."""
    if destination != EMAIL_DESTINATION or not plan.messages:
        yield None
        return
    smtp = mail.get_connection()
    try:
        smtp.open()
    except Exception:
        logger.warning("Cannot open the mail connection; each email records why", exc_info=True)
    try:
        yield smtp
    finally:
        smtp.close()


def _send_all(plan: _Plan, destination: str, smtp) -> tuple[int, int, list[timedelta]]:
    """Send each planned message and record its outcome: (sent, failed for good, retry delays)."""
    sent, failed, waits = 0, 0, []
    published_reports: set[int] = set()  # the reports this delivery published (id of each Report)
    for message in plan.messages:
        # Committed before the request goes out: a worker killed after this line may have posted. None
        # updated: another worker closed the message as abandoned (this one's lease lapsed) and sends it.
        if not OutboundMessage.objects.filter(pk=message.row.pk, finished_at__isnull=True).update(
            attempted_at=timezone.now()
        ):
            logger.warning(
                "Delivery to %s: the lease lapsed before a message went out; another worker sends it", destination
            )
            continue
        try:
            _send(message, smtp)
        except DeliveryError as error:
            outcome = error
        except Exception as error:  # a bug must not leave the claim hanging until the lease ends
            logger.exception("Delivery to %s failed unexpectedly", destination)
            outcome = DeliveryError(_("Unexpected error: %(error)s") % {"error": error})
        else:
            outcome = None
        if outcome is not None:
            logger.warning("Delivery to %s failed: %s", destination, outcome.reason)
        with translation.override(settings.LANGUAGE_CODE):
            # At full precision: a robot's budget counts answers in the last 60 s, to the microsecond.
            done, gone, retry = _record(message, outcome, now=timezone.now())
        sent, failed = sent + done, failed + gone
        if retry is not None:
            waits.append(retry)
        if done:
            _publish(message, published_reports)
    return sent, failed, waits


def _publish(message: _Message, done: set[int]) -> None:
    """The reports a message delivered are published (stability.published.publish_delivered: the same
    Report that was sent, so what was sent is what is published; a new revision only when its figures
    differ from the last one), each once per delivery, after its outcome is recorded and holding no lock.
    A failure is logged and does not hold the other messages back: the message went out, and the report's
    next delivered notification (another manager, a channel) publishes it again."""
    for report in message.carried:
        if id(report) in done:
            continue
        done.add(id(report))
        try:
            published.publish_delivered(report)
        except Exception:
            logger.exception("Cannot publish the delivered report %s", report.period.label)


@transaction.atomic
def notification_retry(*, notification_id: int) -> Notification:
    """A failed notification, or one whose outcome is unknown (an admin checked that it did not arrive),
    goes back to pending with a fresh set of attempts, to be sent at once (an admin fixed the channel).
    Other statuses raise a ValidationError."""
    notification = Notification.objects.select_for_update().get(pk=notification_id)
    if notification.status not in (Notification.Status.FAILED, Notification.Status.UNKNOWN):
        raise ValidationError({"status": [_("Only a failed notification can be retried.")]})
    notification.status = Notification.Status.PENDING
    notification.attempts = 0
    notification.claimed_at = None
    notification.deliver_after = timezone.now().replace(microsecond=0)
    notification.save(update_fields=["status", "attempts", "claimed_at", "deliver_after"])
    destination = notification.destination

    transaction.on_commit(lambda: reminders.enqueue_deliveries([destination]))
    return notification


# --- a channel's test message ------------------------------------------------------------------------


@dataclass(frozen=True)
class TestOutcome:
    notification: Notification
    delivered: bool
    reason: str  # in words: what the receiver answered, or why nothing came back


class TestTooSoon(ValidationError):
    """A test message for this channel went out less than CHANNEL_TEST_INTERVAL_SECONDS ago."""


def _test_entry(channel: NotificationChannel, *, by, now: datetime) -> Entry:
    return Entry(
        title=_("Test message from Stability Tracker"),
        url=links.notification_log_url(),
        details=(
            _("Channel %(name)s (%(kind)s) works. Sent by %(person)s at %(at)s.")
            % {
                "name": channel.name,
                "kind": channel.get_kind_display(),
                "person": (by.get_full_name() or by.username) if by is not None else "-",
                "at": timezone.localtime(now).isoformat(timespec="seconds").replace("T", " "),
            },
        ),
    )


def _open_test(channel_id: int, *, now: datetime) -> tuple[NotificationChannel, Notification, OutboundMessage]:
    """Under the channel's lock: no other test of it in the last CHANNEL_TEST_INTERVAL_SECONDS (TestTooSoon),
    a robot's budget not spent (ValidationError), then the log row and the message row, committed before
    the request goes out."""
    interval = timedelta(seconds=settings.CHANNEL_TEST_INTERVAL_SECONDS)
    with transaction.atomic():
        channel = NotificationChannel.objects.select_for_update(of=("self",)).select_related("user").get(pk=channel_id)
        last = (
            Notification.objects.filter(channel=channel, event=Event.CHANNEL_TEST, created_at__gt=now - interval)
            .order_by("-created_at")
            .values_list("created_at", flat=True)
            .first()
        )
        if last is not None:
            wait = max(1, int((last + interval - now).total_seconds() + 0.999))
            raise TestTooSoon(
                _("A test message went to this channel moments ago; try again in %(seconds)d s.") % {"seconds": wait}
            )
        if channel.is_chat:
            remaining, wait = _chat_budget(channel, now=now)
            if remaining <= 0:
                raise ValidationError(
                    _("The robot has had its %(limit)d messages this minute; try again in %(seconds)d s.")
                    % {
                        "limit": channel.messages_per_minute or settings.REMINDER_CHAT_MESSAGES_PER_MINUTE,
                        "seconds": max(1, int(wait.total_seconds())),
                    }
                )
        destination = EMAIL_DESTINATION if channel.kind == NotificationChannel.Kind.EMAIL else f"channel:{channel.pk}"
        row = OutboundMessage.objects.create(
            channel=channel, destination=destination, started_at=now, attempted_at=now, entries=1
        )
        notification = Notification.objects.create(
            key=f"test:channel:{channel.pk}:{now.isoformat()}",
            event=Event.CHANNEL_TEST,
            step="test",
            channel=channel,
            recipient=channel.user,
            destination=destination,
            language=channel.language or (channel.user.language if channel.user else "") or settings.LANGUAGE_CODE,
            fire_at=now,
            created_at=now,
            deliver_after=now,
            attempts=1,
            claimed_at=now,
            message=row,
        )
    return channel, notification, row


def channel_test_send(*, channel_id: int, by) -> TestOutcome:
    """Send one test message to the channel now, while the caller waits (CHANNEL_TEST_TIMEOUT_SECONDS), through
    the channel's own sender, and log it (event channel_test): sent, failed with the receiver's answer, or
    unknown on a timeout. Never retried. At most one per channel every CHANNEL_TEST_INTERVAL_SECONDS
    (TestTooSoon), within a robot's messages a minute; a disabled channel may be tested."""
    now = timezone.now()
    channel, notification, row = _open_test(channel_id, now=now)
    with translation.override(notification.language):
        entry = _test_entry(channel, by=by, now=now)
    message = _Message(
        kind=channel.kind,
        language=notification.language,
        notifications=[notification],
        entries=[entry],
        target=channel.target,
        secret=channel.secret,
        row=row,
    )
    error = None
    if channel.kind == NotificationChannel.Kind.WEBHOOK:
        message.payload = notices.webhook_payload(notification, entry)
    elif channel.kind == NotificationChannel.Kind.EMAIL:
        user_email = channel.user.email if channel.user else ""
        message.addresses = channels.email_addresses(channel.target) or ([user_email] if user_email else [])
        if not message.addresses:
            error = DeliveryError(_("Failed: the recipient has no email address and no channel."), retryable=False)
    if error is None:
        try:
            _send(
                message,
                mail.get_connection(timeout=settings.CHANNEL_TEST_TIMEOUT_SECONDS),
                timeout=settings.CHANNEL_TEST_TIMEOUT_SECONDS,
            )
        except DeliveryError as failure:
            error = failure
        except Exception as failure:  # a bug must not leave the log row pending
            logger.exception("The test message to channel %s failed unexpectedly", channel.pk)
            error = DeliveryError(_("Unexpected error: %(error)s") % {"error": failure})
    finished = timezone.now()
    status = Notification.Status.SENT
    if error is not None:
        status = Notification.Status.UNKNOWN if error.unknown else Notification.Status.FAILED
    with transaction.atomic():
        OutboundMessage.objects.filter(pk=row.pk).update(
            finished_at=finished,
            ok=None if error and error.unknown else error is None,
            error=error.reason if error else "",
        )
        Notification.objects.filter(pk=notification.pk).update(
            status=status,
            claimed_at=None,
            sent_at=finished if error is None else None,
            last_error=error.reason if error else "",
        )
    notification.refresh_from_db()
    if error is None:
        reason = _("Delivered: %(kind)s accepted the test message.") % {"kind": channel.get_kind_display()}
    else:
        reason = error.reason
    return TestOutcome(notification=notification, delivered=error is None, reason=reason)
