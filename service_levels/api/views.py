"""Service levels over the API (docs/service-levels.md): Prometheus sources and indicators (administrators
write, everyone reads; credentials never leave), an indicator's test query and its days, and the figures
of a period under the report's access rule."""

from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import ConfigurationAccess, TeamReportAccess, require_report_scope
from incidents import periods
from incidents.models import System, Team
from service_levels import selectors, services
from service_levels.api import serializers as s
from service_levels.models import Indicator, PrometheusSource

_PERIOD = OpenApiParameter(
    "period",
    str,
    description="2026-11, 2026-W36, 2026-Q4, 2026 or 2026-11-01..2026-11-15; default the current month.",
)


def _period(request) -> periods.Period:
    return periods.requested_parameter(request.query_params.get("period"))


class SourceViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Prometheus servers to pull indicators from. Read: everyone; write: administrators. A source used by
    an indicator cannot be deleted (400): disable it."""

    permission_classes = [ConfigurationAccess]
    serializer_class = s.SourceSerializer
    queryset = PrometheusSource.objects.select_related("team")
    lookup_value_regex = r"\d+"
    filterset_fields = ["enabled"]
    ordering = ["name"]

    def perform_create(self, serializer):
        serializer.instance = services.source_create(**serializer.validated_data)

    def perform_update(self, serializer):
        serializer.instance = services.source_update(
            source_id=serializer.instance.pk, changes=serializer.validated_data
        )

    def perform_destroy(self, instance):
        services.source_delete(source_id=instance.pk)


class IndicatorViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """Service level indicators. Read: everyone; write: administrators. Creating or changing expressions
    asks the source's Prometheus about them: one it refuses is a 400 with Prometheus's words. Nothing is
    deleted (its days are the record): disable it instead."""

    permission_classes = [ConfigurationAccess]
    serializer_class = s.IndicatorSerializer
    queryset = Indicator.objects.select_related("system__team", "source")
    lookup_value_regex = r"\d+"
    filterset_fields = {"system__code": ["exact"], "system__team__slug": ["exact"], "enabled": ["exact"]}
    ordering = ["system__tier", "system__code", "name"]

    def perform_create(self, serializer):
        serializer.instance = services.indicator_create(**serializer.validated_data)

    def perform_update(self, serializer):
        serializer.instance = services.indicator_update(
            indicator_id=serializer.instance.pk, changes=serializer.validated_data
        )

    @extend_schema(request=None, responses={200: s.MeasurementSerializer})
    @action(detail=True, methods=["post"], url_path="test")
    def test(self, request, pk=None):
        """The indicator over the last 24 hours, asked of Prometheus now (nothing is stored): the value, or
        why there is none in words (Prometheus's error, no data, a timeout)."""
        indicator = self.get_object()
        result = services.measure_last_24_hours(indicator)
        return Response(
            s.MeasurementSerializer(
                {
                    "status": result.measurement.status,
                    "value": selectors.measurement_percent(result.measurement),
                    "good": result.measurement.good,
                    "total": result.measurement.total,
                    "problem": result.measurement.problem,
                    "message": result.measurement.text,
                    "start": result.start,
                    "end": result.end,
                }
            ).data,
            status=status.HTTP_200_OK,
        )

    @extend_schema(parameters=[_PERIOD], responses={200: s.DaySerializer(many=True)})
    @action(detail=True, methods=["get"])
    def days(self, request, pk=None):
        """Each finished day of the period (default: this month): its value, or why it has none."""
        return Response(s.DaySerializer(selectors.daily_values(self.get_object(), _period(request)), many=True).data)


def _named(model, field: str, value: str | None, parameter: str):
    """The team or system a parameter names; a 400 naming the parameter when there is none."""
    if not value:
        return None
    found = model.objects.filter(**{field: value}).first()
    if found is None:
        raise exceptions.ValidationError({parameter: [_("Unknown: %(value)s.") % {"value": value}]})
    return found


class ServiceLevelFiguresView(APIView):
    """The service level figures of a period (default: this month), per indicator: the value (summed good
    over summed total), the objective, the error budget left, the days measured and missing, and the year
    to date; and the days a P0/P1 indicator fell below its objective with no incident logged. Managers and
    administrators read every team's; engineers their teams' only (team= or system= of theirs, else 403)."""

    permission_classes = [TeamReportAccess]

    @extend_schema(
        parameters=[
            _PERIOD,
            OpenApiParameter("team", str, description="Team slug."),
            OpenApiParameter("system", str, description="System code."),
        ],
        responses={200: OpenApiResponse(OpenApiTypes.OBJECT, description="See docs/service-levels.md.")},
    )
    def get(self, request):
        period = _period(request)
        team = _named(Team, "slug", request.query_params.get("team"), "team")
        system = _named(System, "code", request.query_params.get("system"), "system")
        require_report_scope(
            request.user,
            team_id=None if team is None else team.pk,
            system_team_id=None if system is None else system.team_id,
        )
        return Response(selectors.service_levels_json(period, team=team, system=system))
