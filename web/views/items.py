"""Closed-loop items (闭环项): on the incident page (add, assign, start, complete, verify, waive,
reopen, through incidents.services), on a drill's page, on their own page (items of a review meeting, an
audit or governance work, added from the team's list), and the lists of my items and my teams' items
with overdue items highlighted (incidents.selectors.action_item_list)."""

from datetime import timedelta

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.permissions import READ_RECORD, WRITE_RECORD, user_can
from incidents import selectors, services
from incidents.models import ActionItem, Incident, Team
from incidents.services import ItemTransition
from web import forms
from web.views import drills as drill_pages
from web.views import incident_page
from web.views.base import PageView

PAGE_SIZE = 50
# The home page lists the reader's open items due within this many days, and every overdue one.
HOME_HORIZON_DAYS = 7


def my_items_summary(user, *, now) -> dict:
    """The reader's own open items due within a week or overdue, for the home page."""
    items = selectors.action_item_list(
        user=user, owner=user, statuses=ActionItem.OPEN_STATUSES, due_before=now + timedelta(days=HOME_HORIZON_DAYS)
    ).order_by("due_at", "id")
    return {"my_items": items}


def _render_incident(request, incident_id: int, *, status: int, **forms_given):
    incident = get_object_or_404(selectors.incident_list(), pk=incident_id)
    return incident_page.render_incident(request, incident, status=status, **forms_given)


def item_page_url(item: ActionItem) -> str:
    """Where an item is shown: on its incident's page or its drill's page, at its anchor, or on its own
    page (an item of a review meeting, an audit or governance work)."""
    if item.incident_id is not None:
        return f"{reverse('web:incident-detail', args=[item.incident_id])}#item-{item.pk}"
    if item.drill_id is not None:
        return f"{reverse('web:drill-detail', args=[item.drill_id])}#item-{item.pk}"
    return reverse("web:item-detail", args=[item.pk])


def _back_to_item(item: ActionItem):
    return redirect(item_page_url(item))


def render_item(request, item: ActionItem, *, status: int = 200, **forms_given):
    """The item's own page (an item of no incident and no drill): its facts, steps and history."""
    context = {
        "item": item,
        **incident_page.items_section(request, selectors.action_item_list().filter(pk=item.pk), forms_given),
    }
    return render(request, "web/items/detail.html", context, status=status)


def _render_holder(request, item: ActionItem, *, status: int, **forms_given):
    """The page that shows the item, with the errors of a form in place."""
    if item.incident_id is not None:
        return _render_incident(request, item.incident_id, status=status, **forms_given)
    if item.drill_id is not None:
        return drill_pages.render_drill(request, item.drill, status=status, **forms_given)
    return render_item(request, item, status=status, **forms_given)


class ItemDetailView(PageView):
    write_capability = READ_RECORD

    def get(self, request, item_pk: int):
        item = get_object_or_404(ActionItem, pk=item_pk)
        if item.incident_id is not None or item.drill_id is not None:
            return redirect(item_page_url(item))
        return render_item(request, item)


class ItemNewView(PageView):
    """A new item of a review meeting (稳定性双月会), an audit or governance work, for a team."""

    def get(self, request):
        team = Team.objects.filter(slug=request.GET.get("team") or "").first()
        form = forms.ItemNewForm(initial={"team": team, "source": ActionItem.Source.REVIEW_MEETING})
        return render(request, "web/items/new.html", {"form": form})

    def post(self, request):
        form = forms.ItemNewForm(request.POST)
        if form.is_valid():
            try:
                item = services.action_item_create(by=request.user, **form.service_values())
            except ValidationError as exc:
                forms.apply_service_errors(form, exc)
            else:
                messages.success(request, _("Action item #%(id)s added.") % {"id": item.pk})
                return _back_to_item(item)
        return render(request, "web/items/new.html", {"form": form}, status=400)


class ItemCreateView(PageView):
    def post(self, request, pk: int):
        incident = get_object_or_404(Incident, pk=pk)
        form = forms.ActionItemForm(request.POST)
        if form.is_valid():
            try:
                item = services.action_item_create(incident_id=incident.pk, by=request.user, **form.service_values())
            except ValidationError as exc:
                forms.apply_service_errors(form, exc)
            else:
                messages.success(request, _("Action item #%(id)s added.") % {"id": item.pk})
                return _back_to_item(item)
        return _render_incident(request, incident.pk, status=400, item_form=form)


class ItemStepView(PageView):
    """One step of an item. Managers verify, waive and reopen; the other steps are the team's."""

    write_capability = READ_RECORD

    def post(self, request, item_pk: int):
        item = get_object_or_404(ActionItem, pk=item_pk)
        form = forms.ActionItemStepForm(request.POST)
        errors: list[str] = []
        status = 400
        if not form.is_valid():
            errors = [message for messages_ in form.errors.values() for message in messages_]
        else:
            action = form.cleaned_data["action"]
            if not user_can(request.user, WRITE_RECORD) and action not in ItemTransition.MANAGER_STEPS:
                raise PermissionDenied
            try:
                services.action_item_transition(
                    item_id=item.pk,
                    by=request.user,
                    action=action,
                    reason=form.cleaned_data["reason"],
                    expected_version=form.cleaned_data["expected_version"],
                )
            except services.StaleVersionError:
                errors, status = [_("Someone else changed this item meanwhile; look again and redo your step.")], 409
            except PermissionDenied as exc:
                errors, status = [str(exc)], 403
            except ValidationError as exc:
                errors = [message for messages_ in exc.message_dict.values() for message in messages_]
            else:
                messages.success(request, _("Action item #%(id)s updated.") % {"id": item.pk})
                return _back_to_item(item)
        return _render_holder(request, item, status=status, item_errors={item.pk: errors})


class ItemAssignView(PageView):
    """Give the item to someone else, or another due date."""

    def post(self, request, item_pk: int):
        item = get_object_or_404(ActionItem, pk=item_pk)
        form = forms.ActionItemAssignForm(request.POST)
        errors: list[str] = []
        status = 400
        if not form.is_valid():
            errors = [f"{form.fields[name].label}: {message}" for name, msgs in form.errors.items() for message in msgs]
        else:
            values = dict(form.cleaned_data)
            try:
                services.action_item_update(
                    item_id=item.pk, by=request.user, expected_version=values.pop("expected_version"), **values
                )
            except services.StaleVersionError:
                errors, status = [_("Someone else changed this item meanwhile; look again and redo your change.")], 409
            except ValidationError as exc:
                errors = [message for messages_ in exc.message_dict.values() for message in messages_]
            else:
                messages.success(request, _("Action item #%(id)s updated.") % {"id": item.pk})
                return _back_to_item(item)
        return _render_holder(request, item, status=status, item_errors={item.pk: errors})


class ItemListView(PageView):
    """My items (`mine`) or a team's items; open ones first, overdue ones highlighted."""

    mine = True

    def get(self, request):
        now = timezone.now()
        show_closed = request.GET.get("all") == "1"
        overdue_only = request.GET.get("overdue") == "1" or None
        statuses = () if show_closed else (*ActionItem.OPEN_STATUSES, ActionItem.Status.DONE)
        team = None
        teams = Team.objects.all()
        if self.mine:
            items = selectors.action_item_list(
                user=request.user, owner=request.user, statuses=statuses, overdue_only=overdue_only, now=now
            )
        else:
            slug = request.GET.get("team") or next(iter(request.user.teams.values_list("slug", flat=True)), None)
            team = teams.filter(slug=slug).first() if slug else None
            if team is None:
                team = teams.first()
            items = (
                selectors.action_item_list(team=team, statuses=statuses, overdue_only=overdue_only, now=now)
                if team
                else ActionItem.objects.none()
            )
        page = Paginator(selectors.open_first(items), PAGE_SIZE).get_page(request.GET.get("page"))
        for item in page.object_list:
            item.days_overdue = selectors.days_overdue(item, now=now)
            item.page_url = item_page_url(item)
        context = {
            "page": page,
            "mine": self.mine,
            "team": team,
            "teams": teams,
            "show_closed": show_closed,
            "overdue_only": bool(overdue_only),
        }
        return render(request, "web/items/list.html", context)
