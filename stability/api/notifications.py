"""Notification channels and the notification log over the API (docs/reminders.md).

Channels: administrators only, reading included (robot URLs carry access tokens); the secret is
write-only: leave it out to keep it, "" to clear it. The log: managers and administrators read it,
with each failure's reason; administrators send a failed notification again (retry).
"""

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.models import User
from accounts.permissions import CONFIGURE, READ_REPORTS, _Capability
from config.api import ModelSerializer
from incidents.api.serializers import RejectUnknownFieldsMixin
from incidents.models import Team
from stability import channels, delivery
from stability.filters import NotificationFilter
from stability.models import Notification, NotificationChannel, subscribable_events


class ChannelAccess(_Capability):
    """Administrators only, reading included."""

    read_capability = CONFIGURE
    write_capability = CONFIGURE


class NotificationLogAccess(_Capability):
    """Read: managers and administrators. Retry: administrators."""

    read_capability = READ_REPORTS
    write_capability = CONFIGURE


class ChannelSerializer(RejectUnknownFieldsMixin, ModelSerializer):
    team = serializers.SlugRelatedField(
        slug_field="slug", queryset=Team.objects.all(), required=False, allow_null=True, help_text="Team slug."
    )
    user = serializers.SlugRelatedField(
        slug_field="username",
        queryset=User.objects.all(),
        required=False,
        allow_null=True,
        help_text="Username of the person (a channel has a team or a person).",
    )
    secret = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        max_length=200,
        help_text="Signing secret (DingTalk, Feishu) or webhook HMAC key. Never returned; omit to keep it.",
    )
    has_secret = serializers.SerializerMethodField()
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=subscribable_events()),
        required=False,
        help_text="Events carried; empty: all of a person's, a team's alert notices and escalations.",
    )

    class Meta:
        model = NotificationChannel
        fields = [
            "id",
            "kind",
            "name",
            "target",
            "secret",
            "has_secret",
            "team",
            "user",
            "events",
            "language",
            "messages_per_minute",
            "enabled",
            "created_at",
        ]
        read_only_fields = ["created_at"]

    def get_has_secret(self, channel) -> bool:
        return bool(channel.secret)


class ChannelTestSerializer(serializers.Serializer):
    delivered = serializers.BooleanField()
    status = serializers.ChoiceField(choices=Notification.Status.choices, help_text="As in the notification log.")
    reason = serializers.CharField(help_text="What the receiver answered, or why nothing came back, in words.")
    notification = serializers.IntegerField(help_text="The test's row in the notification log.")


class NotificationSerializer(ModelSerializer):
    recipient = serializers.SlugRelatedField(slug_field="username", read_only=True)
    incident = serializers.SerializerMethodField(
        help_text="The incident of the action item, or the one an A/B message or commander's update is about."
    )

    class Meta:
        model = Notification
        fields = [
            "id",
            "key",
            "event",
            "step",
            "status",
            "action_item",
            "incident",
            "alert",
            "recipient",
            "channel",
            "destination",
            "language",
            "due_at",
            "fire_at",
            "created_at",
            "deliver_after",
            "attempts",
            "last_error",
            "claimed_at",
            "sent_at",
        ]
        read_only_fields = fields

    def get_incident(self, notification) -> int | None:
        return notification.action_item.incident_id if notification.action_item_id else notification.incident_id


class NotificationChannelViewSet(viewsets.ModelViewSet):
    """Where notifications go: a team's or a person's email, WeCom, DingTalk, Feishu, Slack or webhook."""

    permission_classes = [ChannelAccess]
    serializer_class = ChannelSerializer
    queryset = NotificationChannel.objects.select_related("team", "user")
    filterset_fields = ["kind", "enabled"]
    ordering = ["name", "id"]
    lookup_value_regex = r"\d+"

    def perform_create(self, serializer):
        serializer.instance = channels.channel_create(**serializer.validated_data)

    def perform_update(self, serializer):
        serializer.instance = channels.channel_update(
            channel_id=serializer.instance.pk, changes=serializer.validated_data
        )

    def perform_destroy(self, instance):
        channels.channel_delete(channel_id=instance.pk)

    @extend_schema(request=None, responses={200: ChannelTestSerializer, 429: None})
    @action(detail=True, methods=["post"])
    def test(self, request, pk=None):
        """Send one test message to the channel now and answer how it went: delivered, or the receiver's
        error (HTTP status and body, the robot's error code) or a timeout, in words. Logged as event
        channel_test. 429 when the channel had a test less than CHANNEL_TEST_INTERVAL_SECONDS ago."""
        channel = self.get_object()
        try:
            outcome = delivery.channel_test_send(channel_id=channel.pk, by=request.user)
        except delivery.TestTooSoon as exc:
            return Response({"detail": " ".join(exc.messages)}, status=status.HTTP_429_TOO_MANY_REQUESTS)
        payload = {
            "delivered": outcome.delivered,
            "status": outcome.notification.status,
            "reason": outcome.reason,
            "notification": outcome.notification.pk,
        }
        return Response(ChannelTestSerializer(payload).data, status=status.HTTP_200_OK)


class NotificationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The notification log, newest first: what was recorded for whom, and how its delivery went."""

    permission_classes = [NotificationLogAccess]
    serializer_class = NotificationSerializer
    queryset = Notification.objects.select_related("recipient", "action_item")
    filterset_class = NotificationFilter
    ordering_fields = ["created_at", "deliver_after", "sent_at"]
    ordering = ["-created_at", "-id"]
    lookup_value_regex = r"\d+"

    @extend_schema(request=None, responses={200: NotificationSerializer})
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        """Send a failed notification again, with a fresh set of attempts (400 for other statuses)."""
        notification = delivery.notification_retry(notification_id=self.get_object().pk)
        notification = self.get_queryset().get(pk=notification.pk)
        return Response(self.get_serializer(notification).data, status=status.HTTP_200_OK)
