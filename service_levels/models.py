"""Service levels measured in Prometheus (docs/service-levels.md): the Prometheus servers the tracker
asks, the indicators (SLIs) of each system, and one value per indicator and local day."""

from decimal import Decimal
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from incidents.models import System, Team

# The placeholder of the range an expression covers: the puller writes the day's length (86400s), the
# test query the last 24 hours, e.g. sum(increase(payment_requests_good_total[$window])).
WINDOW = "$window"


def validate_server_url(value: str) -> None:
    """An http(s) URL with a host (a bare in-cluster name such as prometheus:9090 too), no query."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a port that is no port
    except ValueError:
        parts = None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.query
        or parts.fragment
        or any(c.isspace() for c in value)
    ):
        raise ValidationError(
            _("An http:// or https:// URL of the server, e.g. http://prometheus:9090."), code="invalid_url"
        )


def validate_objective(value: Decimal) -> None:
    if not Decimal(0) < value <= Decimal(100):
        raise ValidationError(_("An objective is a percentage above 0 and at most 100, e.g. 99.99."), code="objective")


class CheckedByFields(models.Model):
    """A model whose check constraints' rules are checked with messages on the fields at fault (field
    validators, the services' checks): validation skips them, the database keeps them as the backstop."""

    class Meta:
        abstract = True

    def get_constraints(self):
        return [
            (model, [c for c in constraints if not isinstance(c, models.CheckConstraint)])
            for model, constraints in super().get_constraints()
        ]


class PrometheusSource(CheckedByFields):
    """A Prometheus server (or anything answering its HTTP query API: Thanos, VictoriaMetrics, Mimir) for
    the whole installation or one team. The bearer token and the password are write-only."""

    class Auth(models.TextChoices):
        NONE = "none", _("None")
        BEARER = "bearer", _("Bearer token")
        BASIC = "basic", _("Basic (user name and password)")

    name = models.CharField(_("name"), max_length=100, unique=True)
    team = models.ForeignKey(
        Team,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="prometheus_sources",
        verbose_name=_("team"),
        help_text=_("Empty: for the whole installation."),
    )
    url = models.CharField(
        _("URL"),
        max_length=500,
        validators=[validate_server_url],
        help_text=_("The server's base URL, e.g. http://prometheus:9090 (the query API is /api/v1/query under it)."),
    )
    auth = models.CharField(_("authentication"), max_length=10, choices=Auth.choices, default=Auth.NONE)
    bearer_token = models.CharField(_("bearer token"), max_length=500, blank=True, help_text=_("Never shown."))
    username = models.CharField(_("user name"), max_length=200, blank=True)
    password = models.CharField(_("password"), max_length=500, blank=True, help_text=_("Never shown."))
    verify_tls = models.BooleanField(
        _("verify TLS"), default=True, help_text=_("Check the server's certificate (https). Turn off only for tests.")
    )
    timeout_seconds = models.PositiveSmallIntegerField(
        _("timeout (seconds)"),
        default=10,
        validators=[MinValueValidator(1), MaxValueValidator(300)],
        help_text=_("How long one query may take before it counts as failed."),
    )
    enabled = models.BooleanField(_("enabled"), default=True, help_text=_("Disabled: its indicators are not pulled."))
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("Prometheus source")
        verbose_name_plural = _("Prometheus sources")
        constraints = [
            models.CheckConstraint(
                condition=Q(timeout_seconds__gte=1, timeout_seconds__lte=300), name="prometheus_source_timeout_range"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Indicator(CheckedByFields):
    """A service level indicator (SLI) of a system, e.g. 入金有效成功率 against 99.99 %.

    Either `good_query` and `total_query` (counts of good and of all events over `$window`), or
    `ratio_query` (the good share over `$window`, 0 to 1). Each is an instant PromQL expression giving
    one number."""

    class Kind(models.TextChoices):
        SUCCESS_RATIO = "success_ratio", _("Success ratio")
        AVAILABILITY = "availability", _("Availability")

    system = models.ForeignKey(
        System, on_delete=models.PROTECT, related_name="service_indicators", verbose_name=_("system")
    )
    source = models.ForeignKey(
        PrometheusSource, on_delete=models.PROTECT, related_name="indicators", verbose_name=_("Prometheus source")
    )
    name = models.CharField(_("name"), max_length=100, help_text=_("As the report says it, e.g. 入金有效成功率."))
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices, default=Kind.SUCCESS_RATIO)
    good_query = models.TextField(
        _("good events (PromQL)"),
        blank=True,
        help_text=_('e.g. sum(increase(payment_requests_total{outcome="success"}[$window]))'),
    )
    total_query = models.TextField(
        _("all events (PromQL)"), blank=True, help_text=_("e.g. sum(increase(payment_requests_total[$window]))")
    )
    ratio_query = models.TextField(
        _("ratio (PromQL)"),
        blank=True,
        help_text=_(
            'Instead of good and all events: the good share, 0 to 1, e.g. avg_over_time(up{job="api"}[$window])'
        ),
    )
    objective = models.DecimalField(
        _("objective (%)"),
        max_digits=7,
        decimal_places=4,
        validators=[validate_objective],
        help_text=_("Above 0, at most 100, e.g. 99.99."),
    )
    enabled = models.BooleanField(_("enabled"), default=True, help_text=_("Disabled: no longer pulled."))
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering = ["system__tier", "system__code", "name"]
        verbose_name = _("service level indicator")
        verbose_name_plural = _("service level indicators")
        constraints = [
            models.UniqueConstraint(
                fields=["system", "name"],
                name="indicator_name_unique_per_system",
                violation_error_message=_("The system has an indicator of this name already."),
            ),
            models.CheckConstraint(
                condition=Q(objective__gt=0, objective__lte=100), name="indicator_objective_above_0_at_most_100"
            ),
            # Good and total, or a ratio: never both, never neither.
            models.CheckConstraint(
                condition=(~Q(good_query="") & ~Q(total_query="") & Q(ratio_query=""))
                | (Q(good_query="") & Q(total_query="") & ~Q(ratio_query="")),
                name="indicator_good_and_total_or_ratio",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.system.code})"

    @property
    def counts_events(self) -> bool:
        """Good and total events are known (the period's ratio is summed good over summed total)."""
        return not self.ratio_query


class DailyValue(models.Model):
    """An indicator's value on one local day (settings.TIME_ZONE): [day 00:00, next day 00:00).

    ok: good and total (or the ratio) as Prometheus gave them; missing: Prometheus had no data for the
    day (never counted as 100 %); failed: the pull failed, with its reason, and is tried again."""

    class Status(models.TextChoices):
        OK = "ok", _("Measured")
        MISSING = "missing", _("No data")
        FAILED = "failed", _("Pull failed")

    indicator = models.ForeignKey(
        Indicator, on_delete=models.CASCADE, related_name="daily_values", verbose_name=_("indicator")
    )
    day = models.DateField(_("day"))
    status = models.CharField(_("status"), max_length=10, choices=Status.choices)
    good = models.FloatField(_("good events"), null=True, blank=True)
    total = models.FloatField(_("all events"), null=True, blank=True)
    ratio = models.FloatField(_("ratio"), null=True, blank=True, help_text=_("0 to 1."))
    # Why a day has no value: a code of service_levels.prometheus.Problem and its detail (Prometheus's own
    # words, the error), shown in the reader's language.
    problem = models.CharField(_("problem"), max_length=20, blank=True)
    detail = models.TextField(_("detail"), blank=True)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    pulled_at = models.DateTimeField(_("pulled at"))

    class Meta:
        ordering = ["day"]
        verbose_name = _("daily value")
        verbose_name_plural = _("daily values")
        constraints = [
            models.UniqueConstraint(fields=["indicator", "day"], name="daily_value_once_per_indicator_and_day"),
            models.CheckConstraint(
                condition=~Q(status="ok") | Q(ratio__isnull=False, ratio__gte=0, ratio__lte=1),
                name="daily_value_measured_has_ratio_0_to_1",
            ),
        ]
        indexes = [models.Index(fields=["day", "indicator"], name="daily_value_day")]

    def __str__(self) -> str:
        return f"{self.indicator_id} {self.day} {self.status}"
