from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import chain

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from incidents.durations import incident_duration


class Tier(models.TextChoices):
    P0 = "P0", _("P0 – core money path")
    P1 = "P1", _("P1 – important")
    P2 = "P2", _("P2 – general")
    P3 = "P3", _("P3 – internal tools")


# Lower is more critical: P0 before P3, A before D.
TIER_RANK = {tier: rank for rank, tier in enumerate(Tier.values)}


class Level(models.TextChoices):
    A = "A", _("A – most severe")
    B = "B", _("B – severe")
    C = "C", _("C – moderate")
    D = "D", _("D – minor")


LEVEL_RANK = {level: rank for rank, level in enumerate(Level.values)}


class DetectionSource(models.TextChoices):
    MONITORING = "monitoring", _("Monitoring alert")
    CUSTOMER = "customer", _("Customer feedback")
    INSPECTION = "inspection", _("Internal inspection")
    THIRD_PARTY = "third_party", _("Third party / bank")
    OTHER = "other", _("Other")


class CauseCategory(models.TextChoices):
    CODE_CHANGE = "code_change", _("Code change")
    CONFIG_CHANGE = "config_change", _("Configuration change")
    CAPACITY = "capacity", _("Capacity")
    INFRASTRUCTURE = "infrastructure", _("Infrastructure")
    THIRD_PARTY = "third_party", _("Third party / bank channel")
    DATA = "data", _("Data")
    SECURITY = "security", _("Security")
    UNKNOWN = "unknown", _("Unknown")


class Status(models.TextChoices):
    OPEN = "open", _("Open")
    RECOVERED = "recovered", _("Recovered")
    RESOLVED = "resolved", _("Resolved")
    CLOSED = "closed", _("Closed")


class ReviewSection(models.TextChoices):
    """The sections of the post-incident review (复盘), in the order they are written and read."""

    SUMMARY = "summary", _("Summary")
    IMPACT = "impact", _("Impact")
    TIMELINE = "timeline", _("Timeline")
    DETECTION = "detection", _("Detection")
    RESPONSE = "response", _("Response")
    ROOT_CAUSE = "root_cause", _("Root cause (5 whys)")
    WENT_WELL = "went_well", _("What went well")
    WENT_BADLY = "went_badly", _("What went badly")
    LESSONS = "lessons", _("Lessons")
    ITEMS = "items", _("Action items")


DEFAULT_REVIEW_REQUIRED_SECTIONS = ("summary", "impact", "root_cause", "lessons")


def default_review_required_sections() -> list[str]:
    return list(DEFAULT_REVIEW_REQUIRED_SECTIONS)


def review_sections_form_field(**kwargs):
    """Team.review_required_sections in a form (the settings page, the admin): one box per section."""
    return forms.MultipleChoiceField(
        choices=ReviewSection.choices, widget=forms.CheckboxSelectMultiple, required=False, **kwargs
    )


def validate_review_sections(value) -> None:
    if not isinstance(value, list) or any(key not in ReviewSection.values for key in value):
        raise ValidationError(
            _("Name review sections from: %(sections)s.") % {"sections": ", ".join(ReviewSection.values)}
        )


class Team(models.Model):
    name = models.CharField(_("name"), max_length=100, unique=True)
    slug = models.SlugField(_("slug"), max_length=50, unique=True)
    managers = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="managed_teams", verbose_name=_("managers")
    )
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="teams", verbose_name=_("members")
    )
    # Which sections of the review (复盘) must be written before the team's incidents close.
    review_required_sections = models.JSONField(
        _("required review sections"),
        default=default_review_required_sections,
        blank=True,
        validators=[validate_review_sections],
        help_text=_("The review sections that must be written before an incident of this team closes."),
    )

    class Meta:
        ordering = ["name"]
        verbose_name = _("team")
        verbose_name_plural = _("teams")

    def __str__(self) -> str:
        return self.name


class System(models.Model):
    code = models.SlugField(
        _("code"),
        max_length=50,
        unique=True,
        help_text=_("Short identifier, matched against alert labels (e.g. cashier)."),
    )
    name = models.CharField(_("name"), max_length=100)
    tier = models.CharField(_("tier"), max_length=2, choices=Tier.choices)
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="systems", verbose_name=_("team"))
    availability_target = models.DecimalField(
        _("availability target (%)"),
        max_digits=7,
        decimal_places=4,
        default=Decimal("99.99"),
        validators=[MinValueValidator(Decimal(0)), MaxValueValidator(Decimal(100))],
    )
    description = models.TextField(_("description"), blank=True)

    class Meta:
        ordering = ["tier", "code"]
        verbose_name = _("system")
        verbose_name_plural = _("systems")

    def __str__(self) -> str:
        return f"{self.name} ({self.code}, {self.tier})"


class SeverityPolicy(models.Model):
    """One version of the A-D classification policy. Versions are never edited: a change is a
    new version, and the newest one classifies new incidents (incidents.severity)."""

    version = models.PositiveIntegerField(_("version"), unique=True)
    rules = models.JSONField(
        _("rules"), help_text=_("Per level A, B, C: the list of conditions, any of which matches.")
    )
    recovery_targets = models.JSONField(
        _("recovery targets (seconds)"), help_text=_("Time-to-recover target per level, in seconds.")
    )
    note = models.TextField(_("note"), blank=True)
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
        ordering = ["-version"]
        verbose_name = _("severity policy")
        verbose_name_plural = _("severity policies")

    def __str__(self) -> str:
        return _("Severity policy v%(version)s") % {"version": self.version}


# Older than any system this tracker records: a date typed wrong (0001-01-01, 1926 for 2026).
EARLIEST_TIMESTAMP = datetime(2000, 1, 1, tzinfo=UTC)
# Later than any due date or window anyone plans, and far enough from year 9999 (Python's last) that no
# reader's zone or date arithmetic can take a stored time out of range.
LATEST_TIMESTAMP = datetime(2100, 1, 1, tzinfo=UTC)
TIMESTAMP_FIELDS = ("occurred_at", "detected_at", "responded_at", "recovered_at", "resolved_at")


# (later, earlier, message): when both are known, the later one must not be before the earlier one.
_TIMESTAMP_ORDER = (
    ("detected_at", "occurred_at", _("Detected at must not be earlier than occurred at (when the impact started).")),
    ("recovered_at", "occurred_at", _("Recovered at must not be earlier than occurred at (when the impact started).")),
    ("responded_at", "detected_at", _("Responded at must not be earlier than detected at.")),
    ("resolved_at", "recovered_at", _("Resolved at must not be earlier than recovered at.")),
)


def _order_faults(values: Mapping[str, datetime | None]) -> Iterator[tuple[str, str]]:
    """(field, message) for each ordering rule of metrics.md the values break."""
    for later, earlier, message in _TIMESTAMP_ORDER:
        if values.get(earlier) and values.get(later) and values[later] < values[earlier]:
            yield later, str(message)
    if values.get("resolved_at") and not values.get("recovered_at"):
        yield "resolved_at", gettext("An incident cannot be resolved before it has recovered: set recovered at too.")


def _range_faults(values: Mapping[str, datetime | None], *, now: datetime) -> Iterator[tuple[str, str]]:
    """(field, message) for each time too far ahead of now, or before EARLIEST_TIMESTAMP."""
    latest = now + settings.FUTURE_TOLERANCE
    for name in TIMESTAMP_FIELDS:
        if values.get(name) and values[name] > latest:
            yield name, gettext("This time lies in the future; at most 5 minutes ahead of now is accepted.")
        elif values.get(name) and values[name] < EARLIEST_TIMESTAMP:
            yield name, gettext("This time is before the year 2000; check the date.")


def validate_timestamps(values: Mapping[str, datetime | None], *, now: datetime) -> None:
    """The ordering rules of metrics.md and the accepted range; raises a ValidationError naming each
    field at fault."""
    errors: dict[str, list[str]] = {}
    for name, message in chain(_order_faults(values), _range_faults(values, now=now)):
        errors.setdefault(name, []).append(message)
    if errors:
        raise ValidationError(errors)


class Incident(models.Model):
    """One production stability event (生产稳定性事件)."""

    title = models.CharField(_("title"), max_length=200)
    summary = models.TextField(_("summary"), blank=True)
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="incidents", verbose_name=_("team"))
    systems = models.ManyToManyField(System, related_name="incidents", verbose_name=_("systems impacted"))
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="owned_incidents",
        verbose_name=_("owner"),
    )
    # Roles while the incident runs (issue 15): who leads the response and who speaks for it.
    commander = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("incident commander"),
    )
    communications_lead = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("communications lead"),
    )
    detection_source = models.CharField(_("detection source"), max_length=20, choices=DetectionSource.choices)

    occurred_at = models.DateTimeField(_("occurred at"), help_text=_("Impact started (故障开始)."))
    detected_at = models.DateTimeField(_("detected at"), help_text=_("Someone or something noticed it (发现)."))
    responded_at = models.DateTimeField(
        _("responded at"), null=True, blank=True, help_text=_("First responder engaged (响应).")
    )
    recovered_at = models.DateTimeField(
        _("recovered at"), null=True, blank=True, help_text=_("Impact over, service restored (恢复).")
    )
    resolved_at = models.DateTimeField(_("resolved at"), null=True, blank=True, help_text=_("Root cause fixed (解决)."))
    closed_at = models.DateTimeField(
        _("closed at"), null=True, blank=True, help_text=_("Closed loop done (闭环); set by the system.")
    )

    affected_users = models.PositiveBigIntegerField(_("affected users"), default=0)
    affected_transactions = models.PositiveBigIntegerField(
        _("affected transactions"), default=0, help_text=_("Failed or wrong transactions.")
    )
    funds_loss = models.DecimalField(
        _("funds loss"),
        max_digits=16,
        decimal_places=2,
        default=Decimal(0),
        validators=[MinValueValidator(Decimal(0))],
        help_text=_("资损"),
    )
    data_or_security_breach = models.BooleanField(_("data or security breach"), default=False)
    regulatory_reportable = models.BooleanField(
        _("reportable to the regulator"), default=False, help_text=_("监管报送")
    )
    availability_impact = models.DecimalField(
        _("availability impact"),
        max_digits=4,
        decimal_places=3,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal(0)), MaxValueValidator(Decimal(1))],
        help_text=_("Share of requests failing, 0 to 1. Empty: 0 for level D, 1 otherwise."),
    )

    cause_category = models.CharField(
        _("cause category"), max_length=20, choices=CauseCategory.choices, default=CauseCategory.UNKNOWN
    )
    cause = models.TextField(_("cause"), blank=True)
    handling = models.TextField(_("handling"), blank=True)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.OPEN)

    # Severity: `level` is what counts (the override when set, else the classified level).
    level = models.CharField(_("level"), max_length=1, choices=Level.choices)
    classified_level = models.CharField(_("classified level"), max_length=1, choices=Level.choices)
    severity_matches = models.JSONField(_("matched conditions"), default=list, blank=True)
    severity_policy = models.ForeignKey(
        SeverityPolicy, on_delete=models.PROTECT, related_name="incidents", verbose_name=_("severity policy")
    )
    level_override = models.CharField(_("level override"), max_length=1, choices=Level.choices, blank=True)
    level_override_reason = models.TextField(_("override reason"), blank=True)
    # The time-to-recover target of `level` under `severity_policy`, kept with the level it belongs to.
    recovery_target = models.DurationField(_("recovery target"))

    version = models.PositiveIntegerField(
        _("version"), default=1, help_text=_("Incremented on every change; a stale version is refused.")
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        verbose_name = _("incident")
        verbose_name_plural = _("incidents")
        indexes = [
            models.Index(fields=["occurred_at"]),
            models.Index(fields=["status", "occurred_at"]),
            models.Index(fields=["team", "occurred_at"]),
            # Items' figures by team (closed loop, health score) join a period's items to their incident's
            # team: read from this index alone rather than from the wide incident rows.
            models.Index(fields=["id"], include=["team"], name="incident_team_lookup"),
        ]
        # The ordering rules of metrics.md, enforced by the database as well as by validation.
        constraints = [
            models.CheckConstraint(
                condition=Q(detected_at__gte=F("occurred_at")), name="incident_detected_after_occurred"
            ),
            models.CheckConstraint(
                condition=Q(recovered_at__isnull=True) | Q(recovered_at__gte=F("occurred_at")),
                name="incident_recovered_after_occurred",
            ),
            models.CheckConstraint(
                condition=Q(responded_at__isnull=True) | Q(responded_at__gte=F("detected_at")),
                name="incident_responded_after_detected",
            ),
            models.CheckConstraint(
                condition=Q(resolved_at__isnull=True)
                | Q(recovered_at__isnull=False, resolved_at__gte=F("recovered_at")),
                name="incident_resolved_after_recovered",
            ),
            models.CheckConstraint(condition=Q(funds_loss__gte=0), name="incident_funds_loss_not_negative"),
            models.CheckConstraint(
                condition=Q(availability_impact__isnull=True)
                | Q(availability_impact__gte=0, availability_impact__lte=1),
                name="incident_availability_impact_between_0_and_1",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} [{self.level}] {self.title}"

    def validate_constraints(self, exclude=None):
        # clean() and the field validators check what the check constraints check, with a message on
        # the field at fault; the constraints are the database's backstop.
        return

    def clean(self):
        validate_timestamps({name: getattr(self, name) for name in TIMESTAMP_FIELDS}, now=timezone.now())

    # The durations of metrics.md, as incidents.durations.INCIDENT_DURATIONS defines them.
    @property
    def time_to_detect(self) -> timedelta:
        return incident_duration("time_to_detect", self)

    @property
    def time_to_respond(self) -> timedelta | None:
        return incident_duration("time_to_respond", self)

    @property
    def time_to_recover(self) -> timedelta | None:
        return incident_duration("time_to_recover", self)

    @property
    def time_to_resolve(self) -> timedelta | None:
        return incident_duration("time_to_resolve", self)

    @property
    def effective_availability_impact(self) -> Decimal:
        if self.availability_impact is not None:
            return self.availability_impact
        return Decimal(0) if self.level == Level.D else Decimal(1)


class TimelineEntry(models.Model):
    """The incident's audit trail and story: field changes, status and severity changes, notes."""

    class Kind(models.TextChoices):
        CREATED = "created", _("Created")
        CHANGE = "change", _("Field changed")
        STATUS = "status", _("Status changed")
        SEVERITY = "severity", _("Severity changed")
        NOTE = "note", _("Note")
        ACTION_ITEM = "action_item", _("Action item")
        RESPONDED = "responded", _("Responded")
        UPDATE = "update", _("Update")
        REVIEW = "review", _("Review")

    incident = models.ForeignKey(
        Incident, on_delete=models.CASCADE, related_name="timeline", verbose_name=_("incident")
    )
    kind = models.CharField(_("kind"), max_length=12, choices=Kind.choices)
    at = models.DateTimeField(_("at"), help_text=_("When it happened."))
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("author"),
        help_text=_("Empty for changes made by the system."),
    )
    action_item = models.ForeignKey(
        "ActionItem",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="timeline",
        verbose_name=_("action item"),
        help_text=_("Set on entries about one of the incident's action items."),
    )
    field = models.CharField(_("field"), max_length=50, blank=True)
    old_value = models.TextField(_("old value"), blank=True)
    new_value = models.TextField(_("new value"), blank=True)
    text = models.TextField(_("text"), blank=True, help_text=_("Only what a person typed (a note, a reason)."))
    # What the system says about the event, as values rendered in the reader's language at read time
    # (incidents.timeline): {"event": "item_added", "owner": "li", "due": "2026-12-01"}, a level's
    # {"matches": [...]}, never sentences.
    data = models.JSONField(_("details"), default=dict, blank=True)
    created_at = models.DateTimeField(_("recorded at"), auto_now_add=True)

    class Meta:
        ordering = ["at", "id"]
        verbose_name = _("timeline entry")
        verbose_name_plural = _("timeline entries")
        indexes = [models.Index(fields=["incident", "at"])]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.get_kind_display()} {self.field}".strip()


class ActionItem(models.Model):
    """A closed-loop item (闭环项): follow-up work an incident commits the team to, kept until it
    is done and verified, or waived with a manager's approval."""

    class Kind(models.TextChoices):
        FIX = "fix", _("Fix")
        MONITORING = "monitoring", _("Monitoring alert")
        DRILL = "drill", _("Drill")
        TEST_CASE = "test_case", _("Test case")
        PROCESS = "process", _("Process")
        OTHER = "other", _("Other")

    class Priority(models.TextChoices):
        HIGH = "high", _("High")
        MEDIUM = "medium", _("Medium")
        LOW = "low", _("Low")

    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        IN_PROGRESS = "in_progress", _("In progress")
        DONE = "done", _("Done, awaiting verification")
        VERIFIED = "verified", _("Verified")
        WAIVED = "waived", _("Waived")

    # Work still to do: reminders run and the item can become overdue.
    OPEN_STATUSES = (Status.OPEN, Status.IN_PROGRESS)
    # The loop is closed for this item.
    FINAL_STATUSES = (Status.VERIFIED, Status.WAIVED)

    class Source(models.TextChoices):
        INCIDENT = "incident", _("Incident")
        DRILL = "drill", _("Drill")
        REVIEW_MEETING = "review_meeting", _("Review meeting")
        AUDIT = "audit", _("Audit")
        GOVERNANCE = "governance", _("Governance")

    # Where the item comes from: an incident (incident set), a drill's finding (drill set), or a review
    # meeting, an audit or governance work (neither; source_note names it). The team owns it either way.
    source = models.CharField(_("source"), max_length=20, choices=Source.choices, default=Source.INCIDENT)
    incident = models.ForeignKey(
        Incident,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="action_items",
        verbose_name=_("incident"),
    )
    drill = models.ForeignKey(
        "Drill",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="action_items",
        verbose_name=_("drill"),
    )
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="action_items", verbose_name=_("team"))
    source_note = models.CharField(
        _("source note"),
        max_length=200,
        blank=True,
        help_text=_("Which meeting, audit or piece of work it comes from, e.g. the bimonthly stability review."),
    )
    title = models.CharField(_("title"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices, default=Kind.FIX)
    priority = models.CharField(_("priority"), max_length=10, choices=Priority.choices, default=Priority.MEDIUM)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="action_items",
        verbose_name=_("owner"),
    )
    verifier = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="action_items_to_verify",
        verbose_name=_("verifier"),
    )
    acceptance_criteria = models.TextField(_("acceptance criteria"), blank=True)
    due_at = models.DateTimeField(_("due at"))
    ticket_url = models.URLField(_("ticket link"), max_length=500, blank=True)
    status = models.CharField(_("status"), max_length=12, choices=Status.choices, default=Status.OPEN)

    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    completed_at = models.DateTimeField(
        _("completed at"), null=True, blank=True, help_text=_("When the owner marked it done.")
    )
    verified_at = models.DateTimeField(_("verified at"), null=True, blank=True)
    verified_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("verified by"),
    )
    waived_at = models.DateTimeField(_("waived at"), null=True, blank=True)
    waived_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("waiver approved by"),
    )
    waive_reason = models.TextField(_("waiver reason"), blank=True)

    version = models.PositiveIntegerField(
        _("version"), default=1, help_text=_("Incremented on every change; a stale version is refused.")
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering = ["due_at", "id"]
        verbose_name = _("action item")
        verbose_name_plural = _("action items")
        indexes = [
            models.Index(fields=["due_at"]),
            models.Index(fields=["owner", "status"]),
            models.Index(fields=["team", "due_at"], name="actionitem_team_due"),
            # The reminder sweep: open items by due date.
            models.Index(
                fields=["due_at"], condition=Q(status__in=["open", "in_progress"]), name="actionitem_open_due"
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~Q(status="waived") | ~Q(waive_reason=""), name="actionitem_waiver_has_reason"
            ),
            models.CheckConstraint(
                condition=~Q(status__in=["done", "verified"]) | Q(completed_at__isnull=False),
                name="actionitem_completed_has_completed_at",
            ),
            # An incident's item has its incident, a drill's its drill, and the others neither.
            models.CheckConstraint(
                condition=(Q(source="incident") & Q(incident__isnull=False) & Q(drill__isnull=True))
                | (Q(source="drill") & Q(drill__isnull=False) & Q(incident__isnull=True))
                | (~Q(source__in=["incident", "drill"]) & Q(incident__isnull=True) & Q(drill__isnull=True)),
                name="actionitem_source_matches_origin",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.title}"


class Drill(models.Model):
    """A drill (演练): a planned exercise of a failure (a bank-channel switch-over, a failover, ...) on some
    systems; once held, its result, how long the switch-over took and what it found. Findings become
    closed-loop items (source drill)."""

    class Scenario(models.TextChoices):
        BANK_CHANNEL_SWITCH = "bank_channel_switch", _("Bank channel switch-over")
        FAILOVER = "failover", _("Primary/standby failover")
        CAPACITY = "capacity", _("Capacity load test")
        DISASTER_RECOVERY = "disaster_recovery", _("Disaster recovery")
        OTHER = "other", _("Other")

    class Result(models.TextChoices):
        PASSED = "passed", _("Passed")
        PARTLY = "partly", _("Partly passed")
        FAILED = "failed", _("Failed")

    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="drills", verbose_name=_("team"))
    title = models.CharField(_("title"), max_length=200)
    scenario = models.CharField(_("scenario"), max_length=30, choices=Scenario.choices)
    systems = models.ManyToManyField(System, related_name="drills", verbose_name=_("systems"))
    planned_at = models.DateTimeField(_("planned at"))
    held_at = models.DateTimeField(_("held at"), null=True, blank=True)
    result = models.CharField(_("result"), max_length=10, choices=Result.choices, blank=True)
    switch_over_seconds = models.PositiveIntegerField(
        _("time to switch over (seconds)"),
        null=True,
        blank=True,
        help_text=_("From the start of the switch-over to traffic on the other side."),
    )
    findings = models.TextField(_("findings"), blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering = ["-planned_at", "-id"]
        verbose_name = _("drill")
        verbose_name_plural = _("drills")
        indexes = [
            models.Index(fields=["team", "planned_at"], name="drill_team_planned"),
            models.Index(fields=["held_at"], name="drill_held"),
        ]
        constraints = [
            # A result is recorded when the drill is held, and only then.
            models.CheckConstraint(
                condition=(Q(held_at__isnull=True) & Q(result=""))
                | (Q(held_at__isnull=False) & Q(result__in=["passed", "partly", "failed"])),
                name="drill_result_when_held",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.title}"


class IncidentReview(models.Model):
    """The post-incident review (复盘) of one incident: its sections (IncidentReviewSection), each Markdown
    text kept with every version it had (ReviewRevision). `version` guards against a stale edit."""

    incident = models.OneToOneField(
        Incident, on_delete=models.CASCADE, related_name="review", verbose_name=_("incident")
    )
    version = models.PositiveIntegerField(
        _("version"), default=0, help_text=_("Incremented on every change; a stale version is refused.")
    )
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("updated by"),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("review")
        verbose_name_plural = _("reviews")

    def __str__(self) -> str:
        return f"#{self.incident_id} v{self.version}"


class IncidentReviewSection(models.Model):
    """One section of a review, as it reads now (its earlier texts are its revisions)."""

    review = models.ForeignKey(
        IncidentReview, on_delete=models.CASCADE, related_name="sections", verbose_name=_("review")
    )
    key = models.CharField(_("section"), max_length=20, choices=ReviewSection.choices)
    text = models.TextField(_("text"), blank=True, help_text=_("Markdown."))
    version = models.PositiveIntegerField(_("version"), default=1)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("updated by"),
    )
    updated_at = models.DateTimeField(_("updated at"), default=timezone.now)

    class Meta:
        ordering = ["review", "id"]
        verbose_name = _("review section")
        verbose_name_plural = _("review sections")
        constraints = [models.UniqueConstraint(fields=["review", "key"], name="review_section_once")]

    def __str__(self) -> str:
        return f"{self.key} v{self.version}"


class ReviewRevision(models.Model):
    """A section's text as one save left it: every version of every section stays readable."""

    section = models.ForeignKey(
        IncidentReviewSection, on_delete=models.CASCADE, related_name="revisions", verbose_name=_("review section")
    )
    version = models.PositiveIntegerField(_("version"))
    text = models.TextField(_("text"), blank=True)
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("author"),
    )
    at = models.DateTimeField(_("at"))

    class Meta:
        ordering = ["section", "version"]
        verbose_name = _("review revision")
        verbose_name_plural = _("review revisions")
        constraints = [models.UniqueConstraint(fields=["section", "version"], name="review_revision_once")]

    def __str__(self) -> str:
        return f"{self.section} v{self.version}"
