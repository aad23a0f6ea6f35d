"""The narrative (stability.report_narrative): the report a manager sends upward, on the golden November
(tests/stability/test_report_golden.py, every figure worked by hand there), in English and in Chinese;
the same narrative from a report rebuilt from its JSON; the human units of every presenter.

The golden figures used below (all teams, November 2026, as of 2026-11-30T15:58Z):
- incidents A/B 1, C/D 4, 1 unrecovered; MTTR 2,040 s = 34 min, October 1,200 s = 20 min (+840 s = 14 min);
- follow-up 5 of 8 in time = 62.5 %, October 50.0 % (+12.5 pp); missed 3;
- by team: risk 3/4 = 75.0 %, payments 2/4 = 50.0 %, quiet no alerts;
- rules: 支付成功率下降 2 of 4 missed, 风控延迟 1 of 4;
- availability: cashier (收银台, P0) 99.953703, payout (代付) 99.933333, ledger (账务) 99.861111, targets
  99.99 %; budget consumed 4.629630, 6.666667, 13.888889;
- recovery target: 3 of 4 recovered within, the B one (I2) not;
- health: quiet 1000.0 (October 1000.0), risk 677.5 (750.0), payments 431.7 (950.0);
- items: 1 of 4 on time; overdue 补充监控报警 (alice, 10 days), 主键改为非空 (bob, 5 days);
  0 of 4 recovered incidents closed;
- detection: monitoring 60.0 %, customers 40.0 % (2 of 5).
"""

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import translation

from incidents import periods
from incidents.models import Incident, Team
from stability import report_narrative, report_sections
from stability.report_narrative import markdown, narrative, title
from stability.report_pdf import summary_lines
from stability.reports import Report, build_report, report_json, year_to_date
from tests.stability.test_report_golden import NOVEMBER, NOW, golden  # noqa: F401

pytestmark = pytest.mark.django_db


@pytest.fixture
def report(golden):  # noqa: F811
    return build_report(period=NOVEMBER, now=NOW)


def texts(report, language: str) -> dict[str, list[str]]:
    with translation.override(language):
        return {paragraph.key: [line.plain() for line in paragraph.lines] for paragraph in narrative(report)}


def test_the_narrative_in_english(report, golden):  # noqa: F811
    told = texts(report, "en")
    assert list(told) == ["operation", "events", "health", "focus", "closed_loop"]
    # YTD: [2026-01-01, 2026-12-01) local = 334 days = 28,857,600 s; cashier down 15:50-16:20 on Oct 31
    # (I0 and I1 overlapping) = 1,800 s: 100 - 100 x 1,800 / 28,857,600 = 99.99376.. -> 99.993 %.
    assert told["operation"] == [
        "Incidents: A/B-level 1, C/D-level 4. 1 not yet recovered.",
        "MTTR 34 min. Up 14 min from 20 min in the previous period.",
        "5-minute alert follow-up rate 62.5 % (5 of 8 alerts followed up in time). "
        "Up 12.5 pp from 50.0 % in the previous period.",
        "Found by monitoring 60.0 %, by customers 40.0 %.",
        "收银台 (cashier): availability 99.953 %, below its target of 99.99 %; year to date 99.993 %.",
    ]
    assert len(told["events"]) == 5 and told["events"][0].startswith("11-01 00:00 收银台支付失败")
    # Ranks in October: quiet 1,000.0, payments 950.0, risk 750.0.
    assert told["health"] == [
        "Quiet (quiet): score 1000.0, rank 1 of 3. As in the previous period (1000.0, rank 1).",
        "Risk (risk): score 677.5, rank 2 of 3. Down 72.5 from 750.0, rank 3 in the previous period.",
        "Payments (payments): score 431.7, rank 3 of 3. Down 518.3 from 950.0, rank 2 in the previous period.",
    ]
    # Budget used: 13.888889 -> 1,388.9 %, 6.666667 -> 666.7 %, 4.629630 -> 463.0 %.
    assert told["focus"] == [
        "5-minute alert follow-up rate 62.5 %: 3 of 8 alerts not followed up within 5 min. The target is 95.0 %.",
        "Payments (payments): follow-up rate 50.0 %, 2 of 4 missed.",
        "Risk (risk): follow-up rate 75.0 %, 1 of 4 missed.",
        "支付成功率下降: 2 of 4 alerts missed.",
        "风控延迟: 1 of 4 alerts missed.",
        "账务 (ledger): availability 99.861 %, below its target of 99.99 %: 1388.9 % of the error budget used.",
        "代付 (payout): availability 99.933 %, below its target of 99.99 %: 666.7 % of the error budget used.",
        "收银台 (cashier): availability 99.953 %, below its target of 99.99 %: 463.0 % of the error budget used.",
        "1 of 4 recovered incidents took longer than their level's recovery target (level B: 1).",
        "MTTR rose from 20 min to 34 min.",
        "2 closed-loop items overdue, the oldest by 10 days.",
        "Payments (payments): health score down 518.3 to 431.7.",
        "Risk (risk): health score down 72.5 to 677.5.",
        "1 incident not yet recovered.",
        "2 of 5 incidents were first reported by customers.",
    ]
    i1 = Incident.objects.get(title="收银台支付失败").pk
    i5 = Incident.objects.get(title="对账文件缺失236条").pk
    assert told["closed_loop"] == [
        "Items due in the period done on time: 1 of 4 (25.0 %).",
        "Overdue: 2 (alice 1, bob 1).",
        "Incidents closed: 0 of 4 recovered (0.0 %).",
        f"补充监控报警: owner alice, 10 days overdue, incident #{i1}.",
        f"主键改为非空: owner bob, 5 days overdue, incident #{i5}.",
        # cashier is the golden month's one P0 system; no drill was held in 2026-Q4
        "Drills held in 2026-Q4 covered 0 of 1 P0 systems (0.0 %). Not drilled: cashier.",
    ]


def test_the_narrative_in_chinese(report):
    told = texts(report, "zh-hans")
    assert told["operation"][:3] == [
        "事故数：AB级 1 次，CD级 4 次。其中 1 起尚未恢复。",
        "平均恢复时长（MTTR）34 分钟。较上期 20 分钟 上升 14 分钟。",
        "报警5分钟跟进率 62.5 %（8 条报警中 5 条及时跟进）。较上期 50.0 % 上升 12.5 个百分点。",
    ]
    assert told["operation"][-1] == "收银台（cashier）：可用性 99.953 %，低于目标 99.99 %；年度可用性 99.993 %。"
    assert (
        told["health"][2]
        == "Payments（payments）：健康分 431.7，排名第 3（共 3 个团队）。较上期 950.0（第 2 名） 下降 518.3。"
    )
    assert told["focus"][0] == "报警5分钟跟进率 62.5 %：8 条报警中 3 条未在 5 分钟内跟进。目标为 95.0 %。"
    assert "报警5分钟跟进率" in told["focus"][0]
    assert told["closed_loop"][:2] == [
        "本期到期的闭环项按时完成 1 / 4（25.0 %）。",
        "逾期 2 项（alice 1 项，bob 1 项）。",
    ]
    with translation.override("zh-hans"):
        headings = [paragraph.heading for paragraph in narrative(report)]
    assert headings == ["系统运行数据", "生产稳定性事件", "健康分", "重点跟进", "闭环进展"]


def test_a_report_rebuilt_from_its_json_narrates_the_same(report):
    """A published report is rebuilt from its JSON (stability.published): no query, the same words."""
    figures = report_json(report)
    rebuilt = Report(
        period=report.period,
        team=None,
        system=None,
        generated_at=report.generated_at,
        **{cls.key: cls(figures[cls.key]) for cls in report_sections.SECTIONS},
    )
    with CaptureQueriesContext(connection) as queries:
        for language in ("en", "zh-hans"):
            assert texts(rebuilt, language) == texts(report, language)
            assert markdown(rebuilt, language=language) == markdown(report, language=language)
    assert len(queries) == 0


def test_focus_says_nothing_when_nothing_stands_out(report):
    """Rebuilt with every figure on target and none falling: focus is empty, and says so."""
    quiet = replace(
        report,
        headline=report_sections.Headline(
            {
                **report.headline.figures,
                "follow_up_rate": 0.96,
                "follow_up_rate_change": 0.0,
                "mttr_change_seconds": 0,
                "unrecovered": 0,
            }
        ),
        alerts=report_sections.Alerts({**report.alerts.figures, "by_team": [], "worst_missed_rules": []}),
        availability=report_sections.Availability(
            {
                **report.availability.figures,
                "systems": [dict(row, met=True) for row in report.availability.figures["systems"]],
            }
        ),
        recovery=report_sections.Recovery(
            {
                **report.recovery.figures,
                "recovery_target_compliance": {"rate": 1.0, "within_target": 4, "recovered": 4, "by_level": {}},
            }
        ),
        closed_loop=report_sections.ClosedLoop(
            {**report.closed_loop.figures, "overdue": {"count": 0, "items": [], "by_owner": [], "by_team": []}}
        ),
        health=report_sections.Health(
            {**report.health.figures, "teams": [dict(row, change="0.0") for row in report.health.figures["teams"]]}
        ),
        detection=report_sections.Detection(
            {**report.detection.figures, "by_detection_source": {"monitoring": 5, "customer": 0}}
        ),
    )
    with translation.override("en"):
        (focus,) = [p for p in narrative(quiet) if p.key == "focus"]
    assert focus.lines == () and focus.empty == "Nothing stands out: every figure is on target and none fell."
    # The follow-up rate falling is a focus even above the target: 96.0 %, 0.4 pp below the month before.
    fell = replace(
        quiet,
        headline=report_sections.Headline(
            {**quiet.headline.figures, "follow_up_rate_change": -0.004, "previous_follow_up_rate": 0.964}
        ),
    )
    with translation.override("en"):
        (focus,) = [p for p in narrative(fell) if p.key == "focus"]
    assert [line.plain() for line in focus.lines] == [
        "5-minute alert follow-up rate 96.0 %: 3 of 8 alerts not followed up within 5 min. "
        "Down 0.4 pp from 96.4 % in the previous period."
    ]
    assert focus.lines[0].target == report_narrative.Target(report_narrative.MISSED_ALERTS)


def test_targets_and_limits(report):
    paragraphs = {p.key: p for p in narrative(report, limit=2)}
    events = paragraphs["events"]
    # Two of five shown; where all of them are.
    assert (len(events.lines), events.total, events.more) == (2, 5, 3)
    assert events.everything == report_narrative.Target(report_narrative.INCIDENTS)
    first = Incident.objects.get(title="收银台支付失败")
    assert events.lines[0].target == report_narrative.Target(report_narrative.INCIDENT, id=first.pk)
    assert paragraphs["focus"].lines[1].target.filters == (("team", "payments"),)


def test_titles_of_weeks_and_months():
    week = periods.parse("2026-W48")
    with translation.override("en"):
        assert title(week) == "Weekly report 2026-W48 (Nov 23 – Nov 29)"
        assert title(periods.parse("2026-11")) == "Monthly report 2026-11"
        assert title(periods.parse("2026-Q4")) == "Stability report 2026-Q4"
        # ISO week 1 of 2027 starts on Monday 2027-01-04; 2026 has 53 weeks (Dec 28, 2026 - Jan 3, 2027).
        assert title(periods.parse("2026-W53")) == "Weekly report 2026-W53 (Dec 28 – Jan 3)"
    with translation.override("zh-hans"):
        assert title(week) == "周报 2026-W48（11-23 – 11-29）"
        assert title(periods.parse("2026-11")) == "月报 2026-11"


def test_year_to_date_spans_from_january_first_of_the_periods_year():
    zone = periods.parse("2026-11").start.tzinfo
    span = year_to_date(periods.parse("2026-11"))
    assert (span.start, span.end) == (datetime(2026, 1, 1, tzinfo=zone), datetime(2026, 12, 1, tzinfo=zone))
    # A week across the new year: from January 1 of the year it starts in, to its end.
    span = year_to_date(periods.parse("2026-W53"))
    assert (span.start, span.end) == (datetime(2026, 1, 1, tzinfo=zone), datetime(2027, 1, 4, tzinfo=zone))
    # Cut in Asia/Shanghai: January 1 00:00 local is Dec 31 16:00Z.
    assert year_to_date(periods.parse("2027-01")).start == datetime(2026, 12, 31, 16, tzinfo=UTC)


def test_year_to_date_availability_in_the_json(report):
    year = report_json(report)["availability"]["year_to_date"]
    assert year["label"] == "2026-01-01..2026-11-30"
    # P0 systems only: cashier. 1,800 s down of 28,857,600 s (see test_the_narrative_in_english).
    assert [(row["system"], row["name"], row["downtime_seconds"]) for row in year["systems"]] == [
        ("cashier", "收银台", "1800")
    ]
    assert Decimal(year["systems"][0]["availability"]) == Decimal("99.993762")
    head = report_json(report)["headline"]
    assert (head["lowest_p0_system_name"], head["lowest_p0_year_to_date_availability"]) == ("收银台", "99.993762")


def test_a_teams_rank_is_among_every_team(golden):  # noqa: F811
    payments = build_report(period=NOVEMBER, now=NOW, team=golden["payments"])
    (row,) = payments.health.figures["teams"]
    # payments is third of the three teams (quiet 1000.0, risk 677.5, payments 431.7), second in October.
    assert (row["team"], row["rank"], row["previous_rank"], payments.health.figures["teams_ranked"]) == (
        "payments",
        3,
        2,
        3,
    )
    # The alert groups carry the names of their team and system.
    assert [(g["key"], g["name"]) for g in payments.alerts.figures["by_team"]] == [("payments", "Payments")]
    assert [(g["key"], g["name"]) for g in payments.alerts.figures["by_system"]] == [
        ("cashier", "收银台"),
        ("payout", "代付"),
    ]


def test_human_units_everywhere_but_the_json(report):
    column = {c.key: c for c in report_sections.Availability.SYSTEM}
    with translation.override("en"):
        assert report_sections.shown(column["measured_seconds"], "2592000") == "30 d"
        assert report_sections.shown(column["downtime_seconds"], "3271.2") == "54 min 31 s"
        assert report_sections.shown(column["availability"], "99.864907") == "99.864 %"
        # Never rounded up: 99.99996 % of a month is not 100 %.
        assert report_sections.shown(column["availability"], "99.999960") == "99.999 %"
        assert report_sections.shown(column["target"], "99.990") == "99.99 %"
        assert report_sections.shown(column["budget_consumed"], "4.629630") == "463.0 %"
        head = {c.key: c for c in report_sections.Headline.COLUMNS}
        assert report_sections.shown(head["follow_up_rate_change"], 0.022) == "+2.2 pp"
        assert report_sections.shown(head["follow_up_rate_change"], -0.125) == "-12.5 pp"
        assert report_sections.shown(head["mttr_change_seconds"], 840) == "+14 min"
    with translation.override("zh-hans"):
        assert report_sections.shown(head["follow_up_rate_change"], 0.022) == "+2.2 个百分点"
    # The JSON keeps the machine's values.
    figures = report_json(report)
    assert figures["availability"]["systems"][0]["availability"] == "99.953703"
    assert figures["headline"]["mttr_seconds"] == 2040


def test_markdown_is_the_narrative_then_the_appendix(report):
    english = markdown(report, language="en")
    lines = english.splitlines()
    assert lines[0] == "# Monthly report 2026-11"
    headings = [line for line in lines if line.startswith("## ")]
    assert headings == [
        "## System operation",
        "## Production stability events",
        "## Health score",
        "## Focus",
        "## Closed-loop progress",
        "## Appendix",
    ]
    assert "- Incidents: A/B-level 1, C/D-level 4. 1 not yet recovered." in lines
    assert (
        "1. 5-minute alert follow-up rate 62.5 %: 3 of 8 alerts not followed up within 5 min. The target is 95.0 %."
        in lines
    )
    # The appendix in human units, no raw seconds, no internal field names.
    assert (
        "| 收银台 | cashier | P0 – core money path | payments | 30 d | 29 d 23 h | 2 | 20 min | 99.953 % |" in english
    )
    assert "2592000" not in english and "Numerator" not in english
    chinese = markdown(report, language="zh-hans")
    assert chinese.splitlines()[0] == "# 月报 2026-11"
    assert "## 重点跟进" in chinese and "## 附录" in chinese


def test_the_email_summary_is_the_narrative(report):
    with translation.override("en"):
        lines = summary_lines(report)
    assert lines[0] == "Monthly report 2026-11"
    assert lines[1] == "System operation"
    assert "- Incidents: A/B-level 1, C/D-level 4. 1 not yet recovered." in lines
    # The focus has 15 lines: the first 10 and what is left out.
    focus = lines.index("Focus")
    assert lines[focus + 10].startswith("10. ") and lines[focus + 11] == "… and 5 more: see the report."


def test_an_empty_month_narrates_without_a_figure(golden):  # noqa: F811
    empty = build_report(period=periods.month(2025, 3), now=NOW)
    with translation.override("en"):
        told = {p.key: p for p in narrative(empty)}
    assert [line.plain() for line in told["operation"].lines][:3] == [
        "Incidents: A/B-level 0, C/D-level 0.",
        "MTTR: no incident recovered in the period.",
        "5-minute alert follow-up rate: no alert counted in the period.",
    ]
    assert told["events"].lines == () and told["events"].empty == "No incident in this period."
    assert [line.plain() for line in told["closed_loop"].lines] == [
        "No closed-loop item came due in the period.",
        "No item is overdue.",
        "Drills held in 2025-Q1 covered 0 of 1 P0 systems (0.0 %). Not drilled: cashier.",
    ]
    assert Team.objects.count() == len(told["health"].lines)
