"""Integrations over the API: administrators create them (the token is in the answer, once),
change their routing, rotate their token. Nothing is deleted: disable instead."""

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.permissions import ConfigurationAccess
from config.api import ModelSerializer
from incidents.models import System, Team
from stability import links, services
from stability.models import Integration


class IntegrationSerializer(ModelSerializer):
    default_team = serializers.SlugRelatedField(
        slug_field="slug", queryset=Team.objects.all(), required=False, allow_null=True
    )
    default_system = serializers.SlugRelatedField(
        slug_field="code", queryset=System.objects.all(), required=False, allow_null=True
    )
    system_labels = serializers.ListField(
        child=serializers.CharField(max_length=100), required=False, allow_empty=False
    )
    webhook_path = serializers.SerializerMethodField()

    class Meta:
        model = Integration
        fields = ["id", *services.INTEGRATION_FIELDS, "token_prefix", "webhook_path", "created_at"]
        read_only_fields = ["token_prefix", "created_at"]

    def get_webhook_path(self, integration) -> str:
        return links.webhook_path(kind=integration.kind)


class IntegrationWithTokenSerializer(IntegrationSerializer):
    token = serializers.CharField(read_only=True, help_text="Shown this once; only a digest is stored.")

    class Meta(IntegrationSerializer.Meta):
        fields = [*IntegrationSerializer.Meta.fields, "token"]


class IntegrationViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.UpdateModelMixin, viewsets.GenericViewSet
):
    permission_classes = [ConfigurationAccess]
    serializer_class = IntegrationSerializer
    queryset = Integration.objects.select_related("default_team", "default_system")
    lookup_value_regex = r"\d+"
    filterset_fields = ["kind", "enabled"]
    ordering = ["name"]

    @extend_schema(request=IntegrationSerializer, responses={201: IntegrationWithTokenSerializer})
    def create(self, request):
        serializer = IntegrationSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        integration, token = services.integration_create(by=request.user, **serializer.validated_data)
        integration.token = token
        return Response(IntegrationWithTokenSerializer(integration).data, status=status.HTTP_201_CREATED)

    def perform_update(self, serializer):
        serializer.instance = services.integration_update(
            integration_id=serializer.instance.pk, changes=serializer.validated_data
        )

    @extend_schema(request=None, responses={200: inline_serializer("RotatedToken", {"token": serializers.CharField()})})
    @action(detail=True, methods=["post"], url_path="rotate-token")
    def rotate_token(self, request, pk=None):
        """A new token; the old one stops working."""
        return Response({"token": services.integration_rotate_token(integration=self.get_object())})
