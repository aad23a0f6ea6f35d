"""Whose reports a person reads (stability.report_access, accounts.permissions): managers and
administrators every report; engineers the reports and figures of their teams only, on every endpoint
that gives report figures. An engineer of payments asks for payments (200), for accounts, a system of
accounts, or every team (403, naming the teams they may ask for)."""

from datetime import UTC, datetime

import pytest
from rest_framework.test import APIClient

from accounts.models import Role
from accounts.permissions import READ_TEAM_REPORTS, may_read_report_scope, report_team_ids, user_can
from accounts.services import api_token_create
from stability.models import AlertOccurrence
from stability.report_access import default_report_team, may_read_report, report_teams
from stability.services import integration_create
from tests.factories import SystemFactory, TeamFactory, UserFactory

# Every API endpoint that answers report figures, with the query it takes for a scope.
ENDPOINTS = [
    "/api/v1/reports/stability/?period=2026-11",
    "/api/v1/reports/stability/csv/?period=2026-11&table=incidents",
    "/api/v1/reports/stability/zip/?period=2026-11",
    "/api/v1/reports/stability/markdown/?period=2026-11",
    "/api/v1/metrics/follow-up/?period=2026-11",
    "/api/v1/metrics/follow-up/missed/?period=2026-11",
    "/api/v1/metrics/incidents/?period=2026-11",
    "/api/v1/metrics/closed-loop/?period=2026-11",
]


@pytest.fixture
def world(db) -> dict:
    # Named so that "by name" and "by id" disagree: Zeta is made first, Alpha second.
    payments = TeamFactory(slug="payments", name="Zeta payments")
    risk = TeamFactory(slug="risk", name="Alpha risk")
    accounts = TeamFactory(slug="accounts", name="Accounts")
    return {
        "payments": payments,
        "risk": risk,
        "accounts": accounts,
        "cashier": SystemFactory(code="cashier", team=payments),
        "portal": SystemFactory(code="portal", team=accounts),
    }


def _client(user) -> APIClient:
    _token, secret = api_token_create(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    client.user = user
    return client


@pytest.fixture
def payments_engineer(world) -> APIClient:
    user = UserFactory(username="pay-eng", role=Role.ENGINEER)
    world["payments"].members.add(user)
    return _client(user)


# --- the rule ----------------------------------------------------------------------------------------


def test_engineers_read_the_reports_of_their_teams_and_of_their_teams_systems_only(world):
    engineer = UserFactory(role=Role.ENGINEER)
    world["payments"].members.add(engineer)
    world["risk"].members.add(engineer)

    assert user_can(engineer, READ_TEAM_REPORTS)
    assert report_team_ids(engineer) == {world["payments"].pk, world["risk"].pk}
    assert list(report_teams(engineer)) == [world["risk"], world["payments"]]  # by name: Alpha, Zeta
    assert default_report_team(engineer) == world["risk"]
    assert may_read_report(engineer, team=world["payments"], system=None)
    assert may_read_report(engineer, team=None, system=world["cashier"])
    assert may_read_report(engineer, team=world["payments"], system=world["cashier"])
    assert not may_read_report(engineer, team=world["accounts"], system=None)
    assert not may_read_report(engineer, team=None, system=world["portal"])
    # A team of theirs with a system of another team: the scope is not all theirs.
    assert not may_read_report(engineer, team=world["payments"], system=world["portal"])
    # The all-teams report is not theirs.
    assert not may_read_report(engineer, team=None, system=None)


@pytest.mark.parametrize("role", [Role.MANAGER, Role.ADMIN])
def test_managers_and_administrators_read_every_report(world, role):
    reader = UserFactory(role=role)  # a member of no team

    assert report_teams(reader) is None
    assert default_report_team(reader) is None
    assert may_read_report(reader, team=None, system=None)
    assert may_read_report(reader, team=world["accounts"], system=world["cashier"])


def test_nobody_reads_without_a_team_or_a_sign_in(world):
    loner = UserFactory(role=Role.ENGINEER)
    inactive = UserFactory(role=Role.MANAGER, is_active=False)

    assert list(report_teams(loner)) == []
    assert default_report_team(loner) is None
    assert not may_read_report(loner, team=world["payments"], system=None)
    assert not may_read_report(inactive, team=world["payments"], system=None)
    assert not may_read_report_scope(None, team_id=world["payments"].pk, system_team_id=None)


def test_a_superuser_is_an_administrator_whatever_the_role_field(world):
    superuser = UserFactory(role=Role.ENGINEER, is_superuser=True)

    assert report_teams(superuser) is None
    assert may_read_report(superuser, team=None, system=None)


# --- every endpoint ----------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ENDPOINTS)
def test_an_engineer_reads_their_teams_figures_on_every_endpoint(payments_engineer, url):
    assert payments_engineer.get(f"{url}&team=payments").status_code == 200
    assert payments_engineer.get(f"{url}&system=cashier").status_code == 200


@pytest.mark.parametrize("url", ENDPOINTS)
@pytest.mark.parametrize("scope", ["&team=accounts", "&system=portal", "", "&team=payments&system=portal"])
def test_an_engineer_asking_for_another_teams_or_every_teams_figures_gets_403_naming_their_teams(
    payments_engineer, url, scope
):
    answer = payments_engineer.get(f"{url}{scope}")

    assert answer.status_code == 403
    assert answer.json()["detail"] == (
        "You may read the reports of your teams only; ask for one of them with team=: payments."
    )


@pytest.mark.parametrize("url", ENDPOINTS)
def test_an_engineer_in_no_team_reads_no_figures(engineer_client, world, url):
    answer = engineer_client.get(f"{url}&team=payments")

    assert answer.status_code == 403
    assert answer.json()["detail"] == "You are not a member of any team, so there is no report you may read."


@pytest.mark.parametrize("url", ENDPOINTS)
def test_managers_read_every_scope_on_every_endpoint(manager_client, world, url):
    for scope in ("", "&team=accounts", "&system=portal", "&team=payments&system=cashier"):
        assert manager_client.get(f"{url}{scope}").status_code == 200, scope


def test_the_refusal_is_in_the_readers_language(payments_engineer):
    answer = payments_engineer.get("/api/v1/reports/stability/?period=2026-11", HTTP_ACCEPT_LANGUAGE="zh-hans")

    assert answer.status_code == 403
    assert answer.json()["detail"] == "你只能阅读你所在团队的报告；请用 team= 指定其中一个：payments。"


def test_an_engineer_asking_for_an_unknown_team_learns_nothing_more_than_for_anothers(payments_engineer):
    # The report API answers 404 for an unknown team (as it does for managers); the figures' APIs, which
    # filter, refuse it: an unknown team is nobody's.
    assert payments_engineer.get("/api/v1/reports/stability/?period=2026-11&team=nope").status_code == 404
    for url in ENDPOINTS[4:]:
        assert payments_engineer.get(f"{url}&team=nope").status_code == 403, url


def test_a_bad_period_is_still_a_400_naming_it(payments_engineer):
    answer = payments_engineer.get("/api/v1/reports/stability/?period=2026-13&team=payments")

    assert answer.status_code == 400
    assert "period" in answer.json()


def test_the_engineers_figures_are_their_teams_only(world, payments_engineer, manager_client):
    hook, _secret = integration_create(kind="generic", name="g")
    received = datetime(2026, 11, 3, 2, 0, tzinfo=UTC)
    for fingerprint, system in (("a", world["cashier"]), ("b", world["portal"]), ("c", world["portal"])):
        AlertOccurrence.objects.create(
            integration=hook,
            fingerprint=fingerprint,
            starts_at=received,
            received_at=received,
            last_received_at=received,
            team=system.team,
            system=system,
        )

    mine = payments_engineer.get("/api/v1/metrics/follow-up/?period=2026-11&team=payments").json()
    everyone = manager_client.get("/api/v1/metrics/follow-up/?period=2026-11").json()

    # Never followed up, received long ago: all missed. Payments: cashier's 1; everyone: 1 + 2 of portal.
    assert (mine["overall"]["missed"], everyone["overall"]["missed"]) == (1, 3)
    missed = payments_engineer.get("/api/v1/metrics/follow-up/missed/?period=2026-11&team=payments").json()
    assert [row["system"] for row in missed["results"]] == ["cashier"]
