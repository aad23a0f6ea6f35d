import re
from html import unescape

import pytest
from django.test import Client

from accounts.models import Role
from incidents.models import Tier
from tests.factories import SystemFactory, TeamFactory, UserFactory


def _signed_in(role: str) -> Client:
    client = Client()
    user = UserFactory(username=f"web-{role}", role=role, first_name=role.title(), last_name="Person")
    client.force_login(user)
    client.user = user
    return client


@pytest.fixture
def engineer(db) -> Client:
    return _signed_in(Role.ENGINEER)


@pytest.fixture
def manager(db) -> Client:
    return _signed_in(Role.MANAGER)


@pytest.fixture
def administrator(db) -> Client:
    return _signed_in(Role.ADMIN)


@pytest.fixture
def world(db) -> dict:
    payments = TeamFactory(slug="payments", name="Payments")
    accounts = TeamFactory(slug="accounts", name="Accounts")
    return {
        "payments": payments,
        "accounts": accounts,
        "cashier": SystemFactory(code="cashier", name="Cashier", tier=Tier.P0, team=payments),
        "payout": SystemFactory(code="payout", name="Payout", tier=Tier.P0, team=payments),
        "portal": SystemFactory(code="portal", name="Portal", tier=Tier.P2, team=accounts),
    }


def text_of(html: str) -> str:
    """The page's text, tags dropped and white space collapsed, to assert what a reader sees."""
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).strip()


def field_errors(response, field_id: str) -> list[str]:
    """The errors shown next to one field (the list the template ties to it by id)."""
    html = response.content.decode()
    found = re.search(rf'<ul class="errors" id="{re.escape(field_id)}-errors">(.*?)</ul>', html, re.S)
    if not found:
        return []
    return [text_of(item) for item in re.findall(r"<li>(.*?)</li>", found.group(1), re.S)]


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test, so a fixture can tell that its test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report
