"""Pages never answer 5xx for what a careless or hostile visitor puts in a URL or a form: a NUL,
a lone surrogate, an absurd date or period (issue 11: "never a 5xx, never a poisoned read")."""

import pytest
from django.urls import reverse

from tests.factories import IncidentFactory

# As a browser sends them, in a URL or a form: URL-encoded bytes, among them a NUL, the UTF-8 form of a
# lone surrogate and a byte that is no UTF-8 at all.
POISON = [
    "%00",
    "x%00y",
    "%ED%A0%80",
    "9999-12-31T23:59:59-14:00",
    "0001-01-01",
    "99999-99",
    "-1",
    "1e309",
    "%25",
    "%FF",
]

PARAMETERS = [
    "team",
    "system",
    "q",
    "status",
    "level",
    "period",
    "label",
    "rule",
    "owner",
    "page",
    "source",
    "cause",
    "occurred_after",
    "occurred_before",
    "followed_up",
    "state",
    "lang",
    "ordering",
    "due_before",
    "kind",
]
PAGES = [
    "web:home",
    "web:incident-list",
    "web:incident-export",
    "web:incident-log",
    "web:incident-log-past",
    "web:level-suggestion",
    "web:items-mine",
    "web:items-team",
    "web:alert-inbox",
    "web:reports",
    "web:notification-log",
    "web:configuration",
    "web:configuration-policy",
]


@pytest.mark.parametrize("page", PAGES)
def test_no_query_value_makes_a_page_fail(administrator, world, page):
    url = reverse(page)
    for value in POISON:
        for name in PARAMETERS:
            response = administrator.get(f"{url}?{name}={value}")
            assert response.status_code < 500, (page, name, repr(value), response.status_code)


def test_no_posted_value_makes_a_form_fail(administrator, world):
    incident = IncidentFactory(systems=[world["cashier"]])
    posts = [
        (reverse("web:incident-log"), ["title", "systems", "occurred_at", "detected_at", "detection_source"]),
        (reverse("web:incident-note", args=[incident.pk]), ["text", "at"]),
        (reverse("web:incident-edit", args=[incident.pk]), ["title", "summary", "cause", "version"]),
        (reverse("web:level-suggestion"), ["systems", "affected_users", "funds_loss", "occurred_at"]),
    ]
    for url, fields in posts:
        for value in POISON:
            body = "&".join(f"{field}={value}" for field in fields)
            response = administrator.post(url, body, content_type="application/x-www-form-urlencoded")
            assert response.status_code < 500, (url, repr(value), response.status_code)


def test_a_nul_in_a_page_query_is_a_400_naming_the_parameter(administrator, world):
    response = administrator.get(reverse("web:items-team") + "?team=pay%00ments")
    assert response.status_code == 400
    assert "team: Contains a NUL character" in response.content.decode()


def test_an_admin_search_with_a_nul_is_a_400(administrator):
    response = administrator.get("/admin/incidents/incident/?q=%00")
    assert response.status_code == 400
