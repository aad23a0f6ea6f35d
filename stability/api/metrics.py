"""The alert figures of metrics.md over the API: the 5-minute follow-up rate, and the alerts it missed.

Managers and administrators read every team's; engineers their teams' only (stability.report_access):
`team` or `system` must name one of theirs, else a 403 naming the teams they may ask for."""

import django_filters
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, generics, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import TeamReportAccess, require_report_scope
from config.api import ModelSerializer
from incidents import periods
from incidents.models import System, Team
from stability import selectors
from stability.models import AlertOccurrence

_PERIOD = OpenApiParameter(
    "period",
    str,
    description="2026-11, 2026-W36, 2026-Q4, 2026 or 2026-11-01..2026-11-15; default the current month.",
)


class FollowUpFilter(django_filters.FilterSet):
    team = django_filters.CharFilter(field_name="team__slug", help_text=gettext_lazy("Team slug."))
    system = django_filters.CharFilter(field_name="system__code", help_text=gettext_lazy("System code."))
    severity = django_filters.CharFilter(field_name="severity", help_text=gettext_lazy("Alert severity label."))
    integration = django_filters.NumberFilter(field_name="integration_id", help_text=gettext_lazy("Integration id."))

    class Meta:
        model = AlertOccurrence
        fields = []


def _period(request) -> periods.Period:
    """The `period` query parameter; default the current month."""
    return periods.requested_parameter(request.query_params.get("period"))


def _check_scope(request) -> None:
    """403 unless this person reads the figures of the team or system asked for (an unknown one is
    nobody's: its figures are empty for those who read every team's, refused to the others)."""
    team = system = None
    if slug := request.query_params.get("team"):
        team = Team.objects.filter(slug=slug).values_list("pk", flat=True).first() or 0
    if code := request.query_params.get("system"):
        system = System.objects.filter(code=code).values_list("team_id", flat=True).first() or 0
    require_report_scope(request.user, team_id=team, system_team_id=system)


def _occurrences(request):
    """The occurrences the query's filters choose (400 on a bad one), within what the reader may read."""
    _check_scope(request)
    filterset = FollowUpFilter(request.query_params, queryset=AlertOccurrence.objects.all(), request=request)
    if not filterset.is_valid():
        raise exceptions.ValidationError(filterset.errors)
    return filterset.qs


class FollowUpRateView(APIView):
    """The 5-minute follow-up rate of a period (default: this month), filtered, optionally grouped."""

    permission_classes = [TeamReportAccess]

    @extend_schema(
        parameters=[
            _PERIOD,
            OpenApiParameter("group_by", str, enum=list(selectors.GROUP_BY), description="Figures per group too."),
            OpenApiParameter("team", str, description="Team slug."),
            OpenApiParameter("system", str, description="System code."),
            OpenApiParameter("severity", str, description="Alert severity label."),
            OpenApiParameter("integration", int, description="Integration id."),
        ],
        responses={200: OpenApiResponse(OpenApiTypes.OBJECT, description="See docs/metrics.md.")},
    )
    def get(self, request):
        period = _period(request)
        group_by = request.query_params.get("group_by") or None
        if group_by is not None and group_by not in selectors.GROUP_BY:
            raise exceptions.ValidationError(
                {"group_by": [_("Group by one of: %(choices)s.") % {"choices": ", ".join(selectors.GROUP_BY)}]}
            )
        return Response(selectors.follow_up_rate(occurrences=_occurrences(request), period=period, group_by=group_by))


class MissedAlertSerializer(ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    system = serializers.SlugRelatedField(slug_field="code", read_only=True)
    delay = serializers.SerializerMethodField(help_text="followed_up_at - received_at in seconds; null: never.")

    class Meta:
        model = AlertOccurrence
        fields = ["id", "alertname", "severity", "team", "system", "received_at", "followed_up_at", "delay"]

    def get_delay(self, occurrence) -> float | None:
        if occurrence.followed_up_at is None:
            return None
        return (occurrence.followed_up_at - occurrence.received_at).total_seconds()


class FollowUpMissedView(generics.ListAPIView):
    """The alerts behind the rate's `missed` figure: counted, not followed up in time (late or never),
    oldest first."""

    permission_classes = [TeamReportAccess]
    serializer_class = MissedAlertSerializer
    filter_backends: list = []  # filtered and ordered by the selector

    @extend_schema(
        parameters=[
            _PERIOD,
            OpenApiParameter("team", str, description="Team slug."),
            OpenApiParameter("system", str, description="System code."),
            OpenApiParameter("severity", str, description="Alert severity label."),
            OpenApiParameter("integration", int, description="Integration id."),
        ]
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        return selectors.follow_up_missed(occurrences=_occurrences(self.request), period=_period(self.request))
