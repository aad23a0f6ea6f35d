"""The monthly stability report for managers: the page (headline, charts, every section as tables, links
to each export) and the same report as a PDF. Both render stability.reports.build_report through
stability.report_pdf, so the page, the PDF and the exports show the same figures."""

from django import forms
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.permissions import READ_REPORTS
from incidents import periods
from incidents.models import System, Team
from stability import report_pdf
from stability.reports import Report, build_report
from web.views.base import PageView


def previous_month(now) -> str:
    """The last complete month, cut in the organisation's zone: what "last month's report" means."""
    return periods.containing("month", now).previous().label


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
    system = forms.ModelChoiceField(
        label=gettext_lazy("System"),
        queryset=System.objects.order_by("code"),
        to_field_name="code",
        required=False,
        empty_label=gettext_lazy("All systems"),
    )

    def clean_period(self):
        try:
            return periods.parse(self.cleaned_data["period"])
        except (ValidationError, ValueError) as error:
            raise ValidationError(_("Not a period: give a month like 2026-11.")) from error


class ReportPage(PageView):
    read_capability = READ_REPORTS
    write_capability = READ_REPORTS

    def scope(self, request) -> ReportScopeForm:
        data = {"period": previous_month(timezone.now()), **request.GET.dict()}
        return ReportScopeForm(data)

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


class ReportView(ReportPage):
    def get(self, request):
        form = self.scope(request)
        context = {"form": form, "generated_at": timezone.now(), "report": None}
        if not form.is_valid():
            return render(request, "web/reports/page.html", context, status=400)
        report = self.report(form)
        query = _query(form)
        context |= report_pdf.context(report) | {"query": query, "exports": exports(query)}
        return render(request, "web/reports/page.html", context)


class ReportPdfView(ReportPage):
    def get(self, request):
        form = self.scope(request)
        if not form.is_valid():
            errors = "; ".join(str(e) for errors in form.errors.values() for e in errors)
            return HttpResponse(errors, status=400, content_type="text/plain; charset=utf-8")
        report = self.report(form)
        response = HttpResponse(report_pdf.report_pdf_bytes(report), content_type="application/pdf")
        response["Content-Disposition"] = f'attachment; filename="{report_pdf.filename(report)}"'
        return response
