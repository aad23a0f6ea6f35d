"""Thin views: validate input, call one service or selector, serialise the result."""

from datetime import timedelta

from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import exceptions, mixins, permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import (
    READ_RECORD,
    READ_REPORTS,
    WRITE_RECORD,
    ConfigurationAccess,
    PreviewAccess,
    RecordAccess,
    TeamReportAccess,
    require_report_scope,
    user_can,
)
from incidents import drills, periods, reviews, selectors, services
from incidents.api import serializers as s
from incidents.filters import ActionItemFilter, IncidentFilter
from incidents.models import Drill, Incident, IncidentReview, ReviewSection, SeverityPolicy, System, Team
from incidents.services import ItemTransition


def _expected_version(request, data, *, not_a_number: str | None = None) -> int | None:
    """The version the client read: `version` in the body, or the If-Match header."""
    if data.get("version") is not None:
        return data["version"]
    header = request.headers.get("If-Match", "").strip()
    if header:
        try:
            return int(header.removeprefix("W/").strip('"'))
        except ValueError:
            message = not_a_number or _("Expected the incident's version number.")
            raise exceptions.ValidationError({"If-Match": [message]}) from None
    return None


def _conflict(message: str, exc: services.StaleVersionError) -> Response:
    """409 for a change made against a stale version: what happened, and the version there is now."""
    detail = message % {"version": exc.current_version}
    return Response({"detail": detail, "current_version": exc.current_version}, status=status.HTTP_409_CONFLICT)


def _item_stale(exc: services.StaleVersionError) -> Response:
    return _conflict(
        _(
            "The action item was changed by someone else (now version %(version)s). "
            "Reload it and apply your change again."
        ),
        exc,
    )


def _period(request) -> periods.Period:
    """The `period` query parameter; default the current month."""
    return periods.requested_parameter(request.query_params.get("period"))


_PERIOD = OpenApiParameter(
    "period",
    str,
    description="2026-11, 2026-W36, 2026-Q4, 2026 or 2026-11-01..2026-11-15; default the current month.",
)


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
            return _conflict(
                _(
                    "The incident was changed by someone else (now version %(version)s). "
                    "Reload it and apply your change again."
                ),
                exc,
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

    @extend_schema(methods=["get"], responses={200: s.ReviewSerializer})
    @extend_schema(
        methods=["put"], request=s.ReviewWriteSerializer, responses={200: s.ReviewSerializer, 409: OpenApiTypes.OBJECT}
    )
    @action(detail=True, methods=["get", "put"], pagination_class=None, filterset_class=None)
    def review(self, request, pk=None):
        """The post-incident review (复盘): GET reads every section; PUT writes the sections sent, with the
        version read (a stale one is 409, nothing written)."""
        incident = self.get_object()
        if request.method == "PUT":
            serializer = s.ReviewWriteSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            expected = _expected_version(request, serializer.validated_data)
            if expected is None:
                raise exceptions.ValidationError(
                    {
                        "version": [
                            _("Send the version you read (or an If-Match header) so a concurrent change is not lost.")
                        ]
                    }
                )
            try:
                reviews.review_save(
                    incident_id=incident.pk,
                    by=request.user,
                    expected_version=expected,
                    sections=serializer.validated_data["sections"],
                )
            except services.StaleVersionError as exc:
                return _conflict(
                    _(
                        "The review was changed by someone else (now version %(version)s). "
                        "Reload it and apply your change again."
                    ),
                    exc,
                )
        texts = selectors.review_texts(incident=incident)
        version = IncidentReview.objects.filter(incident=incident).values_list("version", flat=True).first() or 0
        required = selectors.review_required_sections(incident.team)
        data = {
            "version": version,
            "sections": texts,
            "required": required,
            "missing": selectors.review_missing_sections(incident=incident, texts=texts),
        }
        response = Response(s.ReviewSerializer(data).data)
        response["ETag"] = f'"{version}"'
        return response

    @extend_schema(responses={200: s.ReviewRevisionSerializer(many=True)})
    @action(detail=True, methods=["get"], url_path="review/versions", pagination_class=None, filterset_class=None)
    def review_versions(self, request, pk=None):
        """Every version of every section of the review, by section (in the review's order), oldest first."""
        incident = self.get_object()
        history = reviews.review_versions(incident=incident)
        rows = [revision for key in ReviewSection.values for revision in history.get(key, [])]
        return Response(s.ReviewRevisionSerializer(rows, many=True).data)

    @extend_schema(responses={200: s.ActionItemSerializer(many=True)})
    @action(detail=True, methods=["get"], url_path="action-items", pagination_class=None, filterset_class=None)
    def action_items(self, request, pk=None):
        """The incident's closed-loop items, by due date."""
        incident = self.get_object()
        items = selectors.action_item_list(incident=incident).order_by("due_at", "id")
        return Response(s.ActionItemSerializer(items, many=True, context={"now": timezone.now()}).data)

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

    def perform_create(self, serializer):
        serializer.instance = services.team_create(**serializer.validated_data)

    def perform_update(self, serializer):
        serializer.instance = services.team_update(team_id=serializer.instance.pk, changes=serializer.validated_data)


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

    def perform_create(self, serializer):
        serializer.instance = services.system_create(**serializer.validated_data)

    def perform_update(self, serializer):
        serializer.instance = services.system_update(
            system_id=serializer.instance.pk, changes=serializer.validated_data
        )


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

    @extend_schema(request=s.PolicyPreviewSerializer, responses={200: s.PolicyPreviewResultSerializer})
    @action(detail=False, methods=["post"])
    def preview(self, request):
        """How the incidents of the last `days` (default 90) would be classified under these rules, against
        their level now (the settings page's Preview); nothing is saved."""
        serializer = s.PolicyPreviewSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        preview = selectors.severity_policy_preview(
            rules=serializer.validated_data["rules"], now=timezone.now(), days=serializer.validated_data["days"]
        )
        preview["counts"] = {level: {"now": now, "new": new} for level, (now, new) in preview["counts"].items()}
        return Response(s.PolicyPreviewResultSerializer(preview).data)

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
        if period := periods.requested_parameter(serializer.validated_data.get("period"), default=None):
            chosen = selectors.in_period(chosen, period)
        return Response(services.incidents_reevaluate(incidents=chosen, by=request.user))


class SeverityPreviewView(APIView):
    """Classify impact facts without saving anything (the incident form calls it live)."""

    permission_classes = [PreviewAccess]

    @extend_schema(request=s.SeverityPreviewSerializer, responses={200: s.ClassificationSerializer})
    def post(self, request):
        serializer = s.SeverityPreviewSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        facts = dict(serializer.validated_data)
        minutes = facts.pop("impact_minutes", None)
        preview = selectors.severity_preview(
            **facts, impact=None if minutes is None else timedelta(minutes=minutes), now=timezone.now()
        )
        return Response(
            {
                "level": preview.level,
                "explanation": preview.explanation,
                "matches": preview.matches,
                "policy_version": preview.policy.version,
                "recovery_target": preview.recovery_target,
            }
        )


def _check_report_scope(request) -> tuple[Team | None, System | None]:
    """The `team` and `system` asked for, once this person may read their figures: managers and
    administrators every team's, engineers their teams' only (accounts.permissions, the report's rule),
    else 403. An unknown team or system is None here."""
    team = system = None
    if slug := request.query_params.get("team"):
        team = Team.objects.filter(slug=slug).first()
    if code := request.query_params.get("system"):
        system = System.objects.filter(code=code).first()
    require_report_scope(
        request.user,
        # An unknown one (0) is nobody's: refused to engineers, empty or a 400 for the others.
        team_id=(team.pk if team else 0) if slug else None,
        system_team_id=(system.team_id if system else 0) if code else None,
    )
    return team, system


class IncidentMetricsView(APIView):
    """Incident figures of metrics.md for a period (default: this month) and the list's filters.
    Engineers: of one of their teams or of a system of theirs (`team` or `system`), else 403."""

    permission_classes = [TeamReportAccess]

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
        period = _period(request)
        _check_report_scope(request)
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


# -- action items (闭环项) ------------------------------------------------------------------------


class ActionItemAccess(permissions.BasePermission):
    """Read: every role. Write: engineers and administrators. Managers approve: they verify, waive
    and reopen items (transitions, and bulk with one of those actions and nothing else)."""

    def has_permission(self, request, view):
        if not (request.user and request.user.is_authenticated):
            return False
        if request.method in permissions.SAFE_METHODS:
            return user_can(request.user, READ_RECORD)
        if user_can(request.user, WRITE_RECORD):
            return True
        return user_can(request.user, READ_REPORTS) and view.action in ("transitions", "bulk")


def _check_manager_step(request, action_name: str | None, *, other_changes: bool = False) -> None:
    if user_can(request.user, WRITE_RECORD):
        return
    if other_changes or action_name not in ItemTransition.MANAGER_STEPS:
        raise exceptions.PermissionDenied(
            _("Managers verify, waive and reopen action items; the owner's team does the rest.")
        )


_ITEM_IF_MATCH = OpenApiParameter(
    "If-Match",
    str,
    OpenApiParameter.HEADER,
    required=False,
    description="The item's version as read (its ETag), instead of `version` in the body.",
)


class ActionItemViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Closed-loop items (闭环项) of incidents, drills, review meetings, audits and governance work.
    Nothing is deleted: an item is waived (with a manager's approval) or reopened, and every change of
    an incident's item is on the incident's timeline."""

    permission_classes = [ActionItemAccess]
    serializer_class = s.ActionItemSerializer
    filterset_class = ActionItemFilter
    ordering_fields = ["due_at", "status", "priority", "completed_at", "created_at", "updated_at", "id"]
    ordering = ["due_at", "id"]
    lookup_value_regex = r"\d+"

    def get_queryset(self):
        return selectors.action_item_list()

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "now": timezone.now()}

    def _read(self, item_id: int, http_status=status.HTTP_200_OK) -> Response:
        item = get_object_or_404(selectors.action_item_list(), pk=item_id)
        response = Response(self.get_serializer(item).data, status=http_status)
        response["ETag"] = f'"{item.version}"'
        return response

    def _version(self, request, data) -> int | None:
        return _expected_version(request, data, not_a_number=_("Expected the action item's version number."))

    def retrieve(self, request, *args, **kwargs):
        return self._read(self.get_object().pk)

    @extend_schema(request=s.ActionItemWriteSerializer, responses={201: s.ActionItemSerializer})
    def create(self, request):
        serializer = s.ActionItemWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        incident, drill = data.pop("incident", None), data.pop("drill", None)
        item = services.action_item_create(
            incident_id=incident.pk if incident else None,
            drill_id=drill.pk if drill else None,
            by=request.user,
            **data,
        )
        return self._read(item.pk, status.HTTP_201_CREATED)

    @extend_schema(
        request=s.ActionItemUpdateSerializer,
        responses={200: s.ActionItemSerializer, 409: OpenApiTypes.OBJECT},
        parameters=[_ITEM_IF_MATCH],
    )
    def partial_update(self, request, pk=None):
        item = self.get_object()
        serializer = s.ActionItemUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        changes = dict(serializer.validated_data)
        expected = self._version(request, changes)
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
            services.action_item_update(item_id=item.pk, by=request.user, expected_version=expected, **changes)
        except services.StaleVersionError as exc:
            return _item_stale(exc)
        return self._read(item.pk)

    @extend_schema(
        request=s.ItemTransitionSerializer,
        responses={200: s.ActionItemSerializer, 409: OpenApiTypes.OBJECT},
        parameters=[_ITEM_IF_MATCH],
    )
    @action(detail=True, methods=["post"])
    def transitions(self, request, pk=None):
        """Start, complete, verify, waive (managers and administrators, with a reason) or reopen."""
        item = self.get_object()
        serializer = s.ItemTransitionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        _check_manager_step(request, data["action"])
        expected = self._version(request, data)
        data.pop("version", None)
        try:
            services.action_item_transition(item_id=item.pk, by=request.user, expected_version=expected, **data)
        except services.StaleVersionError as exc:
            return _item_stale(exc)
        return self._read(item.pk)

    @extend_schema(responses={200: s.ActionItemSerializer(many=True)})
    @action(detail=False, methods=["get"])
    def mine(self, request):
        """My items (owner = me): open and in progress first, then done, then verified and waived, each
        by due date; the list's filters apply, and `ordering` replaces that order."""
        items = self.filter_queryset(self.get_queryset().filter(owner=request.user))
        if not request.query_params.get("ordering"):
            items = selectors.open_first(items)
        page = self.paginate_queryset(items)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(request=s.ActionItemBulkSerializer, responses={200: s.ActionItemSerializer(many=True)})
    @action(detail=False, methods=["post"], pagination_class=None, filter_backends=[])
    def bulk(self, request):
        """One change to many items, all or nothing: a step (action, reason), a new owner, a new due
        date. If one item fails nothing is written, and the 400 names each failing item under ids."""
        serializer = s.ActionItemBulkSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        _check_manager_step(request, data.get("action"), other_changes="owner" in data or "due_at" in data)
        items = services.action_items_bulk_update(
            item_ids=data["ids"],
            by=request.user,
            action=data.get("action"),
            reason=data["reason"],
            owner=data.get("owner"),
            due_at=data.get("due_at"),
        )
        chosen = self.get_queryset().filter(pk__in=[item.pk for item in items]).order_by("pk")
        return Response(self.get_serializer(chosen, many=True).data)


class ClosedLoopMetricsView(APIView):
    """Closed-loop figures of metrics.md for a period (default: this month): on-time completion rate,
    the overdue items, the incident closed-loop rate. See docs/closed-loop.md. Engineers: of one of their
    teams or of a system of theirs, else 403."""

    permission_classes = [TeamReportAccess]

    @extend_schema(
        parameters=[
            _PERIOD,
            OpenApiParameter("team", str, description="Team slug: items and incidents of that team."),
            OpenApiParameter("system", str, description="System code: items and incidents impacting that system."),
        ],
        responses={200: OpenApiResponse(OpenApiTypes.OBJECT, description="See docs/closed-loop.md.")},
    )
    def get(self, request):
        period = _period(request)
        team, system = _check_report_scope(request)
        if request.query_params.get("team") and team is None:
            raise exceptions.ValidationError({"team": [_("No team with this slug.")]})
        if request.query_params.get("system") and system is None:
            raise exceptions.ValidationError({"system": [_("No system with this code.")]})
        return Response(
            {
                "period": {"label": period.label, "kind": period.kind, "start": period.start, "end": period.end},
                "metrics": selectors.closed_loop_metrics(period=period, team=team, system=system, now=timezone.now()),
            }
        )


class DrillViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """Drills (演练): read by every role, planned and recorded by engineers and administrators (the
    record's writers). Nothing is deleted."""

    permission_classes = [ActionItemAccess]
    serializer_class = s.DrillSerializer
    filterset_fields = ["scenario", "result", "team__slug"]
    ordering_fields = ["planned_at", "held_at", "id"]
    ordering = ["-planned_at", "-id"]
    lookup_value_regex = r"\d+"

    def get_queryset(self):
        return drills.drill_list().prefetch_related("action_items").select_related("created_by")

    @staticmethod
    def _write(drill_id: int | None, data: dict, *, by) -> int:
        outcome = {name: data.pop(name) for name in drills.OUTCOME_FIELDS if name in data}
        if drill_id is None:
            drill_id = drills.drill_create(by=by, **data).pk
        elif data:
            drills.drill_update(drill_id=drill_id, **data)
        if outcome:
            current = Drill.objects.get(pk=drill_id)
            values = {name: outcome.get(name, getattr(current, name)) for name in drills.OUTCOME_FIELDS}
            if values["held_at"] is None and not values["result"] and values["switch_over_seconds"] is None:
                drills.drill_update(drill_id=drill_id, findings=values["findings"])
            else:
                drills.drill_hold(drill_id=drill_id, **values)
        return drill_id

    def perform_create(self, serializer):
        pk = self._write(None, dict(serializer.validated_data), by=self.request.user)
        serializer.instance = self.get_queryset().get(pk=pk)

    def perform_update(self, serializer):
        pk = self._write(serializer.instance.pk, dict(serializer.validated_data), by=self.request.user)
        serializer.instance = self.get_queryset().get(pk=pk)
