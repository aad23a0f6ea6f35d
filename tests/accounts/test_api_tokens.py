"""Personal API tokens: `manage.py create_api_token USERNAME` and `Authorization: Bearer <token>`."""

import hashlib
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from accounts.models import ApiToken, Role
from accounts.services import api_token_revoke
from tests.factories import SystemFactory, UserFactory

pytestmark = pytest.mark.django_db

TEAMS = "/api/v1/teams/"
METRICS = "/api/v1/metrics/incidents/"
NOW = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def create_token(username: str, *args: str) -> tuple[str, str]:
    """Run the command; returns (stdout, stderr)."""
    out, err = StringIO(), StringIO()
    call_command("create_api_token", username, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def alice():
    return UserFactory(username="alice", role=Role.MANAGER)


def test_command_prints_the_token_alone_on_the_last_line(alice):
    out, err = create_token("alice", "--name", "weekly-report")

    lines = out.splitlines()
    token = lines[-1]
    assert token == token.strip() and " " not in token
    assert token.startswith("st_u_")
    assert len(token) > 40  # 256 random bits, URL-safe base64
    assert token not in err  # shown once, on stdout only
    assert "alice" in err
    row = ApiToken.objects.get()
    assert (row.user, row.name, row.revoked_at, row.last_used_at) == (alice, "weekly-report", None, None)
    assert token.removeprefix("st_u_").startswith(row.prefix)


def test_each_run_makes_a_new_token(alice):
    first = create_token("alice")[0].splitlines()[-1]
    second = create_token("alice")[0].splitlines()[-1]
    assert first != second
    assert ApiToken.objects.filter(user=alice).count() == 2


def test_the_token_authenticates_as_its_user(alice):
    token = create_token("alice")[0].splitlines()[-1]
    client = bearer(token)

    # alice is a manager: she reads the reports but may not write the record.
    response = client.get(METRICS, {"period": "2026-11"})
    assert response.status_code == 200
    assert response.data["period"]["label"] == "2026-11"
    denied = client.post(TEAMS, {"name": "Core", "slug": "core"}, format="json")
    assert denied.status_code == 403


def test_the_token_identifies_the_author():
    UserFactory(username="bob", role=Role.ENGINEER)
    token = create_token("bob")[0].splitlines()[-1]
    SystemFactory(code="cashier")
    response = bearer(token).post(
        "/api/v1/incidents/",
        {
            "title": "Timeouts",
            "systems": ["cashier"],
            "occurred_at": "2026-11-03T10:00:00Z",
            "detected_at": "2026-11-03T10:01:00Z",
            "detection_source": "monitoring",
        },
        format="json",
    )
    assert response.status_code == 201, response.data
    timeline = bearer(token).get(f"/api/v1/incidents/{response.data['id']}/timeline/").data
    assert [(e["kind"], e["author"]) for e in timeline] == [("created", "bob")]


def test_only_a_digest_is_stored(alice):
    token = create_token("alice")[0].splitlines()[-1]
    row = ApiToken.objects.values().get()
    assert row["digest"] == hashlib.sha256(token.encode()).hexdigest()
    for column, value in row.items():
        assert token not in str(value), column
    # the random part is not stored either, beyond the 8-character prefix shown to identify it
    body = token.removeprefix("st_u_")
    assert all(body not in str(value) for value in row.values())
    assert len(row["prefix"]) == 8


def test_last_used_at_is_recorded_once_a_minute(alice):
    token = create_token("alice")[0].splitlines()[-1]
    with time_machine.travel(NOW, tick=False) as traveller:
        assert bearer(token).get(TEAMS).status_code == 200
        assert ApiToken.objects.get().last_used_at == NOW
        traveller.shift(timedelta(seconds=30))
        bearer(token).get(TEAMS)
        assert ApiToken.objects.get().last_used_at == NOW
        traveller.shift(timedelta(seconds=31))
        bearer(token).get(TEAMS)
        assert ApiToken.objects.get().last_used_at == NOW + timedelta(seconds=61)


def test_a_revoked_token_is_401(alice):
    token = create_token("alice")[0].splitlines()[-1]
    assert bearer(token).get(TEAMS).status_code == 200
    api_token_revoke(token=ApiToken.objects.get())

    response = bearer(token).get(TEAMS)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert "revoked" in str(response.data["detail"])


def test_a_token_of_a_deactivated_user_is_401(alice):
    token = create_token("alice")[0].splitlines()[-1]
    alice.is_active = False
    alice.save()
    assert bearer(token).get(TEAMS).status_code == 401


def test_unknown_user_is_a_command_error(db):
    with pytest.raises(CommandError, match="No user named 'nobody'"):
        create_token("nobody")
    assert ApiToken.objects.count() == 0


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",
        "Bearer ",
        "Bearer two parts",
        "Bearer st_u_not-a-real-token",
        "bearer st_u_not-a-real-token",
        "Basic YWxpY2U6cHc=",
        "Token abc",
        "garbage",
    ],
)
def test_malformed_or_wrong_authorization_is_401(alice, header):
    create_token("alice")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get(TEAMS)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert ApiToken.objects.get().last_used_at is None
