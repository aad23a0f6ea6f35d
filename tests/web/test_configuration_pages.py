"""Settings pages for administrators (web/views/configuration.py): teams, systems, integrations with
their token shown once, and new versions of the severity policy."""

import json

from accounts.tokens import digest_of
from incidents.models import SeverityPolicy, System, Team
from stability.models import Integration
from tests.web.conftest import field_errors, text_of


def test_only_administrators_see_the_settings(engineer, manager, administrator, world):
    for url in ("/settings/", "/settings/teams/", "/settings/systems/", "/settings/severity-policy/"):
        assert engineer.get(url).status_code == 403, url
        assert manager.get(url).status_code == 403, url
        assert administrator.get(url).status_code == 200, url
    assert engineer.post("/settings/teams/", {"name": "X", "slug": "x"}).status_code == 403
    assert not Team.objects.filter(slug="x").exists()
    assert administrator.get("/settings/nothing/").status_code == 404


def test_adding_and_editing_a_team(administrator, world):
    response = administrator.post(
        "/settings/teams/", {"name": "Risk (风控)", "slug": "risk", "members": [administrator.user.pk]}
    )
    assert response.status_code == 302
    risk = Team.objects.get(slug="risk")
    assert list(risk.members.all()) == [administrator.user]

    duplicate = administrator.post("/settings/teams/", {"name": "Risk again", "slug": "risk"})
    assert duplicate.status_code == 400
    assert field_errors(duplicate, "id_slug") == ["Team with this Slug already exists."]

    edited = administrator.post("/settings/teams/risk/", {"name": "Risk control", "slug": "risk"})
    assert edited.status_code == 302
    risk.refresh_from_db()
    assert risk.name == "Risk control"
    assert list(risk.members.all()) == []


def test_a_system_with_a_wrong_target_is_refused_next_to_the_field(administrator, world):
    data = {
        "code": "ledger",
        "name": "Ledger",
        "tier": "P0",
        "team": world["payments"].pk,
        "availability_target": "101",
    }
    response = administrator.post("/settings/systems/", data)

    assert response.status_code == 400
    assert field_errors(response, "id_availability_target") == ["Ensure this value is less than or equal to 100."]
    assert not System.objects.filter(code="ledger").exists()


def test_an_integrations_token_is_shown_once(administrator, world):
    response = administrator.post(
        "/settings/integrations/",
        {
            "kind": "alertmanager",
            "name": "prod-am",
            "enabled": "on",
            "default_team": world["payments"].pk,
            "team_label": "team",
            "system_labels": "service, app",
            "severity_label": "severity",
        },
    )

    assert response.status_code == 200
    integration = Integration.objects.get(name="prod-am")
    token = response.context["token"]
    assert integration.token_digest == digest_of(token)
    assert integration.system_labels == ["service", "app"]
    assert integration.created_by == administrator.user
    assert token in response.content.decode()
    # never again
    assert token not in administrator.get("/settings/integrations/").content.decode()
    assert token not in administrator.get(f"/settings/integrations/{integration.pk}/").content.decode()

    rotated = administrator.post(f"/settings/integrations/{integration.pk}/", {"rotate": "1"})
    new_token = rotated.context["token"]
    integration.refresh_from_db()
    assert new_token != token and integration.token_digest == digest_of(new_token)


def test_a_new_policy_version_from_the_page(administrator, world):
    page = administrator.get("/settings/severity-policy/")
    text = text_of(page.content.decode())
    assert "Current version: v1" in text
    assert "P0 impacted >= 60 min" in text
    assert "Recovery targets: A 30 min · B 1 h · C 4 h · D 1 d" in text

    rules = {"A": [{"kind": "tier_impact", "tier": "P0", "minutes": 45}], "B": [], "C": []}
    targets = {"A": 1800, "B": 3600, "C": 14400, "D": 86400}
    response = administrator.post(
        "/settings/severity-policy/",
        {"rules": json.dumps(rules), "recovery_targets": json.dumps(targets), "note": "A at 45 min"},
    )

    assert response.status_code == 302
    latest = SeverityPolicy.objects.order_by("-version").first()
    assert (latest.version, latest.rules, latest.note) == (2, rules, "A at 45 min")


def test_a_wrong_policy_is_explained_and_not_saved(administrator, world):
    response = administrator.post(
        "/settings/severity-policy/",
        {"rules": '{"A": [{"kind": "tier_impact", "tier": "P9", "minutes": 10}]}', "recovery_targets": "{oops"},
    )

    assert response.status_code == 400
    assert field_errors(response, "id_recovery_targets")[0].startswith("Not valid JSON:")
    assert SeverityPolicy.objects.count() == 1

    response = administrator.post(
        "/settings/severity-policy/",
        {
            "rules": '{"A": [{"kind": "tier_impact", "tier": "P9", "minutes": 10}]}',
            "recovery_targets": '{"A": 1, "B": 2, "C": 3, "D": 4}',
        },
    )
    assert response.status_code == 400
    assert field_errors(response, "id_rules") == ["A[0]: tier must be one of P0, P1, P2, P3"]
    assert SeverityPolicy.objects.count() == 1
