"""Pages show times in the reader's time zone: the browser's, which web/static/web/app.js puts in
a cookie, else settings.TIME_ZONE. Periods are still cut in TIME_ZONE (incidents.periods).
Plain-HTTP requests are redirected to HTTPS when SECURE_SSL_REDIRECT is on (HttpsRedirect)."""

import re
import zoneinfo

from django.conf import settings
from django.http import HttpResponsePermanentRedirect
from django.http.response import HttpResponseRedirectBase
from django.utils import timezone

ZONE_COOKIE = "tz"


def zone_from_cookie(value: str | None) -> zoneinfo.ZoneInfo | None:
    if not value or len(value) > 64:
        return None
    try:
        return zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None


class ReaderTimezoneMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        # The API answers in one fixed zone whatever cookie a browser sends along.
        zone = None if request.path.startswith("/api/") else zone_from_cookie(request.COOKIES.get(ZONE_COOKIE))
        if zone is not None:
            timezone.activate(zone)
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()


class HttpResponsePermanentRedirectKeepingMethod(HttpResponseRedirectBase):
    status_code = 308


class HttpsRedirect:
    """SECURE_SSL_REDIRECT for every request, first in MIDDLEWARE so the webhook shortcut (which answers
    webhook POSTs before Django's SecurityMiddleware) is covered too; SECURE_REDIRECT_EXEMPT applies.
    Django's redirect is a 301, which clients follow with a GET and an empty body: an alert notification
    would turn into a GET and never be stored. Here anything but GET and HEAD gets a 308, which clients
    follow with the same method and body, over HTTPS."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if settings.SECURE_SSL_REDIRECT and not request.is_secure():
            path = request.path.lstrip("/")
            if not any(re.search(pattern, path) for pattern in settings.SECURE_REDIRECT_EXEMPT):
                url = f"https://{settings.SECURE_SSL_HOST or request.get_host()}{request.get_full_path()}"
                if request.method in ("GET", "HEAD"):
                    return HttpResponsePermanentRedirect(url)
                return HttpResponsePermanentRedirectKeepingMethod(url)
        return self.get_response(request)
