"""The stability report over the API: JSON, and its exports (CSV per table, a zip of them, Markdown).

Managers and administrators read every report; engineers the reports of their teams only
(stability.report_access): a team or a system of theirs, asked for explicitly; anything else, the
all-teams report included, is a 403 naming the teams they may ask for."""

from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import TeamReportAccess, require_report_scope
from incidents import periods
from incidents.models import System, Team
from stability.reports import (
    CSV_TABLES,
    Report,
    build_report,
    report_csv_table,
    report_csv_zip,
    report_json,
    report_markdown,
)

_PARAMETERS = [
    OpenApiParameter(
        "period",
        str,
        description="2026-11, 2026-W36, 2026-Q4, 2026 or 2026-11-01..2026-11-15; default the previous month.",
    ),
    OpenApiParameter(
        "team", str, description="Team slug: the report of one team. Engineers: one of their teams (else 403)."
    ),
    OpenApiParameter(
        "system", str, description="System code: the report of one system. Engineers: a system of their teams."
    ),
]
TABLES = tuple(CSV_TABLES)


def report_period(text: str | None) -> periods.Period:
    """The asked period, else the month before this one (the last complete month); 400 on a bad one."""
    return periods.requested_parameter(text, default=periods.last_complete_month)


def requested_report(request) -> tuple[Report, str]:
    """The report the query asks for, and a file name stem for its downloads."""
    period = report_period(request.query_params.get("period"))
    team = system = None
    if slug := request.query_params.get("team"):
        team = get_object_or_404(Team, slug=slug)
    if code := request.query_params.get("system"):
        system = get_object_or_404(System, code=code)
    require_report_scope(
        request.user,
        team_id=None if team is None else team.pk,
        system_team_id=None if system is None else system.team_id,
    )
    stem = "-".join(filter(None, ["stability-report", period.label.replace("..", "_"), slug, code]))
    return build_report(period=period, team=team, system=system), stem


def _download(content, *, content_type: str, filename: str) -> HttpResponse:
    answer = HttpResponse(content, content_type=content_type)
    answer["Content-Disposition"] = f'attachment; filename="{filename}"'
    return answer


class StabilityReportView(APIView):
    """The stability report of a period and scope: every section of docs/report.md."""

    permission_classes = [TeamReportAccess]

    @extend_schema(
        parameters=_PARAMETERS,
        responses={200: OpenApiResponse(OpenApiTypes.OBJECT, description="See docs/report.md.")},
    )
    def get(self, request):
        report, _stem = requested_report(request)
        return Response(report_json(report))


class StabilityReportCsvView(APIView):
    """One table of the report as CSV (UTF-8)."""

    permission_classes = [TeamReportAccess]

    @extend_schema(
        parameters=[*_PARAMETERS, OpenApiParameter("table", str, enum=list(TABLES), required=True)],
        responses={(200, "text/csv"): OpenApiTypes.STR},
    )
    def get(self, request):
        table = request.query_params.get("table")
        if table not in TABLES:
            raise exceptions.ValidationError(
                {"table": [_("Choose one of: %(tables)s.") % {"tables": ", ".join(TABLES)}]}
            )
        report, stem = requested_report(request)
        text = report_csv_table(report, table)
        return _download("\ufeff" + text, content_type="text/csv; charset=utf-8", filename=f"{stem}-{table}.csv")


class StabilityReportZipView(APIView):
    """Every table of the report as CSV, in one zip."""

    permission_classes = [TeamReportAccess]

    @extend_schema(parameters=_PARAMETERS, responses={(200, "application/zip"): OpenApiTypes.BINARY})
    def get(self, request):
        report, stem = requested_report(request)
        return _download(report_csv_zip(report), content_type="application/zip", filename=f"{stem}.zip")


class StabilityReportMarkdownView(APIView):
    """The report in the weekly-report style, in Chinese or English, ready to paste."""

    permission_classes = [TeamReportAccess]

    @extend_schema(
        parameters=[
            *_PARAMETERS,
            OpenApiParameter("lang", str, enum=["zh-hans", "en"], description="Default zh-hans."),
        ],
        responses={(200, "text/markdown"): OpenApiTypes.STR},
    )
    def get(self, request):
        language = request.query_params.get("lang") or "zh-hans"
        if language not in ("zh-hans", "en"):
            raise exceptions.ValidationError({"lang": [_("Choose zh-hans or en.")]})
        report, stem = requested_report(request)
        return _download(
            report_markdown(report, language=language),
            content_type="text/markdown; charset=utf-8",
            filename=f"{stem}-{language}.md",
        )
