"""Drills (演练): the list (by team and quarter), planning one, and a drill's page where its outcome is
recorded and each finding that needs work becomes a closed-loop item (incidents.drills)."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.permissions import READ_RECORD
from incidents import drills, periods, selectors
from incidents.models import Drill, Team
from web import forms
from web.views import incident_page
from web.views.base import PageView


def _drill(pk: int) -> Drill:
    return get_object_or_404(drills.drill_list(), pk=pk)


def render_drill(request, drill: Drill, *, status: int = 200, **forms_given):
    """The drill's page: plan, outcome (with its form), findings and their items (with the item forms)."""
    held = drill.held_at is not None
    minutes, seconds = divmod(drill.switch_over_seconds, 60) if drill.switch_over_seconds is not None else (None, None)
    hold_form = forms_given.pop("hold_form", None) or forms.DrillHoldForm(
        initial={
            "held_at": drill.held_at or timezone.now().replace(microsecond=0),
            "result": drill.result,
            "switch_minutes": minutes,
            "switch_seconds": seconds,
            "findings": drill.findings,
        }
    )
    context = {
        "drill": drill,
        "held": held,
        "hold_form": hold_form,
        "finding_form": forms_given.pop("finding_form", None) or forms.ActionItemForm(initial={"kind": "drill"}),
        **incident_page.items_section(request, selectors.action_item_list().filter(drill=drill), forms_given),
    }
    return render(request, "web/drills/detail.html", context, status=status)


class DrillListView(PageView):
    """Drills of a team (default: all teams) planned or held in a quarter (default: all), newest first."""

    def get(self, request):
        teams = Team.objects.all()
        team = teams.filter(slug=request.GET.get("team") or "").first()
        quarter_text = (request.GET.get("quarter") or "").strip()
        quarter = None
        if quarter_text:
            try:
                quarter = periods.parse(quarter_text)
            except ValueError:
                quarter = None
            if quarter is not None and quarter.kind != "quarter":
                quarter = None
        listed = drills.drill_list(
            team=team, start=quarter.start if quarter else None, end=quarter.end if quarter else None
        )
        context = {
            "drills": listed,
            "teams": teams,
            "team": team,
            "quarter_text": quarter_text,
            "quarter_refused": bool(quarter_text) and quarter is None,
            "this_quarter": periods.containing("quarter", timezone.now()).label,
        }
        return render(request, "web/drills/list.html", context)


class DrillNewView(PageView):
    def get(self, request):
        team = request.user.teams.first()
        form = forms.DrillForm(initial={"team": team, "planned_at": timezone.now().replace(microsecond=0)})
        return render(request, "web/drills/new.html", {"form": form})

    def post(self, request):
        form = forms.DrillForm(request.POST)
        if form.is_valid():
            try:
                drill = drills.drill_create(by=request.user, **form.service_values())
            except ValidationError as exc:
                forms.apply_service_errors(form, exc)
            else:
                messages.success(request, _("Drill #%(id)s saved.") % {"id": drill.pk})
                return redirect("web:drill-detail", drill.pk)
        return render(request, "web/drills/new.html", {"form": form}, status=400)


class DrillDetailView(PageView):
    write_capability = READ_RECORD

    def get(self, request, pk: int):
        return render_drill(request, _drill(pk))


class DrillHoldView(PageView):
    """Record (or correct) the drill's outcome."""

    def post(self, request, pk: int):
        drill = _drill(pk)
        form = forms.DrillHoldForm(request.POST)
        if form.is_valid():
            try:
                drills.drill_hold(drill_id=drill.pk, **form.service_values())
            except ValidationError as exc:
                forms.apply_service_errors(form, exc)
            else:
                messages.success(request, _("The drill's outcome is recorded."))
                return redirect("web:drill-detail", drill.pk)
        return render_drill(request, drill, status=400, hold_form=form)


class DrillFindingView(PageView):
    """A finding of the drill becomes a closed-loop item of the drill's team."""

    def post(self, request, pk: int):
        drill = _drill(pk)
        form = forms.ActionItemForm(request.POST)
        if form.is_valid():
            try:
                item = drills.drill_finding_to_item(drill_id=drill.pk, by=request.user, **form.service_values())
            except ValidationError as exc:
                forms.apply_service_errors(form, exc)
            else:
                messages.success(request, _("Action item #%(id)s added.") % {"id": item.pk})
                return redirect(f"{reverse('web:drill-detail', args=[drill.pk])}#item-{item.pk}")
        return render_drill(request, drill, status=400, finding_form=form)
