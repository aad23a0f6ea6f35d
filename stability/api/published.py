"""Published reports over the API (docs/report.md, "Published reports"): managers and administrators
publish a period's report, of a team or of all teams; a published report answers its frozen figures
and what has been revised since (stability.published). Engineers read the published reports of their
teams (stability.report_access), and publish none."""

import json

from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import TextField
from django.db.models.functions import Cast
from django.http import HttpResponse
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, mixins, serializers, status, viewsets
from rest_framework.response import Response

from accounts.permissions import TeamReportAccess
from config.api import ModelSerializer
from incidents import periods
from incidents.inputs import RejectUnknownFieldsMixin
from incidents.models import Team
from stability import published as publishing
from stability.models import PublishedReport
from stability.report_access import may_read_report, refusal, report_teams
from stability.reports import build_report


class PublishSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    period = serializers.CharField(
        max_length=30, help_text="2026-11, 2026-W48, 2026-Q4, 2026 or 2026-11-01..2026-11-15."
    )
    team = serializers.SlugRelatedField(
        slug_field="slug",
        queryset=Team.objects.all(),
        required=False,
        allow_null=True,
        help_text="Team slug; omit (or null) for the report of all teams.",
    )

    def validate_period(self, text: str) -> periods.Period:
        try:
            period = periods.parse(text)
        except ValueError as error:
            raise serializers.ValidationError(str(error)) from None
        if period.start > timezone.now():
            raise serializers.ValidationError(_("This period has not begun: there is no report to publish."))
        return period


class PublishedReportSerializer(ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True, help_text="Null: all teams.")
    published_by = serializers.SlugRelatedField(
        slug_field="username", read_only=True, help_text="Null when a delivery published it."
    )
    revised = serializers.ListField(
        child=serializers.DictField(),
        read_only=True,
        help_text="The changes found when it was last opened (as of revised_checked_at); open it to check again.",
    )

    class Meta:
        model = PublishedReport
        fields = [
            "id",
            "period",
            "period_kind",
            "team",
            "revision",
            "reason",
            "published_at",
            "published_by",
            "revised",
            "revised_checked_at",
        ]
        read_only_fields = fields


def publication_json(published: PublishedReport, changes: list[publishing.Change]) -> dict:
    """What the publication is and what has been revised since: what the API adds to the frozen report."""
    others = publishing.scope_revisions(published)
    return {
        "id": published.pk,
        "revision": published.revision,
        "reason": published.reason,
        "published_at": published.published_at.isoformat(),
        "published_by": published.published_by.username if published.published_by else None,
        "revised": [change.as_json() for change in changes],
        "revised_checked_at": published.revised_checked_at.isoformat() if published.revised_checked_at else None,
        "revisions": [
            {"id": other.pk, "revision": other.revision, "published_at": other.published_at.isoformat()}
            for other in others
        ],
    }


def published_json(published: PublishedReport, changes: list[publishing.Change]) -> dict:
    """The frozen report as report_json gave it when published, plus publication_json."""
    return {**published.snapshot, **publication_json(published, changes)}


def published_response(published: PublishedReport, changes: list[publishing.Change]) -> HttpResponse:
    """published_json as a response, the snapshot's JSON text as the database gives it rather than parsed
    and written again: a busy month's report is a megabyte of JSON, and opening it must stay fast."""
    snapshot = (
        PublishedReport.objects.filter(pk=published.pk)
        .values_list(Cast("snapshot", output_field=TextField()), flat=True)
        .get()
        .strip()
    )
    added = json.dumps(publication_json(published, changes), cls=DjangoJSONEncoder, ensure_ascii=False)
    # The snapshot's keys, then the publication's (report_json has none of them).
    body = snapshot[:-1] + (", " if snapshot != "{}" else "") + added[1:]
    return HttpResponse(body.encode(), content_type="application/json")


_LIST_PARAMETERS = [
    OpenApiParameter("period", str, description="Only this period: 2026-11, 2026-W48, ..."),
    OpenApiParameter("team", str, description="Only this team's (slug); `all` for the all-teams reports only."),
]


class PublishedReportViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Published reports, newest first. Read: managers and administrators all, engineers their teams'.
    Publish: managers and administrators."""

    permission_classes = [TeamReportAccess]
    serializer_class = PublishedReportSerializer
    lookup_value_regex = r"\d+"
    filter_backends: list = []

    def get_queryset(self):
        queryset = PublishedReport.objects.select_related("team", "published_by").defer("snapshot", "watched")
        teams = report_teams(self.request.user)
        if teams is not None:
            queryset = queryset.filter(team__in=teams)
        return queryset.order_by("-published_at", "-id")

    def _filtered(self, queryset):
        params = self.request.query_params
        if text := params.get("period"):
            period = periods.requested_parameter(text, default=None)
            queryset = queryset.filter(period=period.label)
        slug = params.get("team")
        if slug == "all":
            queryset = queryset.filter(team__isnull=True)
        elif slug:
            team = Team.objects.filter(slug=slug).first()
            if team is None:
                raise exceptions.ValidationError({"team": [_("No team has the slug %(slug)s.") % {"slug": slug}]})
            if not may_read_report(self.request.user, team=team, system=None):
                raise exceptions.PermissionDenied(refusal(self.request.user))
            queryset = queryset.filter(team=team)
        return queryset

    @extend_schema(parameters=_LIST_PARAMETERS)
    def list(self, request, *args, **kwargs):
        """Published reports, newest first, of the teams this person reads: by period, by team."""
        page = self.paginate_queryset(self._filtered(self.get_queryset()))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(
        responses={
            200: OpenApiResponse(
                OpenApiTypes.OBJECT,
                description="The frozen report (report_json when published) plus id, revision, reason, "
                "published_at, published_by, revised (the changes since: figure, published, current, "
                "records), revised_checked_at and the revisions of its period and scope. See docs/report.md.",
            )
        }
    )
    def retrieve(self, request, pk=None):
        """A published report as it was sent, and what has been revised since (docs/report.md)."""
        # The snapshot is read only when the report is built again (revisions) and as text (the answer).
        published = (
            PublishedReport.objects.select_related("team", "published_by").defer("snapshot").filter(pk=pk).first()
        )
        if published is None:
            raise exceptions.NotFound()
        if not may_read_report(request.user, team=published.team, system=None):
            raise exceptions.PermissionDenied(refusal(request.user))
        return published_response(published, publishing.revisions(published))

    @extend_schema(
        request=PublishSerializer,
        responses={201: OpenApiResponse(OpenApiTypes.OBJECT, description="As the published report's GET.")},
    )
    def create(self, request):
        """Publish the report of a period (and team) as it is now: a new revision, frozen."""
        serializer = PublishSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        team = serializer.validated_data.get("team")
        report = build_report(period=serializer.validated_data["period"], team=team, now=timezone.now())
        published = publishing.publish(report, by=request.user)
        return Response(published_json(published, []), status=status.HTTP_201_CREATED)
