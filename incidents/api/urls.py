from django.urls import path
from rest_framework.routers import DefaultRouter

from incidents.api import views

router = DefaultRouter()
router.register("incidents", views.IncidentViewSet, basename="incident")
router.register("teams", views.TeamViewSet, basename="team")
router.register("systems", views.SystemViewSet, basename="system")
router.register("severity-policies", views.SeverityPolicyViewSet, basename="severity-policy")
router.register("action-items", views.ActionItemViewSet, basename="action-item")
router.register("drills", views.DrillViewSet, basename="drill")

urlpatterns = [
    path("severity/preview/", views.SeverityPreviewView.as_view(), name="severity-preview"),
    path("metrics/incidents/", views.IncidentMetricsView.as_view(), name="incident-metrics"),
    path("metrics/closed-loop/", views.ClosedLoopMetricsView.as_view(), name="closed-loop-metrics"),
    *router.urls,
]
