"""Settings pages for administrators (web/views/configuration.py): teams, systems, integrations with
their token shown once, notification channels (written by stability.channels, the secret never shown),
each team's reminder policy, and new versions of the severity policy."""

from accounts.tokens import digest_of
from incidents.models import System, Team
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


# The severity policy's form: tests/web/test_policy_form.py.


def test_notification_channels_are_written_through_their_service_and_never_show_the_secret(
    engineer, administrator, world
):
    from stability.models import NotificationChannel

    assert engineer.get("/settings/channels/").status_code == 403
    robot = "https://oapi.dingtalk.com/robot/send?access_token=abc"
    added = administrator.post(
        "/settings/channels/",
        {
            "kind": "dingtalk",
            "name": "Payments DingTalk",
            "target": robot,
            "secret": "SEC-top",
            "team": world["payments"].pk,
            "enabled": "on",
        },
    )
    assert added.status_code == 302
    channel = NotificationChannel.objects.get()
    assert (channel.kind, channel.team, channel.secret) == ("dingtalk", world["payments"], "SEC-top")
    page = administrator.get(f"/settings/channels/{channel.pk}/")
    assert "SEC-top" not in page.content.decode()
    assert "SEC-top" not in administrator.get("/settings/channels/").content.decode()

    # An edit with the secret left empty keeps it.
    edited = administrator.post(
        f"/settings/channels/{channel.pk}/",
        {"kind": "dingtalk", "name": "Payments robot", "target": robot, "secret": "", "team": world["payments"].pk},
    )
    assert edited.status_code == 302
    channel.refresh_from_db()
    assert (channel.name, channel.secret, channel.enabled) == ("Payments robot", "SEC-top", False)

    # The service's checks show next to the fields: a channel needs a team or a person, one only.
    nobody = administrator.post(
        "/settings/channels/", {"kind": "slack", "name": "x", "target": "https://hooks.slack.com/x"}
    )
    assert nobody.status_code == 400
    assert NotificationChannel.objects.count() == 1

    assert administrator.post(f"/settings/channels/{channel.pk}/", {"delete": "1"}).status_code == 302
    assert not NotificationChannel.objects.exists()


def test_a_team_reminder_policy_with_errors_next_to_the_fields(engineer, administrator, world):
    from stability.models import ReminderPolicy

    assert engineer.get("/settings/reminder-policies/").status_code == 403
    page = administrator.get("/settings/reminder-policies/").content.decode()
    assert "remind 3, 1 days before due" in text_of(page)
    values = {
        "team": world["payments"].pk,
        "days_before": "7, x",
        "escalate_after_days": "2",
        "escalate_every_days": "0",
        "quiet_hours_start": "23:00",
        "quiet_hours_end": "07:30",
    }
    refused = administrator.post("/settings/reminder-policies/", values)
    assert refused.status_code == 400
    assert field_errors(refused, "id_days_before") == ["Write whole numbers of days, separated by commas."]
    assert field_errors(refused, "id_escalate_every_days") == ["Escalate at most once a day."]
    assert not ReminderPolicy.objects.exists()

    saved = administrator.post(
        "/settings/reminder-policies/", values | {"days_before": "1, 7", "escalate_every_days": "5"}
    )
    assert saved.status_code == 302
    policy = ReminderPolicy.objects.get()
    assert (policy.team, policy.days_before, policy.escalate_every_days) == (world["payments"], [7, 1], 5)
    assert str(policy.quiet_hours_end) == "07:30:00"


def test_a_channel_is_disabled_and_enabled_through_its_service_and_its_secret_only_said_to_be_set(
    engineer, administrator, world, monkeypatch
):
    from stability import channels
    from stability.models import NotificationChannel

    robot = "https://open.feishu.cn/open-apis/bot/v2/hook/xyz"
    channel = channels.channel_create(
        kind="feishu", name="Accounts Feishu", target=robot, secret="FS-secret", team=world["accounts"]
    )
    channels.channel_create(kind="email", name="Lead mail", target="", user=administrator.user)
    listing = text_of(administrator.get("/settings/channels/").content.decode())
    assert "Accounts Feishu Feishu" in listing and " set " in f" {listing} " and "not set" in listing
    assert "FS-secret" not in listing

    calls = []
    real_update = channels.channel_update
    monkeypatch.setattr(channels, "channel_update", lambda **kw: calls.append(kw) or real_update(**kw))
    assert engineer.post(f"/settings/channels/{channel.pk}/", {"toggle": "1"}).status_code == 403
    off = administrator.post(f"/settings/channels/{channel.pk}/", {"toggle": "1"}, follow=True)
    assert "Channel Accounts Feishu disabled." in text_of(off.content.decode())
    assert NotificationChannel.objects.get(pk=channel.pk).enabled is False
    administrator.post(f"/settings/channels/{channel.pk}/", {"toggle": "1"})
    assert NotificationChannel.objects.get(pk=channel.pk).enabled is True
    assert calls == [{"channel_id": channel.pk, "changes": {"enabled": False}}] + [
        {"channel_id": channel.pk, "changes": {"enabled": True}}
    ]


def test_a_refused_channel_keeps_nothing_and_never_echoes_the_secret(administrator, world):
    from stability.models import NotificationChannel

    refused = administrator.post(
        "/settings/channels/",
        {
            "kind": "webhook",
            "name": "Ops hook",
            "target": "ftp://ops.example.com/hook",
            "secret": "HOOK-KEY-123",
            "team": world["payments"].pk,
            "user": administrator.user.pk,
            "events": ["item_overdue", "alert_escalation"],
            "language": "en",
            "messages_per_minute": "20",
        },
    )
    assert refused.status_code == 400
    assert field_errors(refused, "id_target") == ["The robot's or webhook's URL, starting with https://."]
    assert field_errors(refused, "id_team") == ["A channel belongs to a team or to a person: choose exactly one."]
    assert "HOOK-KEY-123" not in refused.content.decode()
    assert not NotificationChannel.objects.exists()

    saved = administrator.post(
        "/settings/channels/",
        {
            "kind": "webhook",
            "name": "Ops hook",
            "target": "https://ops.example.com/hook",
            "secret": "HOOK-KEY-123",
            "team": world["payments"].pk,
            "events": ["item_overdue", "alert_escalation"],
            "language": "en",
            "messages_per_minute": "20",
            "enabled": "on",
        },
    )
    assert saved.status_code == 302
    channel = NotificationChannel.objects.get()
    assert (channel.events, channel.secret) == (["item_overdue", "alert_escalation"], "HOOK-KEY-123")
    edit_page = administrator.get(f"/settings/channels/{channel.pk}/").content.decode()
    assert "HOOK-KEY-123" not in edit_page
    assert "A secret is set." in text_of(edit_page)


def test_each_teams_effective_reminder_policy_is_shown(administrator, world):
    from datetime import time

    from stability.models import ReminderPolicy

    own = ReminderPolicy.objects.create(
        team=world["payments"],
        days_before=[5, 2],
        escalate_after_days=1,
        escalate_every_days=3,
        quiet_hours_start=time(22),
        quiet_hours_end=time(22),
    )
    response = administrator.get("/settings/reminder-policies/")
    rows = {row["team"].slug: row for row in response.context["teams"]}
    assert rows["payments"]["key"] == own.pk
    assert rows["payments"]["policy"].days_before == (2, 5)
    assert rows["accounts"]["key"] is None
    assert rows["accounts"]["policy"].days_before == (1, 3)  # the settings' REMINDER_DAYS_BEFORE
    text = text_of(response.content.decode())
    # Team, days before, escalate after, then every, quiet hours, source
    assert "Accounts 3, 1 3 7 22:00–08:00 the defaults Set its own Accounts" in text
    assert "Payments 5, 2 1 3 none its own policy Edit Payments" in text

    form = administrator.get(f"/settings/reminder-policies/?team={world['accounts'].pk}").context["form"]
    assert form["team"].value() == str(world["accounts"].pk)

    wrong = administrator.post(
        "/settings/reminder-policies/",
        {
            "team": world["accounts"].pk,
            "days_before": "0, 2",
            "escalate_after_days": "2",
            "escalate_every_days": "1",
            "quiet_hours_start": "25:00",
            "quiet_hours_end": "7:30",
        },
    )
    assert wrong.status_code == 400
    assert field_errors(wrong, "id_days_before") == ["Each number of days must be at least 1."]
    assert field_errors(wrong, "id_quiet_hours_start") == ["Enter a valid time."]
    assert ReminderPolicy.objects.count() == 1

    deleted = administrator.post(f"/settings/reminder-policies/{own.pk}/", {"delete": "1"})
    assert deleted.status_code == 302
    rows = {row["team"].slug: row for row in administrator.get("/settings/reminder-policies/").context["teams"]}
    assert (rows["payments"]["key"], rows["payments"]["policy"].days_before) == (None, (1, 3))
