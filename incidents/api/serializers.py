from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.api import ModelSerializer, TimestampField
from incidents import durations, selectors, severity, timeline
from incidents.inputs import IncidentInput, RejectUnknownFieldsMixin, UsernameField
from incidents.models import (
    ActionItem,
    Drill,
    Incident,
    Level,
    ReviewRevision,
    SeverityPolicy,
    System,
    Team,
    Tier,
    TimelineEntry,
)
from incidents.services import SYSTEM_FIELDS, TEAM_FIELDS, ItemTransition, Transition


def _seconds(value):
    return int(value.total_seconds()) if value is not None else None


class TeamSerializer(ModelSerializer):
    managers = UsernameField(many=True, required=False)
    members = UsernameField(many=True, required=False)

    class Meta:
        model = Team
        fields = ["id", *TEAM_FIELDS]


class SystemSerializer(ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", queryset=Team.objects.all())

    class Meta:
        model = System
        fields = ["id", *SYSTEM_FIELDS]


class SeverityPolicySerializer(ModelSerializer):
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    conditions_in_words = serializers.SerializerMethodField()

    class Meta:
        model = SeverityPolicy
        fields = ["version", "rules", "recovery_targets", "note", "created_at", "created_by", "conditions_in_words"]
        read_only_fields = ["version", "created_at", "created_by"]

    @extend_schema_field(serializers.DictField(child=serializers.ListField(child=serializers.CharField())))
    def get_conditions_in_words(self, policy):
        return {
            level: [severity.describe_condition(c) for c in policy.rules.get(level, [])]
            for level in severity.CLASSIFIED_LEVELS
        }

    def validate(self, attrs):
        severity.validate_policy(attrs.get("rules"), attrs.get("recovery_targets"))
        return attrs


class DurationsSerializer(serializers.Serializer):
    time_to_detect = serializers.IntegerField(allow_null=True, help_text=durations.described("time_to_detect"))
    time_to_respond = serializers.IntegerField(allow_null=True, help_text=durations.described("time_to_respond"))
    time_to_recover = serializers.IntegerField(allow_null=True, help_text=durations.described("time_to_recover"))
    time_to_resolve = serializers.IntegerField(allow_null=True, help_text=durations.described("time_to_resolve"))


class IncidentSerializer(ModelSerializer):
    """An incident as read. Durations are whole seconds; null where a timestamp is missing."""

    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    systems = serializers.SlugRelatedField(slug_field="code", many=True, read_only=True)
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True)
    commander = serializers.SlugRelatedField(slug_field="username", read_only=True)
    communications_lead = serializers.SlugRelatedField(slug_field="username", read_only=True)
    severity_policy_version = serializers.IntegerField(source="severity_policy.version", read_only=True)
    severity_explanation = serializers.SerializerMethodField()
    recovery_target = serializers.SerializerMethodField(help_text="Seconds allowed to recover at this level.")
    durations = serializers.SerializerMethodField()
    effective_availability_impact = serializers.DecimalField(max_digits=4, decimal_places=3, read_only=True)

    class Meta:
        model = Incident
        fields = [
            "id",
            "title",
            "summary",
            "team",
            "systems",
            "owner",
            "commander",
            "communications_lead",
            "detection_source",
            "status",
            "occurred_at",
            "detected_at",
            "responded_at",
            "recovered_at",
            "resolved_at",
            "closed_at",
            "affected_users",
            "affected_transactions",
            "funds_loss",
            "data_or_security_breach",
            "regulatory_reportable",
            "availability_impact",
            "effective_availability_impact",
            "cause_category",
            "cause",
            "handling",
            "level",
            "classified_level",
            "severity_explanation",
            "severity_matches",
            "severity_policy_version",
            "level_override",
            "level_override_reason",
            "recovery_target",
            "durations",
            "version",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_severity_explanation(self, incident) -> str:
        return severity.explain(incident.classified_level, incident.severity_matches)

    def get_recovery_target(self, incident) -> int:
        return _seconds(incident.recovery_target)

    @extend_schema_field(DurationsSerializer)
    def get_durations(self, incident):
        return {name: _seconds(durations.incident_duration(name, incident)) for name in durations.INCIDENT_DURATIONS}


# The fields are incidents.inputs.IncidentInput's, which the pages' CSV import reads rows with too.
class IncidentWriteSerializer(IncidentInput):
    """What a person enters. Only title, systems, occurred_at, detected_at and detection_source are
    needed at first; everything else can follow."""


class IncidentUpdateSerializer(IncidentWriteSerializer):
    version = serializers.IntegerField(
        required=False, help_text="The version you read; a stale one gets 409. Or send it as If-Match."
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, field in self.fields.items():
            if name != "version":
                field.required = False


class TransitionSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    action = serializers.ChoiceField(
        choices=list(Transition.LABELS.items()),
        help_text=(
            "respond (I'm on it: sets the owner if empty and responded_at the first time), "
            "recover (sets recovered_at), resolve (sets resolved_at), close (sets closed_at), reopen (clears them)."
        ),
    )
    at = TimestampField(required=False, help_text="When it happened; default now.")


class TimelineEntrySerializer(ModelSerializer):
    """A timeline row: the event as values, and `description`, the row in the reader's language
    (Accept-Language) at read time. `text` is only what a person typed."""

    author = serializers.SlugRelatedField(slug_field="username", read_only=True)
    description = serializers.SerializerMethodField(help_text="What happened, in the reader's language.")

    class Meta:
        model = TimelineEntry
        fields = [
            "id",
            "kind",
            "at",
            "author",
            "action_item",
            "field",
            "old_value",
            "new_value",
            "text",
            "data",
            "description",
            "created_at",
        ]
        read_only_fields = fields

    def get_description(self, entry) -> str:
        return timeline.describe(entry)


class TimelineNoteSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    text = serializers.CharField()
    at = TimestampField(required=False, help_text="When it happened; default now.")
    update = serializers.BooleanField(
        required=False,
        default=False,
        help_text="The commander's status update (commander, manager or administrator only).",
    )


class SeverityOverrideSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    level = serializers.ChoiceField(choices=Level.choices)
    reason = serializers.CharField()


class SeverityOverrideClearSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True)


class SeverityPreviewSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    """Impact facts to classify without saving. Give systems (codes) or a tier, and the impact as
    occurred_at (+ recovered_at, default now) or as impact_minutes."""

    systems = serializers.SlugRelatedField(slug_field="code", many=True, queryset=System.objects.all(), required=False)
    tier = serializers.ChoiceField(choices=Tier.choices, required=False)
    occurred_at = TimestampField(required=False)
    recovered_at = TimestampField(required=False, allow_null=True)
    impact_minutes = serializers.IntegerField(required=False, min_value=0, max_value=10 * 366 * 24 * 60)
    affected_users = serializers.IntegerField(required=False, min_value=0, default=0)
    affected_transactions = serializers.IntegerField(required=False, min_value=0, default=0)
    funds_loss = serializers.DecimalField(required=False, max_digits=16, decimal_places=2, min_value=0, default=0)
    data_or_security_breach = serializers.BooleanField(required=False, default=False)
    regulatory_reportable = serializers.BooleanField(required=False, default=False)

    def validate(self, attrs):
        attrs = super().validate(attrs)
        if "occurred_at" in attrs and "impact_minutes" in attrs:
            raise serializers.ValidationError({"impact_minutes": [_("Give occurred_at or impact_minutes, not both.")]})
        recovered_at = attrs.get("recovered_at")
        if recovered_at and attrs.get("occurred_at") and recovered_at < attrs["occurred_at"]:
            raise serializers.ValidationError(
                {"recovered_at": [_("Recovered at must not be earlier than occurred at (when the impact started).")]}
            )
        return attrs


class ClassificationSerializer(serializers.Serializer):
    level = serializers.ChoiceField(choices=Level.choices)
    explanation = serializers.CharField()
    matches = serializers.ListField(child=serializers.DictField())
    policy_version = serializers.IntegerField()
    recovery_target = serializers.IntegerField(help_text="Seconds allowed to recover at this level.")


class PolicyPreviewSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    rules = serializers.JSONField(help_text="Per level A, B, C: the conditions, as a policy's rules.")
    days = serializers.IntegerField(
        min_value=1, max_value=366, default=90, help_text="Incidents that occurred this many days back."
    )

    def validate_rules(self, rules):
        # The current version's targets stand in: only the rules are previewed.
        try:
            severity.validate_policy(rules, selectors.current_severity_policy().recovery_targets)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict.get("rules", exc.messages)) from None
        return rules


class PolicyPreviewChangeSerializer(serializers.Serializer):
    incident = serializers.IntegerField(source="incident.pk")
    title = serializers.CharField(source="incident.title")
    current = serializers.CharField(help_text="The level now.")
    new = serializers.CharField(help_text="The level under the rules (a manual override stays).")
    explanation = serializers.CharField(help_text="The conditions met, in the reader's language.")


class PolicyPreviewResultSerializer(serializers.Serializer):
    incidents = serializers.IntegerField(help_text="Incidents that occurred in the last `days` days.")
    days = serializers.IntegerField()
    counts = serializers.DictField(
        child=serializers.DictField(child=serializers.IntegerField()),
        help_text='Per level: {"now": n, "new": n}.',
    )
    changes = PolicyPreviewChangeSerializer(many=True)


class ReevaluateSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    incidents = serializers.PrimaryKeyRelatedField(
        many=True, queryset=Incident.objects.all(), required=False, help_text="Incident ids; or give a period."
    )
    period = serializers.CharField(required=False, help_text="e.g. 2026-11: incidents that occurred in it.")

    def validate(self, attrs):
        attrs = super().validate(attrs)
        if not attrs.get("incidents") and not attrs.get("period"):
            raise serializers.ValidationError({"incidents": [_("Choose incidents by id or by period.")]})
        return attrs


# -- action items (闭环项) ------------------------------------------------------------------------


class ActionItemSerializer(ModelSerializer):
    """An action item as read. is_overdue / days_overdue are as of the request (context "now")."""

    incident_title = serializers.CharField(source="incident.title", read_only=True, allow_null=True)
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True)
    verifier = serializers.SlugRelatedField(slug_field="username", read_only=True)
    verified_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    waived_by = serializers.SlugRelatedField(slug_field="username", read_only=True, help_text="The approving manager.")
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    is_overdue = serializers.SerializerMethodField(help_text="Open or in progress, and past its due date.")
    days_overdue = serializers.SerializerMethodField(help_text="Whole days past due (floor); null when not overdue.")

    class Meta:
        model = ActionItem
        fields = [
            "id",
            "source",
            "incident",
            "incident_title",
            "drill",
            "source_note",
            "team",
            "title",
            "description",
            "kind",
            "priority",
            "owner",
            "verifier",
            "acceptance_criteria",
            "due_at",
            "ticket_url",
            "status",
            "is_overdue",
            "days_overdue",
            "started_at",
            "completed_at",
            "verified_at",
            "verified_by",
            "waived_at",
            "waived_by",
            "waive_reason",
            "version",
            "created_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def _now(self):
        return self.context.get("now") or timezone.now()

    def get_is_overdue(self, item) -> bool:
        return selectors.days_overdue(item, now=self._now()) is not None

    def get_days_overdue(self, item) -> int | None:
        return selectors.days_overdue(item, now=self._now())


class ActionItemWriteSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    """A new item. A due date in the past is accepted (items recorded after the fact)."""

    source = serializers.ChoiceField(
        choices=ActionItem.Source.choices,
        required=False,
        help_text="Where it comes from (default incident): incident needs `incident`, drill needs `drill`, the "
        "others (review_meeting, audit, governance) need `team` and may name the meeting in `source_note`.",
    )
    incident = serializers.PrimaryKeyRelatedField(
        queryset=Incident.objects.all(), required=False, allow_null=True, help_text="Incident id."
    )
    drill = serializers.PrimaryKeyRelatedField(
        queryset=Drill.objects.all(), required=False, allow_null=True, help_text="Drill id."
    )
    team = serializers.SlugRelatedField(
        slug_field="slug",
        queryset=Team.objects.all(),
        required=False,
        allow_null=True,
        help_text="Team slug; an incident's or a drill's item belongs to its team.",
    )
    source_note = serializers.CharField(required=False, allow_blank=True, max_length=200)
    title = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True)
    kind = serializers.ChoiceField(choices=ActionItem.Kind.choices, required=False)
    priority = serializers.ChoiceField(choices=ActionItem.Priority.choices, required=False)
    owner = UsernameField(help_text="Username of an active user.")
    verifier = UsernameField(
        required=False, allow_null=True, help_text="Who verifies it; empty: anyone but the owner, or a manager."
    )
    acceptance_criteria = serializers.CharField(required=False, allow_blank=True)
    due_at = TimestampField()
    ticket_url = serializers.URLField(required=False, allow_blank=True, max_length=500)


class ActionItemUpdateSerializer(ActionItemWriteSerializer):
    version = serializers.IntegerField(
        required=False, help_text="The version you read; a stale one gets 409. Or send it as If-Match."
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("source", "incident", "drill", "team", "source_note"):
            del self.fields[name]  # an item stays with where it comes from
        for field in self.fields.values():
            field.required = False


class ItemTransitionSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    action = serializers.ChoiceField(
        choices=ItemTransition.choices(),
        help_text=(
            "start (open -> in_progress), complete (-> done, awaiting verification), verify (done -> verified), "
            "waive (-> waived; a manager or administrator, with a reason), reopen (done/verified/waived -> open)."
        ),
    )
    reason = serializers.CharField(
        required=False, allow_blank=True, default="", help_text="Why; required to waive. Kept on the timeline."
    )
    at = TimestampField(
        required=False, help_text="When it happened (start, complete or verify recorded after the fact); default now."
    )
    version = serializers.IntegerField(required=False, help_text="The version you read; a stale one gets 409.")


MAX_BULK = 500


class ActionItemBulkSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1), allow_empty=False, max_length=MAX_BULK, help_text="Item ids."
    )
    action = serializers.ChoiceField(choices=ItemTransition.choices(), required=False)
    reason = serializers.CharField(required=False, allow_blank=True, default="", help_text="Why; required to waive.")
    owner = UsernameField(required=False, help_text="New owner (username) of every item.")
    due_at = TimestampField(required=False, help_text="New due date of every item.")

    def validate(self, attrs):
        attrs = super().validate(attrs)
        if not any(name in attrs for name in ("action", "owner", "due_at")):
            raise serializers.ValidationError({"action": [_("Say what to change: an action, an owner or a due date.")]})
        return attrs


class ReviewSerializer(serializers.Serializer):
    """The review (复盘) as read: every section's Markdown ("" where unwritten), the team's required ones and
    those still missing (the close rule), and the version to send back with a change."""

    version = serializers.IntegerField(help_text="0 before anything is written; send it back with a PUT.")
    sections = serializers.DictField(child=serializers.CharField(), help_text="Section key -> Markdown.")
    required = serializers.ListField(child=serializers.CharField(), help_text="The team's required sections.")
    missing = serializers.ListField(child=serializers.CharField(), help_text="Required sections not written.")


class ReviewWriteSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    version = serializers.IntegerField(
        required=False, min_value=0, help_text="The review's version as read (or an If-Match header)."
    )
    sections = serializers.DictField(
        child=serializers.CharField(allow_blank=True, trim_whitespace=False),
        help_text=(
            "Section key -> Markdown; keys left out are kept. Keys: summary, impact, timeline, detection, response, "
            "root_cause, went_well, went_badly, lessons, items."
        ),
    )


class ReviewRevisionSerializer(ModelSerializer):
    """One version of one section of a review: its text, who wrote it and when."""

    section = serializers.CharField(source="section.key", read_only=True)
    by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = ReviewRevision
        fields = ["section", "version", "text", "by", "at"]
        read_only_fields = fields


class DrillSerializer(ModelSerializer):
    """A drill (演练): the plan (team, title, scenario, systems, planned_at) is written on create and
    update; the outcome (held_at, result, switch_over_seconds) is recorded together, and a result needs
    held_at. Items of its findings: POST /api/v1/action-items/ with source "drill"."""

    team = serializers.SlugRelatedField(slug_field="slug", queryset=Team.objects.all())
    systems = serializers.SlugRelatedField(slug_field="code", queryset=System.objects.all(), many=True)
    planned_at = TimestampField()
    held_at = TimestampField(required=False, allow_null=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    action_items = serializers.PrimaryKeyRelatedField(many=True, read_only=True)

    class Meta:
        model = Drill
        fields = [
            "id",
            "team",
            "title",
            "scenario",
            "systems",
            "planned_at",
            "held_at",
            "result",
            "switch_over_seconds",
            "findings",
            "action_items",
            "created_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_by", "created_at", "updated_at"]
