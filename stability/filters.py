"""Filters of the notification log, shared by the API and the page (query parameters in, a queryset out)."""

import django_filters
from django.utils.translation import gettext_lazy as _

from stability.models import Event, Notification


class NotificationFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=Notification.Status.choices)
    event = django_filters.MultipleChoiceFilter(choices=Event.choices)
    recipient = django_filters.CharFilter(field_name="recipient__username", help_text=_("Username."))
    channel = django_filters.NumberFilter(field_name="channel_id", help_text=_("Channel id."))
    action_item = django_filters.NumberFilter(field_name="action_item_id", help_text=_("Action item id."))
    alert = django_filters.NumberFilter(field_name="alert_id", help_text=_("Alert id."))

    class Meta:
        model = Notification
        fields = []
