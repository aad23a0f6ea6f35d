"""Alerts over the API: people list them and follow them up (metrics.md, "Alerts and the 5-minute
follow-up rate"); engineers set maintenance windows; administrators inspect rejected deliveries.

Every follow-up goes through stability.services.alerts_follow_up, whose first action on an alert
sets followed_up_at. Integration tokens are not personal tokens: they get 401 here.
"""

import re

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Q
from django.db.models.fields.json import KeyTextTransform
from django.db.models.lookups import Exact
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import mixins, permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.permissions import CONFIGURE, RecordAccess, user_can
from config.api import ModelSerializer, TimestampFilter
from incidents import selectors as incident_selectors
from incidents.api.serializers import IncidentSerializer, RejectUnknownFieldsMixin
from incidents.models import Incident, System
from stability import selectors, services
from stability.models import AlertActivity, AlertOccurrence, MaintenanceWindow, RejectedDelivery
from stability.services import FollowUp

# Prometheus' label name syntax; anything else cannot be a label of a stored alert.
LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_BULK = 1000


# --- reading alerts ------------------------------------------------------------------------------


class AlertSerializer(ModelSerializer):
    integration = serializers.SlugRelatedField(slug_field="name", read_only=True)
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    system = serializers.SlugRelatedField(slug_field="code", read_only=True)
    labels = serializers.DictField(child=serializers.CharField(), read_only=True)
    annotations = serializers.DictField(child=serializers.CharField(), read_only=True)
    acknowledged_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    followed_up_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    follow_up_delay = serializers.SerializerMethodField(
        help_text="followed_up_at - received_at in seconds; null while nobody has followed it up."
    )
    resolved_by = serializers.SlugRelatedField(
        slug_field="username", read_only=True, help_text="Null when the source resolved it (or it is firing)."
    )
    incident = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta:
        model = AlertOccurrence
        fields = [
            "id",
            "integration",
            "fingerprint",
            "alertname",
            "severity",
            "summary",
            "status",
            "labels",
            "annotations",
            "generator_url",
            "team",
            "system",
            "starts_at",
            "ends_at",
            "received_at",
            "last_received_at",
            "notifications",
            "excluded",
            "acknowledged_at",
            "acknowledged_by",
            "followed_up_at",
            "followed_up_by",
            "follow_up_delay",
            "resolved_at",
            "resolved_by",
            "incident",
        ]
        read_only_fields = fields

    def get_follow_up_delay(self, occurrence) -> float | None:
        if occurrence.followed_up_at is None:
            return None
        return (occurrence.followed_up_at - occurrence.received_at).total_seconds()


class AlertActivitySerializer(ModelSerializer):
    by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    incident = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta:
        model = AlertActivity
        fields = ["id", "kind", "at", "by", "text", "incident"]
        read_only_fields = fields


class LabelPairsField(forms.Field):
    """`label=key=value`, repeatable: a list of (key, value)."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value):
        pairs = []
        for item in value or []:
            key, sep, label_value = item.partition("=")
            if not sep or not LABEL_NAME.fullmatch(key):
                raise ValidationError(
                    _("Write label=key=value, the key a label name (letters, digits, underscores): %(item)s"),
                    params={"item": item[:100]},
                    code="invalid",
                )
            pairs.append((key, label_value))
        return pairs


@extend_schema_field(
    {
        "type": "array",
        "items": {"type": "string"},
        "description": "key=value: alerts whose labels have this value; repeat for all of several.",
    }
)
class LabelFilter(django_filters.Filter):
    field_class = LabelPairsField

    def filter(self, queryset, value):
        for key, label_value in value:
            if connection.vendor == "postgresql":
                queryset = queryset.filter(labels__contains={key: label_value})
            else:
                # SQLite has no JSON containment. A key transform built by hand, not `labels__<key>`:
                # a label named like a lookup ("in", "contains") must stay a label.
                queryset = queryset.filter(Exact(KeyTextTransform(key, "labels"), label_value))
        return queryset


class TrueFalseField(forms.Field):
    """true / false (or 1 / 0); anything else is a 400, not a filter silently dropped."""

    def to_python(self, value):
        if value in self.empty_values:
            return None
        answer = {"true": True, "1": True, "false": False, "0": False}.get(str(value).lower())
        if answer is None:
            raise ValidationError(_("Write true or false."), code="invalid")
        return answer


class TrueFalseFilter(django_filters.BooleanFilter):
    field_class = TrueFalseField


class AlertFilter(django_filters.FilterSet):
    EXCLUDED_CHOICES = [
        ("false", _("Counted (not excluded)")),
        ("true", _("Excluded, for any reason")),
        *[(value, label) for value, label in AlertOccurrence.Exclusion.choices if value],
    ]

    status = django_filters.MultipleChoiceFilter(choices=AlertOccurrence.Status.choices)
    team = django_filters.CharFilter(field_name="team__slug", help_text=_("Team slug."))
    system = django_filters.CharFilter(field_name="system__code", help_text=_("System code."))
    severity = django_filters.CharFilter(field_name="severity", help_text=_("Alert severity label value."))
    integration = extend_schema_field({"type": "integer", "description": "Integration id."})(
        django_filters.NumberFilter(field_name="integration_id", help_text=_("Integration id."))
    )
    followed_up = TrueFalseFilter(
        method="filter_followed_up",
        help_text=_(
            "true: someone followed it up; false: nobody yet, received in the last 24 hours unless "
            "received_after is given."
        ),
    )
    received_after = TimestampFilter(
        field_name="received_at", lookup_expr="gte", help_text=_("received_at >= this (inclusive).")
    )
    received_before = TimestampFilter(
        field_name="received_at", lookup_expr="lt", help_text=_("received_at < this (exclusive).")
    )
    excluded = django_filters.ChoiceFilter(
        choices=EXCLUDED_CHOICES,
        method="filter_excluded",
        help_text=_("false: counted in follow-up rates; true: excluded; or the reason of the exclusion."),
    )
    label = LabelFilter()
    q = django_filters.CharFilter(method="filter_text", help_text=_("Text search in alert name and summary."))

    class Meta:
        model = AlertOccurrence
        fields = []

    def filter_followed_up(self, queryset, name, value):
        return queryset.filter(followed_up_at__isnull=not value)

    def filter_queryset(self, queryset):
        """followed_up=false without received_after reads the inbox's day (received in the last
        INBOX_HOURS), as the inbox does: polled every few seconds, its cost must not grow with history.
        Older alerts nobody followed up are asked for with received_after."""
        queryset = super().filter_queryset(queryset)
        data = self.form.cleaned_data
        if data.get("followed_up") is False and data.get("received_after") is None:
            queryset = queryset.filter(received_at__gte=selectors.inbox_since(timezone.now()))
        return queryset

    def filter_excluded(self, queryset, name, value):
        if value == "false":
            return queryset.filter(excluded=AlertOccurrence.Exclusion.NONE)
        if value == "true":
            return queryset.exclude(excluded=AlertOccurrence.Exclusion.NONE)
        return queryset.filter(excluded=value)

    def filter_text(self, queryset, name, value):
        return queryset.filter(Q(alertname__icontains=value) | Q(summary__icontains=value))


# --- following alerts up -------------------------------------------------------------------------


class CommentSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    text = serializers.CharField()


class LinkSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    incident = serializers.PrimaryKeyRelatedField(queryset=Incident.objects.all(), help_text="Incident id.")


class BulkFollowUpSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1), allow_empty=False, max_length=MAX_BULK, help_text="Alert ids."
    )
    action = serializers.ChoiceField(choices=list(FollowUp.CHOICES))
    text = serializers.CharField(required=False, allow_blank=True, default="", help_text="The comment (comment).")
    incident = serializers.PrimaryKeyRelatedField(
        queryset=Incident.objects.all(), required=False, allow_null=True, help_text="Incident id (link)."
    )


class GroupAcknowledgeSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    alertname = serializers.CharField(allow_blank=True, max_length=200, help_text="The group's alert name.")
    system = serializers.SlugRelatedField(
        slug_field="code",
        queryset=System.objects.all(),
        allow_null=True,
        help_text="The group's system code (null: alerts of no known system).",
    )


class GroupAcknowledgedSerializer(serializers.Serializer):
    acknowledged = serializers.ListField(child=serializers.IntegerField(), help_text="The alerts acknowledged now.")


class SilenceSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    minutes = serializers.IntegerField(
        min_value=1, max_value=services.SILENCE_MAX_MINUTES, help_text="From now, e.g. 30, 60, 120 or 240."
    )
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)


class IncidentFromAlertsSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1), allow_empty=False, max_length=MAX_BULK, help_text="Alert ids."
    )
    title = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=200, help_text="Default: the first alert's summary."
    )
    systems = serializers.SlugRelatedField(
        slug_field="code",
        many=True,
        queryset=System.objects.select_related("team"),
        required=False,
        allow_empty=False,
        help_text="System codes; default: the systems the alerts' labels name.",
    )


class MaintenanceWindowSerializer(RejectUnknownFieldsMixin, ModelSerializer):
    system = serializers.SlugRelatedField(slug_field="code", queryset=System.objects.all(), help_text="System code.")
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = MaintenanceWindow
        fields = ["id", *services.MAINTENANCE_WINDOW_FIELDS, "created_by", "created_at"]
        read_only_fields = ["created_by", "created_at"]


class AlertViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Alert occurrences, newest first. Read: every role. Follow-up: engineers and administrators."""

    permission_classes = [RecordAccess]
    serializer_class = AlertSerializer
    queryset = AlertOccurrence.objects.select_related(
        "integration", "team", "system", "acknowledged_by", "followed_up_by", "resolved_by"
    )
    filterset_class = AlertFilter
    ordering_fields = ["received_at", "starts_at", "severity"]
    ordering = ["-received_at", "-id"]
    lookup_value_regex = r"\d+"

    def _read_one(self, occurrence_id: int) -> Response:
        return Response(self.get_serializer(self.get_queryset().get(pk=occurrence_id)).data)

    def _follow_up(self, action_name: str, **options) -> Response:
        occurrence = self.get_object()
        services.alerts_follow_up(occurrence_ids=[occurrence.pk], by=self.request.user, action=action_name, **options)
        return self._read_one(occurrence.pk)

    @extend_schema(request=None, responses={200: AlertSerializer})
    @action(detail=True, methods=["post"])
    def acknowledge(self, request, pk=None):
        """Acknowledge: someone is on it. Twice changes nothing."""
        return self._follow_up(FollowUp.ACKNOWLEDGE)

    @extend_schema(request=CommentSerializer, responses={200: AlertSerializer})
    @action(detail=True, methods=["post"])
    def comment(self, request, pk=None):
        serializer = CommentSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return self._follow_up(FollowUp.COMMENT, text=serializer.validated_data["text"])

    @extend_schema(request=LinkSerializer, responses={200: AlertSerializer})
    @action(detail=True, methods=["post"])
    def link(self, request, pk=None):
        """Link the alert to an incident."""
        serializer = LinkSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return self._follow_up(FollowUp.LINK, incident=serializer.validated_data["incident"])

    @extend_schema(request=None, responses={200: AlertSerializer})
    @action(detail=True, methods=["post"])
    def resolve(self, request, pk=None):
        """Resolve by hand (a resolution by the source is not a follow-up; this is)."""
        return self._follow_up(FollowUp.RESOLVE)

    @extend_schema(request=BulkFollowUpSerializer, responses={200: AlertSerializer(many=True)})
    @action(detail=False, methods=["post"], url_path="follow-up", pagination_class=None, filter_backends=[])
    def follow_up(self, request):
        """One action on many alerts at once; answers the alerts as they are now, by id."""
        serializer = BulkFollowUpSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        occurrences = services.alerts_follow_up(
            occurrence_ids=data["ids"],
            by=request.user,
            action=data["action"],
            text=data["text"],
            incident=data.get("incident"),
        )
        chosen = self.get_queryset().filter(pk__in=[o.pk for o in occurrences]).order_by("pk")
        return Response(self.get_serializer(chosen, many=True).data)

    @extend_schema(request=GroupAcknowledgeSerializer, responses={200: GroupAcknowledgedSerializer})
    @action(detail=False, methods=["post"], url_path="acknowledge-group", pagination_class=None, filter_backends=[])
    def acknowledge_group(self, request):
        """Acknowledge every alert of a group (alert name and system, as the inbox groups them) received in
        the last 24 hours that nobody followed up yet. Twice acknowledges nothing the second time."""
        serializer = GroupAcknowledgeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        acknowledged = services.alert_group_acknowledge(
            by=request.user,
            alertname=serializer.validated_data["alertname"],
            system=serializer.validated_data["system"],
            since=selectors.inbox_since(timezone.now()),
        )
        return Response({"acknowledged": acknowledged})

    @extend_schema(request=SilenceSerializer, responses={201: MaintenanceWindowSerializer})
    @action(detail=True, methods=["post"], pagination_class=None, filter_backends=[])
    def silence(self, request, pk=None):
        """Silence the alert's system for `minutes` from now: a maintenance window, so its alerts received
        in it are kept but excluded from follow-up rates (metrics.md)."""
        occurrence = self.get_object()
        serializer = SilenceSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        if occurrence.system is None:
            raise ValidationError({"system": [_("This alert names no known system to silence.")]})
        window = services.system_silence(
            by=request.user,
            system=occurrence.system,
            minutes=serializer.validated_data["minutes"],
            reason=serializer.validated_data["reason"]
            or f"{occurrence.alertname or occurrence.fingerprint} #{occurrence.pk}",
        )
        return Response(MaintenanceWindowSerializer(window).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=IncidentFromAlertsSerializer, responses={201: IncidentSerializer})
    @action(detail=False, methods=["post"], url_path="create-incident", pagination_class=None, filter_backends=[])
    def create_incident(self, request):
        """Open an incident from alerts, prefilled from them (occurred_at = earliest starts_at, detection
        source monitoring, systems and team from the labels); the alerts are linked to it."""
        serializer = IncidentFromAlertsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        incident = services.incident_from_alerts(
            occurrence_ids=data["ids"], by=request.user, title=data["title"], systems=data.get("systems")
        )
        incident = incident_selectors.incident_list().get(pk=incident.pk)
        return Response(
            IncidentSerializer(incident, context=self.get_serializer_context()).data, status=status.HTTP_201_CREATED
        )

    @extend_schema(responses={200: AlertActivitySerializer(many=True)})
    @action(detail=True, methods=["get"], pagination_class=None, filter_backends=[])
    def history(self, request, pk=None):
        """What people did with the alert, in order."""
        occurrence = self.get_object()
        activities = occurrence.activities.select_related("by").order_by("at", "id")
        return Response(AlertActivitySerializer(activities, many=True).data)


# --- maintenance windows -------------------------------------------------------------------------


class MaintenanceWindowFilter(django_filters.FilterSet):
    system = django_filters.CharFilter(field_name="system__code", help_text=_("System code."))
    ends_after = TimestampFilter(
        field_name="ends_at", lookup_expr="gt", help_text=_("Windows not over at this moment (ends_at > it).")
    )

    class Meta:
        model = MaintenanceWindow
        fields = []


class MaintenanceWindowViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.UpdateModelMixin, viewsets.GenericViewSet
):
    """Windows in which a system's new alerts do not count in follow-up rates (a release, a drill).
    Read: every role; write: engineers and administrators."""

    permission_classes = [RecordAccess]
    serializer_class = MaintenanceWindowSerializer
    queryset = MaintenanceWindow.objects.select_related("system", "created_by")
    filterset_class = MaintenanceWindowFilter
    ordering_fields = ["starts_at", "ends_at"]
    ordering = ["-starts_at", "-id"]
    lookup_value_regex = r"\d+"

    def create(self, request):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        window = services.maintenance_window_create(by=request.user, **serializer.validated_data)
        return Response(self.get_serializer(window).data, status=status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        window = self.get_object()
        serializer = self.get_serializer(window, data=request.data, partial=kwargs.get("partial", False))
        serializer.is_valid(raise_exception=True)
        services.maintenance_window_update(window_id=window.pk, changes=serializer.validated_data)
        return Response(self.get_serializer(self.get_queryset().get(pk=window.pk)).data)


# --- rejected deliveries -------------------------------------------------------------------------


class ConfigurationOnly(permissions.BasePermission):
    """Administrators only, reads included: rejected bodies can hold anything a sender posted."""

    def has_permission(self, request, view):
        return user_can(request.user, CONFIGURE)


class RejectedDeliverySerializer(ModelSerializer):
    integration = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = RejectedDelivery
        fields = ["id", "integration", "received_at", "reason", "body", "remote_addr"]
        read_only_fields = fields


class RejectedDeliveryViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Webhook bodies (or alerts of one) that could not be accepted, newest first."""

    permission_classes = [ConfigurationOnly]
    serializer_class = RejectedDeliverySerializer
    queryset = RejectedDelivery.objects.select_related("integration")
    filterset_fields = ["integration"]
    ordering_fields = ["received_at"]
    ordering = ["-received_at", "-id"]
    lookup_value_regex = r"\d+"
