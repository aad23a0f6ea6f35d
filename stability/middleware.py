"""The webhooks are the busiest URLs by far, and machine-to-machine: a POST to one is answered here,
first in MIDDLEWARE, past URL resolution, the rest of the middleware (sessions, messages, CSRF, browser
security headers, none of which a token-authenticated JSON sender uses) and DRF's view machinery.
Measured by bench/ingest.py (--only 1 --duration 10, back-to-back pairs on a shared 2-core machine
that other work kept busy): gunicorn CPU per 1-alert notification 0.90 and 1.13 ms with this shortcut,
1.54 and 1.37 ms without it (through URL resolution, every middleware and the APIView), about a
third less. The answer's language still follows Accept-Language.

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
