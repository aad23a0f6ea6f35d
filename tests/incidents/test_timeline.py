"""The timeline in the reader's language (issue 15, part 3): rows stored as events, said at read time in
Chinese or English on the page and in the API (Accept-Language); rows of the old form converted by
migration 0005."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import translation

from incidents import services
from incidents.models import TimelineEntry
from incidents.timeline import describe
from tests.factories import IncidentFactory, SystemFactory, UserFactory

NOW = datetime(2026, 12, 5, 4, 0, tzinfo=UTC)  # 12:00 in Asia/Shanghai


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def said(entry, language):
    with translation.override(language):
        return describe(entry)


@pytest.fixture
def story(db, frozen):
    """A B incident (14,999 failed transactions against a threshold of 10,000), taken, given an
    action item, its level set by hand."""
    lin = UserFactory(username="lin")
    system = SystemFactory(code="pay-gw", tier="P2")
    incident = IncidentFactory(
        by=lin,
        systems=[system],
        occurred_at=NOW - timedelta(minutes=30),
        detected_at=NOW - timedelta(minutes=20),
        affected_transactions=14_999,
    )
    services.incident_transition(incident_id=incident.pk, by=lin, action="respond")
    item = services.action_item_create(
        incident_id=incident.pk, by=lin, title="Alert on fee bills", owner=lin, due_at=NOW + timedelta(days=3)
    )
    return incident, item, lin


def entries(incident):
    return list(incident.timeline.select_related("author").order_by("id"))


@pytest.mark.django_db
def test_every_row_is_said_in_the_readers_language(story):
    incident, item, _lin = story
    assert incident.level == "B"
    rows = entries(incident)
    chinese = [said(e, "zh-hans") for e in rows]
    english = [said(e, "en") for e in rows]
    assert english == [
        "Logged: B: 14,999 failed transactions (>= 10,000)",
        "Responded: on it",
        "Owner: ∅ → lin",
        "Responded at: ∅ → 2026-12-05 12:00:00",
        f'Action item #{item.pk} "Alert on fee bills" added, owner lin, due 2026-12-08',
    ]
    assert chinese[0] == "已登记: B: 失败交易 14999 笔 (>= 10000)"
    assert chinese[1] == "已响应：接手处理"
    assert chinese[4] == f"已添加闭环项 #{item.pk}“Alert on fee bills”，负责人 lin，截止 2026-12-08"
    # No English sentence of the system's reaches a Chinese reader (names and codes typed by people aside).
    for sentence in chinese:
        for english_word in ("Logged", "Action item", "added", "owner", "failed transactions", "Responded"):
            assert english_word not in sentence, sentence
    # The rows hold values, not sentences: nothing typed by a person here.
    assert [e.text for e in rows] == ["", "", "", "", ""]


@pytest.mark.django_db
def test_levels_and_choices_read_as_labels(story):
    incident, _item, lin = story
    services.severity_override_set(incident_id=incident.pk, by=lin, level="A", reason="regulator asked")
    services.incident_update(
        incident_id=incident.pk, by=lin, expected_version=None, changes={"cause_category": "code_change"}
    )
    override, change = entries(incident)[-2:]
    assert said(override, "en") == "Level override: level B → level A · regulator asked"
    assert said(override, "zh-hans").startswith("人工定级: B级 → A级 · regulator asked")
    assert said(change, "en") == "Cause category: Unknown → Code change"
    assert "变更" in said(change, "zh-hans") and "cause" not in said(change, "zh-hans")


@pytest.mark.django_db
def test_the_api_follows_accept_language(engineer_client, story):
    incident, item, _lin = story
    url = f"/api/v1/incidents/{incident.pk}/timeline/"
    english = engineer_client.get(url, HTTP_ACCEPT_LANGUAGE="en").json()
    chinese = engineer_client.get(url, HTTP_ACCEPT_LANGUAGE="zh-hans").json()
    assert [r["kind"] for r in english] == ["created", "responded", "change", "change", "action_item"]
    assert english[4]["description"].startswith(f"Action item #{item.pk}")
    assert chinese[4]["description"].startswith(f"已添加闭环项 #{item.pk}")
    assert chinese[4]["data"] == english[4]["data"]  # the values are the same; only the words differ


@pytest.mark.django_db
def test_the_page_says_the_timeline_in_chinese(client, story):
    incident, item, lin = story
    lin.set_password("pw")
    lin.save()
    client.force_login(lin)
    html = client.get(f"/incidents/{incident.pk}/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert f"已添加闭环项 #{item.pk}" in html
    assert "已响应：接手处理" in html
    assert "added, owner" not in html


# -- the migration ------------------------------------------------------------------------------

BEFORE = [("incidents", "0004_incident_team_lookup")]
AFTER = [("incidents", "0005_structured_timeline_roles")]


@pytest.fixture
def back_to_latest(transactional_db):
    """Whatever the test leaves, the schema goes back to the latest migrations for the tests after it."""
    yield
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
def test_migration_turns_old_sentences_into_events_and_keeps_the_rest(back_to_latest):
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    Team, System = old.get_model("incidents", "Team"), old.get_model("incidents", "System")
    Policy, Incident = old.get_model("incidents", "SeverityPolicy"), old.get_model("incidents", "Incident")
    Entry = old.get_model("incidents", "TimelineEntry")
    team = Team.objects.create(name="Pay", slug="pay")
    System.objects.create(code="pay-gw", name="Gateway", tier="P2", team=team)
    matches = [{"kind": "affected_transactions", "level": "B", "observed": 14999, "at_least": 10000}]
    incident = Incident.objects.create(
        title="old",
        team=team,
        detection_source="monitoring",
        occurred_at=NOW,
        detected_at=NOW,
        level="B",
        classified_level="B",
        severity_matches=matches,
        severity_policy=Policy.objects.order_by("version").first(),
        recovery_target=timedelta(hours=1),
        funds_loss=Decimal(0),
    )

    def row(kind, text, **values):
        return Entry.objects.create(incident=incident, kind=kind, at=NOW, text=text, **values).pk

    created_en = row("created", "B: 14,999 failed transactions (>= 10,000)", new_value="B")
    # Written by an installation whose language was Chinese.
    created_zh = row("created", "B: 失败交易 14999 笔 (>= 10000)", new_value="B")
    stale = row("created", "B: 失败交易 12000 笔 (>= 10000)", new_value="B")  # matches changed since
    added_zh = row("action_item", "已添加闭环项 #29“加监控”，负责人 engineer，截止 2026-12-01")
    waived_en = row("action_item", "Action item #29 waived: covered by the bill rework", field="status")
    reopened = row("status", "Action item #29 reopened: the loop is open again", field="status")
    note = row("note", "Action item #29 waived: a person typed this")
    unknown = row("severity", "someone's reason", field="level_override", new_value="A")

    executor = MigrationExecutor(connection)
    executor.migrate(AFTER)
    converted = {e.pk: e for e in TimelineEntry.objects.all()}
    assert (converted[created_en].data, converted[created_en].text) == ({"matches": matches}, "")
    assert converted[added_zh].data == {
        "event": "item_added",
        "item": 29,
        "title": "加监控",
        "owner": "engineer",
        "due": "2026-12-01",
    }
    assert (converted[waived_en].data, converted[waived_en].text) == (
        {"event": "waive", "item": 29},
        "covered by the bill rework",
    )
    assert (converted[reopened].data, converted[reopened].text) == ({"event": "item_reopened", "item": 29}, "")
    # Typed by a person, or not a sentence of the system's: kept as it was.
    assert (converted[note].data, converted[note].text) == ({}, "Action item #29 waived: a person typed this")
    assert (converted[unknown].data, converted[unknown].text) == ({}, "someone's reason")
    # An explanation is parsed only when it is these matches' explanation, in English or Chinese.
    assert (converted[created_zh].data, converted[created_zh].text) == ({"matches": matches}, "")
    assert (converted[stale].data, converted[stale].text) == ({}, "B: 失败交易 12000 笔 (>= 10000)")
    # Said in the reader's language now.
    with translation.override("zh-hans"):
        assert describe(converted[added_zh]).startswith("已添加闭环项 #29")
        assert describe(converted[waived_en]) == "闭环项 #29 已豁免: covered by the bill rework"
    with translation.override("en"):
        assert describe(converted[added_zh]) == 'Action item #29 "加监控" added, owner engineer, due 2026-12-01'
