"""Forms that scale (issue 15, part 8): the incident list's labelled filters and team chooser, the
system picker grouped by team, import errors in words, the language switch after a refused POST,
the integration's full webhook address and alertmanager.yml."""

import re

import pytest
import yaml
from django.utils import translation

from incidents.models import Tier
from stability.models import Integration
from tests.factories import SystemFactory, TeamFactory
from tests.web.conftest import text_of

pytestmark = pytest.mark.django_db


def _labels(html: str) -> list[str]:
    return [text_of(label) for label in re.findall(r"<(?:label|legend)[^>]*>(.*?)</(?:label|legend)>", html, re.S)]


# --- the incident list's filters ----------------------------------------------------------------------


def test_every_filter_of_the_incident_list_has_a_label_in_words(engineer, world):
    html = engineer.get("/incidents/").content.decode()

    form = html[html.index('class="filter-form"') : html.index("</form>", html.index('class="filter-form"'))]
    labels = _labels(form)
    assert "[invalid name]" not in form
    assert "is greater than or equal to" not in form
    for label in ("Search", "Period", "Team", "System code", "Occurred from", "Occurred before", "Status"):
        assert label in labels, label


def test_the_team_filter_is_a_chooser_that_keeps_the_choice_and_filters(engineer, world):
    from tests.factories import IncidentFactory

    IncidentFactory(title="Cashier down", systems=[world["cashier"]])
    IncidentFactory(title="Portal slow", systems=[world["portal"]])

    response = engineer.get("/incidents/", {"team": "payments"})

    html = response.content.decode()
    chooser = re.search(r'<select name="team"[^>]*>(.*?)</select>', html, re.S).group(1)
    # the teams by name, after "All teams"; the chosen one selected
    assert re.findall(r'<option value="([^"]*)"', chooser) == ["", "accounts", "payments"]
    assert re.search(r'<option value="payments" selected>Payments</option>', chooser)
    titles = [i.title for i in response.context["page"].object_list]
    assert titles == ["Cashier down"]


def test_the_api_still_takes_a_team_slug_and_an_unknown_one_chooses_nothing(engineer_client, world):
    from tests.factories import IncidentFactory

    IncidentFactory(systems=[world["cashier"]])

    assert engineer_client.get("/api/v1/incidents/", {"team": "payments"}).json()["count"] == 1
    assert engineer_client.get("/api/v1/incidents/", {"team": "nobody"}).json()["count"] == 0


def test_the_filters_labels_are_in_chinese(engineer, world):
    with translation.override("zh-hans"):
        html = engineer.get("/incidents/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    form = html[html.index('class="filter-form"') :]
    labels = _labels(form[: form.index("</form>")])
    assert "团队" in labels and "全部团队" in form
    assert "[invalid name]" not in form


# --- the system picker --------------------------------------------------------------------------------


def test_the_system_picker_groups_the_systems_by_team_with_a_filter_field(engineer, world):
    html = engineer.get("/incidents/new/").content.decode()

    picker = html[html.index('class="system-picker"') :]
    groups = re.findall(r"<legend>(.*?)</legend>", picker)
    # Accounts (portal), then Payments (cashier, payout): teams by name
    assert groups[:2] == ["Accounts", "Payments"]
    assert re.findall(r'data-search="([^"]*)"', picker) == [
        "portal portal accounts",
        "cashier cashier payments",
        "payout payout payments",
    ]
    # The filter field is there for the script to show; without it the grouped boxes work alone.
    assert re.search(r'<p class="picker-search" hidden>', picker)


def test_the_picker_takes_500_systems_and_logs_with_the_chosen_ones(engineer, world):
    teams = [TeamFactory(slug=f"t{n:02}", name=f"Team {n:02}") for n in range(20)]
    SystemFactory.create_batch(500, team=factory_cycle(teams), tier=Tier.P2)

    page = engineer.get("/incidents/new/")

    html = page.content.decode()
    # 3 systems of the world + 500 = 503 boxes, in 2 + 20 = 22 team groups
    assert html.count('name="systems"') == 503
    assert html.count('class="picker-group"') == 22


def factory_cycle(items):
    import factory

    return factory.Iterator(items)


def test_a_chosen_system_stays_chosen_when_the_form_comes_back_with_errors(engineer, world):
    response = engineer.post("/incidents/new/", {"title": "", "systems": [world["payout"].pk]})

    assert response.status_code == 400
    html = response.content.decode()
    assert re.search(rf'value="{world["payout"].pk}"[^>]*checked', html)
    assert not re.search(rf'value="{world["cashier"].pk}"[^>]*checked', html)


# --- import errors in words -----------------------------------------------------------------------------


def test_unknown_codes_are_named_in_words_in_the_api(engineer_client, world):
    response = engineer_client.post(
        "/api/v1/incidents/",
        {
            "title": "x",
            "systems": ["cashier", "mainframe"],
            "team": "nobody",
            "owner": "ghost",
            "detection_source": "monitoring",
            "occurred_at": "2026-10-03T10:00:00+08:00",
            "detected_at": "2026-10-03T10:02:00+08:00",
        },
        format="json",
    )

    assert response.status_code == 400
    body = response.json()
    text = str(body)
    assert "Object with" not in text
    assert "Unknown system code 'mainframe'." in text
    assert "Unknown team 'nobody'." in text
    assert "Unknown or inactive username 'ghost'." in text


# --- the language switch ----------------------------------------------------------------------------------


def _next_of(html: str) -> str:
    from html import unescape

    return unescape(re.search(r'<input type="hidden" name="next" value="([^"]*)"', html).group(1))


def test_the_language_switch_after_a_refused_post_returns_to_the_referring_page(administrator, world):
    refused = administrator.post(
        "/settings/integrations/", {"name": ""}, HTTP_REFERER="http://testserver/settings/integrations/?from=1"
    )
    assert refused.status_code == 400
    back = _next_of(refused.content.decode())
    assert back == "http://testserver/settings/integrations/?from=1"

    switched = administrator.post("/i18n/setlang/", {"language": "zh-hans", "next": back})

    assert switched.status_code == 302
    assert switched["Location"] == back
    assert administrator.get(switched["Location"]).status_code == 200


def test_the_language_switch_after_a_refused_post_without_referrer_goes_home(administrator, world):
    refused = administrator.post("/settings/integrations/", {"name": ""})

    assert _next_of(refused.content.decode()) == "/"


def test_the_language_switch_on_a_get_page_returns_to_it(engineer, world):
    assert _next_of(engineer.get("/incidents/?team=payments").content.decode()) == "/incidents/?team=payments"


# --- the integration page -----------------------------------------------------------------------------------


def _integration(administrator, world, kind: str):
    response = administrator.post(
        "/settings/integrations/",
        {
            "kind": kind,
            "name": f"prod-{kind}",
            "enabled": "on",
            "default_team": world["payments"].pk,
            "team_label": "team",
            "system_labels": "service, app",
            "severity_label": "severity",
        },
    )
    assert response.status_code == 200, response.content.decode()[:2000]
    return response, Integration.objects.get(name=f"prod-{kind}")


def test_a_new_alertmanager_integration_shows_the_full_address_and_a_ready_config(administrator, world):
    response, integration = _integration(administrator, world, "alertmanager")
    token = response.context["token"]
    html = response.content.decode()

    assert (
        '<code id="webhook-url" aria-labelledby="webhook-url-label">http://testserver/api/v1/integrations/alertmanager/</code>'
        in html
    )
    snippet = re.search(r'<pre class="snippet" id="alertmanager-snippet"[^>]*>(.*?)</pre>', html, re.S).group(1)
    from html import unescape

    config = yaml.safe_load(unescape(snippet))
    receiver = config["receivers"][0]
    assert config["route"]["receiver"] == receiver["name"]
    webhook = receiver["webhook_configs"][0]
    assert webhook["url"] == "http://testserver/api/v1/integrations/alertmanager/"
    assert webhook["send_resolved"] is True
    assert webhook["http_config"]["authorization"] == {"type": "Bearer", "credentials": token}
    assert 'data-copy="#webhook-url"' in html and 'data-copy="#alertmanager-snippet"' in html


def test_the_config_really_delivers_an_alert(administrator, world, client):
    """The snippet's address and credentials, posted as Alertmanager would, are accepted."""
    response, integration = _integration(administrator, world, "alertmanager")
    token = response.context["token"]
    payload = {
        "version": "4",
        "status": "firing",
        "receiver": "stability-tracker",
        "groupKey": '{}:{alertname="X"}',
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "CashierDown", "service": "cashier", "severity": "critical"},
                "annotations": {"summary": "Cashier down"},
                "startsAt": "2026-10-03T02:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "fingerprint": "abc123",
            }
        ],
    }

    answer = client.post(
        "/api/v1/integrations/alertmanager/",
        payload,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )

    assert answer.status_code in (200, 201, 202), answer.content


def test_the_integration_page_keeps_the_address_without_the_token(administrator, world, settings):
    settings.ALLOWED_HOSTS = ["testserver", "tracker.example.com"]
    response, integration = _integration(administrator, world, "alertmanager")
    token = response.context["token"]

    html = administrator.get(
        f"/settings/integrations/{integration.pk}/", HTTP_HOST="tracker.example.com"
    ).content.decode()

    assert "http://tracker.example.com/api/v1/integrations/alertmanager/" in html
    assert token not in html
    assert "credentials: &quot;&lt;TOKEN&gt;&quot;" in html
    assert "Replace &lt;TOKEN&gt;" in html


def test_a_grafana_integration_gets_the_contact_point_hint(administrator, world):
    response, integration = _integration(administrator, world, "grafana")

    text = text_of(administrator.get(f"/settings/integrations/{integration.pk}/").content.decode())

    assert "http://testserver/api/v1/integrations/grafana/" in text
    assert "Contact points" in text and "Bearer" in text
    assert "alertmanager.yml" not in text
