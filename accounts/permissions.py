"""What each role may do. Engineers log and edit incidents and read their teams' reports; managers
read everything and every report; administrators do all of that and manage teams, systems and the
severity policy."""

from django.utils.translation import gettext as _
from rest_framework import exceptions, permissions

from accounts.models import Role

READ_RECORD = "read_record"
WRITE_RECORD = "write_record"
READ_REPORTS = "read_reports"  # every team's reports and the all-teams one
READ_TEAM_REPORTS = "read_team_reports"  # the reports of one's own teams only (report_team_ids)
CONFIGURE = "configure"

CAPABILITIES: dict[str, frozenset[str]] = {
    Role.ENGINEER: frozenset({READ_RECORD, WRITE_RECORD, READ_TEAM_REPORTS}),
    Role.MANAGER: frozenset({READ_RECORD, READ_REPORTS, READ_TEAM_REPORTS}),
    Role.ADMIN: frozenset({READ_RECORD, WRITE_RECORD, READ_REPORTS, READ_TEAM_REPORTS, CONFIGURE}),
}


def user_can(user, capability: str) -> bool:
    if not (user and user.is_authenticated and user.is_active):
        return False
    return capability in CAPABILITIES.get(user.effective_role, frozenset())


def report_team_ids(user) -> frozenset[int] | None:
    """The teams whose reports (and report figures) this person reads: None for every team
    (managers and administrators), else the ids of the teams they are a member of (`Team.members`,
    whose reverse name on the user is `teams`); nobody's for anonymous or inactive people.
    stability.report_access answers the same rule with Team objects."""
    if user_can(user, READ_REPORTS):
        return None
    if not user_can(user, READ_TEAM_REPORTS):
        return frozenset()
    return frozenset(user.teams.values_list("pk", flat=True))


def may_read_report_scope(user, *, team_id: int | None, system_team_id: int | None) -> bool:
    """May this person read the report (or the figures) of this scope? `team_id` is the team asked
    for, `system_team_id` the team of the system asked for (None: not asked). Managers and
    administrators: every scope. Engineers: only a scope inside their teams; the all-teams scope
    (neither asked) is not theirs."""
    teams = report_team_ids(user)
    if teams is None:
        return True
    asked = [team for team in (team_id, system_team_id) if team is not None]
    return bool(asked) and all(team in teams for team in asked)


def report_scope_refusal(user) -> str:
    """Why a scope was refused, naming the teams (slugs) this person may ask for."""
    slugs = ", ".join(user.teams.order_by("name").values_list("slug", flat=True)) if user.is_authenticated else ""
    if not slugs:
        return _("You are not a member of any team, so there is no report you may read.")
    return _("You may read the reports of your teams only; ask for one of them with team=: %(teams)s.") % {
        "teams": slugs
    }


def require_report_scope(user, *, team_id: int | None, system_team_id: int | None) -> None:
    """The API's check of a report's or a figure's scope: a 403 naming the teams one may ask for."""
    if not may_read_report_scope(user, team_id=team_id, system_team_id=system_team_id):
        raise exceptions.PermissionDenied(report_scope_refusal(user))


class _Capability(permissions.BasePermission):
    read_capability: str = READ_RECORD
    write_capability: str = WRITE_RECORD

    def has_permission(self, request, view):
        if not (request.user and request.user.is_authenticated):
            return False
        needed = self.read_capability if request.method in permissions.SAFE_METHODS else self.write_capability
        return user_can(request.user, needed)


class RecordAccess(_Capability):
    """Read: every role. Write: engineers and administrators."""


class ConfigurationAccess(_Capability):
    """Read: every role. Write: administrators."""

    write_capability = CONFIGURE


class ReportAccess(_Capability):
    """Managers and administrators, read only."""

    read_capability = READ_REPORTS
    write_capability = READ_REPORTS


class TeamReportAccess(_Capability):
    """Read: managers and administrators, and engineers, who read only their teams' reports: the
    view checks the scope asked for (may_read_report_scope) and answers 403 outside it.
    Write: managers and administrators."""

    read_capability = READ_TEAM_REPORTS
    write_capability = READ_REPORTS


class PreviewAccess(_Capability):
    """Every role that reads the record, also for POSTs that only compute and save nothing."""

    write_capability = READ_RECORD
