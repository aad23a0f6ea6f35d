"""The post-incident review (复盘) through incidents.reviews and incidents.selectors: versions and revisions,
stale edits, the sections each team requires and the close rule naming them (English and Chinese), the list
of incidents awaiting their review, the drafts and the Markdown export, and migration 0006 moving each old
review text into its summary section.

The clock is frozen at NOW = 2026-11-20 10:00 in Asia/Shanghai (02:00 UTC).
"""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import translation

from incidents import reviews, selectors, services
from incidents.models import IncidentReview, IncidentReviewSection, ReviewRevision, TimelineEntry
from incidents.timeline import describe
from tests.factories import REVIEW, IncidentFactory, SystemFactory, TeamFactory, UserFactory, write_review

NOW = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def alice(db):
    return UserFactory(username="alice")


@pytest.fixture
def bob(db):
    return UserFactory(username="bob")


@pytest.fixture
def payments(db):
    return TeamFactory(name="Payments", slug="payments")


@pytest.fixture
def incident(payments):
    """Recovered an hour after it started: 1,200 users, 345 transactions, 678.90 lost, a quarter failing."""
    return IncidentFactory(
        title="Cashier pool exhausted",
        systems=[SystemFactory(code="cashier", team=payments)],
        occurred_at=NOW - timedelta(hours=3),
        detected_at=NOW - timedelta(hours=3) + timedelta(minutes=4),
        recovered_at=NOW - timedelta(hours=2),
        affected_users=1200,
        affected_transactions=345,
        funds_loss=Decimal("678.90"),
        availability_impact=Decimal("0.25"),
        cause="Connection leak on an error path.",
        handling="Rolled back the release.",
    )


def save(incident, by, version, **sections):
    return reviews.review_save(incident_id=incident.pk, by=by, expected_version=version, sections=sections)


# -- versions -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_each_save_is_a_version_and_every_text_stays_readable(incident, alice, bob, frozen):
    first = save(incident, alice, 0, summary="Pool ran dry.", impact="1,200 users.", lessons="")
    # An empty section never written is not made.
    assert (first.version, first.updated_by) == (1, alice)
    assert dict(first.sections.values_list("key", "version")) == {"summary": 1, "impact": 1}

    frozen.shift(timedelta(minutes=30))
    second = save(incident, bob, 1, summary="Pool ran dry at the evening peak.\r\n", impact="1,200 users.")
    assert second.version == 2
    assert dict(second.sections.values_list("key", "version")) == {"summary": 2, "impact": 1}
    history = reviews.review_versions(incident=incident)
    assert [(r.version, r.text, r.by.username, r.at) for r in history["summary"]] == [
        (1, "Pool ran dry.", "alice", NOW),
        (2, "Pool ran dry at the evening peak.", "bob", NOW + timedelta(minutes=30)),
    ]
    assert [r.version for r in history["impact"]] == [1]

    rows = list(TimelineEntry.objects.filter(incident=incident, kind="review").order_by("at"))
    assert [(r.author.username, r.data) for r in rows] == [
        ("alice", {"sections": ["summary", "impact"], "version": 1}),
        ("bob", {"sections": ["summary"], "version": 2}),
    ]
    assert describe(rows[0]) == "Review (version 1) written: Summary, Impact"
    with translation.override("zh-hans"):
        assert describe(rows[1]) == "复盘（第 2 版）已写：摘要"


@pytest.mark.django_db
def test_a_save_that_changes_nothing_writes_nothing(incident, alice):
    save(incident, alice, 0, summary="Pool ran dry.")
    again = save(incident, alice, 1, summary="Pool ran dry.  ", impact="")
    assert again.version == 1
    # Nothing at all: not even an empty review is made.
    other = IncidentFactory(systems=list(incident.systems.all()))
    assert save(other, alice, 0, summary=" ").pk is None
    assert IncidentReview.objects.count() == 1
    assert ReviewRevision.objects.count() == 1
    assert TimelineEntry.objects.filter(kind="review").count() == 1


@pytest.mark.django_db
def test_a_stale_version_is_refused_and_nothing_is_written(incident, alice, bob):
    save(incident, alice, 0, summary="Pool ran dry.")
    with pytest.raises(services.StaleVersionError) as caught:
        save(incident, bob, 0, summary="Something else.")
    assert caught.value.current_version == 1
    assert selectors.review_texts(incident=incident)["summary"] == "Pool ran dry."
    assert ReviewRevision.objects.count() == 1


@pytest.mark.django_db
def test_an_unknown_section_is_refused(incident, alice):
    with pytest.raises(ValidationError) as caught:
        save(incident, alice, 0, summary="x", blame="y")
    assert caught.value.message_dict == {"sections": ["Unknown review sections: blame."]}
    assert not IncidentReview.objects.exists()


# -- the sections each team requires, and the close rule ---------------------------------------


@pytest.mark.django_db
def test_the_close_rule_names_the_missing_required_sections_in_the_readers_language(incident, payments, alice):
    services.incident_transition(incident_id=incident.pk, by=alice, action="resolve")
    save(incident, alice, None, summary="Pool ran dry.", impact="1,200 users.")
    with pytest.raises(ValidationError) as caught:
        services.incident_transition(incident_id=incident.pk, by=alice, action="close")
    assert caught.value.message_dict == {
        "action": ["Write the review's required sections before closing: Root cause (5 whys), Lessons."]
    }
    with translation.override("zh-hans"), pytest.raises(ValidationError) as caught:
        services.incident_transition(incident_id=incident.pk, by=alice, action="close")
    assert caught.value.message_dict == {"action": ["关闭前请写完复盘的必填部分：根因（5 个为什么），经验教训。"]}

    # The team asks for other sections: the rule follows.
    services.team_update(team_id=payments.pk, changes={"review_required_sections": ["went_well", "summary"]})
    incident.refresh_from_db()
    assert selectors.review_missing_sections(incident=incident) == ["went_well"]
    save(incident, alice, None, went_well="Rollback took 4 minutes.")
    assert services.incident_transition(incident_id=incident.pk, by=alice, action="close").status == "closed"


@pytest.mark.django_db
def test_a_team_names_only_known_sections(payments):
    assert payments.review_required_sections == ["summary", "impact", "root_cause", "lessons"]
    with pytest.raises(ValidationError) as caught:
        services.team_update(team_id=payments.pk, changes={"review_required_sections": ["summary", "blame"]})
    assert list(caught.value.message_dict) == ["review_required_sections"]


# -- awaiting review ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_incidents_awaiting_review_oldest_first_with_what_is_missing(payments, alice, django_assert_num_queries):
    risk = TeamFactory(name="Risk", slug="risk", review_required_sections=["summary"])
    cashier, riskctl = SystemFactory(code="cashier", team=payments), SystemFactory(code="riskctl", team=risk)

    def recovered(system, days, **extra):
        return IncidentFactory(
            systems=[system],
            occurred_at=NOW - timedelta(days=days, hours=1),
            recovered_at=NOW - timedelta(days=days),
            **extra,
        )

    nothing = recovered(cashier, 5)
    written = recovered(cashier, 2, resolved_at=NOW - timedelta(days=1))
    write_review(written)
    risk_impact_only = recovered(riskctl, 3)
    save(risk_impact_only, alice, 0, impact="Some.")
    IncidentFactory(systems=[riskctl], occurred_at=NOW - timedelta(days=9))  # open: not yet
    closed = recovered(cashier, 8)
    write_review(closed)
    services.incident_transition(incident_id=closed.pk, by=alice, action="close")
    no_cause = recovered(cashier, 1)
    write_review(no_cause, root_cause="   ")

    with django_assert_num_queries(4):  # the teams, the incidents, their systems, the written sections
        awaiting = selectors.review_gaps(list(selectors.incidents_awaiting_review()), now=NOW)
    assert [(i.pk, i.missing_sections, i.waiting, i.team.slug) for i in awaiting] == [
        (nothing.pk, ["summary", "impact", "root_cause", "lessons"], timedelta(days=5), "payments"),
        (risk_impact_only.pk, ["summary"], timedelta(days=3), "risk"),
        (no_cause.pk, ["root_cause"], timedelta(days=1), "payments"),
    ]
    assert [i.pk for i in selectors.incidents_awaiting_review(teams=[risk])] == [risk_impact_only.pk]


# -- drafts and export ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_impact_draft_is_the_facts(incident):
    assert reviews.impact_draft(incident) == (
        "- Affected users: 1,200\n"
        "- Affected transactions: 345\n"
        "- Funds loss: 678.90\n"
        "- Availability impact: 25.0 %\n"
        "- Duration (occurred to recovered): 1 h"
    )
    with translation.override("zh-hans"):
        assert reviews.impact_draft(incident).splitlines()[0] == "- 影响用户：1,200"


@pytest.mark.django_db
def test_the_timeline_draft_merges_the_timeline_and_the_alerts_in_order(incident, alice):
    services.timeline_note_add(incident_id=incident.pk, by=alice, text="Rolling back.")
    alerts = [(NOW - timedelta(hours=2, minutes=59), "PoolExhausted pool at 100%")]
    draft = reviews.timeline_draft(incident, alerts=alerts)
    # Logged at NOW (10:00 in Shanghai), the alert at 07:01, the note at NOW.
    lines = draft.splitlines()
    assert lines[0] == "- 2026-11-20 07:01:00 Alert: PoolExhausted pool at 100%"
    assert lines[-1] == "- 2026-11-20 10:00:00 Rolling back."
    assert any(line.startswith("- 2026-11-20 10:00:00 Logged: ") for line in lines)


@pytest.mark.django_db
def test_the_markdown_export_has_every_section_in_order(incident, alice):
    write_review(incident, by=alice, went_well="Rollback took 4 minutes.")
    text = reviews.review_markdown(incident)
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings == [
        "## Summary",
        "## Impact",
        "## Timeline",
        "## Detection",
        "## Response",
        "## Root cause (5 whys)",
        "## What went well",
        "## What went badly",
        "## Lessons",
        "## Action items",
    ]
    assert text.startswith(f"# Review: #{incident.pk} Cashier pool exhausted\n")
    assert "## What went well\n\nRollback took 4 minutes.\n\n## What went badly\n\n_Not written._" in text
    assert REVIEW["root_cause"] in text
    with translation.override("zh-hans"):
        assert "## 根因（5 个为什么）" in reviews.review_markdown(incident)


@pytest.mark.django_db
def test_the_markdown_export_keeps_markdown_and_shows_html_as_text(incident, alice):
    write_review(incident, by=alice, lessons="- **Alert** on pool usage\n<script>alert(1)</script>")
    assert "- **Alert** on pool usage\n&lt;script>alert(1)&lt;/script>" in reviews.review_markdown(incident)


# -- migration 0006 -----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_migration_0006_makes_each_old_review_the_summary_section():
    before = [("incidents", "0005_structured_timeline_roles")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    team = old.get_model("incidents", "Team").objects.create(name="Payments", slug="payments")
    policy = old.get_model("incidents", "SeverityPolicy").objects.create(version=99, rules={}, recovery_targets={})
    Incident = old.get_model("incidents", "Incident")
    common = {
        "team": team,
        "detection_source": "monitoring",
        "occurred_at": NOW,
        "detected_at": NOW,
        "level": "C",
        "classified_level": "C",
        "severity_policy": policy,
        "recovery_target": timedelta(hours=1),
    }
    reviewed = Incident.objects.create(title="Reviewed", review="复盘：主键字段可为空", closed_at=NOW, **common)
    Incident.objects.create(title="Not reviewed", review="  ", **common)

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    (section,) = IncidentReviewSection.objects.all()
    assert (section.review.incident_id, section.key, section.text, section.version, section.updated_at) == (
        reviewed.pk,
        "summary",
        "复盘：主键字段可为空",
        1,
        NOW,
    )
    assert list(section.revisions.values_list("version", "text")) == [(1, "复盘：主键字段可为空")]
    assert section.review.version == 1
