"""Reads of the incident record, and the incident figures of metrics.md, defined once here.

Every consumer (API, pages, reports, health score) calls these; none recomputes a figure.
"""

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

from django.core.exceptions import ValidationError
from django.db.models import (
    Avg,
    Case,
    Count,
    DateTimeField,
    DurationField,
    Exists,
    ExpressionWrapper,
    F,
    Func,
    OuterRef,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
)
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import User
from incidents import severity
from incidents.durations import INCIDENT_DURATIONS
from incidents.models import (
    LEVEL_RANK,
    ActionItem,
    CauseCategory,
    DetectionSource,
    Drill,
    Incident,
    IncidentReviewSection,
    Level,
    ReviewSection,
    SeverityPolicy,
    Status,
    System,
    Team,
    TimelineEntry,
)
from incidents.periods import Period


def current_severity_policy() -> SeverityPolicy:
    """The newest policy version; it classifies new incidents."""
    return SeverityPolicy.objects.order_by("-version").first()


@dataclass(frozen=True)
class SeverityPreview:
    level: str
    explanation: str
    matches: list[dict]
    policy: SeverityPolicy
    recovery_target: int  # seconds, the policy's target for `level`


def severity_preview(
    *,
    systems: Iterable[System] = (),
    tier: str | None = None,
    occurred_at: datetime | None = None,
    recovered_at: datetime | None = None,
    impact: timedelta | None = None,
    affected_users: int = 0,
    affected_transactions: int = 0,
    funds_loss: Decimal = Decimal(0),
    data_or_security_breach: bool = False,
    regulatory_reportable: bool = False,
    now: datetime,
) -> SeverityPreview:
    """The level the current policy would give these facts, nothing saved. The tier is the most
    critical of the systems' and `tier`; the impact is `impact` if given, else occurred_at to
    recovered_at (or `now`), else none."""
    tiers = [system.tier for system in systems] + ([tier] if tier else [])
    if impact is None:
        impact = (
            severity.impact_of(occurred_at=occurred_at, recovered_at=recovered_at, now=now)
            if occurred_at
            else timedelta(0)
        )
    policy = current_severity_policy()
    result = severity.classify(
        severity.ImpactFacts(
            tier=severity.most_critical_tier(tiers),
            impact=impact,
            affected_users=affected_users,
            affected_transactions=affected_transactions,
            funds_loss=funds_loss,
            data_or_security_breach=data_or_security_breach,
            regulatory_reportable=regulatory_reportable,
        ),
        policy.rules,
    )
    return SeverityPreview(
        level=result.level,
        explanation=severity.explain(result.level, result.matches),
        matches=result.matches,
        policy=policy,
        recovery_target=policy.recovery_targets[result.level],
    )


class UtcClock(Func):
    """A time read as its UTC wall-clock time, without a zone: on PostgreSQL `AT TIME ZONE 'UTC'`, which
    psycopg's C loader reads, where Django's loader of timestamptz parses text in Python (60,000 times
    took 290 ms of CPU instead of 8, on this machine under load). For reads of thousands of times (the
    report's incident list and availability); `utc` puts the zone back. Elsewhere the column as it is
    (already UTC)."""

    template = "(%(expressions)s AT TIME ZONE 'UTC')"
    output_field = DateTimeField()

    def as_sql(self, compiler, connection, **extra):
        if connection.vendor != "postgresql":
            return compiler.compile(self.source_expressions[0])
        return super().as_sql(compiler, connection, **extra)


def utc(moment: datetime | None) -> datetime | None:
    """A time read through UtcClock, in UTC again."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def utc_clock(moment: datetime) -> datetime:
    """A time as the UTC wall clock UtcClock reads (without a zone), from an aware time or from one read
    through UtcClock (aware where the database gives the column as it is)."""
    return moment if moment.tzinfo is None else moment.astimezone(UTC).replace(tzinfo=None)


def incident_list() -> QuerySet[Incident]:
    """Incidents with what a list shows, in a constant number of queries whatever the page size."""
    return Incident.objects.select_related("team", "owner", "severity_policy").prefetch_related("systems")


def incident_timeline(*, incident: Incident) -> QuerySet[TimelineEntry]:
    return incident.timeline.select_related("author").order_by("at", "id")


def each_once(incidents: QuerySet[Incident]) -> QuerySet[Incident]:
    """`incidents` with every incident once. A filter across a many-valued relation (systems__code=...)
    repeats an incident per match: then by id, through a subquery. Otherwise the rows are distinct
    already and the queryset is used as it is (the subquery would cost a scan of every incident)."""
    repeats = any(
        join.join_field.one_to_many or join.join_field.many_to_many
        for join in incidents.query.alias_map.values()
        if getattr(join, "join_field", None) is not None
    )
    return Incident.objects.filter(pk__in=incidents.values("pk")) if repeats else incidents


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


def _duration_in_sql(start_field: str, end_field: str) -> tuple[F, Q]:
    # Only timestamps that may be missing need a filter: detected_at never is.
    has_it = Q(**{f"{end_field}__isnull": False}) if Incident._meta.get_field(end_field).null else Q()
    return F(end_field) - F(start_field), has_it


# name: (expression, which incidents have it), from incidents.durations.INCIDENT_DURATIONS
_DURATIONS = {name: _duration_in_sql(*fields) for name, fields in INCIDENT_DURATIONS.items()}


def _durations(incidents: QuerySet[Incident]) -> dict[str, list[float]]:
    """Every duration of _DURATIONS over `incidents`, sorted seconds, in one query: a duration is null
    exactly where the incident lacks the timestamp (its `which incidents have it`), and left out."""
    columns = {
        f"duration_{name}": ExpressionWrapper(expression, output_field=DurationField())
        for name, (expression, _has_it) in _DURATIONS.items()
    }
    values: dict[str, list[float]] = {name: [] for name in _DURATIONS}
    for row in incidents.annotate(**columns).values_list(*columns).order_by():
        for name, duration in zip(_DURATIONS, row, strict=True):
            if duration is not None:
                values[name].append(duration.total_seconds())
    return {name: sorted(seconds) for name, seconds in values.items()}


def _duration_stats(values: list[float], name: str, aggregates: dict) -> dict:
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
    base = each_once(incidents)
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

    counts = _incident_counts(base)
    compliance_by_level = _compliance_by_level(base.filter(recovered), within_target=within_target)
    return {
        "incidents": aggregates["total"],
        "recovered": aggregates["recovered"],
        "unrecovered": aggregates["total"] - aggregates["recovered"],
        **counts,
        **{name: _duration_stats(values, name, aggregates) for name, values in _durations(base).items()},
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


def _incident_counts(base: QuerySet[Incident]) -> dict:
    """Incidents counted by level, detection source and cause category (every value, 0 included), and
    by team and system (most first)."""
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
    return {
        "by_level": by_level,
        "by_detection_source": by_source,
        "by_cause_category": by_cause,
        "by_team": by_team,
        "by_system": by_system,
    }


def _compliance_by_level(recovered: QuerySet[Incident], *, within_target: Q) -> dict:
    """Recovery-target compliance of the recovered incidents, per level (every level, None without data)."""
    by_level = {level: {"recovered": 0, "within_target": 0, "rate": None} for level in Level.values}
    for level, n_recovered, n_within in (
        recovered.values_list("level").annotate(n=Count("pk"), within=Count("pk", filter=within_target)).order_by()
    ):
        by_level[level] = {"recovered": n_recovered, "within_target": n_within, "rate": rate(n_within, n_recovered)}
    return by_level


# -- Recovery-target compliance as conditions, for figures grouped elsewhere (stability.selectors) --
# The same sets as incident_metrics' `recovered` and `within_target`: exactly at the target is within.
RECOVERED = Q(recovered_at__isnull=False)
WITHIN_RECOVERY_TARGET = RECOVERED & Q(recovered_at__lte=F("occurred_at") + F("recovery_target"))


# -- closed-loop items (闭环项) --------------------------------------------------------------------

_ITEM_RELATIONS = ("incident", "drill", "team", "owner", "verifier", "verified_by", "waived_by", "created_by")
COMPLETED = Q(status__in=(ActionItem.Status.DONE, ActionItem.Status.VERIFIED))


def overdue(now: datetime) -> Q:
    """Overdue = not completed (open or in progress; waived is not overdue) and due_at < now."""
    return Q(status__in=ActionItem.OPEN_STATUSES, due_at__lt=now)


def due_in(period: Period) -> Q:
    return Q(due_at__gte=period.start, due_at__lt=period.end)


def on_time_counted(now: datetime) -> Q:
    """The denominator's items among those due in a period: completed, or already past due; never
    waived. Items not yet due and not completed wait for their due date."""
    return ~Q(status=ActionItem.Status.WAIVED) & (COMPLETED | Q(due_at__lt=now))


# Completed at or before the due date (exactly at it is on time).
ON_TIME = COMPLETED & Q(completed_at__lte=F("due_at"))


def action_item_list(*, user: User | None = None, **filters) -> QuerySet[ActionItem]:
    """Items with what a list shows (incident, team, people) in a constant number of queries,
    filtered as filter_action_items describes."""
    return filter_action_items(ActionItem.objects.select_related(*_ITEM_RELATIONS), user=user, **filters)


def filter_action_items(
    items: QuerySet[ActionItem],
    *,
    user: User | None = None,
    owner: User | int | str | None = None,
    team: Team | str | None = None,
    incident: Incident | int | None = None,
    sources: Sequence[str] = (),
    statuses: Sequence[str] = (),
    overdue_only: bool | None = None,
    due_after: datetime | None = None,
    due_before: datetime | None = None,
    kinds: Sequence[str] = (),
    priorities: Sequence[str] = (),
    now: datetime | None = None,
) -> QuerySet[ActionItem]:
    """owner is a user, an id, a username or "me" (the reader, `user`); team a team or its slug;
    overdue_only true: overdue as of `now` (default now), false: not overdue; due_after inclusive,
    due_before exclusive. An owner that does not exist is a ValidationError naming "owner"."""
    if owner is not None and owner != "":
        items = items.filter(owner=_owner(owner, user=user))
    if team is not None and team != "":
        items = items.filter(team__slug=team) if isinstance(team, str) else items.filter(team=team)
    if incident is not None:
        items = items.filter(incident=incident)
    if sources:
        items = items.filter(source__in=sources)
    if statuses:
        items = items.filter(status__in=statuses)
    if overdue_only is not None:
        condition = overdue(now or timezone.now())
        items = items.filter(condition) if overdue_only else items.exclude(condition)
    if due_after is not None:
        items = items.filter(due_at__gte=due_after)
    if due_before is not None:
        items = items.filter(due_at__lt=due_before)
    if kinds:
        items = items.filter(kind__in=kinds)
    if priorities:
        items = items.filter(priority__in=priorities)
    return items


def _owner(owner: User | int | str, *, user: User | None) -> User | int:
    if isinstance(owner, User | int):
        return owner
    if owner == "me":
        if user is None or not user.is_authenticated:
            raise ValidationError({"owner": [_("“me” needs a signed-in reader.")]})
        return user
    if owner.isdigit():
        return int(owner)
    found = User.objects.filter(username=owner).values_list("pk", flat=True).first()
    if found is None:
        raise ValidationError({"owner": [_("No user %(name)s; give a user id, a username or me.") % {"name": owner}]})
    return found


def open_first(items: QuerySet[ActionItem]) -> QuerySet[ActionItem]:
    """Open and in-progress items first, then done (awaiting verification), then verified and waived;
    by due date within each."""
    rank = Case(
        When(status__in=ActionItem.OPEN_STATUSES, then=Value(0)),
        When(status=ActionItem.Status.DONE, then=Value(1)),
        default=Value(2),
    )
    return items.alias(open_rank=rank).order_by("open_rank", "due_at", "id")


def days_overdue(item: ActionItem, *, now: datetime) -> int | None:
    """Whole days past due (floor), for an overdue item; None for one that is not overdue."""
    if item.status not in ActionItem.OPEN_STATUSES or item.due_at >= now:
        return None
    return (now - item.due_at).days


def _scope(items: QuerySet, incidents: QuerySet[Incident], *, team: Team | None, system: System | None):
    if team is not None:
        items, incidents = items.filter(team=team), incidents.filter(team=team)
    if system is not None:
        # Through subqueries: an incident impacting several systems counts once. A system's items are
        # those of its incidents and of its drills.
        with_system = Incident.objects.filter(systems=system).values("pk")
        drilled = Drill.objects.filter(systems=system).values("pk")
        items = items.filter(Q(incident__in=with_system) | Q(drill__in=drilled))
        incidents = incidents.filter(pk__in=with_system)
    return items, incidents


def closed_loop_metrics(
    *, period: Period, team: Team | None = None, system: System | None = None, now: datetime
) -> dict:
    """The closed-loop figures of metrics.md for a period, optionally of one team or one system
    (the items of incidents of that team / impacting that system), as of `now`:

    - on-time completion rate = items due in the period (due_at, half-open) completed (done or
      verified) with completed_at <= due_at / items due in the period that are completed or already
      past due (due_at < now); waived items and items not yet due and not completed are excluded;
    - overdue = items due in the period not completed (open, in progress) with due_at < now, with
      whole days overdue (floor), counted by owner and by team;
    - incident closed-loop rate = incidents of the period (occurred_at) closed / incidents of the
      period recovered.
    - by source (incident, drill, review meeting, audit, governance): the same on-time completion
      figures and overdue count of the items of each source; they add up to the totals.
    Rates with a zero denominator are None. Five queries whatever the data.
    """
    items, incidents = _scope(
        ActionItem.objects.filter(due_in(period)), in_period(Incident.objects.all(), period), team=team, system=system
    )
    counted = on_time_counted(now)
    late = overdue(now)
    measures = {
        "due": Q(),
        "numerator": counted & ON_TIME,
        "denominator": counted,
        "completed": COMPLETED,
        "overdue": late,
        "waived": Q(status=ActionItem.Status.WAIVED),
    }
    # The totals and each source's figures in the same query.
    figures = items.aggregate(
        **{name: Count("pk", filter=condition) for name, condition in measures.items()},
        **{
            f"{source}__{name}": Count("pk", filter=condition & Q(source=source))
            for source in ActionItem.Source.values
            for name, condition in measures.items()
        },
    )
    overdue_list = _overdue_list(items.filter(late), now=now)
    # A closed incident has recovered (close follows recover or resolve); the condition keeps the
    # numerator inside the denominator whatever the history.
    loop = incidents.aggregate(
        closed=Count("pk", filter=Q(status=Status.CLOSED) & RECOVERED), recovered=Count("pk", filter=RECOVERED)
    )
    return {
        "as_of": now,
        "on_time_completion": {
            "rate": rate(figures["numerator"], figures["denominator"]),
            "numerator": figures["numerator"],
            "denominator": figures["denominator"],
            "due_in_period": figures["due"],
            "completed": figures["completed"],
            "completed_late": figures["completed"] - figures["numerator"],
            "overdue": figures["overdue"],
            "not_yet_due": figures["due"] - figures["denominator"] - figures["waived"],
            "waived": figures["waived"],
        },
        "overdue": {"count": figures["overdue"], **overdue_list},
        "by_source": [
            {
                "source": source,
                "due_in_period": figures[f"{source}__due"],
                "completed": figures[f"{source}__completed"],
                "numerator": figures[f"{source}__numerator"],
                "denominator": figures[f"{source}__denominator"],
                "rate": rate(figures[f"{source}__numerator"], figures[f"{source}__denominator"]),
                "overdue": figures[f"{source}__overdue"],
                "waived": figures[f"{source}__waived"],
            }
            for source in ActionItem.Source.values
        ],
        "incident_closed_loop": {
            "rate": rate(loop["closed"], loop["recovered"]),
            "numerator": loop["closed"],
            "denominator": loop["recovered"],
        },
    }


def _overdue_list(late: QuerySet[ActionItem], *, now: datetime) -> dict:
    """The overdue items, most overdue first, and their counts by owner and by team (three queries)."""
    overdue_items = [
        {
            "id": item.pk,
            "title": item.title,
            "status": item.status,
            "priority": item.priority,
            "owner": item.owner.username,
            "team": item.team.slug,
            "source": item.source,
            "due_at": item.due_at,
            "days_overdue": days_overdue(item, now=now),
            "incident": item.incident_id,
            "incident_title": item.incident.title if item.incident_id else item.source_note,
        }
        for item in late.select_related("owner", "team", "incident")
        # The columns shown: a busy month lists a thousand items, and their other times cost parsing.
        .only(
            "title",
            "status",
            "priority",
            "due_at",
            "source",
            "source_note",
            "incident_id",
            "owner__username",
            "incident__title",
            "team__slug",
        )
        .order_by("due_at", "id")
    ]
    by_owner = [
        {"owner": username, "count": n}
        for username, n in late.values_list("owner__username").annotate(n=Count("pk")).order_by("-n", "owner__username")
    ]
    by_team = [
        {"team": slug, "count": n}
        for slug, n in late.values_list("team__slug").annotate(n=Count("pk")).order_by("-n", "team__slug")
    ]
    return {"items": overdue_items, "by_owner": by_owner, "by_team": by_team}


def on_time_completion_by_team(*, period: Period, now: datetime) -> dict[int, tuple[int, int, float | None]]:
    """The on-time completion rate of closed_loop_metrics per team (the item's team), in one query:
    {team_id: (numerator, denominator, rate)}. Teams without items due in the period are absent."""
    counted = on_time_counted(now)
    rows = (
        ActionItem.objects.filter(due_in(period))
        .values_list("team_id")
        .annotate(numerator=Count("pk", filter=counted & ON_TIME), denominator=Count("pk", filter=counted))
        .order_by()
    )
    return {team_id: (numerator, denominator, rate(numerator, denominator)) for team_id, numerator, denominator in rows}


def period_bucket(field: str, periods: Sequence[Period]) -> Case:
    """The index of the period (of `periods`, back to back) holding `field`, else NULL."""
    return Case(
        *(When(**{f"{field}__gte": p.start, f"{field}__lt": p.end}, then=Value(i)) for i, p in enumerate(periods)),
        default=None,
    )


def incident_trend(*, incidents: QuerySet[Incident], periods: Sequence[Period]) -> list[dict]:
    """Per period of `periods` (by occurred_at): incidents by level and MTTR (mean time to recover over
    the recovered ones, as incident_metrics defines it), in one query."""
    expression, recovered = _DURATIONS["time_to_recover"]
    rows = (
        each_once(incidents)
        .filter(occurred_at__gte=periods[0].start, occurred_at__lt=periods[-1].end)
        .annotate(bucket=period_bucket("occurred_at", periods))
        .values_list("bucket", "level")
        .annotate(
            n=Count("pk"),
            n_recovered=Count("pk", filter=recovered),
            ttr_sum=Sum(ExpressionWrapper(expression, output_field=DurationField()), filter=recovered),
        )
        .order_by()
    )
    trend = [
        {"period": p.label, "incidents": 0, "by_level": dict.fromkeys(Level.values, 0), "recovered": 0, "_ttr": 0.0}
        for p in periods
    ]
    for bucket, level, n, n_recovered, ttr_sum in rows:
        entry = trend[bucket]
        entry["incidents"] += n
        entry["by_level"][level] += n
        entry["recovered"] += n_recovered
        entry["_ttr"] += _seconds(ttr_sum) or 0.0
    for entry in trend:
        total = entry.pop("_ttr")
        # to the microsecond, as the database gives incident_metrics its mean
        entry["mttr"] = round(total / entry["recovered"], 6) if entry["recovered"] else None
    return trend


# -- the post-incident review (复盘) ------------------------------------------------------------


def review_required_sections(team: Team) -> list[str]:
    """The sections of the review that `team`'s incidents need before closing, in the review's order."""
    required = set(team.review_required_sections or ())
    return [key for key in ReviewSection.values if key in required]


def review_texts(*, incident: Incident) -> dict[str, str]:
    """Every section of the incident's review, in order: its text now ("" where nothing is written)."""
    texts = dict.fromkeys(ReviewSection.values, "")
    texts.update(IncidentReviewSection.objects.filter(review__incident=incident).values_list("key", "text"))
    return texts


def review_missing_sections(*, incident: Incident, texts: dict[str, str] | None = None) -> list[str]:
    """The required sections (of the incident's team) whose text is empty: what the close rule asks for.
    `texts`: the review's texts when the caller has read them (review_texts)."""
    texts = review_texts(incident=incident) if texts is None else texts
    return [key for key in review_required_sections(incident.team) if not texts[key].strip()]


def incidents_awaiting_review(*, teams: Iterable[Team] | None = None) -> QuerySet[Incident]:
    """Incidents recovered or resolved (not closed) whose review misses a section their team requires
    (its text empty or blank), the longest waiting first (recovered_at). The condition is the database's
    (a NOT EXISTS per section some team requires), so a backlog of thousands is counted and paged there;
    review_gaps() says what each incident of a page misses."""
    requiring: dict[str, list[int]] = {}  # a section -> the teams that require it
    for team in Team.objects.all() if teams is None else teams:
        for key in review_required_sections(team):
            requiring.setdefault(key, []).append(team.pk)
    missing = Q(pk__in=[])
    for key, team_ids in requiring.items():
        written = IncidentReviewSection.objects.filter(review__incident=OuterRef("pk"), key=key).exclude(
            text__regex=r"^\s*$"
        )
        missing |= Q(team_id__in=team_ids) & ~Exists(written)
    return (
        incident_list()
        .filter(status__in=[Status.RECOVERED, Status.RESOLVED])
        .filter(missing)
        .order_by("recovered_at", "id")
    )


def review_gaps(incidents: Sequence[Incident], *, now: datetime | None = None) -> Sequence[Incident]:
    """Sets on each of `incidents` (a page of incidents_awaiting_review) `missing_sections`, the required
    sections not written (keys, as the close rule says), and `waiting` (now - recovered_at). One query."""
    now = now or timezone.now()
    written: dict[int, set[str]] = {}
    for incident_id, key, text in IncidentReviewSection.objects.filter(
        review__incident__in=[incident.pk for incident in incidents]
    ).values_list("review__incident_id", "key", "text"):
        if text.strip():
            written.setdefault(incident_id, set()).add(key)
    for incident in incidents:
        done = written.get(incident.pk, set())
        incident.missing_sections = [key for key in review_required_sections(incident.team) if key not in done]
        incident.waiting = now - incident.recovered_at
    return incidents


def overdue_items_by_team(*, now: datetime) -> list[dict]:
    """Overdue items (`overdue`) per team, teams with none left out, the most first:
    [{"slug", "name", "overdue"}] in one query."""
    rows = (
        ActionItem.objects.filter(overdue(now))
        .values("team__slug", "team__name")
        .annotate(count=Count("id"))
        .order_by("-count", "team__name")
    )
    return [{"slug": r["team__slug"], "name": r["team__name"], "overdue": r["count"]} for r in rows]


@dataclass(frozen=True)
class Reclassified:
    """One incident under an edited policy: its level now and the one the edited rules would give it
    (a manual override stays), with the conditions that matched, in words."""

    incident: Incident
    current: str
    new: str
    explanation: str


def severity_policy_preview(*, rules: Mapping, now: datetime, days: int = 90) -> dict:
    """How the incidents that occurred in the last `days` would be classified under `rules`, by the one
    classifier (severity.classify over severity.incident_facts, as re-evaluation would): {"incidents": n,
    "changes": [Reclassified whose level would change, most severe new level first], "counts": {level:
    (now, new)}}. Nothing is saved. Two queries."""
    incidents = (
        Incident.objects.filter(occurred_at__gte=now - timedelta(days=days))
        .prefetch_related("systems")
        .order_by("-occurred_at", "-id")
    )
    counts = {level: [0, 0] for level in Level.values}
    changes = []
    total = 0
    for incident in incidents:
        total += 1
        result = severity.classify(
            severity.incident_facts(incident, (s.tier for s in incident.systems.all()), now=now), rules
        )
        new = incident.level_override or result.level
        counts[incident.level][0] += 1
        counts[new][1] += 1
        if new != incident.level:
            changes.append(
                Reclassified(
                    incident=incident,
                    current=incident.level,
                    new=new,
                    explanation=severity.explain(result.level, result.matches),
                )
            )
    changes.sort(key=lambda c: (LEVEL_RANK[c.new], -c.incident.occurred_at.timestamp(), -c.incident.pk))
    return {"incidents": total, "days": days, "changes": changes, "counts": {k: tuple(v) for k, v in counts.items()}}
