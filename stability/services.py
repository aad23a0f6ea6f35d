"""Writes of the stability app: integrations, and what people do with alerts."""

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import User
from accounts.tokens import new_secret
from incidents.models import DetectionSource, Incident, System, Team
from incidents.services import configuration_write, incident_create
from stability.models import (
    AlertActivity,
    AlertOccurrence,
    InboxPreference,
    Integration,
    MaintenanceWindow,
    ReminderPolicy,
)


@transaction.atomic
def integration_create(
    *,
    kind: str,
    name: str,
    by: User | None = None,
    default_team: Team | None = None,
    default_system: System | None = None,
    **options,
) -> tuple[Integration, str]:
    """Create an integration; returns it and its bearer token, which is shown once and stored as a digest."""
    secret = new_secret("i")
    integration = Integration(
        kind=kind,
        name=name,
        created_by=by,
        default_team=default_team,
        default_system=default_system,
        token_prefix=secret.prefix,
        token_digest=secret.digest,
        **options,
    )
    integration.full_clean()
    integration.save()
    return integration, secret.token


@transaction.atomic
def integration_rotate_token(*, integration: Integration) -> str:
    """A new token for the integration; the old one stops working (within INGEST_CONFIG_TTL elsewhere)."""
    secret = new_secret("i")
    integration.token_prefix, integration.token_digest = secret.prefix, secret.digest
    integration.save(update_fields=["token_prefix", "token_digest"])
    return secret.token


class FollowUp:
    ACKNOWLEDGE = "acknowledge"
    COMMENT = "comment"
    LINK = "link"
    RESOLVE = "resolve"
    CHOICES = (ACKNOWLEDGE, COMMENT, LINK, RESOLVE)


_ACTIVITY_OF = {
    FollowUp.ACKNOWLEDGE: AlertActivity.Kind.ACKNOWLEDGED,
    FollowUp.COMMENT: AlertActivity.Kind.COMMENTED,
    FollowUp.LINK: AlertActivity.Kind.LINKED,
    FollowUp.RESOLVE: AlertActivity.Kind.RESOLVED,
}


def _check_follow_up(*, action: str, text: str, incident: Incident | None, ids: list[int]) -> None:
    if action not in FollowUp.CHOICES:
        raise ValidationError(
            {"action": [_("Unknown action; use one of: %(actions)s.") % {"actions": ", ".join(FollowUp.CHOICES)}]}
        )
    if action == FollowUp.COMMENT and not text.strip():
        raise ValidationError({"text": [_("Write the comment.")]})
    if action == FollowUp.LINK and incident is None:
        raise ValidationError({"incident": [_("Choose the incident to link the alerts to.")]})
    if not ids:
        raise ValidationError({"ids": [_("Choose at least one alert.")]})


def _locked(ids: list[int]) -> list[AlertOccurrence]:
    occurrences = list(AlertOccurrence.objects.select_for_update().filter(pk__in=ids).order_by("pk"))
    unknown = set(ids) - {o.pk for o in occurrences}
    if unknown:
        raise ValidationError({"ids": [_("Unknown alerts: %(ids)s.") % {"ids": ", ".join(map(str, sorted(unknown)))}]})
    return occurrences


def _what_changes(
    *, action: str, occurrences: list[AlertOccurrence], now: datetime, by: User, incident: Incident | None
) -> tuple[list[AlertOccurrence], dict]:
    """The occurrences the action changes and the fields it sets on them: an action that would change
    nothing (acknowledging twice, resolving a resolved alert, linking to the same incident) leaves an
    occurrence out. A comment changes every occurrence and sets no field."""
    if action == FollowUp.ACKNOWLEDGE:
        return [o for o in occurrences if o.acknowledged_at is None], {"acknowledged_at": now, "acknowledged_by": by}
    if action == FollowUp.RESOLVE:
        resolved = AlertOccurrence.Status.RESOLVED
        return [o for o in occurrences if o.status != resolved], {
            "status": resolved,
            "resolved_at": now,
            "resolved_by": by,
        }
    if action == FollowUp.LINK:
        return [o for o in occurrences if o.incident_id != incident.pk], {"incident": incident}
    return occurrences, {}


def _occurrences_change(occurrences: QuerySet[AlertOccurrence], *, now: datetime, **fields) -> int:
    """Every change to stored occurrences goes through here: it stamps changed_at, which the follow-up
    figures' readers and their day counts' refresh look for (stability.follow_up). Ingestion's SQL
    stamps it itself; a bulk loader refreshes the day counts after loading."""
    return occurrences.update(**fields, changed_at=now)


@transaction.atomic
def alerts_follow_up(
    *, occurrence_ids: list[int], by: User, action: str, text: str = "", incident: Incident | None = None
) -> list[AlertOccurrence]:
    """A person acknowledges, comments on, links to an incident, or resolves one alert or many.

    The first such action on an occurrence sets followed_up_at and followed_up_by (metrics.md); later
    ones never move them. An action that changes nothing (acknowledging twice, resolving a resolved
    alert, linking to the incident it is linked to) records nothing. Queries do not grow with the
    number of alerts.
    """
    ids = sorted(set(occurrence_ids))
    _check_follow_up(action=action, text=text, incident=incident, ids=ids)
    now = timezone.now().replace(microsecond=0)
    occurrences = _locked(ids)
    changed, fields = _what_changes(action=action, occurrences=occurrences, now=now, by=by, incident=incident)
    if not changed:
        return occurrences
    changed_ids = [o.pk for o in changed]
    if fields:
        _occurrences_change(AlertOccurrence.objects.filter(pk__in=changed_ids), now=now, **fields)
    _occurrences_change(
        AlertOccurrence.objects.filter(pk__in=changed_ids, followed_up_at__isnull=True),
        now=now,
        followed_up_at=now,
        followed_up_by=by,
    )
    AlertActivity.objects.bulk_create(
        AlertActivity(
            occurrence_id=pk,
            kind=_ACTIVITY_OF[action],
            at=now,
            by=by,
            text=text.strip(),
            incident=incident if action == FollowUp.LINK else None,
        )
        for pk in changed_ids
    )
    return list(AlertOccurrence.objects.filter(pk__in=ids).order_by("pk"))


@transaction.atomic
def incident_from_alerts(
    *, occurrence_ids: list[int], by: User, title: str = "", systems: list[System] | None = None
) -> Incident:
    """Open an incident from alerts, prefilled: occurred_at = earliest starts_at, detected_at = when the
    first of them reached people, detection source = monitoring alert, systems and team from the
    alerts' labels (or `systems`). The alerts are linked to it, which follows them up."""
    occurrences = list(
        AlertOccurrence.objects.filter(pk__in=set(occurrence_ids))
        .select_related("system__team", "team")
        .order_by("starts_at", "pk")
    )
    if not occurrences:
        raise ValidationError({"ids": [_("Choose at least one alert.")]})
    if len(occurrences) != len(set(occurrence_ids)):
        raise ValidationError({"ids": [_("Some of these alerts do not exist.")]})
    chosen_systems = systems or list({o.system_id: o.system for o in occurrences if o.system_id}.values())
    if not chosen_systems:
        raise ValidationError({"systems": [_("The alerts name no known system; choose the impacted systems.")]})
    first = occurrences[0]
    team = next((o.team for o in occurrences if o.team_id), None) or chosen_systems[0].team
    # A sender whose clock runs ahead may send a starts_at after the alert reached us; the impact
    # cannot have started after it was noticed.
    first_received = min(o.received_at for o in occurrences)
    occurred_at = min(first.starts_at, first_received)
    incident = incident_create(
        by=by,
        title=title.strip() or (first.summary or first.alertname or first.fingerprint)[:200],
        systems=chosen_systems,
        team=team,
        occurred_at=occurred_at,
        detected_at=first_received,
        detection_source=DetectionSource.MONITORING,
        summary="\n".join(sorted({f"{o.alertname}: {o.summary}".strip(": ") for o in occurrences})),
    )
    alerts_follow_up(occurrence_ids=[o.pk for o in occurrences], by=by, action=FollowUp.LINK, incident=incident)
    return incident


_WINDOW_FIELDS = ("system", "starts_at", "ends_at", "reason")


def check_window_times(*, starts_at: datetime | None, ends_at: datetime | None) -> None:
    """A window ends after it starts (a ValidationError on ends_at); the admin's form checks with this too."""
    if starts_at and ends_at and ends_at <= starts_at:
        raise ValidationError({"ends_at": [_("The window must end after it starts.")]})


def _check_window(window: MaintenanceWindow) -> None:
    check_window_times(starts_at=window.starts_at, ends_at=window.ends_at)
    window.full_clean()


@transaction.atomic
def maintenance_window_create(
    *, by: User | None, system: System, starts_at: datetime, ends_at: datetime, reason: str
) -> MaintenanceWindow:
    """Alerts of the system first received inside [starts_at, ends_at) will be excluded from follow-up
    rates (metrics.md); alerts already received keep the exclusion decided at their receipt."""
    window = MaintenanceWindow(system=system, starts_at=starts_at, ends_at=ends_at, reason=reason, created_by=by)
    _check_window(window)
    window.save()
    return window


@transaction.atomic
def maintenance_window_update(*, window_id: int, changes: Mapping[str, Any]) -> MaintenanceWindow:
    """Change a window's system, start, end or reason; the end must stay after the start."""
    unknown = set(changes) - set(_WINDOW_FIELDS)
    if unknown:
        raise TypeError(f"unknown maintenance window fields: {sorted(unknown)}")
    window = MaintenanceWindow.objects.select_for_update().get(pk=window_id)
    for name, value in changes.items():
        setattr(window, name, value)
    _check_window(window)
    window.save()
    return window


# -- configuration: integrations' routing, reminder policies ---------------------------------------
#
# The settings pages, the API and the admin write these here, with one list of editable fields per
# kind. Integrations and maintenance windows are what ingestion routes by: the save signal of
# stability.signals bumps IngestConfigVersion in the saving transaction, whoever saves.

INTEGRATION_FIELDS = (
    "kind",
    "name",
    "enabled",
    "is_test",
    "default_team",
    "default_system",
    "team_label",
    "system_labels",
    "severity_label",
    "rate_limit_per_minute",
)
MAINTENANCE_WINDOW_FIELDS = _WINDOW_FIELDS
REMINDER_POLICY_FIELDS = (
    "team",
    "days_before",
    "escalate_after_days",
    "escalate_every_days",
    "quiet_hours_start",
    "quiet_hours_end",
)


@transaction.atomic
def integration_update(*, integration_id: int, changes: Mapping[str, Any]) -> Integration:
    """Change an integration's name, routing or limits (INTEGRATION_FIELDS). Its kind stays: another
    kind is another integration. The token changes only by integration_rotate_token."""
    integration = Integration.objects.select_for_update().get(pk=integration_id)
    if "kind" in changes and changes["kind"] != integration.kind:
        raise ValidationError({"kind": [_("The kind of an integration cannot change; create another one.")]})
    return configuration_write(record=integration, values=changes, fields=INTEGRATION_FIELDS)


def reminder_days_before(days: Iterable[int]) -> list[int]:
    """The days before due a policy reminds on: whole days of at least one, largest first, no repeats
    (the settings page checks a typed list with this too, so every error shows at once)."""
    days = list(days)
    if any(isinstance(day, bool) or not isinstance(day, int) or day < 1 for day in days):
        raise ValidationError(_("Each number of days must be at least 1."))
    return sorted(set(days), reverse=True)


def reminder_escalate_every_days(days: int) -> int:
    """Escalations repeat at most daily (also a database constraint)."""
    if days is not None and days < 1:
        raise ValidationError(_("Escalate at most once a day."))
    return days


def _check_reminder_policy(policy: ReminderPolicy) -> None:
    errors = {}
    for name, check in (("days_before", reminder_days_before), ("escalate_every_days", reminder_escalate_every_days)):
        try:
            setattr(policy, name, check(getattr(policy, name)))
        except ValidationError as exc:
            errors[name] = exc.messages
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def reminder_policy_create(*, team: Team, **schedule: Any) -> ReminderPolicy:
    """A team's own reminder schedule (REMINDER_POLICY_FIELDS); fields left out take the REMINDER_*
    settings' values of today. The sweep reads it from its next run (stability.reminders.team_policies)."""
    return configuration_write(
        record=ReminderPolicy(),
        values={"team": team, **schedule},
        fields=REMINDER_POLICY_FIELDS,
        check=_check_reminder_policy,
    )


@transaction.atomic
def reminder_policy_update(*, policy_id: int, changes: Mapping[str, Any]) -> ReminderPolicy:
    """Change a team's reminder schedule (REMINDER_POLICY_FIELDS)."""
    policy = ReminderPolicy.objects.select_for_update().get(pk=policy_id)
    return configuration_write(
        record=policy, values=changes, fields=REMINDER_POLICY_FIELDS, check=_check_reminder_policy
    )


@transaction.atomic
def reminder_policy_delete(*, policy_id: int) -> None:
    """The team follows the REMINDER_* settings again."""
    ReminderPolicy.objects.filter(pk=policy_id).delete()


# -- the inbox: a group of alerts acknowledged at once, a system silenced from an alert ----------------


@transaction.atomic
def alert_group_acknowledge(
    *, by: User, alertname: str, system: System | None, since: datetime, ids: Iterable[int] | None = None
) -> list[int]:
    """Acknowledge every alert of the group (alert name and system, as Alertmanager groups them) received
    since `since` that nobody has followed up yet (only those of `ids` when given): the first follow-up of
    each (alerts_follow_up). Returns the alerts acknowledged; a second call finds none and does nothing."""
    waiting = AlertOccurrence.objects.filter(
        alertname=alertname, system=system, received_at__gte=since, followed_up_at__isnull=True
    )
    if ids is not None:
        waiting = waiting.filter(pk__in=list(ids))
    chosen = list(waiting.select_for_update().order_by("pk").values_list("pk", flat=True))
    if not chosen:
        return []
    alerts_follow_up(occurrence_ids=chosen, by=by, action=FollowUp.ACKNOWLEDGE)
    return chosen


SILENCE_MINUTES = (30, 60, 120, 240)
SILENCE_MAX_MINUTES = 7 * 24 * 60


@transaction.atomic
def system_silence(*, by: User, system: System, minutes: int, reason: str) -> MaintenanceWindow:
    """Silence a system for `minutes` from now: a maintenance window (maintenance_window_create), so its
    alerts first received inside it are excluded from follow-up rates and from the inbox's "act now"."""
    if not 1 <= minutes <= SILENCE_MAX_MINUTES:
        raise ValidationError({"minutes": [_("Silence for 1 to %(max)s minutes.") % {"max": SILENCE_MAX_MINUTES}]})
    now = timezone.now().replace(microsecond=0)
    return maintenance_window_create(
        by=by, system=system, starts_at=now, ends_at=now + timedelta(minutes=minutes), reason=reason.strip()[:200]
    )


@transaction.atomic
def inbox_preference_save(*, user: User, query: str) -> None:
    """Remember the inbox filters a person used (their query string); writes only when they changed."""
    query = query[:500]
    if InboxPreference.objects.filter(user=user).values_list("query", flat=True).first() != query:
        InboxPreference.objects.update_or_create(user=user, defaults={"query": query})
