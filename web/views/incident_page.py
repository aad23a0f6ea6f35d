"""The incident page: facts, level and explanation, status changes, timeline, linked alerts and the
closed-loop items with the forms that act on them. The incident views and the item views both answer
with it (a form with errors is shown in place), so it lives apart from either."""

from django.shortcuts import render
from django.utils import timezone

from accounts.models import Role
from incidents import selectors, services, severity, timeline
from incidents.models import Incident
from incidents.services import ItemTransition
from web import forms
from web import selectors as web_selectors
from web.views import reviews


def _items_section(request, incident: Incident, forms_given: dict) -> dict:
    """What the incident page shows of its items, with the forms to act on them."""
    return items_section(request, selectors.action_item_list(incident=incident), forms_given)


def items_section(request, items, forms_given: dict) -> dict:
    """Items as the incident page, a drill's page and an item's own page show them, with the forms to
    act on them."""
    now = timezone.now()
    # Waivers are approved by managers and administrators (incidents.services); others are not offered one.
    approves = getattr(request.user, "effective_role", None) in (Role.MANAGER, Role.ADMIN)
    items = list(selectors.open_first(items))
    for item in items:
        item.days_overdue = selectors.days_overdue(item, now=now)
        item.steps = [
            (action, label)
            for action, label in ItemTransition.allowed(item.status)
            if approves or action != ItemTransition.WAIVE
        ]
    return {
        "items": items,
        "item_form": forms_given.get("item_form") or forms.ActionItemForm(),
        "item_errors": forms_given.get("item_errors") or {},
        "manager_steps": ItemTransition.MANAGER_STEPS,
        "can_approve": approves,
        "people": forms.people() if items else (),
        "now": now,
    }


def _described(entries) -> list:
    """The timeline's rows, each with its description in the reader's language (incidents.timeline)."""
    rows = list(entries)
    for entry in rows:
        entry.description = timeline.describe(entry)
    return rows


def detail_context(request, incident: Incident, **forms_given) -> dict:
    allowed = services.Transition.allowed(incident.status)
    return {
        "incident": incident,
        "explanation": severity.explain(incident.classified_level, incident.severity_matches),
        "timeline": _described(selectors.incident_timeline(incident=incident)),
        "alerts": web_selectors.incident_alerts(incident=incident),
        "transitions": allowed,
        # The commander's updates (services.timeline_note_add says who may post one).
        "can_post_update": request.user.pk == incident.commander_id
        or getattr(request.user, "effective_role", None) in (Role.MANAGER, Role.ADMIN),
        "note_form": forms_given.get("note_form") or forms.TimelineNoteForm(),
        "transition_form": forms_given.get("transition_form") or forms.TransitionForm(),
        "override_form": forms_given.get("override_form")
        or forms.OverrideForm(initial={"level": incident.level_override or incident.level}),
        **_items_section(request, incident, forms_given),
        **reviews.review_section(incident),
    }


def render_incident(request, incident: Incident, *, status: int = 200, **forms_given):
    return render(request, "web/incidents/detail.html", detail_context(request, incident, **forms_given), status=status)
