"""The filters of the incident and action item lists, shared by the API and the pages (query parameters
in, a queryset out; a bad value is an error naming the parameter)."""

import django_filters
from django import forms
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from config.api import TimestampFilter
from incidents import periods
from incidents.models import ActionItem, CauseCategory, DetectionSource, Incident, Level, Status, Team
from incidents.selectors import filter_action_items, in_period


def _team_choices():
    # A callable: read when the list's form is drawn, never when the API only filters.
    return [("", _("All teams")), *Team.objects.order_by("name").values_list("slug", "name")]


class IncidentFilter(django_filters.FilterSet):
    """Every filter has a label of its own: the page shows them (django-filter's default for a
    method filter is "[invalid name]", and for a lookup the field's name with the lookup in English)."""

    status = django_filters.MultipleChoiceFilter(label=_("Status"), choices=Status.choices)
    level = django_filters.MultipleChoiceFilter(label=_("Level"), choices=Level.choices)
    # The API takes a slug as before (an unknown one chooses nothing); the page draws a team chooser.
    team = django_filters.CharFilter(
        field_name="team__slug",
        label=_("Team"),
        help_text=_("Incidents of this team (its slug in the API)."),
        widget=forms.Select(choices=_team_choices),
    )
    system = django_filters.CharFilter(method="filter_system", label=_("System code"), help_text=_("System code."))
    source = django_filters.MultipleChoiceFilter(
        field_name="detection_source", label=_("Detected by"), choices=DetectionSource.choices
    )
    cause = django_filters.MultipleChoiceFilter(
        field_name="cause_category", label=_("Cause category"), choices=CauseCategory.choices
    )
    occurred_after = TimestampFilter(
        field_name="occurred_at",
        lookup_expr="gte",
        label=_("Occurred from"),
        help_text=_("Incidents that occurred at or after this time (occurred_at >=)."),
    )
    occurred_before = TimestampFilter(
        field_name="occurred_at",
        lookup_expr="lt",
        label=_("Occurred before"),
        help_text=_("Incidents that occurred before this time (occurred_at <)."),
    )
    period = django_filters.CharFilter(
        method="filter_period",
        label=_("Period"),
        help_text=_(
            "Incidents that occurred in a period cut in the organisation's time zone: 2026-11, 2026-W36, "
            "2026-Q4, 2026, or 2026-11-01..2026-11-15."
        ),
    )
    q = django_filters.CharFilter(
        method="filter_text", label=_("Search"), help_text=_("Text search in title, summary, cause, handling.")
    )

    class Meta:
        model = Incident
        fields = []

    def filter_system(self, queryset, name, value):
        return queryset.filter(pk__in=Incident.objects.filter(systems__code=value).values("pk"))

    def filter_period(self, queryset, name, value):
        return in_period(queryset, periods.requested_parameter(value))

    def filter_text(self, queryset, name, value):
        text = Q()
        for field_name in ("title", "summary", "cause", "handling"):
            text |= Q(**{f"{field_name}__icontains": value})
        return queryset.filter(text)


class ActionItemFilter(django_filters.FilterSet):
    """Parses and documents the list's filters; selectors.filter_action_items applies them."""

    owner = django_filters.CharFilter(
        method="_selector", label=_("Owner"), help_text=_("Owner: user id, username, or me.")
    )
    team = django_filters.CharFilter(method="_selector", label=_("Team"), help_text=_("Team slug (the item's team)."))
    source = django_filters.MultipleChoiceFilter(
        method="_selector", label=_("Source"), choices=ActionItem.Source.choices, help_text=_("Repeat for several.")
    )
    incident = django_filters.NumberFilter(method="_selector", label=_("Incident"), help_text=_("Incident id."))
    status = django_filters.MultipleChoiceFilter(
        method="_selector", label=_("Status"), choices=ActionItem.Status.choices, help_text=_("Repeat for several.")
    )
    overdue = django_filters.ChoiceFilter(
        method="_selector",
        label=_("Overdue"),
        choices=[("true", _("Overdue: open or in progress, past the due date")), ("false", _("Not overdue"))],
    )
    due_after = TimestampFilter(method="_selector", label=_("Due from"), help_text=_("due_at >= this (inclusive)."))
    due_before = TimestampFilter(method="_selector", label=_("Due before"), help_text=_("due_at < this (exclusive)."))
    kind = django_filters.MultipleChoiceFilter(method="_selector", label=_("Kind"), choices=ActionItem.Kind.choices)
    priority = django_filters.MultipleChoiceFilter(
        method="_selector", label=_("Priority"), choices=ActionItem.Priority.choices
    )

    class Meta:
        model = ActionItem
        fields = []

    def _selector(self, queryset, name, value):
        # Each filter names a method so the API schema takes its type from the filter itself;
        # filter_queryset applies them all at once, through the selector.
        return queryset

    def filter_queryset(self, queryset):
        data = self.form.cleaned_data
        overdue = {"true": True, "false": False}.get(data.get("overdue") or "")
        return filter_action_items(
            queryset,
            user=getattr(self.request, "user", None),
            owner=data.get("owner") or None,
            team=data.get("team") or None,
            incident=int(data["incident"]) if data.get("incident") is not None else None,
            sources=data.get("source") or (),
            statuses=data.get("status") or (),
            overdue_only=overdue,
            due_after=data.get("due_after"),
            due_before=data.get("due_before"),
            kinds=data.get("kind") or (),
            priorities=data.get("priority") or (),
        )
