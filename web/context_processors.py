from functools import cache

from django.conf import settings
from django.utils import timezone

from accounts.permissions import CONFIGURE, READ_RECORD, READ_REPORTS, WRITE_RECORD, report_team_ids, user_can


def navigation(request) -> dict:
    """What the layout needs on every page: the reader's capabilities and time zone.

    can_report: reads every team's reports and figures (managers, administrators); can_read_reports:
    reads at least one report (they, and engineers who are members of a team), asked only where a
    template shows the Reports link."""
    user = getattr(request, "user", None)

    @cache
    def reads_some_report() -> bool:
        teams = report_team_ids(user)
        return teams is None or bool(teams)

    return {
        "can_read": user_can(user, READ_RECORD),
        "can_write": user_can(user, WRITE_RECORD),
        "can_report": user_can(user, READ_REPORTS),
        "can_read_reports": reads_some_report,
        "can_configure": user_can(user, CONFIGURE),
        "reader_zone": timezone.get_current_timezone_name(),
        "window_seconds": settings.FOLLOW_UP_WINDOW_SECONDS,
        "currency": settings.CURRENCY,
    }
