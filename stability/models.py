from django.conf import settings
from django.db import models
from django.db.models import F, Q
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

    class Meta:
        ordering = ["-received_at", "-id"]
        verbose_name = _("alert occurrence")
        verbose_name_plural = _("alert occurrences")
        constraints = [
            models.UniqueConstraint(
                fields=["integration", "fingerprint", "starts_at"], name="alert_occurrence_identity"
            )
        ]
        indexes = [
            models.Index(fields=["received_at"]),
            models.Index(fields=["team", "received_at"]),
            models.Index(fields=["system", "received_at"]),
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
