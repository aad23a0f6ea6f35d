"""Integrations' routing, maintenance windows and reminder policies are written by stability.services;
every write changes the routing version ingestion compares (stability.ingestion), in its transaction."""

from datetime import time

import pytest
from django.core.exceptions import ValidationError

from incidents import services as incident_services
from stability import services
from stability.models import IngestConfigVersion, Integration, ReminderPolicy
from tests.factories import TeamFactory

pytestmark = pytest.mark.django_db


def _routing_version() -> int:
    return IngestConfigVersion.objects.filter(pk=1).values_list("version", flat=True).first() or 0


def test_an_integration_changes_its_routing_but_not_its_kind():
    integration, _token = services.integration_create(kind=Integration.Kind.GRAFANA, name="grafana")
    team = TeamFactory()
    before = _routing_version()
    changed = services.integration_update(
        integration_id=integration.pk, changes={"default_team": team, "system_labels": ["app"], "kind": "grafana"}
    )
    assert (changed.default_team, changed.system_labels) == (team, ["app"])
    assert _routing_version() == before + 1

    with pytest.raises(ValidationError) as refused:
        services.integration_update(integration_id=integration.pk, changes={"kind": Integration.Kind.GENERIC})
    assert refused.value.message_dict == {"kind": ["The kind of an integration cannot change; create another one."]}
    with pytest.raises(TypeError, match="unknown integration fields"):
        services.integration_update(integration_id=integration.pk, changes={"token_digest": "x"})


def test_team_and_system_services_change_the_routing_version():
    before = _routing_version()
    team = incident_services.team_create(name="Payments", slug="payments")
    system = incident_services.system_create(code="cashier", name="Cashier", tier="P0", team=team)
    incident_services.system_update(system_id=system.pk, changes={"code": "till"})
    assert _routing_version() == before + 3


def test_a_reminder_policy_is_normalised_checked_and_deleted():
    team = TeamFactory()
    policy = services.reminder_policy_create(team=team, days_before=[1, 7, 1], quiet_hours_start=time(23))
    assert (policy.days_before, policy.quiet_hours_start) == ([7, 1], time(23))

    with pytest.raises(ValidationError) as refused:
        services.reminder_policy_update(policy_id=policy.pk, changes={"days_before": [0], "escalate_every_days": 0})
    assert refused.value.message_dict == {
        "days_before": ["Each number of days must be at least 1."],
        "escalate_every_days": ["Escalate at most once a day."],
    }
    services.reminder_policy_update(policy_id=policy.pk, changes={"escalate_every_days": 2})
    assert ReminderPolicy.objects.get().escalate_every_days == 2

    with pytest.raises(ValidationError) as taken:
        services.reminder_policy_create(team=team)
    assert list(taken.value.message_dict) == ["team"]
    services.reminder_policy_delete(policy_id=policy.pk)
    assert not ReminderPolicy.objects.exists()


def test_the_field_lists_are_what_the_forms_serializers_and_admin_edit():
    from django.contrib import admin

    from stability.api.alerts import MaintenanceWindowSerializer
    from stability.api.integrations import IntegrationSerializer
    from stability.models import MaintenanceWindow
    from web.views import configuration

    assert IntegrationSerializer.Meta.fields[1:-3] == list(services.INTEGRATION_FIELDS)
    assert MaintenanceWindowSerializer.Meta.fields[1:-2] == list(services.MAINTENANCE_WINDOW_FIELDS)
    assert tuple(configuration.IntegrationForm.Meta.fields) == services.INTEGRATION_FIELDS
    assert tuple(configuration.ReminderPolicyForm.Meta.fields) == services.REMINDER_POLICY_FIELDS
    assert admin.site._registry[Integration].form.Meta.fields == services.INTEGRATION_FIELDS
    assert admin.site._registry[ReminderPolicy].form.Meta.fields == services.REMINDER_POLICY_FIELDS
    assert admin.site._registry[MaintenanceWindow].form.Meta.fields == services.MAINTENANCE_WINDOW_FIELDS


def test_a_window_ends_after_it_starts_in_the_service_and_the_admin_form():
    from stability.admin import MaintenanceWindowForm
    from tests.factories import SystemFactory

    system = SystemFactory()
    values = {"system": system.pk, "starts_at": "2026-11-20 10:00", "ends_at": "2026-11-20 09:00", "reason": "release"}
    form = MaintenanceWindowForm(data=values)
    assert not form.is_valid()
    assert form.errors["ends_at"] == ["The window must end after it starts."]
    with pytest.raises(ValidationError) as refused:
        services.check_window_times(starts_at=form.cleaned_data["starts_at"], ends_at=form.cleaned_data["starts_at"])
    assert refused.value.message_dict == {"ends_at": ["The window must end after it starts."]}


def test_the_admin_checks_reminder_days_with_the_services_rule():
    from stability.admin import ReminderPolicyForm

    team = TeamFactory()
    form = ReminderPolicyForm(data={"team": team.pk, "days_before": "[1, 3, 3]", "escalate_after_days": 3})
    form.is_valid()
    assert form.cleaned_data["days_before"] == [3, 1]
    # The service takes any whole number of days from 1 (the settings page too): so does the admin now.
    assert services.reminder_days_before([90]) == [90]
    form = ReminderPolicyForm(data={"team": team.pk, "days_before": "[90]", "escalate_after_days": 3})
    form.is_valid()
    assert form.cleaned_data["days_before"] == [90]
    for wrong in ("[0, 2]", '"3"'):
        form = ReminderPolicyForm(data={"team": team.pk, "days_before": wrong, "escalate_after_days": 3})
        assert not form.is_valid()
        assert "days_before" in form.errors
