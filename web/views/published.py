"""Published reports as pages (docs/report.md, "Published reports"): publish the report on screen (managers
and administrators), the list of published reports, and a published report as it was sent (the same
template as the live page, drawn from its frozen snapshot), saying what has been revised since, with its
other revisions; its PDF is the frozen one too. Engineers read their teams' published reports."""

from django import forms
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.permissions import READ_REPORTS, READ_TEAM_REPORTS
from incidents import periods
from incidents.models import Team
from stability import published as publishing
from stability import report_narrative, report_pdf
from stability.models import PublishedReport
from stability.report_access import may_read_report, report_teams
from stability.report_sections import Column
from stability.reports import build_report
from web.views.base import PageView
from web.views.reports import PAGE_ROWS, _appendix_table

PAGE_SIZE = 50


def _period(text: str) -> periods.Period:
    try:
        return periods.parse(text)
    except ValueError as error:
        raise ValidationError(str(error)) from None


class PublishForm(forms.Form):
    period = forms.CharField(label=gettext_lazy("Period"), max_length=30)
    team = forms.ModelChoiceField(
        label=gettext_lazy("Team"),
        queryset=Team.objects.order_by("name"),
        to_field_name="slug",
        required=False,
        empty_label=gettext_lazy("All teams"),
    )

    def clean_period(self):
        period = _period(self.cleaned_data["period"])
        if period.start > timezone.now():
            raise ValidationError(_("This period has not begun: there is no report to publish."))
        return period


class PublishedListFilter(forms.Form):
    period = forms.CharField(
        label=gettext_lazy("Period"),
        max_length=30,
        required=False,
        help_text=gettext_lazy("A month (2026-11), a week (2026-W48), a quarter (2026-Q4) or a year."),
    )
    team = forms.ModelChoiceField(
        label=gettext_lazy("Team"),
        queryset=Team.objects.order_by("name"),
        to_field_name="slug",
        required=False,
        empty_label=gettext_lazy("Any"),
    )

    def clean_period(self):
        text = self.cleaned_data["period"]
        return _period(text) if text else None


class PublishView(PageView):
    """POST only: publish the report of a period and team as it is now, then show it."""

    read_capability = READ_REPORTS
    write_capability = READ_REPORTS

    def post(self, request):
        form = PublishForm(request.POST)
        if not form.is_valid():
            errors = "; ".join(str(error) for errors in form.errors.values() for error in errors)
            return HttpResponse(errors, status=400, content_type="text/plain; charset=utf-8")
        report = build_report(period=form.cleaned_data["period"], team=form.cleaned_data["team"], now=timezone.now())
        published = publishing.publish(report, by=request.user)
        return redirect("web:published-report", pk=published.pk)


class PublishedListView(PageView):
    read_capability = READ_TEAM_REPORTS
    write_capability = READ_REPORTS

    def get(self, request):
        form = PublishedListFilter(request.GET)
        rows = PublishedReport.objects.select_related("team", "published_by").defer("snapshot", "watched")
        teams = report_teams(request.user)
        if teams is not None:
            rows = rows.filter(team__in=teams)
        valid = form.is_valid()
        if valid:
            if form.cleaned_data["period"]:
                rows = rows.filter(period=form.cleaned_data["period"].label)
            if form.cleaned_data["team"]:
                rows = rows.filter(team=form.cleaned_data["team"])
        else:
            rows = rows.none()
        page = Paginator(rows.order_by("-published_at", "-id"), PAGE_SIZE).get_page(request.GET.get("page"))
        return render(
            request, "web/reports/published_list.html", {"form": form, "page": page}, status=200 if valid else 400
        )


def _readable(request, pk: int) -> PublishedReport:
    published = get_object_or_404(PublishedReport.objects.select_related("team", "published_by"), pk=pk)
    if not may_read_report(request.user, team=published.team, system=None):
        raise PermissionDenied
    return published


def change_rows(changes: list[publishing.Change]) -> list[dict]:
    """The changes as the page shows them: the figure, both values as cells, the records behind it."""
    rows = []
    for change in changes:
        column = Column(change.measure, change.label, change.kind)
        records = change.records
        rows.append(
            {
                "figure": change.label,
                "published": report_pdf.cell(column, change.published),
                "current": report_pdf.cell(column, change.current),
                "incidents": records.get(publishing.INCIDENTS, []),
                "alerts": records.get(publishing.ALERTS, []),
                "action_items": records.get(publishing.ACTION_ITEMS, []),
                "not_listed": sum(n for key, n in records.items() if key.endswith("_not_listed")),
            }
        )
    return rows


class PublishedReportView(PageView):
    read_capability = READ_TEAM_REPORTS
    write_capability = READ_REPORTS

    def get(self, request, pk: int):
        published = _readable(request, pk)
        changes = publishing.revisions(published)
        report = publishing.frozen_report(published)
        others = list(publishing.scope_revisions(published))
        context = {
            "published": published,
            "changes": change_rows(changes),
            "revisions": others,
            "latest": others[-1] if others else published,
            "generated_at": report.generated_at,
            # The live page's long lists: their first rows, and every row of one table from the frozen report
            # on this page (?appendix=<table>&page=N), as the live page does for its own.
            "appendix_base": f"{request.path}?",
        }
        if appendix := request.GET.get("appendix"):
            table = _appendix_table(report, appendix, request.GET.get("page"))
            if table is None:
                raise Http404
            context |= {
                "report": report,
                "report_title": report_narrative.title(report.period),
                "report_scope": report_pdf.scope_text(report),
                "appendix_table": table,
            }
        else:
            context |= report_pdf.context(report, rows=PAGE_ROWS)
        return render(request, "web/reports/published_page.html", context)


class PublishedPdfView(PageView):
    read_capability = READ_TEAM_REPORTS
    write_capability = READ_REPORTS

    def get(self, request, pk: int):
        published = _readable(request, pk)
        report = publishing.frozen_report(published)
        response = HttpResponse(
            report_pdf.report_pdf_bytes(report, generated_at=report.generated_at), content_type="application/pdf"
        )
        name = report_pdf.filename(report).removesuffix(".pdf")
        response["Content-Disposition"] = f'attachment; filename="{name}-r{published.revision}.pdf"'
        return response
