"""Published reports (stability.published): frozen snapshots, revisions per scope, and "revised since
publication" worked out by hand.

November 2026 in Asia/Shanghai is [2026-10-31T16:00Z, 2026-11-30T16:00Z). The records are written on
2026-12-10 (AFTER), the report is published an hour later, records change an hour after that, and the
published report is opened an hour later still.
"""

import threading
from datetime import timedelta

import pytest
import time_machine
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext

from incidents import periods
from incidents.models import ActionItem, Incident, Tier
from incidents.services import incident_update
from stability import published as publishing
from stability import report_pdf
from stability.models import AlertOccurrence, PublishedReport
from stability.published import frozen_report, publish, publish_delivered, revisions
from stability.reports import build_report, report_json, report_markdown
from tests.conftest import needs_postgres, seed_severity_policy
from tests.factories import ActionItemFactory, IncidentFactory, SystemFactory, TeamFactory, UserFactory
from tests.stability.test_health_score import AFTER, NOV_4, alerts, incident, utc

pytestmark = pytest.mark.django_db
NOVEMBER = periods.month(2026, 11)
PUBLISHED = AFTER + timedelta(hours=1)
EDITED = AFTER + timedelta(hours=2)
OPENED = AFTER + timedelta(hours=3)


def at(moment):
    return time_machine.travel(moment, tick=False)


@pytest.fixture
def november():
    return make_november()


def make_november() -> dict:
    """Payments, November: on the P0 cashier, A (60 min) on 11-02 and B (20 min) on 11-10: MTTR
    (3,600 + 1,200) / 2 = 2,400 s; two alerts, one followed up in 60 s, one never: rate 1/2; one item
    due 11-20, still open: overdue. October: one 30-minute incident. Accounts: one November incident."""
    payments = TeamFactory(slug="payments", name="Payments")
    accounts = TeamFactory(slug="accounts", name="Accounts")
    cashier = SystemFactory(code="cashier", name="收银台", tier=Tier.P0, team=payments)
    portal = SystemFactory(code="portal", name="Portal", tier=Tier.P2, team=accounts)
    first = incident(cashier, utc(2026, 11, 2, 2), 60, title="支付失败")
    second = incident(cashier, utc(2026, 11, 10, 2), 20, title="Slow cashier")
    october = incident(cashier, utc(2026, 10, 20, 2), 30, title="October one")
    other = incident(portal, utc(2026, 11, 12, 2), 10, title="Portal")
    alerts(payments, 60, None)
    with at(AFTER):
        item = ActionItemFactory(incident=first, due_at=utc(2026, 11, 20), title="补充监控")
    return {
        "payments": payments,
        "accounts": accounts,
        "cashier": cashier,
        "first": first,
        "second": second,
        "october": october,
        "other": other,
        "item": item,
    }


def publish_november(team=None, *, by=None, moment=PUBLISHED) -> PublishedReport:
    with at(moment):
        return publish(build_report(period=NOVEMBER, team=team), by=by)


def open_at(published: PublishedReport, moment=OPENED):
    with at(moment):
        return revisions(PublishedReport.objects.get(pk=published.pk))


def recover_at(incident: Incident, moment, *, edited=EDITED):
    with at(edited):
        incident_update(incident_id=incident.pk, by=None, expected_version=None, changes={"recovered_at": moment})


def logged(system, occurred_at, minutes: int, **fields) -> Incident:
    """An incident logged now (the moment travelled to), after the fact."""
    return IncidentFactory(
        systems=[system], occurred_at=occurred_at, recovered_at=occurred_at + timedelta(minutes=minutes), **fields
    )


def by_measure(changes) -> dict:
    return {(change.measure, change.subject): change for change in changes}


def test_publishing_freezes_the_report_as_report_json_gives_it(november):
    manager = UserFactory(username="mia", role="manager")
    with at(PUBLISHED):
        report = build_report(period=NOVEMBER, team=november["payments"])
        published = publish(report, by=manager)
    assert (published.period, published.period_kind, published.revision) == ("2026-11", "month", 1)
    assert (published.team, published.published_by, published.reason) == (november["payments"], manager, "manual")
    assert (published.period_start, published.period_end) == (NOVEMBER.start, NOVEMBER.end)
    assert published.published_at == PUBLISHED
    published.refresh_from_db()
    assert published.snapshot == publishing._stored(report_json(report))
    assert published.snapshot["headline"]["mttr_seconds"] == 2400


def test_the_frozen_report_is_rebuilt_without_a_query_and_presents_as_sent(november, django_assert_num_queries):
    published = publish_november(november["payments"])
    published = PublishedReport.objects.select_related("team").get(pk=published.pk)
    with django_assert_num_queries(0):
        frozen = frozen_report(published)
        again = report_json(frozen)
        page = report_pdf.context(frozen)
        markdown = report_markdown(frozen, language="en")
    assert again == published.snapshot
    assert frozen.period == NOVEMBER and frozen.team.name == "Payments" and frozen.team.slug == "payments"
    assert page["report"] is frozen
    assert "Slow cashier" in markdown and "支付失败" in markdown


def test_the_frozen_report_keeps_the_names_it_was_sent_with(november):
    published = publish_november(november["payments"])
    november["payments"].name = "Payments & Cards"
    november["payments"].save()
    frozen = frozen_report(PublishedReport.objects.get(pk=published.pk))
    assert frozen.team.name == "Payments"


def test_nothing_changed_nothing_revised(november):
    published = publish_november(november["payments"])
    assert open_at(published) == []


def test_an_edit_of_recovered_at_is_revised_with_mttr_worked_by_hand(november):
    published = publish_november(november["payments"])
    # B recovers after 40 min instead of 20: MTTR (3,600 + 2,400) / 2 = 3,000 s, was 2,400.
    recover_at(november["second"], utc(2026, 11, 10, 2, 40))
    changes = by_measure(open_at(published))
    mttr = changes[("mttr_seconds", "")]
    assert (mttr.published, mttr.current) == (2400, 3000)
    assert mttr.records == {"incidents": [november["second"].pk]}
    assert mttr.label == "MTTR"
    # Cashier down 60 + 20 = 80 min (4,800 s) of November's 2,592,000 s, now 60 + 40 = 100 min (6,000 s):
    # 100 - 100 x 4,800 / 2,592,000 = 99.814814..., 100 - 100 x 6,000 / 2,592,000 = 99.768518... (6 places, down).
    availability = changes[("availability", "收银台")]
    assert (availability.published, availability.current) == ("99.814814", "99.768518")
    assert availability.label == "Availability · 收银台"
    assert availability.records == {"incidents": [november["second"].pk]}
    # Kept on the row: the next opening answers it without building the report again.
    stored = PublishedReport.objects.get(pk=published.pk)
    assert {entry["measure"] for entry in stored.revised} >= {"mttr_seconds", "availability"}
    assert stored.revised_checked_at == OPENED


def test_an_older_incident_imported_into_the_period_shows_up(november):
    published = publish_november(november["payments"])
    # Logged after publication, occurred on 11-20: 30 min. Incidents 2 -> 3; MTTR (3,600 + 1,200 + 1,800) / 3.
    with at(EDITED):
        imported = logged(november["cashier"], utc(2026, 11, 20, 2), 30, title="Found later")
    changes = by_measure(open_at(published))
    assert (changes[("incidents", "")].published, changes[("incidents", "")].current) == (2, 3)
    assert (changes[("mttr_seconds", "")].published, changes[("mttr_seconds", "")].current) == (2400, 2200)
    assert changes[("incidents", "")].records == {"incidents": [imported.pk]}


def test_a_deleted_incident_shows_up(november):
    published = publish_november(november["payments"])
    removed = november["second"].pk
    with at(EDITED):
        Incident.objects.filter(pk=removed).delete()
    changes = by_measure(open_at(published))
    # Only A is left: 1 incident, MTTR 3,600 s.
    assert (changes[("incidents", "")].published, changes[("incidents", "")].current) == (2, 1)
    assert (changes[("mttr_seconds", "")].published, changes[("mttr_seconds", "")].current) == (2400, 3600)
    assert changes[("mttr_seconds", "")].records == {"incidents": [removed]}


def test_an_edit_outside_the_period_is_no_revision(november, monkeypatch):
    published = publish_november(november["payments"])
    # October's incident is read (it may run into November), and changes nothing of November's figures.
    recover_at(november["october"], utc(2026, 10, 20, 2, 50))
    assert open_at(published) == []
    # December's is not even read: the report is not built again.
    with at(EDITED):
        logged(november["cashier"], utc(2026, 12, 5, 2), 30)
    monkeypatch.setattr(publishing, "build_report", _must_not_build)
    assert open_at(published, OPENED + timedelta(hours=1)) == []


def test_another_teams_edit_is_not_read_by_a_teams_report(november, monkeypatch):
    published = publish_november(november["payments"])
    recover_at(november["other"], utc(2026, 11, 12, 2, 30))
    monkeypatch.setattr(publishing, "build_report", _must_not_build)
    assert open_at(published) == []


def test_the_all_teams_report_sees_every_teams_edit(november):
    published = publish_november()
    assert published.team is None
    # Portal's incident: 10 -> 30 min. MTTR of the three November incidents (3,600 + 1,200 + 600) / 3 = 1,800,
    # now (3,600 + 1,200 + 1,800) / 3 = 2,200.
    recover_at(november["other"], utc(2026, 11, 12, 2, 30))
    mttr = by_measure(open_at(published))[("mttr_seconds", "")]
    assert (mttr.published, mttr.current, mttr.records) == (1800, 2200, {"incidents": [november["other"].pk]})


def test_an_alert_of_the_period_received_later_revises_the_follow_up_rate(november):
    published = publish_november(november["payments"])
    # A third alert, followed up in 30 s: 2 of 3 in time, was 1 of 2.
    with at(EDITED):
        alerts(november["payments"], 30, received_at=NOV_4 + timedelta(hours=1))
    added = AlertOccurrence.objects.latest("pk").pk
    changes = by_measure(open_at(published))
    rate = changes[("follow_up_rate", "")]
    assert (rate.published, rate.current) == (0.5, round(2 / 3, 9))
    assert rate.records == {"alerts": [added]}


def test_an_item_done_revises_the_closed_loop_figures(november):
    published = publish_november(november["payments"])
    item = november["item"]
    with at(EDITED):
        item.status, item.completed_at = ActionItem.Status.DONE, utc(2026, 11, 19)
        item.version += 1
        item.save()
    changes = by_measure(open_at(published))
    # Due 11-20, done 11-19: on time 1 of 1, was 0 of 1 (overdue); overdue 1 -> 0.
    assert (changes[("on_time_completion_rate", "")].published, changes[("on_time_completion_rate", "")].current) == (
        0.0,
        1.0,
    )
    assert (changes[("overdue_items", "")].published, changes[("overdue_items", "")].current) == (1, 0)
    assert changes[("overdue_items", "")].records == {"action_items": [{"id": item.pk, "incident": item.incident_id}]}


def _must_not_build(**kwargs):
    raise AssertionError("the report was built again though nothing changed")


def test_opening_builds_nothing_while_nothing_changed_in_a_constant_number_of_queries(november, monkeypatch):
    busy = publish_november(november["payments"])
    with at(PUBLISHED):
        empty = publish(build_report(period=periods.month(2026, 6), team=november["payments"]))
    monkeypatch.setattr(publishing, "build_report", _must_not_build)
    counts = []
    for published, moment in ((busy, OPENED), (empty, OPENED), (busy, OPENED + timedelta(minutes=1))):
        published = PublishedReport.objects.get(pk=published.pk)
        with at(moment), CaptureQueriesContext(connection) as queries:
            assert revisions(published) == []
        counts.append(len(queries))
    # The incidents' and the items' signatures, the alerts changed since, and moving the check forward (one
    # conditional statement, whether it updates the row or not: a minute later it does not).
    assert counts == [4, 4, 4]
    assert PublishedReport.objects.get(pk=busy.pk).revised_checked_at == OPENED


def test_an_edit_after_a_quiet_check_still_shows_up(november):
    published = publish_november(november["payments"])
    assert open_at(published) == []
    recover_at(november["second"], utc(2026, 11, 10, 2, 40), edited=OPENED + timedelta(hours=1))
    changes = by_measure(open_at(published, OPENED + timedelta(hours=2)))
    assert (changes[("mttr_seconds", "")].published, changes[("mttr_seconds", "")].current) == (2400, 3000)


def test_the_changes_found_are_answered_again_without_building(november, monkeypatch):
    published = publish_november(november["payments"])
    recover_at(november["second"], utc(2026, 11, 10, 2, 40))
    first = open_at(published)
    monkeypatch.setattr(publishing, "build_report", _must_not_build)
    assert open_at(published, OPENED + timedelta(hours=1)) == first


def test_a_new_revision_is_revision_2_and_revision_1_keeps_its_figures(november):
    first = publish_november(november["payments"])
    recover_at(november["second"], utc(2026, 11, 10, 2, 40))
    second = publish_november(november["payments"], moment=EDITED + timedelta(minutes=30))
    assert (first.revision, second.revision) == (1, 2)
    assert second.snapshot["headline"]["mttr_seconds"] == 3000
    assert open_at(second) == []
    old = PublishedReport.objects.get(pk=first.pk)
    assert frozen_report(old).headline.figures["mttr_seconds"] == 2400
    assert by_measure(open_at(old))[("mttr_seconds", "")].current == 3000
    assert [r.revision for r in publishing.scope_revisions(old)] == [1, 2]


def test_revisions_are_numbered_per_period_and_scope(november):
    assert publish_november(november["payments"]).revision == 1
    assert publish_november().revision == 1  # all teams: a scope of its own
    assert publish_november().revision == 2
    assert publish_november(november["accounts"]).revision == 1
    with at(PUBLISHED):
        assert publish(build_report(period=periods.iso_week(2026, 48), team=november["payments"])).revision == 1


def test_a_report_of_one_system_is_not_published(november):
    with at(PUBLISHED), pytest.raises(ValueError):
        publish(build_report(period=NOVEMBER, system=november["cashier"]))
    assert not PublishedReport.objects.exists()


def test_a_delivery_publishes_once_per_figures(november):
    with at(PUBLISHED):
        report = build_report(period=NOVEMBER, team=november["payments"])
        first = publish_delivered(report)
        # The same report to another destination, and the same figures built again a minute later.
        assert publish_delivered(report).pk == first.pk
    with at(PUBLISHED + timedelta(minutes=1)):
        assert publish_delivered(build_report(period=NOVEMBER, team=november["payments"])).pk == first.pk
    assert (first.revision, first.reason, first.published_by) == (1, "delivery", None)
    recover_at(november["second"], utc(2026, 11, 10, 2, 40))
    with at(OPENED):
        again = publish_delivered(build_report(period=NOVEMBER, team=november["payments"]))
    assert (again.revision, again.reason) == (2, "delivery")
    assert PublishedReport.objects.count() == 2


def test_the_digest_tells_figures_apart_and_ignores_the_moment(november):
    with at(PUBLISHED):
        one = report_json(build_report(period=NOVEMBER))
    with at(OPENED):
        two = report_json(build_report(period=NOVEMBER))
    assert one["generated_at"] != two["generated_at"]
    assert publishing.figures_digest(one) == publishing.figures_digest(two)
    two["headline"]["mttr_seconds"] += 1
    assert publishing.figures_digest(one) != publishing.figures_digest(two)


def _at_once(work, count: int) -> list:
    barrier = threading.Barrier(count)
    results, errors = [], []

    def run():
        try:
            barrier.wait(timeout=10)
            results.append(work())
        except Exception as error:  # reported below: a thread's exception would be lost
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    return results


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_publishes_get_distinct_revisions():
    seed_severity_policy()
    payments = TeamFactory(slug="payments")
    incident(SystemFactory(code="cashier", tier=Tier.P0, team=payments), utc(2026, 11, 2, 2), 60)
    with at(PUBLISHED):
        report = build_report(period=NOVEMBER, team=payments)
    published = _at_once(lambda: publish(report).revision, 4)
    assert sorted(published) == [1, 2, 3, 4]
    delivered = _at_once(lambda: publish_delivered(report).pk, 3)
    # The deliveries found revision 4's figures (the same): none published again.
    assert len(set(delivered)) == 1
    assert PublishedReport.objects.count() == 4
