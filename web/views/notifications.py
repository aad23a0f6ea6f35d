"""The notification log for managers and administrators: recent notifications with their delivery
status and each failure's reason, filtered by status, event and team; administrators send a failed one
again through stability.delivery.notification_retry, as the API's retry action does."""

import django_filters
from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Q
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.permissions import CONFIGURE, READ_REPORTS, user_can
from incidents.models import Team
from stability import delivery
from stability.filters import NotificationFilter
from stability.models import Event, Notification
from web.views.base import PageView

PAGE_SIZE = 50


class NotificationLogFilter(NotificationFilter):
    """The API's filters (status and event as tick boxes here), and the team a notification is about."""

    status = django_filters.MultipleChoiceFilter(
        label=gettext_lazy("Status"), choices=Notification.Status.choices, widget=forms.CheckboxSelectMultiple
    )
    event = django_filters.MultipleChoiceFilter(
        label=gettext_lazy("Event"), choices=Event.choices, widget=forms.CheckboxSelectMultiple
    )
    team = django_filters.ModelChoiceFilter(
        label=gettext_lazy("Team"),
        queryset=Team.objects.order_by("name"),
        method="about_team",
        to_field_name="slug",
    )

    class Meta(NotificationFilter.Meta):
        pass

    def about_team(self, queryset, name, team):
        # A report's team, a team channel, the team of an item, of an alert or of an incident.
        return queryset.filter(
            Q(team=team)
            | Q(channel__team=team)
            | Q(action_item__team=team)
            | Q(alert__team=team)
            | Q(incident__team=team)
        )


def notification_log():
    """Newest first, with what a row shows in a constant number of queries."""
    return Notification.objects.select_related(
        "recipient", "channel", "team", "action_item", "alert", "incident"
    ).order_by("-created_at", "-id")


class NotificationLogView(PageView):
    read_capability = READ_REPORTS
    write_capability = CONFIGURE

    def get(self, request):
        filterset = NotificationLogFilter(request.GET, queryset=notification_log())
        valid = filterset.is_valid()
        rows = filterset.qs if valid else Notification.objects.none()
        page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
        context = {"filter": filterset, "page": page, "can_retry": user_can(request.user, CONFIGURE)}
        return render(request, "web/configuration/notifications.html", context, status=200 if valid else 400)


class NotificationRetryView(PageView):
    """POST only: a failed notification back to pending, to be sent at once."""

    read_capability = CONFIGURE
    write_capability = CONFIGURE

    def post(self, request, pk: int):
        notification = get_object_or_404(Notification, pk=pk)
        try:
            delivery.notification_retry(notification_id=notification.pk)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(request, _("Notification %(id)s will be sent again now.") % {"id": notification.pk})
        back = request.POST.get("next", "")
        return redirect(back if back.startswith("/notifications/") else "web:notification-log")
