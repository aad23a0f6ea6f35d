"""Whose reports a person reads. Managers and administrators read every report, the all-teams one
included; engineers read the reports of their teams (`Team.members`): a report scoped to one of
their teams, or to a system of one of their teams. The all-teams report is not theirs.

The rule is accounts.permissions.may_read_report_scope (the incidents API applies it too, and
incidents may not import stability); this module answers it with teams and systems, for the
pages, the report API, the metrics API and the published reports."""

from django.db.models import QuerySet

from accounts.permissions import may_read_report_scope, report_scope_refusal, report_team_ids
from incidents.models import System, Team


def report_teams(user) -> QuerySet[Team] | None:
    """The teams whose reports this person reads, by name: None for every team (managers and
    administrators); an empty queryset for nobody (an engineer in no team, anonymous)."""
    ids = report_team_ids(user)
    if ids is None:
        return None
    return Team.objects.filter(pk__in=ids).order_by("name")


def may_read_report(user, *, team: Team | None, system: System | None) -> bool:
    """May this person read the report of this scope (team, system, or neither: all teams)?"""
    return may_read_report_scope(
        user,
        team_id=None if team is None else team.pk,
        system_team_id=None if system is None else system.team_id,
    )


def default_report_team(user) -> Team | None:
    """The team of the report an engineer opens without asking for one: their first team by name.
    None for managers and administrators (their default is every team) and for nobody's."""
    teams = report_teams(user)
    return None if teams is None else teams.first()


def refusal(user) -> str:
    """Why a scope was refused, naming the teams this person may ask for (their slugs)."""
    return report_scope_refusal(user)
