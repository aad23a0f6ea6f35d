"""Every write to the incident record goes through here: validation, classification, timeline.

Each service runs in one transaction and writes a timeline row for every real change (who,
what, old -> new, when); a change that changes nothing writes nothing.
"""

import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.models import User
from incidents import severity
from incidents.models import (
    TIMESTAMP_FIELDS,
    Incident,
    SeverityPolicy,
    Status,
    System,
    Team,
    TimelineEntry,
)
from incidents.selectors import current_severity_policy

logger = logging.getLogger(__name__)

# Set and cleared by status transitions only; PATCH may correct them once they are set.
STATUS_TIMESTAMPS = {"recovered_at": Status.RECOVERED, "resolved_at": Status.RESOLVED}
EDITABLE_FIELDS = (
    "title",
    "summary",
    "team",
    "owner",
    "detection_source",
    *TIMESTAMP_FIELDS,
    "affected_users",
    "affected_transactions",
    "funds_loss",
    "data_or_security_breach",
    "regulatory_reportable",
    "availability_impact",
    "cause_category",
    "cause",
    "handling",
)
# Facts the severity policy reads; changing one re-classifies the incident.
SEVERITY_FACTS = {
    "occurred_at",
    "recovered_at",
    "affected_users",
    "affected_transactions",
    "funds_loss",
    "data_or_security_breach",
    "regulatory_reportable",
    "systems",
}


class StaleVersionError(Exception):
    """The incident changed since the caller read it (optimistic concurrency)."""

    def __init__(self, current_version: int):
        super().__init__(current_version)
        self.current_version = current_version


class Transition:
    RECOVER = "recover"
    RESOLVE = "resolve"
    CLOSE = "close"
    REOPEN = "reopen"
    CHOICES = (RECOVER, RESOLVE, CLOSE, REOPEN)
    LABELS = {
        RECOVER: gettext_lazy("mark recovered"),
        RESOLVE: gettext_lazy("mark resolved"),
        CLOSE: gettext_lazy("close"),
        REOPEN: gettext_lazy("reopen"),
    }
    ALLOWED_FROM = {
        RECOVER: {Status.OPEN},
        RESOLVE: {Status.OPEN, Status.RECOVERED},
        CLOSE: {Status.RECOVERED, Status.RESOLVED},
        REOPEN: {Status.RECOVERED, Status.RESOLVED, Status.CLOSED},
    }


# -- validation ---------------------------------------------------------------------------------


def _to_the_second(value: datetime | None) -> datetime | None:
    return value.replace(microsecond=0) if value is not None else None


def _status_from_timestamps(values: Mapping[str, Any]) -> str:
    if values.get("resolved_at"):
        return Status.RESOLVED
    if values.get("recovered_at"):
        return Status.RECOVERED
    return Status.OPEN


# -- severity -----------------------------------------------------------------------------------


def _impact_facts(incident: Incident, systems: Iterable[System], *, now: datetime) -> severity.ImpactFacts:
    return severity.ImpactFacts(
        tier=severity.most_critical_tier(s.tier for s in systems),
        impact=severity.impact_of(occurred_at=incident.occurred_at, recovered_at=incident.recovered_at, now=now),
        affected_users=incident.affected_users,
        affected_transactions=incident.affected_transactions,
        funds_loss=incident.funds_loss,
        data_or_security_breach=incident.data_or_security_breach,
        regulatory_reportable=incident.regulatory_reportable,
    )


def _set_level(incident: Incident) -> None:
    incident.level = incident.level_override or incident.classified_level
    incident.recovery_target = timedelta(seconds=incident.severity_policy.recovery_targets[incident.level])


def _classify(incident: Incident, systems: Iterable[System], *, policy: SeverityPolicy, now: datetime) -> None:
    result = severity.classify(_impact_facts(incident, systems, now=now), policy.rules)
    incident.severity_policy = policy
    incident.classified_level = result.level
    incident.severity_matches = result.matches
    _set_level(incident)


def _org_language_explanation(incident: Incident) -> str:
    # Timeline rows are records: written once, in the organisation's language.
    with translation.override(settings.LANGUAGE_CODE):
        return severity.explain(incident.classified_level, incident.severity_matches)


def _record_level_change(incident: Incident, *, old_level: str, by: User | None, now: datetime, why: str) -> None:
    if old_level != incident.level:
        TimelineEntry.objects.create(
            incident=incident,
            kind=TimelineEntry.Kind.SEVERITY,
            at=now,
            author=by,
            field="level",
            old_value=old_level,
            new_value=incident.level,
            text=why,
        )


# -- timeline helpers ---------------------------------------------------------------------------


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, Team):
        return value.slug
    if isinstance(value, User):
        return value.username
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(sorted(_as_text(v) for v in value))
    if isinstance(value, System):
        return value.code
    return str(value)


def _change_entry(
    incident: Incident, *, field_name: str, old: Any, new: Any, by: User | None, now: datetime
) -> TimelineEntry:
    return TimelineEntry(
        incident=incident,
        kind=TimelineEntry.Kind.CHANGE,
        at=now,
        author=by,
        field=field_name,
        old_value=_as_text(old),
        new_value=_as_text(new),
    )


def _lock(incident_id: int, expected_version: int | None) -> Incident:
    incident = Incident.objects.select_for_update().select_related("severity_policy").get(pk=incident_id)
    if expected_version is not None and incident.version != expected_version:
        raise StaleVersionError(incident.version)
    return incident


def _save(incident: Incident) -> None:
    # Field validators and Incident.clean (the timestamp ordering rules) before any write.
    incident.full_clean(exclude=["severity_policy", "team"], validate_constraints=False)
    incident.version += 1
    incident.save()


# -- incidents ----------------------------------------------------------------------------------


@transaction.atomic
def incident_create(
    *,
    by: User | None,
    title: str,
    systems: list[System],
    occurred_at: datetime,
    detected_at: datetime,
    detection_source: str,
    team: Team | None = None,
    **optional: Any,
) -> Incident:
    """Record an incident, live (only occurred_at and detected_at) or after the fact (all timestamps).

    The status follows the timestamps given: resolved, recovered or open.
    """
    now = timezone.now()
    unknown = set(optional) - set(EDITABLE_FIELDS)
    if unknown:
        raise TypeError(f"unknown incident fields: {sorted(unknown)}")
    if not systems:
        raise ValidationError({"systems": [_("Name at least one impacted system.")]})
    values = {"occurred_at": occurred_at, "detected_at": detected_at, **optional}
    for name in TIMESTAMP_FIELDS:
        values[name] = _to_the_second(values.get(name))
    incident = Incident(
        title=title,
        team=team or systems[0].team,
        detection_source=detection_source,
        created_by=by,
        status=_status_from_timestamps(values),
        **{k: v for k, v in values.items()},
    )
    _classify(incident, systems, policy=current_severity_policy(), now=now)
    incident.version = 0
    _save(incident)
    incident.systems.set(systems)
    TimelineEntry.objects.create(
        incident=incident,
        kind=TimelineEntry.Kind.CREATED,
        at=now,
        author=by,
        new_value=incident.level,
        text=_org_language_explanation(incident),
    )
    return incident


@transaction.atomic
def incident_update(
    *,
    incident_id: int,
    by: User | None,
    expected_version: int | None,
    changes: Mapping[str, Any],
) -> Incident:
    """Apply a partial change. A stale expected_version raises StaleVersionError (nothing written);
    changing nothing writes nothing. recovered_at and resolved_at may be corrected once set, but are
    set and cleared by transitions (incident_transition)."""
    now = timezone.now()
    incident = _lock(incident_id, expected_version)
    unknown = set(changes) - set(EDITABLE_FIELDS) - {"systems"}
    if unknown:
        raise TypeError(f"unknown incident fields: {sorted(unknown)}")
    changes = {k: _to_the_second(v) if k in TIMESTAMP_FIELDS else v for k, v in changes.items()}

    errors: dict[str, list[str]] = {}
    for name, status in STATUS_TIMESTAMPS.items():
        if name in changes and (getattr(incident, name) is None) != (changes[name] is None):
            errors[name] = [
                _("Set or clear this by changing the status (%(status)s or reopen), not by editing the field.")
                % {"status": status.label}
            ]
    if "systems" in changes and not changes["systems"]:
        errors["systems"] = [_("Name at least one impacted system.")]
    if errors:
        raise ValidationError(errors)

    current_systems = list(incident.systems.all())
    entries = []
    changed = set()
    for name, new in changes.items():
        old = current_systems if name == "systems" else getattr(incident, name)
        if name == "systems":
            if {s.pk for s in old} == {s.pk for s in new}:
                continue
        elif old == new:
            continue
        changed.add(name)
        entries.append(_change_entry(incident, field_name=name, old=old, new=new, by=by, now=now))
        if name != "systems":
            setattr(incident, name, new)
    if not changed:
        return incident

    systems = changes["systems"] if "systems" in changed else current_systems
    old_level = incident.level
    if changed & SEVERITY_FACTS:
        _classify(incident, systems, policy=incident.severity_policy, now=now)
    _save(incident)
    if "systems" in changed:
        incident.systems.set(systems)
    TimelineEntry.objects.bulk_create(entries)
    _record_level_change(incident, old_level=old_level, by=by, now=now, why=_org_language_explanation(incident))
    return incident


@transaction.atomic
def incident_transition(*, incident_id: int, by: User | None, action: str, at: datetime | None = None) -> Incident:
    """Move the incident along open -> recovered -> resolved -> closed, or reopen it.

    recover sets recovered_at; resolve sets resolved_at (and recovered_at if still open); close sets
    closed_at; reopen clears all three. `at` (default now) is when it happened.
    """
    now = timezone.now()
    incident = _lock(incident_id, None)
    if action not in Transition.CHOICES:
        raise ValidationError(
            {"action": [_("Unknown action; use one of: %(actions)s.") % {"actions": ", ".join(Transition.CHOICES)}]}
        )
    if incident.status not in Transition.ALLOWED_FROM[action]:
        raise ValidationError(
            {
                "action": [
                    _("Cannot %(action)s an incident whose status is %(status)s.")
                    % {"action": Transition.LABELS[action], "status": Status(incident.status).label}
                ]
            }
        )
    at = _to_the_second(at or now)
    if action == Transition.CLOSE:
        at = _to_the_second(now)  # closed_at is the system's own record of when the loop closed
    new_values: dict[str, datetime | None]
    if action == Transition.RECOVER:
        new_status, new_values = Status.RECOVERED, {"recovered_at": at}
    elif action == Transition.RESOLVE:
        new_status, new_values = Status.RESOLVED, {"resolved_at": at}
        if incident.recovered_at is None:
            new_values["recovered_at"] = at
    elif action == Transition.CLOSE:
        new_status, new_values = Status.CLOSED, {"closed_at": at}
    else:
        new_status, new_values = Status.OPEN, {"recovered_at": None, "resolved_at": None, "closed_at": None}

    entries = [
        TimelineEntry(
            incident=incident,
            kind=TimelineEntry.Kind.STATUS,
            at=now,
            author=by,
            field="status",
            old_value=incident.status,
            new_value=new_status,
        )
    ]
    for name, value in new_values.items():
        if getattr(incident, name) != value:
            entries.append(
                _change_entry(incident, field_name=name, old=getattr(incident, name), new=value, by=by, now=now)
            )
            setattr(incident, name, value)
    incident.status = new_status
    old_level = incident.level
    if "recovered_at" in new_values:
        _classify(incident, list(incident.systems.all()), policy=incident.severity_policy, now=now)
    try:
        _save(incident)
    except ValidationError as exc:
        # The caller gave `at`; say so rather than naming the field it was copied into.
        about_at = [message for name in new_values for message in exc.message_dict.get(name, [])]
        if not about_at:
            raise
        raise ValidationError({"at": about_at}) from None
    TimelineEntry.objects.bulk_create(entries)
    _record_level_change(incident, old_level=old_level, by=by, now=now, why=_org_language_explanation(incident))
    return incident


@transaction.atomic
def timeline_note_add(*, incident_id: int, by: User, text: str, at: datetime | None = None) -> TimelineEntry:
    """A free entry in the incident's story, e.g. "16:40 switched traffic to the backup channel"."""
    now = timezone.now()
    incident = Incident.objects.get(pk=incident_id)
    if not text.strip():
        raise ValidationError({"text": [_("Write what happened.")]})
    at = _to_the_second(at or now)
    if at > now + settings.FUTURE_TOLERANCE:
        raise ValidationError({"at": [_("This time lies in the future; at most 5 minutes ahead of now is accepted.")]})
    return TimelineEntry.objects.create(
        incident=incident, kind=TimelineEntry.Kind.NOTE, at=at, author=by, text=text.strip()
    )


# -- severity overrides and re-evaluation -------------------------------------------------------


@transaction.atomic
def severity_override_set(*, incident_id: int, by: User, level: str, reason: str) -> Incident:
    """Set the level by hand; it sticks until cleared. A reason is mandatory."""
    incident = _lock(incident_id, None)
    if not reason.strip():
        raise ValidationError({"reason": [_("Say why the level is overridden.")]})
    if incident.level_override == level and incident.level_override_reason == reason.strip():
        return incident
    old_level = incident.level
    incident.level_override, incident.level_override_reason = level, reason.strip()
    _set_level(incident)
    _save(incident)
    TimelineEntry.objects.create(
        incident=incident,
        kind=TimelineEntry.Kind.SEVERITY,
        at=timezone.now(),
        author=by,
        field="level_override",
        old_value=old_level,
        new_value=level,
        text=reason.strip(),
    )
    return incident


@transaction.atomic
def severity_override_clear(*, incident_id: int, by: User, reason: str = "") -> Incident:
    """Drop the manual level; the classified level counts again."""
    incident = _lock(incident_id, None)
    if not incident.level_override:
        return incident
    old_level = incident.level
    incident.level_override, incident.level_override_reason = "", ""
    _set_level(incident)
    _save(incident)
    TimelineEntry.objects.create(
        incident=incident,
        kind=TimelineEntry.Kind.SEVERITY,
        at=timezone.now(),
        author=by,
        field="level_override",
        old_value=old_level,
        new_value=incident.level,
        text=reason.strip() or _org_language_explanation(incident),
    )
    return incident


def _reclassify(incident: Incident, *, policy: SeverityPolicy, by: User | None, now: datetime) -> bool:
    old = (incident.level, incident.classified_level, incident.severity_policy_id, incident.severity_matches)
    _classify(incident, incident.systems.all(), policy=policy, now=now)
    if old == (incident.level, incident.classified_level, incident.severity_policy_id, incident.severity_matches):
        return False
    _save(incident)
    _record_level_change(incident, old_level=old[0], by=by, now=now, why=_org_language_explanation(incident))
    return True


def incidents_reevaluate(*, incidents: QuerySet[Incident], by: User | None) -> dict[str, int]:
    """Re-classify a chosen set under the current policy (after a policy edit). Overrides stay.

    Returns how many incidents were looked at and how many changed level.
    """
    policy = current_severity_policy()
    now = timezone.now()
    seen = changed = 0
    for pk in incidents.order_by("pk").values_list("pk", flat=True).iterator():
        with transaction.atomic():
            incident = _lock(pk, None)
            old_level = incident.level
            _reclassify(incident, policy=policy, by=by, now=now)
            seen += 1
            changed += incident.level != old_level
    return {"evaluated": seen, "level_changed": changed}


def reevaluate_unrecovered(*, now: datetime | None = None) -> list[Incident]:
    """Impact minutes of an unrecovered incident grow; raise its level as thresholds pass (a P0
    outage becomes B at minute 30). Each incident keeps the policy version it was classified by.

    Returns the incidents whose level rose.
    """
    now = now or timezone.now()
    raised = []
    for pk in Incident.objects.filter(recovered_at__isnull=True).values_list("pk", flat=True).iterator():
        with transaction.atomic():
            incident = _lock(pk, None)
            if incident.recovered_at is not None:
                continue
            old_level = incident.level
            _reclassify(incident, policy=incident.severity_policy, by=None, now=now)
            if severity.level_is_higher(incident.level, old_level):
                raised.append(incident)
                logger.info("incident %s level raised %s -> %s", incident.pk, old_level, incident.level)
    return raised


@transaction.atomic
def severity_policy_create(
    *, by: User | None, rules: Mapping, recovery_targets: Mapping, note: str = ""
) -> SeverityPolicy:
    """A new policy version; it classifies incidents created from now on. Existing incidents keep
    their level until re-evaluated (incidents_reevaluate)."""
    severity.validate_policy(rules, recovery_targets)
    latest = SeverityPolicy.objects.select_for_update().order_by("-version").first()
    return SeverityPolicy.objects.create(
        version=(latest.version + 1) if latest else 1,
        rules=dict(rules),
        recovery_targets=dict(recovery_targets),
        note=note,
        created_by=by,
    )
