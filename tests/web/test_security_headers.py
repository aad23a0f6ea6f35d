"""The headers every page sends (Content-Security-Policy, HSTS) and the HTTPS redirect: a plain-HTTP
POST (an alert notification) is redirected with 308, which keeps its method and body, never with a 301
that a client follows as a GET; the health probes stay reachable over plain HTTP."""

import pytest
from django.test import Client

from stability.models import AlertOccurrence
from stability.services import integration_create
from tests.factories import UserFactory

ALERT = {"alerts": [{"labels": {"alertname": "PayoutErrors"}}]}


@pytest.fixture
def https_only(settings):
    settings.ALLOWED_HOSTS = ["stability.example.com"]
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SECURE_HSTS_PRELOAD = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")


@pytest.mark.django_db
def test_pages_send_a_content_security_policy_without_inline_script(client):
    client.force_login(UserFactory(username="lei"))
    response = client.get("/")
    policy = dict(part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";"))
    assert policy["default-src"] == "'self'"
    assert policy["script-src"] == "'self'"
    assert policy["object-src"] == "'none'"
    assert policy["frame-ancestors"] == "'none'"
    html = response.content.decode()
    assert "<script>" not in html and " onclick=" not in html and " style=" not in html


@pytest.mark.django_db
def test_the_report_styles_carry_the_pages_nonce(client):
    client.force_login(UserFactory(username="luna", role="manager"))
    response = client.get("/reports/")
    nonce = response["Content-Security-Policy"].split("'nonce-")[1].split("'")[0]
    assert f'<style nonce="{nonce}">' in response.content.decode()


@pytest.mark.django_db
def test_the_api_docs_load_their_script_from_a_url(client):
    client.force_login(UserFactory(username="lei"))
    html = client.get("/api/docs/").content.decode()
    assert "<script>" not in html
    assert '<script src="/api/docs/?script="></script>' in html
    assert client.get("/api/docs/?script=").status_code == 200


@pytest.mark.django_db
def test_plain_http_pages_get_a_301_to_https_with_hsts_there(client, https_only):
    response = client.get("/incidents/?status=open", HTTP_HOST="stability.example.com")
    assert response.status_code == 301
    assert response["Location"] == "https://stability.example.com/incidents/?status=open"
    secure = client.get("/accounts/login/", HTTP_HOST="stability.example.com", HTTP_X_FORWARDED_PROTO="https")
    assert secure.status_code == 200
    assert secure["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"


@pytest.mark.django_db
def test_a_plain_http_webhook_post_gets_a_308_and_stores_nothing_until_sent_over_https(client, https_only):
    _integration, token = integration_create(kind="generic", name="prod")
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}", "HTTP_HOST": "stability.example.com"}
    url = "/api/v1/integrations/generic/"

    response = client.post(url, ALERT, content_type="application/json", **headers)
    assert response.status_code == 308  # not 301: the sender repeats the POST, body and all
    assert response["Location"] == "https://stability.example.com/api/v1/integrations/generic/"
    assert AlertOccurrence.objects.count() == 0

    again = client.post(url, ALERT, content_type="application/json", HTTP_X_FORWARDED_PROTO="https", **headers)
    assert again.status_code == 200
    assert AlertOccurrence.objects.count() == 1


@pytest.mark.django_db
def test_health_probes_answer_over_plain_http(https_only):
    client = Client()
    assert client.get("/healthz", HTTP_HOST="stability.example.com").status_code == 200
    assert client.get("/readyz", HTTP_HOST="stability.example.com").status_code in (200, 503)
    assert client.get("/readyz", HTTP_HOST="stability.example.com").status_code != 301
