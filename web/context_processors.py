from django.conf import settings
from django.utils import timezone

from accounts.permissions import CONFIGURE, READ_RECORD, READ_REPORTS, WRITE_RECORD, user_can


def navigation(request) -> dict:
    """What the layout needs on every page: the reader's capabilities and time zone."""
    user = getattr(request, "user", None)
    return {
        "can_read": user_can(user, READ_RECORD),
        "can_write": user_can(user, WRITE_RECORD),
        "can_report": user_can(user, READ_REPORTS),
        "can_configure": user_can(user, CONFIGURE),
        "reader_zone": timezone.get_current_timezone_name(),
        "window_seconds": settings.FOLLOW_UP_WINDOW_SECONDS,
        "currency": settings.CURRENCY,
    }
