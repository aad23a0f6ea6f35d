from django.urls import path
from rest_framework.routers import DefaultRouter

from stability.api import integrations, webhooks

router = DefaultRouter()
router.register("integrations", integrations.IntegrationViewSet, basename="integration")

urlpatterns = [
    path("integrations/alertmanager/", webhooks.AlertmanagerWebhook.as_view(), name="webhook-alertmanager"),
    path("integrations/grafana/", webhooks.GrafanaWebhook.as_view(), name="webhook-grafana"),
    path("integrations/generic/", webhooks.GenericWebhook.as_view(), name="webhook-generic"),
    *router.urls,
]
