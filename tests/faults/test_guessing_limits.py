"""Guessing limits (accounts/guessing.py): sign-in lockout per account and address and per address
(django-axes), its message in both languages and the admin unlock; wrong bearer tokens on the API and
the webhooks answered 429 with Retry-After past the limit; the right secret works once the limit ends."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from axes.models import AccessAttempt
from django.core.cache import caches
from django.test import Client

from accounts.guessing import token_refusals_forget
from accounts.services import api_token_create
from stability.models import AlertOccurrence
from stability.services import integration_create
from tests.factories import UserFactory

PASSWORD = "right-password"
LOGIN = "/accounts/login/"
# The middle of a 15-minute token window (windows are aligned to the clock), so a test never straddles two.
T0 = datetime(2026, 11, 22, 8, 7, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _fresh_counts():
    caches["guessing"].clear()
    token_refusals_forget()
    yield
    caches["guessing"].clear()
    token_refusals_forget()


def sign_in(client: Client, username: str, password: str, *, address: str = "10.0.0.1", **extra):
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=address, **extra)


# ---- sign-in ----


@pytest.mark.django_db
def test_five_wrong_passwords_lock_the_account_from_that_address_with_the_message(client):
    UserFactory(username="lei", password=PASSWORD)
    for _ in range(4):
        assert sign_in(client, "lei", "wrong").status_code == 200  # the form again, with its error
    fifth = sign_in(client, "lei", "wrong")
    assert fifth.status_code == 429
    assert fifth["Retry-After"] == "900"
    assert "Too many failed sign-ins from your address. Try again in 15 minutes" in fifth.content.decode()

    # locked: even the right password is refused from there, and is not checked
    locked = sign_in(client, "lei", PASSWORD)
    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session
    # another address signs in to the same account: the lock is the account's from that address only
    assert sign_in(Client(), "lei", PASSWORD, address="10.0.0.2").status_code == 302


@pytest.mark.django_db
def test_the_lockout_message_is_in_chinese_for_a_chinese_reader(client):
    UserFactory(username="lei", password=PASSWORD)
    for _ in range(5):
        response = sign_in(client, "lei", "wrong", HTTP_ACCEPT_LANGUAGE="zh-Hans")
    assert response.status_code == 429
    assert "登录失败次数过多" in response.content.decode()


@pytest.mark.django_db
def test_twenty_failures_on_any_accounts_lock_the_address(client):
    UserFactory(username="lei", password=PASSWORD)
    for n in range(19):  # four each on five names: no account reaches its five
        assert sign_in(client, f"name{n % 5}", "wrong").status_code == 200
    assert sign_in(client, "name-other", "wrong").status_code == 429  # the 20th from the address
    assert sign_in(client, "lei", PASSWORD).status_code == 429  # an account never tried from there
    assert sign_in(Client(), "lei", PASSWORD, address="10.0.0.2").status_code == 302


@pytest.mark.django_db
def test_an_administrator_unlocks_by_deleting_the_attempts_in_the_admin(client):
    UserFactory(username="lei", password=PASSWORD)
    admin = UserFactory(username="root", is_superuser=True, is_staff=True)
    for _ in range(5):
        sign_in(client, "lei", "wrong")
    assert sign_in(client, "lei", PASSWORD).status_code == 429
    (attempt,) = AccessAttempt.objects.all()
    assert (attempt.username, attempt.ip_address, attempt.failures_since_start) == ("lei", "10.0.0.1", 5)

    staff = Client()
    staff.force_login(admin)
    listed = staff.get("/admin/axes/accessattempt/")
    assert listed.status_code == 200 and "10.0.0.1" in listed.content.decode()
    staff.post(
        "/admin/axes/accessattempt/",
        {"action": "delete_selected", "_selected_action": [attempt.pk], "post": "yes"},
    )
    assert AccessAttempt.objects.count() == 0
    assert sign_in(client, "lei", PASSWORD).status_code == 302


@pytest.mark.django_db
def test_the_right_password_works_once_the_lockout_has_expired(client):
    UserFactory(username="lei", password=PASSWORD)
    with time_machine.travel(T0, tick=False):
        for _ in range(5):
            sign_in(client, "lei", "wrong")
        assert sign_in(client, "lei", PASSWORD).status_code == 429
    with time_machine.travel(T0 + timedelta(minutes=14, seconds=50), tick=False):
        assert sign_in(client, "lei", PASSWORD).status_code == 429  # tries while locked do not extend it
    with time_machine.travel(T0 + timedelta(minutes=15, seconds=1), tick=False):
        response = sign_in(client, "lei", PASSWORD)
    assert response.status_code == 302
    assert client.session["_auth_user_id"]


@pytest.mark.django_db
def test_behind_a_trusted_proxy_the_client_is_the_address_the_proxy_saw(client, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    UserFactory(username="lei", password=PASSWORD)
    for n in range(5):  # one proxy address, the client's own claims to the left are not trusted
        sign_in(client, "lei", "wrong", address="192.168.0.9", HTTP_X_FORWARDED_FOR=f"1.1.1.{n}, 10.0.0.1")
    other_client = sign_in(Client(), "lei", PASSWORD, address="192.168.0.9", HTTP_X_FORWARDED_FOR="10.0.0.2")
    assert other_client.status_code == 302
    assert sign_in(client, "lei", PASSWORD, address="192.168.0.9", HTTP_X_FORWARDED_FOR="10.0.0.1").status_code == 429


# ---- API tokens ----


def api_get(token: str, *, address: str = "10.0.0.1"):
    return Client().get("/api/v1/incidents/", HTTP_AUTHORIZATION=f"Bearer {token}", REMOTE_ADDR=address)


@pytest.mark.django_db
def test_wrong_api_tokens_past_the_limit_get_429_with_retry_after_until_the_window_ends():
    _token, secret = api_token_create(user=UserFactory(username="lei"))
    with time_machine.travel(T0, tick=False):
        answers = [api_get(f"st_u_guess{n}").status_code for n in range(20)]
        assert answers == [401] * 20
        refused = api_get("st_u_guess20")
        assert refused.status_code == 429
        # the window is [08:00, 08:15): 7.5 minutes left
        assert refused["Retry-After"] == "450"
        # refused before the token is tested: even the right one, from that address
        assert api_get(secret).status_code == 429
        assert api_get(secret, address="10.0.0.2").status_code == 200
    with time_machine.travel(T0 + timedelta(seconds=449), tick=False):
        assert api_get(secret).status_code == 429
    with time_machine.travel(T0 + timedelta(seconds=451), tick=False):
        assert api_get(secret).status_code == 200
        assert api_get("st_u_guess21").status_code == 401  # a new window counts from zero


@pytest.mark.django_db
def test_wrong_tokens_counted_by_other_web_processes_refuse_at_once():
    with time_machine.travel(T0, tick=False):
        for n in range(20):
            api_get(f"st_u_guess{n}")
        token_refusals_forget()  # another process: it has not refused anyone yet, the shared count says 20
        assert api_get("st_u_guess20").status_code == 429


@pytest.mark.django_db
def test_requests_without_a_token_are_not_counted_as_guesses():
    with time_machine.travel(T0, tick=False):
        for _ in range(25):
            assert Client().get("/api/v1/incidents/", REMOTE_ADDR="10.0.0.1").status_code == 401


# ---- webhook tokens ----


def post_alert(token: str, *, address: str = "10.0.0.1"):
    return Client().post(
        "/api/v1/integrations/generic/",
        {"alerts": [{"labels": {"alertname": "PayoutErrors"}}]},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
        REMOTE_ADDR=address,
    )


@pytest.mark.django_db
def test_wrong_webhook_tokens_past_the_limit_get_429_with_retry_after_and_the_right_one_works_after():
    _integration, secret = integration_create(kind="generic", name="prod")
    with time_machine.travel(T0, tick=False):
        assert [post_alert(f"st_i_guess{n}").status_code for n in range(20)] == [401] * 20
        refused = post_alert("st_i_guess20")
        assert refused.status_code == 429
        assert refused["Retry-After"] == "450"
        assert "Too many wrong tokens from this address" in refused.json()["detail"]
        assert post_alert(secret).status_code == 429  # not tested while refused
        assert post_alert(secret, address="10.0.0.2").status_code == 200  # another sender is unaffected
    assert AlertOccurrence.objects.count() == 1
    with time_machine.travel(T0 + timedelta(seconds=451), tick=False):
        assert post_alert(secret).status_code == 200
    assert AlertOccurrence.objects.get().notifications == 2


@pytest.mark.django_db
def test_the_api_and_the_webhooks_count_separately():
    with time_machine.travel(T0, tick=False):
        for n in range(20):
            post_alert(f"st_i_guess{n}")
        assert post_alert("st_i_guess20").status_code == 429
        assert api_get("st_u_guess").status_code == 401
