"""Reads of the incident record, and the incident figures of metrics.md, defined once here.

Every consumer (API, pages, reports, health score) calls these; none recomputes a figure.
"""

import math
from collections.abc import Sequence
from datetime import timedelta
from fractions import Fraction

from django.db.models import Avg, Count, DurationField, ExpressionWrapper, F, Q, QuerySet

from incidents.models import CauseCategory, DetectionSource, Incident, Level, SeverityPolicy, TimelineEntry
from incidents.periods import Period


def current_severity_policy() -> SeverityPolicy:
    """The newest policy version; it classifies new incidents."""
    return SeverityPolicy.objects.order_by("-version").first()


def incident_list() -> QuerySet[Incident]:
    """Incidents with what a list shows, in a constant number of queries whatever the page size."""
    return Incident.objects.select_related("team", "owner", "severity_policy").prefetch_related("systems")


def incident_timeline(*, incident: Incident) -> QuerySet[TimelineEntry]:
    return incident.timeline.select_related("author").order_by("at", "id")


def in_period(incidents: QuerySet[Incident], period: Period) -> QuerySet[Incident]:
    """A period selects incidents by occurred_at, half-open."""
    return incidents.filter(occurred_at__gte=period.start, occurred_at__lt=period.end)


def percentile(sorted_values: Sequence[float], fraction: float) -> float | None:
    """Linear interpolation between closest ranks (PostgreSQL percentile_cont, numpy 'linear')."""
    if not sorted_values:
        return None
    # Exact rational arithmetic: p90 of whole seconds should not come out as 5850.000000000001.
    position = (len(sorted_values) - 1) * Fraction(str(fraction))
    low, high = math.floor(position), math.ceil(position)
    low_value, high_value = Fraction(sorted_values[low]), Fraction(sorted_values[high])
    return float(low_value + (high_value - low_value) * (position - low))


def _seconds(value: timedelta | None) -> float | None:
    return value.total_seconds() if value is not None else None


def rate(numerator: int, denominator: int) -> float | None:
    """A rate whose denominator is 0 is null ("no data")."""
    return numerator / denominator if denominator else None


_DURATIONS = {
    # name: (expression, which incidents have it)
    "time_to_detect": (F("detected_at") - F("occurred_at"), Q()),
    "time_to_respond": (F("responded_at") - F("detected_at"), Q(responded_at__isnull=False)),
    "time_to_recover": (F("recovered_at") - F("occurred_at"), Q(recovered_at__isnull=False)),
    "time_to_resolve": (F("resolved_at") - F("occurred_at"), Q(resolved_at__isnull=False)),
}


def _duration_stats(incidents: QuerySet[Incident], name: str, aggregates: dict) -> dict:
    expression, has_it = _DURATIONS[name]
    values = sorted(
        d.total_seconds()
        for d in incidents.filter(has_it)
        .annotate(d=ExpressionWrapper(expression, output_field=DurationField()))
        .values_list("d", flat=True)
    )
    return {
        "count": aggregates[f"{name}_count"],
        "mean": _seconds(aggregates[f"{name}_mean"]),
        "median": percentile(values, 0.5),
        "p90": percentile(values, 0.9),
    }


def incident_metrics(*, incidents: QuerySet[Incident]) -> dict:
    """The incident figures of metrics.md over a set (usually `in_period(...)` of a filtered list).

    - counts by level, detection source, cause category, team and system;
    - time to detect / respond / recover / resolve in seconds: count, mean, median, p90, each over
      the incidents that have the timestamps (MTTR excludes unrecovered incidents, counted apart);
    - recovery-target compliance = recovered within their level's target / recovered, also per level;
    - detected-by-monitoring share = detected by a monitoring alert / incidents with a source.
    Rates with a zero denominator are None.
    """
    # Filters across systems may repeat an incident; count each once.
    base = Incident.objects.filter(pk__in=incidents.values("pk"))
    recovered = Q(recovered_at__isnull=False)
    # time to recover <= target, i.e. recovered_at <= occurred_at + target
    within_target = recovered & Q(recovered_at__lte=F("occurred_at") + F("recovery_target"))
    aggregates = base.aggregate(
        total=Count("pk"),
        recovered=Count("pk", filter=recovered),
        within_target=Count("pk", filter=within_target),
        monitoring=Count("pk", filter=Q(detection_source=DetectionSource.MONITORING)),
        with_source=Count("pk", filter=~Q(detection_source="")),
        **{f"{name}_count": Count("pk", filter=has_it) for name, (_e, has_it) in _DURATIONS.items()},
        **{
            f"{name}_mean": Avg(ExpressionWrapper(expression, output_field=DurationField()), filter=has_it)
            for name, (expression, has_it) in _DURATIONS.items()
        },
    )

    by_level = {level: 0 for level in Level.values}
    by_level.update(base.values_list("level").annotate(n=Count("pk")).order_by())
    by_source = {source: 0 for source in DetectionSource.values}
    by_source.update(base.values_list("detection_source").annotate(n=Count("pk")).order_by())
    by_cause = {cause: 0 for cause in CauseCategory.values}
    by_cause.update(base.values_list("cause_category").annotate(n=Count("pk")).order_by())
    by_team = [
        {"team": slug, "name": name, "count": n}
        for slug, name, n in base.values_list("team__slug", "team__name")
        .annotate(n=Count("pk"))
        .order_by("-n", "team__slug")
    ]
    by_system = [
        {"system": code, "name": name, "tier": tier, "count": n}
        for code, name, tier, n in base.values_list("systems__code", "systems__name", "systems__tier")
        .annotate(n=Count("pk"))
        .order_by("-n", "systems__code")
        if code is not None
    ]

    compliance_by_level = {level: {"recovered": 0, "within_target": 0, "rate": None} for level in Level.values}
    for level, n_recovered, n_within in (
        base.filter(recovered)
        .values_list("level")
        .annotate(n=Count("pk"), within=Count("pk", filter=within_target))
        .order_by()
    ):
        compliance_by_level[level] = {
            "recovered": n_recovered,
            "within_target": n_within,
            "rate": rate(n_within, n_recovered),
        }

    return {
        "incidents": aggregates["total"],
        "recovered": aggregates["recovered"],
        "unrecovered": aggregates["total"] - aggregates["recovered"],
        "by_level": by_level,
        "by_detection_source": by_source,
        "by_cause_category": by_cause,
        "by_team": by_team,
        "by_system": by_system,
        **{name: _duration_stats(base, name, aggregates) for name in _DURATIONS},
        "recovery_target_compliance": {
            "rate": rate(aggregates["within_target"], aggregates["recovered"]),
            "within_target": aggregates["within_target"],
            "recovered": aggregates["recovered"],
            "by_level": compliance_by_level,
        },
        "detected_by_monitoring": {
            "rate": rate(aggregates["monitoring"], aggregates["with_source"]),
            "monitoring": aggregates["monitoring"],
            "with_source": aggregates["with_source"],
        },
    }
