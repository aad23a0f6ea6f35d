from django.urls import include, path

# Stability first: its webhooks are the busiest URLs, so they are resolved with the fewest tries.
urlpatterns = [
    path("", include("stability.api.urls")),
    path("", include("incidents.api.urls")),
    path("", include("service_levels.api.urls")),
]
