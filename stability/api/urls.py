from django.urls import path
from rest_framework.routers import DefaultRouter

from stability.api import alerts, integrations, notifications, published, reports, webhooks
from stability.api.metrics import FollowUpMissedView, FollowUpRateView

router = DefaultRouter()
router.register("integrations", integrations.IntegrationViewSet, basename="integration")
router.register("alerts", alerts.AlertViewSet, basename="alert")
router.register("maintenance-windows", alerts.MaintenanceWindowViewSet, basename="maintenance-window")
router.register("rejected-deliveries", alerts.RejectedDeliveryViewSet, basename="rejected-delivery")
router.register("notification-channels", notifications.NotificationChannelViewSet, basename="notification-channel")
router.register("notifications", notifications.NotificationViewSet, basename="notification")
router.register("reports/published", published.PublishedReportViewSet, basename="published-report")

urlpatterns = [
    path("integrations/alertmanager/", webhooks.AlertmanagerWebhook.as_view(), name="webhook-alertmanager"),
    path("integrations/grafana/", webhooks.GrafanaWebhook.as_view(), name="webhook-grafana"),
    path("integrations/generic/", webhooks.GenericWebhook.as_view(), name="webhook-generic"),
    path("metrics/follow-up/", FollowUpRateView.as_view(), name="follow-up-rate"),
    path("metrics/follow-up/missed/", FollowUpMissedView.as_view(), name="follow-up-missed"),
    path("reports/stability/", reports.StabilityReportView.as_view(), name="report-stability"),
    path("reports/stability/csv/", reports.StabilityReportCsvView.as_view(), name="report-stability-csv"),
    path("reports/stability/zip/", reports.StabilityReportZipView.as_view(), name="report-stability-csv-zip"),
    path(
        "reports/stability/markdown/", reports.StabilityReportMarkdownView.as_view(), name="report-stability-markdown"
    ),
    *router.urls,
]
