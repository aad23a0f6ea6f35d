"""The webhooks are the busiest URLs by far, and machine-to-machine: a POST to one goes straight to
its view, past URL resolution and the rest of the middleware (sessions, messages, CSRF, browser
security headers, none of which a token-authenticated JSON sender uses). Measured: about a fifth
of a 1-alert notification's CPU (bench/ingest.py). The answer's language still follows
Accept-Language.

Each webhook answers with and without its trailing slash: Alertmanager and Grafana POST to the URL
as typed, and a redirect to the slashed one (CommonMiddleware's APPEND_SLASH, a 500 with DEBUG on)
is followed as a GET by Go's HTTP client: 405, the alert dropped and stored nowhere."""

from django.urls import reverse
from django.utils import translation


class WebhookShortcut:
    """First in MIDDLEWARE."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.views = None

    def _webhook_views(self):
        if self.views is None:
            from stability.api import webhooks

            views = {
                reverse("webhook-alertmanager"): webhooks.AlertmanagerWebhook.as_view(),
                reverse("webhook-grafana"): webhooks.GrafanaWebhook.as_view(),
                reverse("webhook-generic"): webhooks.GenericWebhook.as_view(),
            }
            self.views = views | {path.rstrip("/"): view for path, view in views.items()}
        return self.views

    def __call__(self, request):
        if request.method == "POST":
            view = self._webhook_views().get(request.path_info)
            if view is not None:
                with translation.override(translation.get_language_from_request(request)):
                    return view(request)
        return self.get_response(request)
