"""Every write to the incident record goes through here: validation, classification, timeline.

Each service runs in one transaction and writes a timeline row for every real change (who,
what, old -> new, when); a change that changes nothing writes nothing.
"""

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Model, QuerySet, TextChoices
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from accounts.models import Role, User
from incidents import severity, signals, timeline
from incidents.models import (
    EARLIEST_TIMESTAMP,
    TIMESTAMP_FIELDS,
    ActionItem,
    Drill,
    Incident,
    SeverityPolicy,
    Status,
    System,
    Team,
    TimelineEntry,
)
from incidents.selectors import current_severity_policy, review_missing_sections

logger = logging.getLogger(__name__)

# Set and cleared by status transitions only; PATCH may correct them once they are set.
STATUS_TIMESTAMPS = {"recovered_at": Status.RECOVERED, "resolved_at": Status.RESOLVED}
EDITABLE_FIELDS = (
    "title",
    "summary",
    "team",
    "owner",
    "commander",
    "communications_lead",
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


class StateMachine:
    """A record's life cycle: its steps (CHOICES, with LABELS) and the statuses each may be taken from
    (ALLOWED_FROM). Subclasses name their STATUSES and the REFUSED message of a step not allowed."""

    CHOICES: tuple[str, ...]
    LABELS: Mapping[str, str]
    ALLOWED_FROM: Mapping[str, set[str]]
    STATUSES: type[TextChoices]
    REFUSED: str

    @classmethod
    def choices(cls) -> list[tuple[str, str]]:
        """(action, label) pairs for forms and the API schema."""
        return [(action, cls.LABELS[action]) for action in cls.CHOICES]

    @classmethod
    def allowed(cls, status: str) -> list[tuple[str, str]]:
        """The (action, label) pairs that may be taken from `status` (what a page offers)."""
        return [(action, label) for action, label in cls.choices() if status in cls.ALLOWED_FROM[action]]

    @classmethod
    def check(cls, action: str, *, status: str) -> None:
        """The guard of every step: a known action, allowed from the status; else a ValidationError on
        "action"."""
        if action not in cls.CHOICES:
            raise ValidationError(
                {"action": [_("Unknown action; use one of: %(actions)s.") % {"actions": ", ".join(cls.CHOICES)}]}
            )
        if status not in cls.ALLOWED_FROM[action]:
            refusal = str(cls.REFUSED) % {"action": cls.LABELS[action], "status": cls.STATUSES(status).label}
            raise ValidationError({"action": [refusal]})


class Transition(StateMachine):
    RESPOND = "respond"
    RECOVER = "recover"
    RESOLVE = "resolve"
    CLOSE = "close"
    REOPEN = "reopen"
    CHOICES = (RESPOND, RECOVER, RESOLVE, CLOSE, REOPEN)
    LABELS = {
        RESPOND: gettext_lazy("I'm on it"),
        RECOVER: gettext_lazy("mark recovered"),
        RESOLVE: gettext_lazy("mark resolved"),
        CLOSE: gettext_lazy("close"),
        REOPEN: gettext_lazy("reopen"),
    }
    ALLOWED_FROM = {
        # Taking an incident sets no status: it records who responds and when (MTTA).
        RESPOND: {Status.OPEN, Status.RECOVERED, Status.RESOLVED},
        RECOVER: {Status.OPEN},
        RESOLVE: {Status.OPEN, Status.RECOVERED},
        CLOSE: {Status.RECOVERED, Status.RESOLVED},
        REOPEN: {Status.RECOVERED, Status.RESOLVED, Status.CLOSED},
    }
    STATUSES = Status
    REFUSED = gettext_lazy("Cannot %(action)s an incident whose status is %(status)s.")


# -- validation ---------------------------------------------------------------------------------


def _to_the_second(value: datetime | None) -> datetime | None:
    return value.replace(microsecond=0) if value is not None else None


def _event_time(at: datetime, *, now: datetime) -> datetime:
    """A time a person gives for something that happened (a note, an item's step): to the second, at
    most FUTURE_TOLERANCE ahead of now and not before EARLIEST_TIMESTAMP."""
    at = _to_the_second(at)
    if at > now + settings.FUTURE_TOLERANCE:
        raise ValidationError({"at": [_("This time lies in the future; at most 5 minutes ahead of now is accepted.")]})
    if at < EARLIEST_TIMESTAMP:
        raise ValidationError({"at": [_("This time is before the year 2000; check the date.")]})
    return at


def _status_from_timestamps(values: Mapping[str, Any]) -> str:
    if values.get("resolved_at"):
        return Status.RESOLVED
    if values.get("recovered_at"):
        return Status.RECOVERED
    return Status.OPEN


# -- severity -----------------------------------------------------------------------------------


def _impact_facts(incident: Incident, systems: Iterable[System], *, now: datetime) -> severity.ImpactFacts:
    return severity.incident_facts(incident, (s.tier for s in systems), now=now)


def _set_level(incident: Incident) -> None:
    incident.level = incident.level_override or incident.classified_level
    incident.recovery_target = timedelta(seconds=incident.severity_policy.recovery_targets[incident.level])


def _classify(incident: Incident, systems: Iterable[System], *, policy: SeverityPolicy, now: datetime) -> None:
    result = severity.classify(_impact_facts(incident, systems, now=now), policy.rules)
    incident.severity_policy = policy
    incident.classified_level = result.level
    incident.severity_matches = result.matches
    _set_level(incident)


def _matches(incident: Incident) -> dict[str, Any]:
    # Why the level is what it is, as values: incidents.timeline says it in the reader's language.
    return {"matches": incident.severity_matches}


def _record_level_change(incident: Incident, *, old_level: str, by: User | None, now: datetime) -> None:
    if old_level != incident.level:
        timeline_event(
            incident,
            kind=TimelineEntry.Kind.SEVERITY,
            at=now,
            by=by,
            field="level",
            old=old_level,
            new=incident.level,
            data=_matches(incident),
        ).save()
        signals.level_changed(incident, old_level=old_level)


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


def timeline_event(
    incident: Incident | int,
    *,
    kind: str,
    at: datetime,
    by: User | None,
    field: str = "",
    old: Any = None,
    new: Any = None,
    text: str = "",
    data: Mapping[str, Any] | None = None,
    action_item: ActionItem | None = None,
) -> TimelineEntry:
    """The one way a timeline event is made (saved by the caller, alone or in bulk): what happened as
    values (kind, field, old -> new, `data`), who and when, and only the text a person typed. Never a
    sentence of the system's: incidents.timeline.describe says it in the reader's language."""
    return TimelineEntry(
        incident_id=incident if isinstance(incident, int) else incident.pk,
        kind=kind,
        at=at,
        author=by,
        action_item=action_item,
        field=field,
        old_value=_as_text(old),
        new_value=_as_text(new),
        text=text,
        data=dict(data or {}),
    )


def _change_entry(
    incident: Incident, *, field_name: str, old: Any, new: Any, by: User | None, now: datetime
) -> TimelineEntry:
    return timeline_event(incident, kind=TimelineEntry.Kind.CHANGE, at=now, by=by, field=field_name, old=old, new=new)


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
    timeline_event(
        incident, kind=TimelineEntry.Kind.CREATED, at=now, by=by, new=incident.level, data=_matches(incident)
    ).save()
    signals.level_changed(incident, old_level="")
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
    _check_update(incident, changes)

    current_systems = list(incident.systems.all())
    changed = _real_changes(incident, changes, current_systems=current_systems)
    if not changed:
        return incident
    entries = [
        _change_entry(incident, field_name=n, old=old, new=new, by=by, now=now) for n, (old, new) in changed.items()
    ]
    for name, (_old, new) in changed.items():
        if name != "systems":
            setattr(incident, name, new)

    systems = changes["systems"] if "systems" in changed else current_systems
    old_level = incident.level
    if changed.keys() & SEVERITY_FACTS:
        _classify(incident, systems, policy=incident.severity_policy, now=now)
    _save(incident)
    if "systems" in changed:
        incident.systems.set(systems)
    TimelineEntry.objects.bulk_create(entries)
    _record_level_change(incident, old_level=old_level, by=by, now=now)
    return incident


def _check_update(incident: Incident, changes: Mapping[str, Any]) -> None:
    """What an edit may not do: set or clear a status timestamp (transitions do), leave no system."""
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


def _real_changes(
    incident: Incident, changes: Mapping[str, Any], *, current_systems: list[System]
) -> dict[str, tuple[Any, Any]]:
    """name -> (old, new) for the changes that change something (systems compared as a set)."""
    real = {}
    for name, new in changes.items():
        if name == "systems":
            if {s.pk for s in current_systems} != {s.pk for s in new}:
                real[name] = (current_systems, new)
        elif getattr(incident, name) != new:
            real[name] = (getattr(incident, name), new)
    return real


@transaction.atomic
def incident_transition(*, incident_id: int, by: User | None, action: str, at: datetime | None = None) -> Incident:
    """Move the incident along open -> recovered -> resolved -> closed, or reopen it.

    recover sets recovered_at; resolve sets resolved_at (and recovered_at if still open); close sets
    closed_at; reopen clears all three. `at` (default now) is when it happened.
    """
    now = timezone.now()
    incident = _lock(incident_id, None)
    Transition.check(action, status=incident.status)
    if action == Transition.RESPOND:
        return _respond(incident, by=by, now=now)
    if action == Transition.CLOSE:
        _check_loop_closed(incident)
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
        timeline_event(
            incident, kind=TimelineEntry.Kind.STATUS, at=now, by=by, field="status", old=incident.status, new=new_status
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
    _record_level_change(incident, old_level=old_level, by=by, now=now)
    return incident


def _respond(incident: Incident, *, by: User | None, now: datetime) -> Incident:
    """Taking it ("I'm on it"): the owner becomes `by` if there is none, responded_at is set the first time (so
    time to acknowledge is known), and a row says who took it. Idempotent: taking it again (the same
    person) writes nothing; someone else joining is recorded once, the owner and responded_at kept."""
    if by is None:
        raise PermissionDenied(_("Sign in to take an incident."))
    now = _to_the_second(now)
    entries: list[TimelineEntry] = []
    if incident.owner_id is None:
        entries.append(_change_entry(incident, field_name="owner", old=None, new=by, by=by, now=now))
        incident.owner = by
    if incident.responded_at is None:
        # Never before detection (a detected_at entered a little ahead of the server's clock).
        responded_at = max(now, incident.detected_at)
        entries.append(_change_entry(incident, field_name="responded_at", old=None, new=responded_at, by=by, now=now))
        incident.responded_at = responded_at
    if entries:
        _save(incident)
    if not incident.timeline.filter(kind=TimelineEntry.Kind.RESPONDED, author=by).exists():
        entries.insert(0, timeline_event(incident, kind=TimelineEntry.Kind.RESPONDED, at=now, by=by))
    TimelineEntry.objects.bulk_create(entries)
    return incident


def _check_loop_closed(incident: Incident) -> None:
    """The close rule (闭环): the review's sections that the team requires are written, and every action
    item is verified or waived."""
    missing = []
    unwritten = review_missing_sections(incident=incident)
    if unwritten:
        missing.append(
            _("Write the review's required sections before closing: %(sections)s.")
            % {"sections": timeline.section_names(unwritten)}
        )
    pending = list(
        incident.action_items.exclude(status__in=ActionItem.FINAL_STATUSES).order_by("pk").values_list("pk", flat=True)
    )
    if pending:
        missing.append(
            ngettext(
                "%(count)d action item is not verified or waived: %(ids)s",
                "%(count)d action items are not verified or waived: %(ids)s",
                len(pending),
            )
            % {"count": len(pending), "ids": ", ".join(f"#{pk}" for pk in pending)}
        )
    if missing:
        raise ValidationError({"action": missing})


@transaction.atomic
def timeline_note_add(
    *, incident_id: int, by: User, text: str, at: datetime | None = None, update: bool = False
) -> TimelineEntry:
    """A free entry in the incident's story, e.g. "16:40 switched traffic to the backup channel".

    `update`: the commander's status update (an "update" row); only the incident's commander, a
    manager or an administrator posts one."""
    now = timezone.now()
    incident = Incident.objects.get(pk=incident_id)
    if not text.strip():
        raise ValidationError({"text": [_("Write what happened.")]})
    if update and not (by is not None and (by.pk == incident.commander_id or _approves(by))):
        raise PermissionDenied(_("Only the incident's commander, a manager or an administrator posts updates."))
    at = _event_time(at or now, now=now)
    kind = TimelineEntry.Kind.UPDATE if update else TimelineEntry.Kind.NOTE
    entry = timeline_event(incident, kind=kind, at=at, by=by, text=text.strip())
    entry.save()
    signals.update_posted(entry, incident=incident)
    return entry


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
    timeline_event(
        incident,
        kind=TimelineEntry.Kind.SEVERITY,
        at=timezone.now(),
        by=by,
        field="level_override",
        old=old_level,
        new=level,
        text=reason.strip(),
    ).save()
    signals.level_changed(incident, old_level=old_level)
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
    timeline_event(
        incident,
        kind=TimelineEntry.Kind.SEVERITY,
        at=timezone.now(),
        by=by,
        field="level_override",
        old=old_level,
        new=incident.level,
        text=reason.strip(),
        data=_matches(incident),
    ).save()
    signals.level_changed(incident, old_level=old_level)
    return incident


def _reclassify(incident: Incident, *, policy: SeverityPolicy, by: User | None, now: datetime) -> bool:
    old = (incident.level, incident.classified_level, incident.severity_policy_id, incident.severity_matches)
    _classify(incident, incident.systems.all(), policy=policy, now=now)
    if old == (incident.level, incident.classified_level, incident.severity_policy_id, incident.severity_matches):
        return False
    _save(incident)
    _record_level_change(incident, old_level=old[0], by=by, now=now)
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


# -- action items (闭环项) ------------------------------------------------------------------------
#
# Lock order: the incident, then its items (as closing does), so an item cannot be reopened or
# added while its incident is being closed.

ItemStatus = ActionItem.Status
ITEM_EDITABLE_FIELDS = (
    "title",
    "description",
    "kind",
    "priority",
    "owner",
    "verifier",
    "acceptance_criteria",
    "due_at",
    "ticket_url",
)
_ITEM_PEOPLE = ("owner", "verifier")
# Checked by the service itself (active users, the incident it belongs to); full_clean would query each.
_ITEM_RELATIONS = ["incident", "drill", "team", "owner", "verifier", "verified_by", "waived_by", "created_by"]


class ItemTransition(StateMachine):
    """The steps of an action item: open -> in_progress -> done (awaiting verification) -> verified,
    or waived with a manager's approval; reopen goes back to open from done, verified or waived."""

    START = "start"
    COMPLETE = "complete"
    VERIFY = "verify"
    WAIVE = "waive"
    REOPEN = "reopen"
    CHOICES = (START, COMPLETE, VERIFY, WAIVE, REOPEN)
    LABELS = {
        START: gettext_lazy("start"),
        COMPLETE: gettext_lazy("mark done"),
        VERIFY: gettext_lazy("verify"),
        WAIVE: gettext_lazy("waive"),
        REOPEN: gettext_lazy("reopen"),
    }
    ALLOWED_FROM = {
        START: {ItemStatus.OPEN},
        COMPLETE: {ItemStatus.OPEN, ItemStatus.IN_PROGRESS},
        VERIFY: {ItemStatus.DONE},
        WAIVE: {ItemStatus.OPEN, ItemStatus.IN_PROGRESS, ItemStatus.DONE},
        REOPEN: {ItemStatus.DONE, ItemStatus.VERIFIED, ItemStatus.WAIVED},
    }
    TARGET = {
        START: ItemStatus.IN_PROGRESS,
        COMPLETE: ItemStatus.DONE,
        VERIFY: ItemStatus.VERIFIED,
        WAIVE: ItemStatus.WAIVED,
        REOPEN: ItemStatus.OPEN,
    }
    # Steps that may be recorded after the fact with `at`. A waiver (an approval) and a reopening are
    # recorded when they are made.
    BACKDATABLE = {START: "started_at", COMPLETE: "completed_at", VERIFY: "verified_at"}
    # Managers read the record and approve: of the item steps they verify, waive and reopen.
    MANAGER_STEPS = (VERIFY, WAIVE, REOPEN)
    STATUSES = ItemStatus
    REFUSED = gettext_lazy("Cannot %(action)s an action item whose status is %(status)s.")


def _approves(user: User | None) -> bool:
    """Managers and administrators approve waivers and may verify any item."""
    return user is not None and user.effective_role in (Role.MANAGER, Role.ADMIN)


def _item_entry(item: ActionItem, *, by: User | None, now: datetime, **values: Any) -> TimelineEntry:
    return timeline_event(
        item.incident_id, kind=TimelineEntry.Kind.ACTION_ITEM, action_item=item, at=now, by=by, **values
    )


def _lock_incident_of(item_id: int) -> Incident | None:
    incident_id = ActionItem.objects.values_list("incident_id", flat=True).get(pk=item_id)
    return _lock(incident_id, None) if incident_id is not None else None


def _lock_item(item_id: int, expected_version: int | None) -> ActionItem:
    incident = _lock_incident_of(item_id)
    item = ActionItem.objects.select_for_update().get(pk=item_id)
    if expected_version is not None and item.version != expected_version:
        raise StaleVersionError(item.version)
    item.incident = incident
    return item


def _item_history(item: ActionItem, entries: Callable[[], list[TimelineEntry]]) -> None:
    """An incident's item writes its steps to the incident's timeline. An item of a drill, a meeting, an
    audit or governance work has no timeline: its status timestamps (started, completed, verified,
    waived, by whom) are its history."""
    if item.incident_id is not None:
        TimelineEntry.objects.bulk_create(entries())


def _validate_item(item: ActionItem) -> None:
    """Field checks with messages naming the field; raises one ValidationError with all of them."""
    errors: dict[str, list[str]] = {}
    if not item.title.strip():
        errors["title"] = [_("Write what has to be done.")]
    if item.owner_id is None:
        errors["owner"] = [_("Choose the owner.")]
    elif not item.owner.is_active:
        errors["owner"] = [_("The owner must be an active user.")]
    if item.verifier_id is not None:
        if not item.verifier.is_active:
            errors["verifier"] = [_("The verifier must be an active user.")]
        elif item.verifier_id == item.owner_id:
            errors["verifier"] = [
                _("The owner cannot verify their own item: choose someone else, or no one (then a manager verifies).")
            ]
    if item.due_at is None:
        errors["due_at"] = [_("Set the due date.")]
    elif item.due_at < EARLIEST_TIMESTAMP:
        errors["due_at"] = [_("This time is before the year 2000; check the date.")]
    try:
        item.full_clean(exclude=_ITEM_RELATIONS, validate_unique=False, validate_constraints=False)
    except ValidationError as exc:
        for name, messages in exc.message_dict.items():
            errors.setdefault(name, messages)
    if errors:
        raise ValidationError(errors)


def _save_item(item: ActionItem) -> None:
    item.version += 1
    item.save()


@transaction.atomic
def action_item_create(
    *,
    by: User | None,
    incident_id: int | None = None,
    team: Team | None = None,
    source: str = ActionItem.Source.INCIDENT,
    drill_id: int | None = None,
    source_note: str = "",
    title: str,
    owner: User,
    due_at: datetime,
    kind: str = ActionItem.Kind.FIX,
    priority: str = ActionItem.Priority.MEDIUM,
    description: str = "",
    verifier: User | None = None,
    acceptance_criteria: str = "",
    ticket_url: str = "",
) -> ActionItem:
    """Add a closed-loop item: to an incident (source incident, the default; not to a closed incident:
    its loop is done), to a drill (source drill, `drill_id`), or for a review meeting, an audit or
    governance work (`team` required, `source_note` names the meeting or work). The item's team is its
    incident's or drill's. A due date in the past is accepted (items recorded after the fact). The owner
    and verifier must be active users, and different people. Only an incident's item writes a timeline
    row."""
    now = _to_the_second(timezone.now())
    incident = drill = None
    if source == ActionItem.Source.INCIDENT:
        if incident_id is None:
            raise ValidationError({"incident": [_("Choose the incident this item comes from.")]})
        incident = _lock(incident_id, None)
        if incident.status == Status.CLOSED:
            raise ValidationError(
                {"incident": [_("This incident is closed: its loop is done. Reopen the incident to add action items.")]}
            )
        team = incident.team
    elif source == ActionItem.Source.DRILL:
        if drill_id is None:
            raise ValidationError({"drill": [_("Choose the drill this item comes from.")]})
        drill = Drill.objects.select_related("team").get(pk=drill_id)
        team = drill.team
    elif source not in ActionItem.Source.values:
        raise ValidationError({"source": [_("Unknown source %(source)s.") % {"source": source}]})
    elif incident_id is not None or drill_id is not None:
        raise ValidationError({"source": [_("Only an incident's or a drill's item names an incident or a drill.")]})
    if team is None:
        raise ValidationError({"team": [_("Choose the team that owns the item.")]})
    item = ActionItem(
        incident=incident,
        drill=drill,
        team=team,
        source=source,
        source_note=source_note.strip(),
        title=title.strip(),
        description=description,
        kind=kind,
        priority=priority,
        owner=owner,
        verifier=verifier,
        acceptance_criteria=acceptance_criteria,
        due_at=_to_the_second(due_at),
        ticket_url=ticket_url,
        created_by=by,
        version=0,
    )
    _validate_item(item)
    _save_item(item)
    data = {
        "event": "item_added",
        "item": item.pk,
        "title": item.title,
        "owner": owner.username,
        "due": f"{timezone.localtime(item.due_at):%Y-%m-%d}",
    }
    _item_history(item, lambda: [_item_entry(item, by=by, now=now, data=data)])
    return item


@transaction.atomic
def action_item_update(
    *, item_id: int, by: User | None, expected_version: int | None = None, **fields: Any
) -> ActionItem:
    """Change editable fields (ITEM_EDITABLE_FIELDS). A stale expected_version raises StaleVersionError
    (nothing written); a change that changes nothing writes nothing; each real change is a timeline
    row (field, old -> new) and raises the version by one. The due date of a completed item (done or
    verified) is part of its on-time record: reopen the item to change it."""
    unknown = set(fields) - set(ITEM_EDITABLE_FIELDS)
    if unknown:
        raise TypeError(f"unknown action item fields: {sorted(unknown)}")
    now = _to_the_second(timezone.now())
    item = _lock_item(item_id, expected_version)
    if "due_at" in fields:
        fields["due_at"] = _to_the_second(fields["due_at"])
    if isinstance(fields.get("title"), str):
        fields["title"] = fields["title"].strip()

    changed = {}
    for name, new in fields.items():
        if name in _ITEM_PEOPLE:
            differs = getattr(item, f"{name}_id") != (new.pk if new is not None else None)
        else:
            differs = getattr(item, name) != new
        if differs:
            changed[name] = (getattr(item, name), new)
    if not changed:
        return item
    if "due_at" in changed and item.status in (ItemStatus.DONE, ItemStatus.VERIFIED):
        raise ValidationError(
            {"due_at": [_("The item is completed; its due date is part of the record. Reopen the item to change it.")]}
        )
    for name, (_old, new) in changed.items():
        setattr(item, name, new)
    _validate_item(item)
    _save_item(item)
    _item_history(
        item,
        lambda: [
            _item_entry(item, by=by, now=now, field=name, old=old, new=new) for name, (old, new) in changed.items()
        ],
    )
    return item


def _check_item_step_allowed(item: ActionItem, *, by: User | None, action: str) -> None:
    """Who may do what (docs/closed-loop.md): a waiver is approved by a manager or an administrator;
    an item is verified by its verifier, or by anyone but its owner when it has none; managers and
    administrators may verify any item, their own included."""
    if _approves(by):
        return
    if action == ItemTransition.WAIVE:
        raise PermissionDenied(_("Only a manager or an administrator can approve a waiver."))
    if action == ItemTransition.VERIFY:
        if by is None or by.pk == item.owner_id:
            raise PermissionDenied(_("The owner cannot verify their own action item; the verifier or a manager does."))
        if item.verifier_id is not None and by.pk != item.verifier_id:
            raise PermissionDenied(
                _("Only the verifier of this item (%(verifier)s) or a manager can verify it.")
                % {"verifier": item.verifier.username}
            )


def _step_time(item: ActionItem, *, action: str, at: datetime | None, now: datetime) -> datetime:
    if at is None:
        return now
    if action not in ItemTransition.BACKDATABLE:
        raise ValidationError({"at": [_("A waiver or a reopening is recorded when it is made; leave out the time.")]})
    at = _event_time(at, now=now)
    earlier_step = {ItemTransition.COMPLETE: item.started_at, ItemTransition.VERIFY: item.completed_at}.get(action)
    if earlier_step is not None and at < earlier_step:
        raise ValidationError(
            {
                "at": [
                    _("This time is before the item's previous step (%(time)s).")
                    % {"time": f"{timezone.localtime(earlier_step):%Y-%m-%d %H:%M}"}
                ]
            }
        )
    return at


def _item_step(
    item: ActionItem, *, by: User | None, action: str, reason: str, at: datetime | None, now: datetime
) -> None:
    """One step on a locked item (its incident locked and set on it). Raises before writing anything."""
    ItemTransition.check(action, status=item.status)
    _check_item_step_allowed(item, by=by, action=action)
    reason = reason.strip()
    if action == ItemTransition.WAIVE and not reason:
        raise ValidationError({"reason": [_("Say why the item is waived; the reason is what the manager approves.")]})
    when = _step_time(item, action=action, at=at, now=now)

    values: dict[str, Any]
    if action == ItemTransition.START:
        values = {"started_at": when}
    elif action == ItemTransition.COMPLETE:
        values = {"completed_at": when, "started_at": item.started_at or when}
    elif action == ItemTransition.VERIFY:
        values = {"verified_at": when, "verified_by": by}
    elif action == ItemTransition.WAIVE:
        values = {"waived_at": now, "waived_by": by, "waive_reason": reason}
    else:
        values = {
            "completed_at": None,
            "verified_at": None,
            "verified_by": None,
            "waived_at": None,
            "waived_by": None,
            "waive_reason": "",
        }
    old_status = item.status
    for name, value in values.items():
        setattr(item, name, value)
    item.status = ItemTransition.TARGET[action]
    _save_item(item)

    def entries() -> list[TimelineEntry]:
        rows = [
            _item_entry(
                item,
                by=by,
                now=now,
                field="status",
                old=old_status,
                new=item.status,
                text=reason,
                data={"event": action, "item": item.pk},
            )
        ]
        if when != now:  # recorded after the fact: the row says when it happened
            rows.append(_item_entry(item, by=by, now=now, field=ItemTransition.BACKDATABLE[action], new=when))
        return rows

    _item_history(item, entries)
    if action == ItemTransition.REOPEN and item.incident is not None and item.incident.status == Status.CLOSED:
        _reopen_loop(item.incident, item=item, by=by, now=now)


def _reopen_loop(incident: Incident, *, item: ActionItem, by: User | None, now: datetime) -> None:
    """A reopened item reopens its incident's loop: closed_at is cleared and the incident goes back to
    resolved (if resolved_at is set) or recovered."""
    new_status = Status.RESOLVED if incident.resolved_at else Status.RECOVERED
    entries = [
        timeline_event(
            incident,
            kind=TimelineEntry.Kind.STATUS,
            at=now,
            by=by,
            field="status",
            old=incident.status,
            new=new_status,
            data={"event": "item_reopened", "item": item.pk},
        ),
        _change_entry(incident, field_name="closed_at", old=incident.closed_at, new=None, by=by, now=now),
    ]
    incident.status, incident.closed_at = new_status, None
    _save(incident)
    TimelineEntry.objects.bulk_create(entries)


@transaction.atomic
def action_item_transition(
    *,
    item_id: int,
    by: User | None,
    action: str,
    reason: str = "",
    expected_version: int | None = None,
    at: datetime | None = None,
) -> ActionItem:
    """Move an item along its life cycle (ItemTransition). start sets started_at; complete sets
    completed_at (and started_at if empty); verify sets verified_at/by; waive needs a reason and a
    manager or administrator as `by`, and sets waived_at/by/reason; reopen clears completion,
    verification and waiver, and reopens the incident's loop if it was closed. `at` records start,
    complete or verify after the fact (default now). A step not allowed from the status is a
    ValidationError on "action"; one the user may not take is a PermissionDenied. Each step is a
    timeline row."""
    now = _to_the_second(timezone.now())
    item = _lock_item(item_id, expected_version)
    _item_step(item, by=by, action=action, reason=reason, at=at, now=now)
    return item


@transaction.atomic
def action_items_bulk_update(
    *,
    item_ids: Iterable[int],
    by: User | None,
    action: str | None = None,
    owner: User | None = None,
    due_at: datetime | None = None,
    reason: str = "",
) -> list[ActionItem]:
    """Apply one step (action, with reason) and/or a new owner and/or due date to many items, all or
    nothing, in one transaction: if any item fails, nothing is written and the ValidationError names
    each failing item (#id: why) under "ids". A step the user may not take is a PermissionDenied."""
    ids = sorted(set(item_ids))
    if not ids:
        raise ValidationError({"ids": [_("Choose at least one action item.")]})
    if action is None and owner is None and due_at is None:
        raise ValidationError({"action": [_("Say what to change: an action, an owner or a due date.")]})
    now = _to_the_second(timezone.now())
    incident_ids = set(
        ActionItem.objects.filter(pk__in=ids, incident__isnull=False).values_list("incident_id", flat=True)
    )
    incidents = {i.pk: i for i in Incident.objects.select_for_update().filter(pk__in=incident_ids).order_by("pk")}
    items = list(ActionItem.objects.select_for_update().filter(pk__in=ids).order_by("pk"))
    unknown = set(ids) - {item.pk for item in items}
    if unknown:
        raise ValidationError(
            {"ids": [_("Unknown action items: %(ids)s.") % {"ids": ", ".join(f"#{pk}" for pk in sorted(unknown))}]}
        )
    changes = {name: value for name, value in (("owner", owner), ("due_at", due_at)) if value is not None}
    failures = []
    for item in items:
        item.incident = incidents.get(item.incident_id)
        try:
            # A savepoint per item: every failure is reported, then the outer transaction rolls back.
            with transaction.atomic():
                if changes:
                    action_item_update(item_id=item.pk, by=by, **changes)
                    item.refresh_from_db()
                    item.incident = incidents.get(item.incident_id)
                if action is not None:
                    _item_step(item, by=by, action=action, reason=reason, at=None, now=now)
        except ValidationError as exc:
            messages = [m for field_messages in exc.message_dict.values() for m in field_messages]
            failures.append(f"#{item.pk}: {' '.join(messages)}")
    if failures:
        raise ValidationError({"ids": failures})
    return items


# -- teams and systems ----------------------------------------------------------------------------
#
# The settings pages, the API and the admin write these records here, with one list of editable fields
# per kind. What ingestion routes by (teams, systems) changes its version in the same transaction: the
# stability app's save signal (stability.signals) bumps it on every save, whoever saves.

TEAM_FIELDS = ("name", "slug", "managers", "members", "review_required_sections")
SYSTEM_FIELDS = ("code", "name", "tier", "team", "availability_target", "description")


def configuration_write(
    *,
    record: Model,
    values: Mapping[str, Any],
    fields: Sequence[str],
    check: Callable[[Model], None] | None = None,
) -> Model:
    """Set `values` on a configuration record (a team, a system, an integration, a reminder policy) and
    save it after the kind's own `check` (which may normalise what it checks) and the model's (field
    validators, uniqueness, constraints); many-to-many relations are set after the save. `fields` is the
    record kind's editable fields: any other name is a caller's mistake (TypeError). Runs in the
    caller's transaction."""
    unknown = set(values) - set(fields)
    if unknown:
        raise TypeError(f"unknown {record._meta.model_name} fields: {sorted(unknown)}")
    many = {name: value for name, value in values.items() if record._meta.get_field(name).many_to_many}
    for name, value in values.items():
        if name not in many:
            setattr(record, name, value)
    if check is not None:
        check(record)
    record.full_clean(exclude=list(many))
    record.save()
    for name, value in many.items():
        getattr(record, name).set(value)
    return record


@transaction.atomic
def team_create(
    *,
    name: str,
    slug: str,
    managers: Iterable[User] = (),
    members: Iterable[User] = (),
    review_required_sections: Iterable[str] | None = None,
) -> Team:
    """A new team, its managers (who approve and read its figures) and members, and the review sections
    its incidents need to close (default: models.DEFAULT_REVIEW_REQUIRED_SECTIONS)."""
    values = {"name": name, "slug": slug, "managers": list(managers), "members": list(members)}
    if review_required_sections is not None:
        values["review_required_sections"] = list(review_required_sections)
    return configuration_write(record=Team(), values=values, fields=TEAM_FIELDS)


@transaction.atomic
def team_update(*, team_id: int, changes: Mapping[str, Any]) -> Team:
    """Change a team's name, slug, managers, members or required review sections (TEAM_FIELDS)."""
    team = Team.objects.select_for_update().get(pk=team_id)
    return configuration_write(record=team, values=changes, fields=TEAM_FIELDS)


@transaction.atomic
def system_create(*, code: str, name: str, tier: str, team: Team, **optional: Any) -> System:
    """A new system: its code is what alert labels name, its tier what the severity policy reads;
    `optional` holds availability_target and description."""
    values = {"code": code, "name": name, "tier": tier, "team": team, **optional}
    return configuration_write(record=System(), values=values, fields=SYSTEM_FIELDS)


@transaction.atomic
def system_update(*, system_id: int, changes: Mapping[str, Any]) -> System:
    """Change a system's fields (SYSTEM_FIELDS). Incidents keep their level until re-evaluated."""
    system = System.objects.select_for_update().get(pk=system_id)
    return configuration_write(record=system, values=changes, fields=SYSTEM_FIELDS)
