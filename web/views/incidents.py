"""Incident pages: the list (filters, sorting, paging, CSV export and import), logging one live or
after the fact, the live A-D suggestion, and the incident page with its status changes, timeline,
level override, linked alerts and closed-loop items."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _

from accounts.permissions import READ_RECORD, WRITE_RECORD
from incidents import selectors, services
from incidents.filters import IncidentFilter
from incidents.models import Incident, System
from web import forms, incident_csv
from web.views import incident_page
from web.views.base import PageView

PAGE_SIZE = 50
# The API's sort keys (incidents.api.views.IncidentViewSet.ordering_fields).
ORDERING_FIELDS = ("occurred_at", "detected_at", "recovered_at", "level", "status", "created_at", "updated_at")
DEFAULT_ORDERING = "-occurred_at"


def _filtered(request) -> tuple[IncidentFilter, str, QuerySet[Incident]]:
    """The list's filters (the API's IncidentFilter), its sort key and the incidents they choose;
    none when a filter is wrong, its error then on the filter form."""
    filterset = IncidentFilter(request.GET or None, queryset=selectors.incident_list(), request=request)
    ordering = request.GET.get("ordering", DEFAULT_ORDERING)
    if ordering.lstrip("-") not in ORDERING_FIELDS:
        ordering = DEFAULT_ORDERING
    incidents = Incident.objects.none()
    if not filterset.is_bound or filterset.is_valid():
        try:
            incidents = filterset.qs.order_by(ordering, "-id")
        except ValidationError as exc:  # raised by a filter method, e.g. a period that is no period
            forms.apply_service_errors(filterset.form, exc)
    return filterset, ordering, incidents


def _invalid(filterset: IncidentFilter) -> bool:
    return filterset.is_bound and bool(filterset.form.errors)


class IncidentListView(PageView):
    def get(self, request):
        filterset, ordering, incidents = _filtered(request)
        page = Paginator(incidents, PAGE_SIZE).get_page(request.GET.get("page"))
        return render(
            request,
            "web/incidents/list.html",
            {"filter": filterset, "page": page, "ordering": ordering, "export_query": request.GET.urlencode()},
            status=400 if _invalid(filterset) else 200,
        )


class IncidentExportView(PageView):
    def get(self, request):
        filterset, ordering, incidents = _filtered(request)
        if _invalid(filterset):
            context = {"filter": filterset, "page": None, "ordering": ordering}
            return render(request, "web/incidents/list.html", context, status=400)
        rows = incident_csv.export_stream(incidents.iterator(chunk_size=500))
        response = StreamingHttpResponse(rows, content_type="text/csv; charset=utf-8")
        stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
        response["Content-Disposition"] = f'attachment; filename="incidents-{stamp}.csv"'
        return response


class IncidentImportView(PageView):
    """Upload -> preview (every row checked, nothing written) -> confirm (all rows, or none)."""

    read_capability = WRITE_RECORD
    template = "web/incidents/import.html"

    def get(self, request):
        return render(request, self.template, {"form": forms.IncidentImportForm(), "columns": incident_csv})

    def post(self, request):
        if "content" in request.POST:
            confirm = forms.IncidentImportConfirmForm(request.POST)
            if not confirm.is_valid():
                context = {"form": forms.IncidentImportForm(), "columns": incident_csv}
                return render(request, self.template, context, status=400)
            result = incident_csv.run(confirm.cleaned_data["content"], by=request.user, commit=True)
            if result.written:
                messages.success(request, _("%(count)s incidents imported.") % {"count": len(result.rows)})
                return redirect("web:incident-list")
            context = {"form": forms.IncidentImportForm(), "result": result, "columns": incident_csv}
            return render(request, self.template, context, status=400)
        form = forms.IncidentImportForm(request.POST, request.FILES)
        if not form.is_valid():
            return render(request, self.template, {"form": form, "columns": incident_csv}, status=400)
        content = form.cleaned_data["file"]
        result = incident_csv.run(content, by=request.user, commit=False)
        confirm = forms.IncidentImportConfirmForm(initial={"content": content}) if result.ok else None
        context = {"form": forms.IncidentImportForm(), "result": result, "confirm": confirm, "columns": incident_csv}
        return render(request, self.template, context, status=200 if result.ok else 400)


def prefilled(query) -> dict:
    """What a link may prefill in the log form (e.g. a possible unlogged incident of the service levels):
    `title`, `systems` (codes, separated by spaces or commas) and `occurred_at` / `detected_at` (ISO 8601;
    without an offset, in the reader's zone). What does not read as such is left out, never an error."""
    initial = {}
    if title := query.get("title", "").strip():
        initial["title"] = title[:200]
    codes = [code for code in query.get("systems", "").replace(",", " ").split() if code]
    if codes:
        initial["systems"] = list(System.objects.filter(code__in=codes).values_list("pk", flat=True))
    for name in ("occurred_at", "detected_at"):
        try:
            moment = parse_datetime(query.get(name, "").strip().replace(" ", "+"))
            if moment is not None:
                initial[name] = moment if timezone.is_aware(moment) else timezone.make_aware(moment)
        except (ValueError, OverflowError):
            continue
    return initial


class IncidentLogView(PageView):
    """Log an incident: `past` is the retroactive form with every timestamp."""

    read_capability = WRITE_RECORD  # a form is for those who may send it
    past = False

    @property
    def form_class(self):
        return forms.IncidentPastForm if self.past else forms.IncidentLogForm

    def _render(self, request, form, status=200):
        return render(request, "web/incidents/log.html", {"form": form, "past": self.past}, status=status)

    def get(self, request):
        return self._render(request, self.form_class(initial=prefilled(request.GET)))

    def post(self, request):
        form = self.form_class(request.POST)
        if form.is_valid():
            try:
                incident = services.incident_create(by=request.user, **form.service_values())
            except ValidationError as exc:
                forms.apply_service_errors(form, exc)
            else:
                messages.success(request, _("Incident #%(id)s logged.") % {"id": incident.pk})
                return redirect("web:incident-detail", incident.pk)
        return self._render(request, form, status=400)


class SeverityPreviewView(PageView):
    """The level the facts typed so far would get (nothing saved); an htmx fragment. Classifies with
    incidents.selectors.severity_preview, as the API's severity preview does."""

    write_capability = READ_RECORD

    def post(self, request):
        form = forms.IncidentPastForm(request.POST)
        form.is_valid()  # what is valid so far counts; errors are the form's business, not the suggestion's
        facts = form.cleaned_data
        preview = selectors.severity_preview(
            systems=facts.get("systems") or [],
            occurred_at=facts.get("occurred_at"),
            recovered_at=facts.get("recovered_at"),
            affected_users=facts.get("affected_users") or 0,
            affected_transactions=facts.get("affected_transactions") or 0,
            funds_loss=facts.get("funds_loss") or 0,
            data_or_security_breach=bool(facts.get("data_or_security_breach")),
            regulatory_reportable=bool(facts.get("regulatory_reportable")),
            now=timezone.now(),
        )
        context = {
            "level": preview.level,
            "explanation": preview.explanation,
            "recovery_target": preview.recovery_target,
            "policy": preview.policy,
            "has_systems": bool(facts.get("systems")),
        }
        return render(request, "web/incidents/_level_suggestion.html", context)


def _incident_or_404(pk: int) -> Incident:
    return get_object_or_404(selectors.incident_list(), pk=pk)


class IncidentDetailView(PageView):
    def get(self, request, pk: int):
        return incident_page.render_incident(request, _incident_or_404(pk))


class IncidentEditView(PageView):
    read_capability = WRITE_RECORD
    template = "web/incidents/edit.html"

    def get(self, request, pk: int):
        incident = _incident_or_404(pk)
        return render(request, self.template, {"incident": incident, "form": forms.IncidentEditForm(instance=incident)})

    def post(self, request, pk: int):
        incident = _incident_or_404(pk)
        form = forms.IncidentEditForm(request.POST, instance=_incident_or_404(pk))
        status = 400
        if form.is_valid():
            try:
                services.incident_update(
                    incident_id=incident.pk,
                    by=request.user,
                    expected_version=form.cleaned_data["expected_version"],
                    changes=form.changes(),
                )
            except services.StaleVersionError as exc:
                status = 409
                form.add_error(
                    None,
                    _(
                        "Someone else changed this incident while you were editing (now version %(version)s). "
                        "Open it again and redo your change."
                    )
                    % {"version": exc.current_version},
                )
            except ValidationError as exc:
                forms.apply_service_errors(form, exc)
            else:
                messages.success(request, _("Changes saved."))
                return redirect("web:incident-detail", incident.pk)
        return render(request, self.template, {"incident": incident, "form": form}, status=status)


class IncidentTransitionView(PageView):
    def post(self, request, pk: int):
        incident = _incident_or_404(pk)
        form = forms.TransitionForm(request.POST)
        if form.is_valid():
            try:
                services.incident_transition(
                    incident_id=incident.pk,
                    by=request.user,
                    action=form.cleaned_data["action"],
                    at=form.cleaned_data["at"],
                )
            except ValidationError as exc:
                forms.apply_service_errors(form, exc)
            else:
                if form.cleaned_data["action"] == services.Transition.RESPOND:
                    messages.success(request, _("You are on it: recorded on the timeline."))
                else:
                    messages.success(request, _("Status changed."))
                return redirect("web:incident-detail", incident.pk)
        return incident_page.render_incident(request, incident, status=400, transition_form=form)


class IncidentNoteView(PageView):
    """A timeline entry; from the incident page's htmx form, only the timeline comes back."""

    def post(self, request, pk: int):
        incident = _incident_or_404(pk)
        form = forms.TimelineNoteForm(request.POST)
        saved = False
        if form.is_valid():
            try:
                services.timeline_note_add(
                    incident_id=incident.pk,
                    by=request.user,
                    text=form.cleaned_data["text"],
                    at=form.cleaned_data["at"],
                    update=form.cleaned_data["update"],
                )
                saved = True
            except ValidationError as exc:
                forms.apply_service_errors(form, exc)
            except PermissionDenied as exc:
                form.add_error(None, str(exc))
        if request.htmx:
            context = incident_page.detail_context(request, incident, note_form=None if saved else form)
            return render(request, "web/incidents/_timeline.html", context, status=200 if saved else 400)
        if saved:
            return redirect("web:incident-detail", incident.pk)
        return incident_page.render_incident(request, incident, status=400, note_form=form)


class IncidentOverrideView(PageView):
    """Set the level by hand (a reason is required), or drop the override."""

    def post(self, request, pk: int):
        incident = _incident_or_404(pk)
        if "clear" in request.POST:
            services.severity_override_clear(incident_id=incident.pk, by=request.user)
            messages.success(request, _("Override removed: the classified level counts again."))
            return redirect("web:incident-detail", incident.pk)
        form = forms.OverrideForm(request.POST)
        if form.is_valid():
            try:
                services.severity_override_set(incident_id=incident.pk, by=request.user, **form.cleaned_data)
            except ValidationError as exc:
                forms.apply_service_errors(form, exc)
            else:
                messages.success(request, _("Level set by hand."))
                return redirect("web:incident-detail", incident.pk)
        return incident_page.render_incident(request, incident, status=400, override_form=form)
