from datetime import UTC, datetime, time

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from incidents.models import Incident, System, Team


def default_system_labels() -> list[str]:
    return ["system", "service"]


class Integration(models.Model):
    """An alerting system that pushes alerts in, authenticated by its own bearer token."""

    class Kind(models.TextChoices):
        ALERTMANAGER = "alertmanager", _("Prometheus Alertmanager")
        GRAFANA = "grafana", _("Grafana")
        GENERIC = "generic", _("Generic JSON")

    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    name = models.CharField(_("name"), max_length=100, unique=True)
    token_prefix = models.CharField(_("token prefix"), max_length=12, editable=False)
    token_digest = models.CharField(_("token digest"), max_length=64, unique=True, editable=False)
    enabled = models.BooleanField(_("enabled"), default=True)
    is_test = models.BooleanField(
        _("test integration"), default=False, help_text=_("Its alerts are stored but never count in follow-up rates.")
    )
    default_team = models.ForeignKey(
        Team, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("default team")
    )
    default_system = models.ForeignKey(
        System, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("default system")
    )
    team_label = models.CharField(_("team label"), max_length=100, default="team")
    system_labels = models.JSONField(
        _("system labels"), default=default_system_labels, help_text=_("Labels naming the system, tried in order.")
    )
    severity_label = models.CharField(_("severity label"), max_length=100, default="severity")
    rate_limit_per_minute = models.PositiveIntegerField(
        _("rate limit per minute"),
        null=True,
        blank=True,
        help_text=_("Empty: the INGEST_RATE_LIMIT_PER_MINUTE setting."),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("created by"),
    )

    class Meta:
        ordering = ["name"]
        verbose_name = _("integration")
        verbose_name_plural = _("integrations")

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"


class IngestConfigVersion(models.Model):
    """One row (pk 1), its version bumped in the transaction of every change to what ingestion routes by
    (integrations, systems, teams, maintenance windows): web processes compare it with their snapshot's
    at most once a second (stability.ingest_routing.routing)."""

    version = models.BigIntegerField(default=0)

    class Meta:
        verbose_name = _("ingestion configuration version")
        verbose_name_plural = _("ingestion configuration versions")

    def __str__(self) -> str:
        return str(self.version)


# What any reader, in any time zone, can show: a stored instant outside it made every page listing it
# fail (year 10000 once converted to UTC+8). Senders are held to a narrower range (stability.formats).
STORABLE_FROM, STORABLE_UNTIL = datetime(1900, 1, 1, tzinfo=UTC), datetime(9000, 1, 1, tzinfo=UTC)


class MaintenanceWindow(models.Model):
    """Alerts of the system received inside [starts_at, ends_at) are kept but excluded from follow-up rates."""

    system = models.ForeignKey(
        System, on_delete=models.CASCADE, related_name="maintenance_windows", verbose_name=_("system")
    )
    starts_at = models.DateTimeField(_("starts at"))
    ends_at = models.DateTimeField(_("ends at"))
    reason = models.CharField(_("reason"), max_length=200)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        ordering = ["-starts_at"]
        verbose_name = _("maintenance window")
        verbose_name_plural = _("maintenance windows")
        constraints = [
            models.CheckConstraint(condition=Q(ends_at__gt=F("starts_at")), name="maintenance_window_ends_after_start")
        ]
        indexes = [models.Index(fields=["system", "ends_at"])]

    def __str__(self) -> str:
        return f"{self.system.code} {self.starts_at:%Y-%m-%d %H:%M} – {self.ends_at:%Y-%m-%d %H:%M}"


class AlertOccurrence(models.Model):
    """One firing of one alert: identified by (integration, fingerprint, starts_at). Repeat
    notifications update it; a firing after resolution with a new starts_at is a new occurrence."""

    class Status(models.TextChoices):
        FIRING = "firing", _("Firing")
        RESOLVED = "resolved", _("Resolved")

    class Exclusion(models.TextChoices):
        NONE = "", _("Counted")
        MAINTENANCE = "maintenance", _("Maintenance window")
        TEST = "test", _("Test integration")
        SILENCED = "silenced", _("Silenced at the source")

    # Indexes are few on purpose: every one is written on each ingested alert. The unique identity
    # serves lookups by integration (and fingerprint: sources sending no starts_at), the
    # (team|system, received_at) indexes those by team and system.
    integration = models.ForeignKey(
        Integration,
        on_delete=models.PROTECT,
        related_name="occurrences",
        verbose_name=_("integration"),
        db_index=False,
    )
    fingerprint = models.CharField(_("fingerprint"), max_length=64)
    starts_at = models.DateTimeField(_("starts at"))
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.FIRING)
    alertname = models.CharField(_("alert name"), max_length=200, blank=True)
    severity = models.CharField(_("severity label"), max_length=50, blank=True)
    summary = models.TextField(_("summary"), blank=True)
    labels = models.JSONField(_("labels"), default=dict)
    annotations = models.JSONField(_("annotations"), default=dict, blank=True)
    generator_url = models.TextField(_("source link"), blank=True)
    team = models.ForeignKey(
        Team,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="alerts",
        verbose_name=_("team"),
        db_index=False,
    )
    system = models.ForeignKey(
        System,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="alerts",
        verbose_name=_("system"),
        db_index=False,
    )
    # The follow-up clock starts when the occurrence first reached the tracker (server clock).
    received_at = models.DateTimeField(_("received at"))
    last_received_at = models.DateTimeField(_("last received at"))
    notifications = models.PositiveIntegerField(_("notifications"), default=1)
    excluded = models.CharField(
        _("excluded"), max_length=20, choices=Exclusion.choices, blank=True, default=Exclusion.NONE
    )
    ends_at = models.DateTimeField(_("ends at"), null=True, blank=True, help_text=_("End reported by the source."))
    resolved_at = models.DateTimeField(_("resolved at"), null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("resolved by"),
        db_index=False,  # people are deactivated, never deleted
        help_text=_("Empty when the source resolved it."),
    )
    acknowledged_at = models.DateTimeField(_("acknowledged at"), null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("acknowledged by"),
        db_index=False,  # people are deactivated, never deleted
    )
    followed_up_at = models.DateTimeField(_("followed up at"), null=True, blank=True)
    followed_up_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("followed up by"),
        db_index=False,  # people are deactivated, never deleted
    )
    incident = models.ForeignKey(
        Incident, on_delete=models.SET_NULL, null=True, blank=True, related_name="alerts", verbose_name=_("incident")
    )
    # When anything the follow-up figures read last changed (a receipt, a follow-up, a resolution, a
    # renamed rule): stability.follow_up counts the days of the occurrences changed since the day counts'
    # last refresh from the occurrences, and that refresh counts them again. Written by ingestion's SQL
    # and stability.services; a bulk loader refreshes the day counts instead.
    changed_at = models.DateTimeField(_("changed at"), default=timezone.now, editable=False)
    # The sender gave no starts_at and no occurrence was open: starts_at is the tracker's receipt.
    # A database default too: bulk loads that name their columns (stability.bulk) may leave it out.
    receipt_started = models.BooleanField(_("started at receipt"), default=False, db_default=False, editable=False)

    class Meta:
        ordering = ["-received_at", "-id"]
        verbose_name = _("alert occurrence")
        verbose_name_plural = _("alert occurrences")
        constraints = [
            models.UniqueConstraint(
                fields=["integration", "fingerprint", "starts_at"], name="alert_occurrence_identity"
            ),
            # Alerts without starts_at join the open occurrence of their fingerprint: two deliveries racing
            # to open it (a second apart) would each start one, and a resolution would close only one.
            # Only receipt-started occurrences: a source sending starts_at may have several open (a lost
            # resolution, send_resolved: false).
            models.UniqueConstraint(
                fields=["integration", "fingerprint"],
                condition=Q(status="firing", receipt_started=True),
                name="alert_occurrence_one_open_receipt_started",
            ),
            models.CheckConstraint(
                condition=Q(starts_at__gte=STORABLE_FROM, starts_at__lt=STORABLE_UNTIL),
                name="alert_occurrence_starts_at_storable",
            ),
            models.CheckConstraint(
                condition=Q(ends_at__isnull=True) | Q(ends_at__gte=STORABLE_FROM, ends_at__lt=STORABLE_UNTIL),
                name="alert_occurrence_ends_at_storable",
            ),
        ]
        indexes = [
            # Covering: the follow-up figures of a period (reports, trends, health scores) read these
            # columns only, so PostgreSQL answers them from the index without visiting the rows.
            models.Index(
                fields=["received_at"],
                include=["excluded", "followed_up_at", "resolved_at", "resolved_by", "team", "system", "alertname"],
                name="alert_received_follow_up",
            ),
            models.Index(fields=["team", "received_at"]),
            models.Index(fields=["system", "received_at"]),
            models.Index(fields=["changed_at"], name="alert_changed"),
            # The inbox (stability.selectors.inbox_alerts) reads the alerts nobody followed up received in
            # the last day, every 10 s for every engineer on duty: a range of this small index, however
            # long the history.
            models.Index(fields=["received_at"], condition=Q(followed_up_at__isnull=True), name="alert_inbox_waiting"),
        ]

    def __str__(self) -> str:
        return f"{self.alertname or self.fingerprint} @ {self.starts_at:%Y-%m-%d %H:%M:%S}"


class AlertActivity(models.Model):
    """The alert's own history: what people did with it. (The source's resolution is the
    occurrence's resolved_at with no resolved_by.)"""

    class Kind(models.TextChoices):
        ACKNOWLEDGED = "acknowledged", _("Acknowledged")
        COMMENTED = "commented", _("Commented")
        LINKED = "linked", _("Linked to an incident")
        RESOLVED = "resolved", _("Resolved by a person")

    occurrence = models.ForeignKey(
        AlertOccurrence, on_delete=models.CASCADE, related_name="activities", verbose_name=_("alert")
    )
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    at = models.DateTimeField(_("at"))
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("by"),
    )
    text = models.TextField(_("text"), blank=True)
    incident = models.ForeignKey(
        Incident, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("incident")
    )

    class Meta:
        ordering = ["at", "id"]
        verbose_name = _("alert activity")
        verbose_name_plural = _("alert activities")
        indexes = [models.Index(fields=["occurrence", "at"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.at:%Y-%m-%d %H:%M:%S}"


class AlertDayCount(models.Model):
    """The follow-up counts of one day (organisation zone) of alert occurrences, per team, system and
    alert name, kept by stability.follow_up.refresh_day_counts for the days whose figures no longer
    depend on the clock. Each count is the count of stability.follow_up's rules over those occurrences."""

    day = models.DateField(_("day"))
    team = models.ForeignKey(
        Team, on_delete=models.SET_NULL, null=True, related_name="+", verbose_name=_("team"), db_index=False
    )
    system = models.ForeignKey(
        System, on_delete=models.SET_NULL, null=True, related_name="+", verbose_name=_("system"), db_index=False
    )
    alertname = models.CharField(_("alert name"), max_length=200, blank=True)
    received = models.PositiveIntegerField(_("received"))
    excluded = models.PositiveIntegerField(_("excluded"))
    flapping = models.PositiveIntegerField(_("flapping"))
    denominator = models.PositiveIntegerField(_("denominator"))
    in_time = models.PositiveIntegerField(_("in time"))
    followed_up = models.PositiveIntegerField(_("followed up"))

    class Meta:
        verbose_name = _("alert day count")
        verbose_name_plural = _("alert day counts")
        indexes = [models.Index(fields=["day"], name="alert_day_count_day")]

    def __str__(self) -> str:
        return f"{self.day} {self.alertname}"


class AlertDayCountState(models.Model):
    """The one row saying how far AlertDayCount goes: every day before `counted_until` is counted, as of
    the occurrences changed before `checked_at`, under the rules in `rules`."""

    counted_until = models.DateField(_("counted until"), null=True)
    checked_at = models.DateTimeField(_("checked at"), null=True)
    rules = models.JSONField(_("rules"), default=dict)

    class Meta:
        verbose_name = _("alert day count state")
        verbose_name_plural = _("alert day count states")

    def __str__(self) -> str:
        return f"counted until {self.counted_until}"


class AlertDelayPercentiles(models.Model):
    """The follow-up delay median and p90 of one settled month or ISO week, for everyone, one team or one
    system (stability.follow_up's figures), kept by stability.follow_up.refresh_day_counts beside the day
    counts: exact percentiles do not add up from days, and counting them reads every alert of the period.
    A period holds a row for everyone (followed_up 0 when nothing was followed up) once it is kept."""

    class Scope(models.TextChoices):
        ALL = "all", _("everyone")
        TEAM = "team", _("team")
        SYSTEM = "system", _("system")

    period = models.CharField(_("period"), max_length=10, help_text=_("Its label: 2026-11, 2026-W48..."))
    scope = models.CharField(_("scope"), max_length=6, choices=Scope.choices)
    # The team's or system's id, read by id and never joined (as the day counts' team and system, no
    # constraint to keep); None for everyone, and for the alerts of no team or no system.
    key = models.IntegerField(_("team or system id"), null=True, blank=True)
    followed_up = models.PositiveIntegerField(_("followed up"))
    median_delay = models.FloatField(_("median delay (s)"), null=True)
    p90_delay = models.FloatField(_("p90 delay (s)"), null=True)

    class Meta:
        verbose_name = _("alert delay percentiles")
        verbose_name_plural = _("alert delay percentiles")
        indexes = [models.Index(fields=["period", "scope", "key"], name="alert_delay_period")]

    def __str__(self) -> str:
        return f"{self.period} {self.scope} {self.key or ''}".rstrip()


class RejectedDelivery(models.Model):
    """A webhook body (or the alerts of one) that could not be accepted, kept for admins to inspect."""

    integration = models.ForeignKey(
        Integration,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="rejected_deliveries",
        verbose_name=_("integration"),
    )
    received_at = models.DateTimeField(_("received at"), auto_now_add=True)
    reason = models.TextField(_("reason"))
    body = models.TextField(_("body"), blank=True, help_text=_("The first 64 KB of what was sent."))
    remote_addr = models.CharField(_("sender address"), max_length=64, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        verbose_name = _("rejected delivery")
        verbose_name_plural = _("rejected deliveries")

    def __str__(self) -> str:
        return f"{self.received_at:%Y-%m-%d %H:%M:%S} {self.reason[:60]}"


# --- reminders and notifications (stability.reminders, stability.delivery, docs/reminders.md) -----


class Event(models.TextChoices):
    """What a notification is about."""

    ITEM_BEFORE_DUE = "item_before_due", _("Action item due soon")
    ITEM_DUE = "item_due", _("Action item due")
    ITEM_OVERDUE = "item_overdue", _("Action item overdue")
    ITEM_ESCALATION = "item_escalation", _("Overdue action item escalated")
    DIGEST = "digest", _("Weekly digest")
    ALERT_UNFOLLOWED = "alert_unfollowed", _("Alert not followed up")
    ALERT_ESCALATION = "alert_escalation", _("Unfollowed alert escalated")
    WEEKLY_REPORT = "weekly_report", _("Weekly stability report")
    MONTHLY_REPORT = "monthly_report", _("Monthly stability report")
    INCIDENT_MAJOR = "incident_major", _("A/B incident logged or raised")
    INCIDENT_UPDATE = "incident_update", _("Incident commander's update")
    # Sent when an administrator asks ("Send a test message"), never subscribed to.
    CHANNEL_TEST = "channel_test", _("Test message")


def subscribable_events() -> list[tuple[str, str]]:
    """The events a channel may list in `events` (a test message is sent when asked, to one channel)."""
    return [(value, label) for value, label in Event.choices if value != Event.CHANNEL_TEST]


def default_channel_events() -> list[str]:
    return []


class NotificationChannel(models.Model):
    """Where notifications go: a team's or a person's email, chat robot or webhook.

    A person with no enabled channel of their own gets email at their address.
    """

    class Kind(models.TextChoices):
        EMAIL = "email", _("Email")
        WECOM = "wecom", _("WeCom group robot")
        DINGTALK = "dingtalk", _("DingTalk robot")
        FEISHU = "feishu", _("Feishu robot")
        SLACK = "slack", _("Slack incoming webhook")
        WEBHOOK = "webhook", _("Generic JSON webhook")

    # Chat robots: quiet hours apply, entries are batched and messages a minute are limited.
    CHAT_KINDS = (Kind.WECOM, Kind.DINGTALK, Kind.FEISHU, Kind.SLACK)

    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices)
    name = models.CharField(_("name"), max_length=100)
    target = models.TextField(
        _("target"),
        blank=True,
        help_text=_(
            "The robot's or webhook's URL; for email, addresses separated by commas "
            "(empty on a person's email channel: their own address)."
        ),
    )
    secret = models.CharField(
        _("secret"),
        max_length=200,
        blank=True,
        help_text=_("DingTalk or Feishu signing secret; for a webhook, the key of its HMAC signature. Never shown."),
    )
    team = models.ForeignKey(
        Team,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="notification_channels",
        verbose_name=_("team"),
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="notification_channels",
        verbose_name=_("person"),
    )
    events = models.JSONField(
        _("events"),
        default=default_channel_events,
        blank=True,
        help_text=_(
            "Events this channel carries; empty: a person's channel carries all of theirs, a team's the "
            "alert notices, escalations and the weekly and monthly reports."
        ),
    )
    language = models.CharField(
        _("language"),
        max_length=10,
        choices=settings.LANGUAGES,
        blank=True,
        help_text=_("Empty: the person's language, or the organisation default."),
    )
    messages_per_minute = models.PositiveIntegerField(
        _("messages per minute"),
        null=True,
        blank=True,
        help_text=_("Chat robots only. Empty: the REMINDER_CHAT_MESSAGES_PER_MINUTE setting (20)."),
    )
    enabled = models.BooleanField(_("enabled"), default=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]
        verbose_name = _("notification channel")
        verbose_name_plural = _("notification channels")
        constraints = [
            models.CheckConstraint(
                condition=Q(team__isnull=False, user__isnull=True) | Q(team__isnull=True, user__isnull=False),
                name="notification_channel_team_or_person",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    @property
    def is_chat(self) -> bool:
        return self.kind in self.CHAT_KINDS


def default_days_before() -> list[int]:
    return list(settings.REMINDER_DAYS_BEFORE)


def default_escalate_after_days() -> int:
    return settings.REMINDER_ESCALATE_AFTER_DAYS


def default_escalate_every_days() -> int:
    return settings.REMINDER_ESCALATE_EVERY_DAYS


def default_quiet_hours_start() -> time:
    return time.fromisoformat(settings.REMINDER_QUIET_HOURS_START)


def default_quiet_hours_end() -> time:
    return time.fromisoformat(settings.REMINDER_QUIET_HOURS_END)


class ReminderPolicy(models.Model):
    """A team's own reminder schedule for its action items; teams without one follow the settings."""

    team = models.OneToOneField(Team, on_delete=models.CASCADE, related_name="reminder_policy", verbose_name=_("team"))
    days_before = models.JSONField(
        _("days before due"), default=default_days_before, help_text=_("Remind the owner this many days before due.")
    )
    escalate_after_days = models.PositiveIntegerField(
        _("escalate after (days overdue)"), default=default_escalate_after_days
    )
    escalate_every_days = models.PositiveIntegerField(
        _("escalate again every (days)"), default=default_escalate_every_days
    )
    quiet_hours_start = models.TimeField(
        _("quiet hours start"),
        default=default_quiet_hours_start,
        help_text=_("Local time. Chat messages wait until the end; start = end: no quiet hours."),
    )
    quiet_hours_end = models.TimeField(_("quiet hours end"), default=default_quiet_hours_end)

    class Meta:
        verbose_name = _("reminder policy")
        verbose_name_plural = _("reminder policies")
        constraints = [
            models.CheckConstraint(
                condition=Q(escalate_every_days__gte=1), name="reminder_policy_escalates_at_most_daily"
            )
        ]

    def __str__(self) -> str:
        return str(self.team)


class OutboundMessage(models.Model):
    """One message sent, or tried: a chat post (carrying up to a batch of notifications), an email or a
    webhook call. Chat budgets count these per channel."""

    channel = models.ForeignKey(
        NotificationChannel,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="messages",
        verbose_name=_("channel"),
        db_index=False,
    )
    destination = models.CharField(_("destination"), max_length=40)
    started_at = models.DateTimeField(_("started at"))
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    # Set, and committed, just before the request goes out: a worker that dies after it may have posted
    # (the outcome is unknown, so chat and email are not sent again); one that dies before it did not.
    attempted_at = models.DateTimeField(
        _("request sent at"), null=True, blank=True, help_text=_("Empty: it never went out.")
    )
    ok = models.BooleanField(
        _("delivered"), null=True, help_text=_("Empty while it is being sent, or when the outcome is unknown.")
    )
    error = models.TextField(_("error"), blank=True)
    entries = models.PositiveIntegerField(_("notifications carried"), default=1)

    class Meta:
        ordering = ["-started_at", "-id"]
        verbose_name = _("outbound message")
        verbose_name_plural = _("outbound messages")
        indexes = [
            models.Index(fields=["channel", "started_at"]),
            # A robot's budget: its messages in flight (finished_at empty) or answered in the last 60 s.
            models.Index(fields=["channel", "finished_at"], name="outbound_channel_finished"),
        ]

    def __str__(self) -> str:
        return f"{self.destination} {self.started_at:%Y-%m-%d %H:%M:%S}"


class Notification(models.Model):
    """One notification to one destination, recorded once under its key (what, step, slot, destination)
    however many sweeps run, then delivered by a task."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")
        SKIPPED = "skipped", _("Skipped")
        # The request went out but no answer came back (a timeout, a worker killed mid-send): a chat robot
        # or a mail server may have it. Not sent again automatically, so never twice.
        UNKNOWN = "unknown", _("Outcome unknown")

    key = models.CharField(_("key"), max_length=200, unique=True)
    event = models.CharField(_("event"), max_length=20, choices=Event.choices)
    step = models.CharField(
        _("step"), max_length=30, help_text=_("before-3, due, overdue-2, escalation-1, the ISO week of a digest...")
    )
    action_item = models.ForeignKey(
        "incidents.ActionItem",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="notifications",
        verbose_name=_("action item"),
    )
    alert = models.ForeignKey(
        AlertOccurrence,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="reminder_notifications",
        verbose_name=_("alert"),
    )
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="notifications",
        verbose_name=_("recipient"),
        help_text=_("Empty for a team channel."),
    )
    channel = models.ForeignKey(
        NotificationChannel,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="notifications",
        verbose_name=_("channel"),
        help_text=_("Empty: email to the recipient's address."),
    )
    team = models.ForeignKey(
        Team,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="report_notifications",
        verbose_name=_("team"),
        help_text=_("The team a weekly or monthly report is about."),
    )
    incident = models.ForeignKey(
        "incidents.Incident",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="notifications",
        verbose_name=_("incident"),
        help_text=_("The incident an A/B message or a commander's update is about."),
    )
    # Deliveries are grouped by destination: "email" (every email) or "channel:<id>".
    destination = models.CharField(_("destination"), max_length=40)
    language = models.CharField(_("language"), max_length=10)
    due_at = models.DateTimeField(
        _("due at"), null=True, blank=True, help_text=_("The item's due date when recorded; a change makes it stale.")
    )
    fire_at = models.DateTimeField(_("fires at"), help_text=_("When the step fell due."))
    created_at = models.DateTimeField(_("recorded at"))
    deliver_after = models.DateTimeField(
        _("deliver after"), help_text=_("Quiet hours push chat messages to the morning; retries wait here too.")
    )
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    last_error = models.TextField(_("last error"), blank=True)
    claimed_at = models.DateTimeField(
        _("claimed at"),
        null=True,
        blank=True,
        help_text=_("A worker holds it: the last heartbeat of its lease (renewed while the worker lives)."),
    )
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    message = models.ForeignKey(
        OutboundMessage,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="notifications",
        verbose_name=_("last message"),
        db_index=False,
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("notification")
        verbose_name_plural = _("notifications")
        indexes = [
            models.Index(fields=["created_at"]),
            # What delivery and the sweep look for: pending ones by destination, ready or not.
            models.Index(
                fields=["destination", "deliver_after"],
                condition=Q(status="pending"),
                name="notification_pending",
            ),
        ]

    def __str__(self) -> str:
        return self.key


# --- published reports (stability.published, docs/report.md "Published reports") -----------------


def default_revised() -> list:
    return []


def default_watched() -> dict:
    return {}


class PublishedReport(models.Model):
    """A report as it was sent or published: frozen (its snapshot is stability.reports.report_json of the
    report then), one revision of its period and scope. What changed since is checked on opening, cheaply
    (stability.published.revisions), and kept here until a record of the period changes again."""

    class Reason(models.TextChoices):
        DELIVERY = "delivery", _("Delivered")
        MANUAL = "manual", _("Published by hand")

    period = models.CharField(_("period"), max_length=30, help_text=_("Its label: 2026-11, 2026-W48..."))
    period_kind = models.CharField(_("period kind"), max_length=10)
    period_start = models.DateTimeField(_("period start"))
    period_end = models.DateTimeField(_("period end"))
    team = models.ForeignKey(
        Team,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="published_reports",
        verbose_name=_("team"),
        help_text=_("Empty: all teams."),
    )
    revision = models.PositiveIntegerField(_("revision"))
    reason = models.CharField(_("reason"), max_length=10, choices=Reason.choices)
    published_at = models.DateTimeField(_("published at"))
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("published by"),
        db_index=False,  # people are deactivated, never deleted
        help_text=_("Empty when a delivery published it."),
    )
    snapshot = models.JSONField(_("snapshot"))
    # sha256 of the figures revisions compare (stability.published.compared_figures): a delivery of the same
    # figures publishes no new revision.
    digest = models.CharField(_("digest"), max_length=64)
    # The changes found when last checked, as of revised_checked_at, and what that check counted
    # (stability.published: the records of the period are checked again only for changes after it).
    revised = models.JSONField(_("revised since publication"), default=default_revised, blank=True)
    revised_checked_at = models.DateTimeField(_("revisions checked at"), null=True, blank=True)
    watched = models.JSONField(_("records counted at the check"), default=default_watched, blank=True)

    class Meta:
        ordering = ["-published_at", "-id"]
        verbose_name = _("published report")
        verbose_name_plural = _("published reports")
        constraints = [
            # One revision number per period and scope; all teams (team empty) is a scope of its own.
            models.UniqueConstraint(
                fields=["period", "team", "revision"], nulls_distinct=False, name="published_report_revision"
            ),
            models.CheckConstraint(condition=Q(revision__gte=1), name="published_report_revision_from_1"),
        ]
        indexes = [models.Index(fields=["published_at"], name="published_report_published")]

    def __str__(self) -> str:
        return f"{self.period} {self.team or '*'} r{self.revision}"


class InboxPreference(models.Model):
    """The filters a person last used on the alerts inbox (its query string), restored when they open
    the inbox without any."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", verbose_name=_("person")
    )
    query = models.CharField(_("filters"), max_length=500, blank=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("inbox preference")
        verbose_name_plural = _("inbox preferences")

    def __str__(self) -> str:
        return self.query
