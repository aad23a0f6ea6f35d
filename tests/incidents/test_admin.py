from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import ApiToken, Role, User
from incidents.models import Incident, ReviewRevision, SeverityPolicy, System, Team, TimelineEntry
from tests.factories import IncidentFactory, SystemFactory, UserFactory, write_review

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_browser(client):
    admin = UserFactory(username="root", role=Role.ADMIN, is_staff=True, is_superuser=True)
    client.force_login(admin)
    client.admin = admin
    return client


@pytest.mark.parametrize(
    "model", [User, ApiToken, Team, System, SeverityPolicy, Incident, TimelineEntry, ReviewRevision]
)
def test_every_model_has_a_working_changelist_and_detail(admin_browser, model):
    incident = IncidentFactory(systems=[SystemFactory(code="cashier", tier="P0")])
    write_review(incident)
    objects = {
        ReviewRevision: ReviewRevision.objects.first(),
        Incident: incident,
        TimelineEntry: incident.timeline.first(),
        SeverityPolicy: SeverityPolicy.objects.get(),
        System: incident.systems.get(),
        Team: incident.team,
        User: admin_browser.admin,
    }
    prefix = f"admin:{model._meta.app_label}_{model._meta.model_name}"
    assert admin_browser.get(reverse(f"{prefix}_changelist")).status_code == 200
    if model in objects:
        response = admin_browser.get(reverse(f"{prefix}_change", args=[objects[model].pk]))
        assert response.status_code == 200


def test_adding_an_incident_in_the_admin_goes_through_the_service(admin_browser):
    cashier = SystemFactory(code="cashier", tier="P0")
    occurred = timezone.localtime() - timedelta(hours=2)
    response = admin_browser.post(
        reverse("admin:incidents_incident_add"),
        {
            "title": "收银台超时",
            "summary": "",
            "team": cashier.team.pk,
            "systems": [cashier.pk],
            "detection_source": "monitoring",
            "occurred_at_0": occurred.strftime("%Y-%m-%d"),
            "occurred_at_1": occurred.strftime("%H:%M:%S"),
            "detected_at_0": occurred.strftime("%Y-%m-%d"),
            "detected_at_1": occurred.strftime("%H:%M:%S"),
            "affected_users": 0,
            "affected_transactions": 0,
            "funds_loss": "0",
            "cause_category": "unknown",
            "timeline-TOTAL_FORMS": 0,
            "timeline-INITIAL_FORMS": 0,
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    incident = Incident.objects.get()
    # Unrecovered P0 for two hours: A, classified by the service, with a "created" row by the admin user.
    assert (incident.level, incident.status, incident.created_by) == ("A", "open", admin_browser.admin)
    assert incident.timeline.get().kind == "created"


def test_admin_shows_timestamp_errors_next_to_the_field(admin_browser):
    cashier = SystemFactory(code="cashier", tier="P0")
    occurred = timezone.localtime() - timedelta(hours=2)
    detected = occurred - timedelta(minutes=1)
    response = admin_browser.post(
        reverse("admin:incidents_incident_add"),
        {
            "title": "x",
            "team": cashier.team.pk,
            "systems": [cashier.pk],
            "detection_source": "monitoring",
            "occurred_at_0": occurred.strftime("%Y-%m-%d"),
            "occurred_at_1": occurred.strftime("%H:%M:%S"),
            "detected_at_0": detected.strftime("%Y-%m-%d"),
            "detected_at_1": detected.strftime("%H:%M:%S"),
            "affected_users": 0,
            "affected_transactions": 0,
            "funds_loss": "0",
            "cause_category": "unknown",
            "timeline-TOTAL_FORMS": 0,
            "timeline-INITIAL_FORMS": 0,
        },
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["detected_at"] == [
        "Detected at must not be earlier than occurred at (when the impact started)."
    ]
    assert Incident.objects.count() == 0


def test_changing_an_incident_in_the_admin_writes_the_timeline(admin_browser):
    incident = IncidentFactory(systems=[SystemFactory(code="cashier", tier="P2")], title="old")
    url = reverse("admin:incidents_incident_change", args=[incident.pk])
    form = admin_browser.get(url).context["adminform"].form
    data = {name: form[name].value() for name in form.fields}
    for name in ("occurred_at", "detected_at", "responded_at"):
        value = form[name].value()
        local = timezone.localtime(value) if value else None
        data[f"{name}_0"] = local.strftime("%Y-%m-%d") if local else ""
        data[f"{name}_1"] = local.strftime("%H:%M:%S") if local else ""
        del data[name]
    data = {k: ("" if v is None else v) for k, v in data.items()}
    data.update(
        {
            "title": "new",
            "systems": [s.pk for s in incident.systems.all()],
            "owner": "",
            "action_items-TOTAL_FORMS": 0,
            "action_items-INITIAL_FORMS": 0,
            "timeline-TOTAL_FORMS": 1,
            "timeline-INITIAL_FORMS": 1,
            "timeline-0-id": incident.timeline.get().pk,
            "timeline-0-incident": incident.pk,
        }
    )
    response = admin_browser.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    incident.refresh_from_db()
    assert (incident.title, incident.version) == ("new", 2)
    change = incident.timeline.get(kind="change")
    assert (change.field, change.old_value, change.new_value, change.author) == (
        "title",
        "old",
        "new",
        admin_browser.admin,
    )


def test_nothing_can_be_deleted_from_the_record(admin_browser):
    incident = IncidentFactory(systems=[SystemFactory(code="cashier")])
    response = admin_browser.get(reverse("admin:incidents_incident_delete", args=[incident.pk]))
    assert response.status_code == 403


def test_teams_and_systems_are_saved_in_the_admin_through_their_services(admin_browser, monkeypatch):
    from incidents import admin as incident_admin
    from incidents import services

    called = []
    for admin_class, name in (
        (incident_admin.TeamAdmin, "team_create"),
        (incident_admin.TeamAdmin, "team_update"),
        (incident_admin.SystemAdmin, "system_create"),
    ):
        real = getattr(services, name)
        spy = staticmethod(lambda _real=real, _name=name, **kw: called.append(_name) or _real(**kw))
        monkeypatch.setattr(admin_class, name.split("_")[1], spy)
    ana = UserFactory(username="ana")
    added = admin_browser.post(
        reverse("admin:incidents_team_add"), {"name": "Payments", "slug": "payments", "members": [ana.pk]}
    )
    assert added.status_code == 302
    team = Team.objects.get(slug="payments")
    assert list(team.members.all()) == [ana]
    changed = admin_browser.post(
        reverse("admin:incidents_team_change", args=[team.pk]), {"name": "Pay", "slug": "payments"}
    )
    assert changed.status_code == 302
    team.refresh_from_db()
    assert (team.name, list(team.members.all())) == ("Pay", [])
    system = admin_browser.post(
        reverse("admin:incidents_system_add"),
        {"code": "cashier", "name": "Cashier", "tier": "P0", "team": team.pk, "availability_target": "99.9"},
    )
    assert system.status_code == 302
    assert System.objects.get(code="cashier").team == team
    assert called == ["team_create", "team_update", "system_create"]
