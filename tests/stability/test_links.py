"""stability.links: every absolute link back to the tracker, reversed from the page's URL name under SITE_URL."""

import pytest

from stability import links


@pytest.fixture(autouse=True)
def site(settings):
    settings.SITE_URL = "https://stability.example.com/"  # a trailing slash is not doubled


def test_each_page_a_message_links_to():
    assert links.home_url() == "https://stability.example.com/"
    assert links.incident_url(incident_id=12) == "https://stability.example.com/incidents/12/"
    assert links.item_url(incident_id=12, item_id=7) == "https://stability.example.com/incidents/12/#item-7"
    assert links.alert_url(alert_id=9) == "https://stability.example.com/alerts/9/"
    assert links.notification_log_url() == "https://stability.example.com/notifications/"


def test_a_report_link_names_its_period_and_scope():
    assert (
        links.report_url(period_label="2026-11", team_slug="payments")
        == "https://stability.example.com/reports/?period=2026-11&team=payments"
    )
    assert links.report_url(period_label="2026-11") == "https://stability.example.com/reports/?period=2026-11"
    assert (
        links.report_url(period_label="2026-W48", system_code="cashier")
        == "https://stability.example.com/reports/?period=2026-W48&system=cashier"
    )


def test_a_path_under_site_url():
    assert links.absolute("/api/docs/") == "https://stability.example.com/api/docs/"


def test_where_each_kind_of_sender_posts():
    assert [links.webhook_path(kind=kind) for kind in ("alertmanager", "grafana", "generic")] == [
        "/api/v1/integrations/alertmanager/",
        "/api/v1/integrations/grafana/",
        "/api/v1/integrations/generic/",
    ]
