"""The stability report (周报, 月报) for managers and for the engineers of a team: the page (the narrative a
manager sends upward, key figures, charts, the appendix's tables with the first rows of a long one, every
row of one table at `?appendix=<table>&page=N`, links to each export) and the same report as a PDF. Both
render stability.reports.build_report through stability.report_pdf, so the page, the PDF and the exports
show the same figures. Who reads which report: stability.report_access."""

import math

from django import forms
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.permissions import READ_RECORD
from incidents import periods
from incidents.models import System, Team
from stability import report_access, report_narrative, report_pdf
from stability.reports import Report, build_report
from web.views.base import PageView

# Lines of a narrative paragraph and rows of a table the page shows; the rest is a link away (the PDF has
# them all). Keeps the page of the busiest month small (docs/report.md).
PAGE_ROWS = 25
# Rows of one table per page of `?appendix=<table>`.
APPENDIX_ROWS = 200


def previous_month(now) -> str:
    """The last complete month, cut in the organisation's zone: what "last month's report" means."""
    return periods.containing("month", now).previous().label


def previous_week(now) -> str:
    """The last complete ISO week (Monday to Sunday), cut in the organisation's zone."""
    return periods.containing("week", now).previous().label


class SystemChoice(forms.ModelChoiceField):
    def label_from_instance(self, obj: System) -> str:
        return f"{obj.name} ({obj.code})" if obj.name and obj.name != obj.code else obj.code


class ReportScopeForm(forms.Form):
    period = forms.CharField(
        label=gettext_lazy("Period"),
        max_length=30,
        help_text=gettext_lazy("A month (2026-11), a week (2026-W48), a quarter (2026-Q4) or a year."),
    )
    team = forms.ModelChoiceField(
        label=gettext_lazy("Team"),
        queryset=Team.objects.order_by("name"),
        to_field_name="slug",
        required=False,
        empty_label=gettext_lazy("All teams"),
    )
    system = SystemChoice(
        label=gettext_lazy("System"),
        queryset=System.objects.order_by("name", "code"),
        to_field_name="code",
        required=False,
        empty_label=gettext_lazy("All systems"),
    )

    def __init__(self, *args, readable_teams=None, **kwargs):
        super().__init__(*args, **kwargs)
        if readable_teams is not None:
            # An engineer picks among their teams (asking for another's is refused: 403, not "no such team").
            self.fields["team"].widget.choices = [(team.slug, team.name) for team in readable_teams]

    def clean_period(self):
        try:
            return periods.parse(self.cleaned_data["period"])
        except (ValidationError, ValueError) as error:
            raise ValidationError(_("Not a period: give a month like 2026-11 or a week like 2026-W48.")) from error


class ReportPage(PageView):
    """Everyone signed in comes in; the scope decides (stability.report_access): managers and administrators
    read every report, engineers their teams' (without a team, their first team's)."""

    read_capability = READ_RECORD
    write_capability = READ_RECORD

    def scope(self, request) -> ReportScopeForm:
        now = timezone.now()
        data = {"period": previous_month(now), **request.GET.dict()}
        readable = report_access.report_teams(request.user)
        if readable is not None and not data.get("team") and not data.get("system"):
            team = report_access.default_report_team(request.user)
            if team is not None:
                data["team"] = team.slug
        return ReportScopeForm(data, readable_teams=readable)

    @staticmethod
    def check_access(request, form: ReportScopeForm) -> None:
        if not report_access.may_read_report(
            request.user, team=form.cleaned_data["team"], system=form.cleaned_data["system"]
        ):
            raise PermissionDenied(report_access.refusal(request.user))

    @staticmethod
    def report(form: ReportScopeForm) -> Report:
        return build_report(
            period=form.cleaned_data["period"],
            team=form.cleaned_data["team"],
            system=form.cleaned_data["system"],
            now=timezone.now(),
        )


def _query(form: ReportScopeForm) -> str:
    values = {"period": form.cleaned_data["period"].label}
    if form.cleaned_data["team"]:
        values["team"] = form.cleaned_data["team"].slug
    if form.cleaned_data["system"]:
        values["system"] = form.cleaned_data["system"].code
    return urlencode(values)


def _quick_periods(form: ReportScopeForm) -> list[dict]:
    """Last week's and last month's report of the same scope."""
    now = timezone.now()
    scope = {key: form.data.get(key) for key in ("team", "system") if form.data.get(key)}
    return [
        {"label": _("Last week"), "query": urlencode({"period": previous_week(now), **scope})},
        {"label": _("Last month"), "query": urlencode({"period": previous_month(now), **scope})},
    ]


def exports(query: str) -> list[dict]:
    """Links to every export of the same report (the JSON API's and the files built from it)."""
    try:
        base = reverse("report-stability")
    except Exception:
        return []
    return [
        {"label": _("Missed alerts"), "url": f"{reverse('web:alerts-missed')}?{query}", "download": False},
        {"label": _("JSON (API)"), "url": f"{base}?{query}", "download": False},
        {"label": _("CSV tables (zip)"), "url": f"{reverse('report-stability-csv-zip')}?{query}", "download": True},
        {
            "label": _("Markdown (中文)"),
            "url": f"{reverse('report-stability-markdown')}?{query}&lang=zh-hans",
            "download": True,
        },
        {
            "label": _("Markdown (English)"),
            "url": f"{reverse('report-stability-markdown')}?{query}&lang=en",
            "download": True,
        },
    ]


def _appendix_table(report: Report, key: str, page_text: str | None) -> dict | None:
    """One table of the appendix, one page of its rows; None when the report has no table of that name."""
    table = next((t for section in report.sections for t in section.tables() if t.key and t.key == key), None)
    if table is None:
        return None
    pages = max(math.ceil(len(table.rows) / APPENDIX_ROWS), 1)
    try:
        page = min(max(int(page_text or 1), 1), pages)
    except ValueError:
        page = 1
    drawn = report_pdf.table_context(table, rows=APPENDIX_ROWS, start=(page - 1) * APPENDIX_ROWS) or {
        "title": table.title,
        "head": [],
        "rows": [],
        "key": key,
    }
    return {**drawn, "page": page, "pages": pages}


class ReportView(ReportPage):
    def get(self, request):
        form = self.scope(request)
        context = {"form": form, "generated_at": timezone.now(), "report": None, "quick_periods": []}
        if not form.is_valid():
            return render(request, "web/reports/page.html", context, status=400)
        self.check_access(request, form)
        report = self.report(form)
        query = _query(form)
        context |= {"query": query, "exports": exports(query), "quick_periods": _quick_periods(form)}
        appendix = request.GET.get("appendix")
        if appendix:
            table = _appendix_table(report, appendix, request.GET.get("page"))
            context |= {
                "report": report,
                "report_title": report_narrative.title(report.period),
                "report_scope": report_pdf.scope_text(report),
                "report_query": query,
            }
            if table is None:
                form.add_error(None, _("The report has no table %(table)s.") % {"table": appendix})
                return render(request, "web/reports/page.html", context, status=400)
            context["appendix_table"] = table
            return render(request, "web/reports/page.html", context)
        context |= report_pdf.context(report, rows=PAGE_ROWS)
        return render(request, "web/reports/page.html", context)


class ReportPdfView(ReportPage):
    def get(self, request):
        form = self.scope(request)
        if not form.is_valid():
            errors = "; ".join(str(e) for errors in form.errors.values() for e in errors)
            return HttpResponse(errors, status=400, content_type="text/plain; charset=utf-8")
        self.check_access(request, form)
        report = self.report(form)
        response = HttpResponse(report_pdf.report_pdf_bytes(report), content_type="application/pdf")
        response["Content-Disposition"] = f'attachment; filename="{report_pdf.filename(report)}"'
        return response
