"""The filters of the incident and action item lists, shared by the API and the pages (query parameters
in, a queryset out; a bad value is an error naming the parameter)."""

import django_filters
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from config.api import TimestampFilter
from incidents import periods
from incidents.models import ActionItem, CauseCategory, DetectionSource, Incident, Level, Status
from incidents.selectors import filter_action_items, in_period


class IncidentFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=Status.choices)
    level = django_filters.MultipleChoiceFilter(choices=Level.choices)
    team = django_filters.CharFilter(field_name="team__slug", help_text=_("Team slug."))
    system = django_filters.CharFilter(method="filter_system", help_text=_("System code."))
    source = django_filters.MultipleChoiceFilter(field_name="detection_source", choices=DetectionSource.choices)
    cause = django_filters.MultipleChoiceFilter(field_name="cause_category", choices=CauseCategory.choices)
    occurred_after = TimestampFilter(
        field_name="occurred_at", lookup_expr="gte", help_text=_("occurred_at >= this (inclusive).")
    )
    occurred_before = TimestampFilter(
        field_name="occurred_at", lookup_expr="lt", help_text=_("occurred_at < this (exclusive).")
    )
    period = django_filters.CharFilter(
        method="filter_period",
        help_text=_(
            "Incidents that occurred in a period cut in the organisation's time zone: 2026-11, 2026-W36, "
            "2026-Q4, 2026, or 2026-11-01..2026-11-15."
        ),
    )
    q = django_filters.CharFilter(method="filter_text", help_text=_("Text search in title, summary, cause, handling."))

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

    owner = django_filters.CharFilter(method="_selector", help_text=_("Owner: user id, username, or me."))
    team = django_filters.CharFilter(method="_selector", help_text=_("Team slug (the incident's team)."))
    incident = django_filters.NumberFilter(method="_selector", help_text=_("Incident id."))
    status = django_filters.MultipleChoiceFilter(
        method="_selector", choices=ActionItem.Status.choices, help_text=_("Repeat for several.")
    )
    overdue = django_filters.ChoiceFilter(
        method="_selector",
        choices=[("true", _("Overdue: open or in progress, past the due date")), ("false", _("Not overdue"))],
    )
    due_after = TimestampFilter(method="_selector", help_text=_("due_at >= this (inclusive)."))
    due_before = TimestampFilter(method="_selector", help_text=_("due_at < this (exclusive)."))
    kind = django_filters.MultipleChoiceFilter(method="_selector", choices=ActionItem.Kind.choices)
    priority = django_filters.MultipleChoiceFilter(method="_selector", choices=ActionItem.Priority.choices)

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
            statuses=data.get("status") or (),
            overdue_only=overdue,
            due_after=data.get("due_after"),
            due_before=data.get("due_before"),
            kinds=data.get("kind") or (),
            priorities=data.get("priority") or (),
        )
