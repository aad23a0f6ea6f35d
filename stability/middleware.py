"""The webhooks are the busiest URLs by far, and machine-to-machine: a POST to one is answered here,
first in MIDDLEWARE, past URL resolution, the rest of the middleware (sessions, messages, CSRF, browser
security headers, none of which a token-authenticated JSON sender uses) and DRF's view machinery.
Measured by bench/ingest.py: see MEASURED below. The answer's language still follows Accept-Language.

Each webhook answers with and without its trailing slash: Alertmanager and Grafana POST to the URL
as typed, and a redirect to the slashed one (CommonMiddleware's APPEND_SLASH, a 500 with DEBUG on)
is followed as a GET by Go's HTTP client: 405, the alert dropped and stored nowhere."""

from django.urls import reverse
from django.utils import translation

from stability.models import Integration


class WebhookShortcut:
    """First in MIDDLEWARE."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.kinds: dict[str, str] | None = None  # path -> integration kind

    def _webhook_kinds(self) -> dict[str, str]:
        if self.kinds is None:  # built on first use: the URLconf is not loaded when middleware is
            from stability.api.webhooks import webhook_answer

            self.answer = webhook_answer
            kinds = {reverse(f"webhook-{kind}"): kind for kind in Integration.Kind.values}
            self.kinds = kinds | {path.rstrip("/"): kind for path, kind in kinds.items()}
        return self.kinds

    def __call__(self, request):
        if request.method == "POST" and (kind := self._webhook_kinds().get(request.path_info)):
            with translation.override(translation.get_language_from_request(request)):
                return self.answer(request, kind=kind)
        return self.get_response(request)
