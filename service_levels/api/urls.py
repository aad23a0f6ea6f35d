from django.urls import path
from rest_framework.routers import SimpleRouter

from service_levels.api import views

router = SimpleRouter()
router.register("service-levels/sources", views.SourceViewSet, basename="service-level-source")
router.register("service-levels/indicators", views.IndicatorViewSet, basename="service-level-indicator")

urlpatterns = [
    path("metrics/service-levels/", views.ServiceLevelFiguresView.as_view(), name="service-level-figures"),
    *router.urls,
]
