"""Thin views: validate input, call one service or selector, serialise the result."""

from datetime import timedelta

from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import exceptions, mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import ConfigurationAccess, PreviewAccess, RecordAccess, ReportAccess
from incidents import periods, selectors, services, severity
from incidents.api import serializers as s
from incidents.api.filters import IncidentFilter
from incidents.models import Incident, SeverityPolicy, System, Team


def _expected_version(request, data) -> int | None:
    """The version the client read: `version` in the body, or the If-Match header."""
    if data.get("version") is not None:
        return data["version"]
    header = request.headers.get("If-Match", "").strip()
    if header:
        try:
            return int(header.removeprefix("W/").strip('"'))
        except ValueError:
            raise exceptions.ValidationError({"If-Match": [_("Expected the incident's version number.")]}) from None
    return None


class IncidentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Incidents. Nothing is deleted: history is kept on the timeline."""

    permission_classes = [RecordAccess]
    serializer_class = s.IncidentSerializer
    filterset_class = IncidentFilter
    ordering_fields = ["occurred_at", "detected_at", "recovered_at", "level", "status", "created_at", "updated_at"]
    ordering = ["-occurred_at", "-id"]

    def get_queryset(self):
        return selectors.incident_list()

    def _read(self, incident_id: int, http_status=status.HTTP_200_OK) -> Response:
        incident = get_object_or_404(selectors.incident_list(), pk=incident_id)
        response = Response(
            s.IncidentSerializer(incident, context=self.get_serializer_context()).data, status=http_status
        )
        response["ETag"] = f'"{incident.version}"'
        return response

    def retrieve(self, request, *args, **kwargs):
        return self._read(self.get_object().pk)

    @extend_schema(request=s.IncidentWriteSerializer, responses={201: s.IncidentSerializer})
    def create(self, request):
        serializer = s.IncidentWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        incident = services.incident_create(by=request.user, **serializer.validated_data)
        return self._read(incident.pk, status.HTTP_201_CREATED)

    @extend_schema(
        request=s.IncidentUpdateSerializer,
        responses={200: s.IncidentSerializer, 409: OpenApiTypes.OBJECT},
        parameters=[
            OpenApiParameter(
                "If-Match",
                str,
                OpenApiParameter.HEADER,
                required=False,
                description="The incident's version as read (its ETag), instead of `version` in the body.",
            )
        ],
    )
    def partial_update(self, request, pk=None):
        incident = self.get_object()
        serializer = s.IncidentUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        changes = dict(serializer.validated_data)
        expected = _expected_version(request, changes)
        changes.pop("version", None)
        if expected is None:
            raise exceptions.ValidationError(
                {
                    "version": [
                        _("Send the version you read (or an If-Match header) so a concurrent change is not lost.")
                    ]
                }
            )
        try:
            services.incident_update(
                incident_id=incident.pk, by=request.user, expected_version=expected, changes=changes
            )
        except services.StaleVersionError as exc:
            message = _(
                "The incident was changed by someone else (now version %(version)s). "
                "Reload it and apply your change again."
            ) % {"version": exc.current_version}
            return Response(
                {"detail": message, "current_version": exc.current_version}, status=status.HTTP_409_CONFLICT
            )
        return self._read(incident.pk)

    @extend_schema(request=s.TransitionSerializer, responses={200: s.IncidentSerializer})
    @action(detail=True, methods=["post"])
    def transitions(self, request, pk=None):
        """Change the status: recover, resolve, close or reopen."""
        incident = self.get_object()
        serializer = s.TransitionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.incident_transition(incident_id=incident.pk, by=request.user, **serializer.validated_data)
        return self._read(incident.pk)

    @extend_schema(methods=["get"], responses={200: s.TimelineEntrySerializer(many=True)})
    @extend_schema(methods=["post"], request=s.TimelineNoteSerializer, responses={201: s.TimelineEntrySerializer})
    @action(detail=True, methods=["get", "post"], pagination_class=None, filterset_class=None)
    def timeline(self, request, pk=None):
        """The incident's history in order: changes (field, old -> new, who, when) and free notes."""
        incident = self.get_object()
        if request.method == "POST":
            serializer = s.TimelineNoteSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            entry = services.timeline_note_add(incident_id=incident.pk, by=request.user, **serializer.validated_data)
            return Response(s.TimelineEntrySerializer(entry).data, status=status.HTTP_201_CREATED)
        entries = selectors.incident_timeline(incident=incident)
        return Response(s.TimelineEntrySerializer(entries, many=True).data)

    @extend_schema(methods=["post"], request=s.SeverityOverrideSerializer, responses={200: s.IncidentSerializer})
    @extend_schema(methods=["delete"], request=s.SeverityOverrideClearSerializer, responses={200: s.IncidentSerializer})
    @action(detail=True, methods=["post", "delete"], url_path="severity-override")
    def severity_override(self, request, pk=None):
        """Set the level by hand with a mandatory reason (POST), or drop the override (DELETE)."""
        incident = self.get_object()
        if request.method == "DELETE":
            serializer = s.SeverityOverrideClearSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            services.severity_override_clear(incident_id=incident.pk, by=request.user, **serializer.validated_data)
        else:
            serializer = s.SeverityOverrideSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            services.severity_override_set(incident_id=incident.pk, by=request.user, **serializer.validated_data)
        return self._read(incident.pk)


class TeamViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    permission_classes = [ConfigurationAccess]
    serializer_class = s.TeamSerializer
    queryset = Team.objects.prefetch_related("managers", "members")
    lookup_field = "slug"
    filterset_fields = []
    ordering_fields = ["name", "slug"]
    ordering = ["name"]


class SystemViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    permission_classes = [ConfigurationAccess]
    serializer_class = s.SystemSerializer
    queryset = System.objects.select_related("team")
    lookup_field = "code"
    filterset_fields = ["tier", "team__slug"]
    ordering_fields = ["code", "name", "tier"]
    ordering = ["tier", "code"]


class SeverityPolicyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The A-D policy, versioned. POST creates a new version; versions are never edited."""

    permission_classes = [ConfigurationAccess]
    serializer_class = s.SeverityPolicySerializer
    queryset = SeverityPolicy.objects.select_related("created_by")
    lookup_field = "version"
    filterset_fields = []
    ordering = ["-version"]

    def create(self, request):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        policy = services.severity_policy_create(by=request.user, **serializer.validated_data)
        return Response(self.get_serializer(policy).data, status=status.HTTP_201_CREATED)

    @action(detail=False, methods=["get"])
    def current(self, request):
        """The version that classifies new incidents."""
        return Response(self.get_serializer(selectors.current_severity_policy()).data)

    @extend_schema(
        request=s.ReevaluateSerializer,
        responses={
            200: inline_serializer(
                "ReevaluateResult",
                {"evaluated": serializers.IntegerField(), "level_changed": serializers.IntegerField()},
            )
        },
    )
    @action(detail=False, methods=["post"])
    def reevaluate(self, request):
        """Re-classify chosen incidents under the current version (overrides stay in force)."""
        serializer = s.ReevaluateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        chosen = Incident.objects.all()
        if serializer.validated_data.get("incidents"):
            chosen = chosen.filter(pk__in=[i.pk for i in serializer.validated_data["incidents"]])
        if serializer.validated_data.get("period"):
            try:
                chosen = selectors.in_period(chosen, periods.parse(serializer.validated_data["period"]))
            except ValueError as exc:
                raise exceptions.ValidationError({"period": [str(exc)]}) from None
        return Response(services.incidents_reevaluate(incidents=chosen, by=request.user))


class SeverityPreviewView(APIView):
    """Classify impact facts without saving anything (the incident form calls it live)."""

    permission_classes = [PreviewAccess]

    @extend_schema(request=s.SeverityPreviewSerializer, responses={200: s.ClassificationSerializer})
    def post(self, request):
        serializer = s.SeverityPreviewSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        facts = serializer.validated_data
        now = timezone.now()
        if "impact_minutes" in facts:
            impact = timedelta(minutes=facts["impact_minutes"])
        elif "occurred_at" in facts:
            impact = severity.impact_of(
                occurred_at=facts["occurred_at"], recovered_at=facts.get("recovered_at"), now=now
            )
        else:
            impact = timedelta(0)
        tiers = [system.tier for system in facts.get("systems", [])] + ([facts["tier"]] if "tier" in facts else [])
        policy = selectors.current_severity_policy()
        result = severity.classify(
            severity.ImpactFacts(
                tier=severity.most_critical_tier(tiers),
                impact=impact,
                affected_users=facts["affected_users"],
                affected_transactions=facts["affected_transactions"],
                funds_loss=facts["funds_loss"],
                data_or_security_breach=facts["data_or_security_breach"],
                regulatory_reportable=facts["regulatory_reportable"],
            ),
            policy.rules,
        )
        return Response(
            {
                "level": result.level,
                "explanation": severity.explain(result.level, result.matches),
                "matches": result.matches,
                "policy_version": policy.version,
                "recovery_target": policy.recovery_targets[result.level],
            }
        )


class IncidentMetricsView(APIView):
    """Incident figures of metrics.md for a period (default: this month) and the list's filters."""

    permission_classes = [ReportAccess]

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "period",
                str,
                description="2026-11, 2026-W36, 2026-Q4, 2026 or 2026-11-01..2026-11-15; default the current month.",
            )
        ],
        responses={200: OpenApiResponse(OpenApiTypes.OBJECT, description="See docs/metrics.md.")},
    )
    def get(self, request):
        try:
            period = (
                periods.parse(request.query_params["period"])
                if request.query_params.get("period")
                else periods.containing("month", timezone.now())
            )
        except ValueError as exc:
            raise exceptions.ValidationError({"period": [str(exc)]}) from None
        params = request.query_params.copy()
        params.pop("period", None)
        filterset = IncidentFilter(params, queryset=Incident.objects.all(), request=request)
        if not filterset.is_valid():
            raise exceptions.ValidationError(filterset.errors)
        incidents = selectors.in_period(filterset.qs, period)
        return Response(
            {
                "period": {"label": period.label, "kind": period.kind, "start": period.start, "end": period.end},
                "metrics": selectors.incident_metrics(incidents=incidents),
            }
        )
