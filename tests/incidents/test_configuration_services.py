"""Teams and systems are written by incidents.services, whoever writes them (pages, API, admin)."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from incidents import services
from incidents.models import Tier
from tests.factories import TeamFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_a_team_is_created_and_changed_with_its_people():
    ana, bo = UserFactory(username="ana"), UserFactory(username="bo")
    team = services.team_create(name="Payments", slug="payments", managers=[ana], members=[ana, bo])
    assert (team.name, set(team.managers.all()), set(team.members.all())) == ("Payments", {ana}, {ana, bo})

    changed = services.team_update(team_id=team.pk, changes={"name": "Pay", "members": [bo]})
    team.refresh_from_db()
    assert (changed.pk, team.name, set(team.members.all()), set(team.managers.all())) == (team.pk, "Pay", {bo}, {ana})


def test_a_team_refuses_a_taken_slug_and_unknown_fields():
    TeamFactory(slug="payments")
    with pytest.raises(ValidationError) as refused:
        services.team_create(name="Other", slug="payments")
    assert list(refused.value.message_dict) == ["slug"]
    with pytest.raises(TypeError, match="unknown team fields"):
        services.team_update(team_id=TeamFactory().pk, changes={"colour": "red"})


def test_a_system_is_created_and_changed_after_the_models_checks():
    team = TeamFactory()
    system = services.system_create(code="cashier", name="Cashier", tier=Tier.P0, team=team)
    assert (system.availability_target, system.description) == (Decimal("99.99"), "")

    services.system_update(system_id=system.pk, changes={"availability_target": Decimal("99.9"), "tier": Tier.P1})
    system.refresh_from_db()
    assert (system.availability_target, system.tier) == (Decimal("99.9"), Tier.P1)
    with pytest.raises(ValidationError) as refused:
        services.system_update(system_id=system.pk, changes={"availability_target": Decimal("101")})
    assert list(refused.value.message_dict) == ["availability_target"]


def test_every_field_list_is_what_the_forms_serializers_and_admin_edit():
    from django.contrib import admin

    from incidents.api import serializers
    from incidents.models import System, Team
    from web.views import configuration

    assert serializers.TeamSerializer.Meta.fields == ["id", *services.TEAM_FIELDS]
    assert serializers.SystemSerializer.Meta.fields == ["id", *services.SYSTEM_FIELDS]
    assert tuple(configuration.TeamForm.Meta.fields) == services.TEAM_FIELDS
    assert tuple(configuration.SystemForm.Meta.fields) == services.SYSTEM_FIELDS
    assert admin.site._registry[Team].fields == services.TEAM_FIELDS
    assert admin.site._registry[System].fields == services.SYSTEM_FIELDS
