from django.urls import include, path

urlpatterns = [
    path("", include("incidents.api.urls")),
    path("", include("stability.api.urls")),
]
