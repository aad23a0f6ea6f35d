"""Drills (演练): the writes (drill_create, drill_update, drill_hold, drill_finding_to_item) and the reads
(drill_list, drill_coverage) of the drill record. A drill's findings become closed-loop items with source
"drill" (incidents.services.action_item_create), followed up like any other item."""

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import User
from incidents import services
from incidents.models import EARLIEST_TIMESTAMP, ActionItem, Drill, System, Team, Tier
from incidents.selectors import rate

DRILL_FIELDS = ("team", "title", "scenario", "systems", "planned_at", "findings")
OUTCOME_FIELDS = ("held_at", "result", "switch_over_seconds", "findings")


def _check(drill: Drill, systems: list[System] | None) -> None:
    errors: dict[str, list[str]] = {}
    if not drill.title.strip():
        errors["title"] = [_("Say what the drill exercises.")]
    if systems is not None and not systems:
        errors["systems"] = [_("Choose at least one system the drill exercises.")]
    for name in ("planned_at", "held_at"):
        value = getattr(drill, name)
        if value is not None and value < EARLIEST_TIMESTAMP:
            errors[name] = [_("This time is before the year 2000; check the date.")]
    if drill.held_at is not None:
        if drill.held_at > timezone.now():
            errors["held_at"] = [_("A drill is recorded as held once it has happened; this time is in the future.")]
        if not drill.result:
            errors["result"] = [_("Give the drill's result: passed, partly passed or failed.")]
    elif drill.result or drill.switch_over_seconds is not None:
        errors["held_at"] = [_("Say when the drill was held to record its outcome.")]
    try:
        drill.full_clean(exclude=["team", "systems", "created_by"], validate_constraints=False)
    except ValidationError as exc:
        for name, messages in exc.message_dict.items():
            errors.setdefault(name, messages)
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def drill_create(
    *,
    by: User | None,
    team: Team,
    title: str,
    scenario: str,
    systems: Iterable[System],
    planned_at: datetime,
    findings: str = "",
) -> Drill:
    """Plan a drill (or record one: drill_hold then gives its outcome): a team, a scenario and the
    systems it exercises, at least one."""
    systems = list(systems)
    drill = Drill(
        team=team, title=title.strip(), scenario=scenario, planned_at=planned_at, findings=findings, created_by=by
    )
    _check(drill, systems)
    drill.save()
    drill.systems.set(systems)
    return drill


@transaction.atomic
def drill_update(*, drill_id: int, **changes: Any) -> Drill:
    """Change a drill's plan (DRILL_FIELDS); its outcome is drill_hold's."""
    unknown = set(changes) - set(DRILL_FIELDS)
    if unknown:
        raise TypeError(f"unknown drill fields: {sorted(unknown)}")
    drill = Drill.objects.select_for_update().get(pk=drill_id)
    systems = changes.pop("systems", None)
    if isinstance(changes.get("title"), str):
        changes["title"] = changes["title"].strip()
    for name, value in changes.items():
        setattr(drill, name, value)
    _check(drill, list(systems) if systems is not None else None)
    drill.save()
    if systems is not None:
        drill.systems.set(systems)
    return drill


@transaction.atomic
def drill_hold(
    *,
    drill_id: int,
    held_at: datetime,
    result: str,
    switch_over_seconds: int | None = None,
    findings: str | None = None,
) -> Drill:
    """Record the outcome of a drill: when it was held (not in the future), its result, how long the
    switch-over took (seconds) and what it found. Recording it again corrects it."""
    drill = Drill.objects.select_for_update().get(pk=drill_id)
    drill.held_at, drill.result, drill.switch_over_seconds = held_at, result, switch_over_seconds
    if findings is not None:
        drill.findings = findings
    _check(drill, None)
    drill.save()
    return drill


def drill_finding_to_item(*, drill_id: int, by: User | None, **item: Any) -> ActionItem:
    """A finding of the drill becomes a closed-loop item of the drill's team (source drill); `item`
    holds action_item_create's fields (title, owner, due_at, ...)."""
    return services.action_item_create(by=by, source=ActionItem.Source.DRILL, drill_id=drill_id, **item)


def drill_list(*, team: Team | None = None, start: datetime | None = None, end: datetime | None = None) -> QuerySet:
    """Drills planned or held in [start, end) (either time in it; both bounds needed to narrow), newest
    first, with their team and systems in a constant number of queries."""
    drills = Drill.objects.select_related("team").prefetch_related("systems")
    if team is not None:
        drills = drills.filter(team=team)
    if start is not None and end is not None:
        drills = drills.filter(Q(planned_at__gte=start, planned_at__lt=end) | Q(held_at__gte=start, held_at__lt=end))
    return drills


def drill_coverage(
    *, quarter_start: datetime, quarter_end: datetime, teams: Iterable[Team | int] | None = None
) -> dict:
    """Drill coverage of P0 systems (metrics.md): P0 systems exercised by at least one drill HELD in
    [quarter_start, quarter_end) / all P0 systems (of `teams`, when given). A planned drill does not
    count until it is held. Lists the uncovered systems. Two queries."""
    held = Drill.objects.filter(systems=OuterRef("pk"), held_at__gte=quarter_start, held_at__lt=quarter_end)
    systems = System.objects.filter(tier=Tier.P0)
    if teams is not None:
        systems = systems.filter(team__in=list(teams))
    rows = list(systems.annotate(covered=Exists(held)).select_related("team").order_by("code"))
    covered = sum(1 for system in rows if system.covered)
    return {
        "rate": rate(covered, len(rows)),
        "numerator": covered,
        "denominator": len(rows),
        "uncovered": [
            {"code": system.code, "name": system.name, "team": system.team.slug}
            for system in rows
            if not system.covered
        ],
    }
