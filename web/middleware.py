"""Pages show times in the reader's time zone: the browser's, which web/static/web/app.js puts in
a cookie, else settings.TIME_ZONE. Periods are still cut in TIME_ZONE (incidents.periods)."""

import zoneinfo

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
