"""The report a manager sends upward (汇报), in the order and words of the team's weekly report: 系统运行数据
(system operation), 生产稳定性事件 (production stability events), 健康分 (health score), 重点跟进 (focus) and
闭环 (closed-loop progress). One builder, `narrative()`, serves the page, the PDF (the page's template), the
Markdown (`markdown()`) and the email and chat summary (stability.report_pdf.summary_lines).

It reads a report's section figures and nothing else (no query, no clock): a published report rebuilt
from its JSON narrates exactly as it did when it was sent. Every figure is shown in human units
(stability.report_sections: "How a value reads").

Focus (重点跟进) lists what is worst or fell most, by these rules, in this order (docs/report.md):

1. the 5-minute follow-up rate, when below FOLLOW_UP_TARGET or lower than the previous period's;
2. the teams whose follow-up rate is below FOLLOW_UP_TARGET, lowest first (FOCUS_NAMES of them), when
   the report covers more than one team;
3. the alert rules missed most (FOCUS_NAMES of them);
4. the systems that missed their availability target, lowest availability first (FOCUS_NAMES);
5. recovered incidents that took longer than their level's recovery target, by level;
6. MTTR, when longer than the previous period's;
7. overdue closed-loop items, with the oldest one's days;
8. the teams whose health score fell, by most (FOCUS_NAMES);
9. incidents not yet recovered;
10. incidents first reported by customers.
"""

import html
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Protocol

from django.utils import dateformat, timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from incidents.durations import human_duration
from incidents.models import ActionItem, DetectionSource, System, Team, Tier
from incidents.periods import Period
from stability import report_sections
from stability.report_sections import (
    LEVELS,
    Kind,
    Table,
    availability_text,
    count_text,
    exact_percent_text,
    percent_text,
    shown,
)

FOLLOW_UP_TARGET = 0.95  # the follow-up rate below which it is a focus (rules 1 and 2)
FOCUS_NAMES = 3  # teams, rules, systems named per focus rule
OVERDUE_NAMED = 5  # overdue items and owners named in the closed-loop paragraph
SOURCES = dict(ActionItem.Source.choices)
MARKDOWN_ROWS = 10  # rows of an appendix table in the Markdown; the CSV export has them all


class Figures(Protocol):
    """What the narrative reads of a report: stability.reports.Report, or a published one rebuilt from its
    JSON (stability.published.frozen_report)."""

    period: Period
    team: Team | None
    system: System | None
    headline: report_sections.Headline
    incidents: report_sections.Incidents
    recovery: report_sections.Recovery
    alerts: report_sections.Alerts
    availability: report_sections.Availability
    closed_loop: report_sections.ClosedLoop
    health: report_sections.Health
    detection: report_sections.Detection

    @property
    def sections(self) -> tuple[report_sections.Section, ...]: ...


# --- what a narrative is ------------------------------------------------------------------------------

INCIDENT = "incident"  # one incident: `id`
ITEM = "item"  # one closed-loop item: `id`, on its `incident`'s page
INCIDENTS = "incidents"  # the incident list of the report's period and scope
MISSED_ALERTS = "missed_alerts"  # the missed alerts of the report's period and scope, `filters` narrowing
APPENDIX = "appendix"  # a table of the appendix, every row: `table`


@dataclass(frozen=True)
class Target:
    """Where a line leads. Each presenter makes its own link of it (the page a relative URL, the email one
    under SITE_URL) or leaves it out (the Markdown)."""

    kind: str
    id: int | None = None
    incident: int | None = None
    table: str = ""
    filters: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Line:
    """One line of a paragraph: `text`, about `subject` (a system, a team, an alert rule: shown first, its
    `code` after it in small print) when given."""

    text: str
    subject: str = ""
    code: str = ""
    target: Target | None = None

    def plain(self) -> str:
        """The line as plain text: `收银台（cashier）：可用性 99.953 %` / `Cashier (cashier): availability ...`."""
        if not self.subject:
            return self.text
        subject = self.subject
        if self.code and self.code != self.subject:
            subject = _("%(name)s (%(code)s)") % {"name": subject, "code": self.code}
        return subject + separator() + self.text


@dataclass(frozen=True)
class Paragraph:
    """A heading and its lines. `total`: how many lines there are in all; a paragraph built with a limit
    holds the first ones only, and `everything` says where all of them are."""

    key: str
    heading: str
    lines: tuple[Line, ...]
    total: int = 0
    numbered: bool = False
    empty: str = ""
    everything: Target | None = None

    @property
    def more(self) -> int:
        return max(self.total - len(self.lines), 0)


def separator() -> str:
    """Between a line's subject and its text: ": " (Chinese: "：")."""
    return _(": ")


def _as_is(text: str) -> str:
    return text


def _joined(*sentences: str) -> str:
    """Sentences one after another: a space between them in English, none in Chinese."""
    text = ""
    for sentence in sentences:
        if sentence:
            text = _("%(first)s %(second)s") % {"first": text, "second": sentence} if text else sentence
    return text


def _listed(parts: Iterable[str]) -> str:
    return _(", ").join(parts)


# --- titles -------------------------------------------------------------------------------------------


def _local(moment: str | datetime | None) -> datetime | None:
    if moment is None:
        return None
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return timezone.localtime(moment, timezone.get_default_timezone())


def title(period: Period) -> str:
    """The report's title: 周报 2026-W48（11-23 – 11-29） / Weekly report 2026-W48 (Nov 23 – Nov 29); 月报 2026-11 /
    Monthly report 2026-11; a quarter, a year or a range: 稳定性报告 2026-Q4 / Stability report 2026-Q4."""
    if period.kind == "week":
        first = _local(period.start)
        last = _local(period.end) - timedelta(days=1)
        pattern = _("M j")  # a day of a week's title: Nov 23 (Chinese: 11-23)
        return _("Weekly report %(period)s (%(first)s – %(last)s)") % {
            "period": period.label,
            "first": dateformat.format(first, pattern),
            "last": dateformat.format(last, pattern),
        }
    if period.kind == "month":
        return _("Monthly report %(period)s") % {"period": period.label}
    return _("Stability report %(period)s") % {"period": period.label}


def scope_name(report: Figures) -> str | None:
    """The name of the team or system the report covers; None for everyone."""
    names = []
    if report.team is not None:
        names.append(report.team.name or report.team.slug)
    if report.system is not None:
        names.append(report.system.name or report.system.code)
    return " · ".join(names) if names else None


# --- the incident line --------------------------------------------------------------------------------


def incident_line(row: dict, *, escape: Callable[[str], str] = _as_is) -> str:
    """One incident as the weekly report writes it: when, what, level and how it was found, handling,
    cause, recovery, closed loop. `escape` is applied to the user's text (markdown_text for the Markdown;
    the page's and PDF's template escapes HTML)."""
    text = _("%(when)s %(title)s [level %(level)s, found by %(found)s].") % {
        "when": _local(row["occurred_at"]).strftime(_("%m-%d %H:%M")),
        "title": escape(row["title"]),
        "level": row["level"],
        "found": dict(DetectionSource.choices).get(row["detection_source"], row["detection_source"]),
    }
    sentences = [text]
    if row["handling"]:
        sentences.append(_("Handling: %(handling)s.") % {"handling": escape(row["handling"].rstrip("。."))})
    if row["cause"]:
        sentences.append(_("Cause: %(cause)s.") % {"cause": escape(row["cause"].rstrip("。."))})
    if row["recovered_at"]:
        sentences.append(
            _("Recovered at %(at)s, after %(ttr)s.")
            % {
                "at": _local(row["recovered_at"]).strftime("%H:%M"),
                "ttr": human_duration(row["time_to_recover_seconds"]),
            }
        )
    else:
        sentences.append(_("Not yet recovered."))
    sentences.append(
        _("Closed loop: %(closed)d of %(items)d items done.")
        % {"closed": row["action_items_closed"], "items": row["action_items"]}
    )
    return _joined(*sentences)


# --- the paragraphs -----------------------------------------------------------------------------------


def _trend(change, *, amount: str, before: str) -> str:
    """How a figure moved from the previous period's: up / down by `amount` from `before`, or unchanged."""
    if change is None:
        return ""
    if change > 0:
        return _("Up %(amount)s from %(before)s in the previous period.") % {"amount": amount, "before": before}
    if change < 0:
        return _("Down %(amount)s from %(before)s in the previous period.") % {"amount": amount, "before": before}
    return _("As in the previous period (%(before)s).") % {"before": before}


def _points(change) -> str:
    """The size of a rate's change in percentage points, unsigned: 2.2 pp (2.2 个百分点)."""
    return _("%(points)s pp") % {"points": f"{abs(round(float(change) * 100, 1)):.1f}"}


def _incident_counts(head: dict) -> str:
    counts = _("Incidents: A/B-level %(ab)d, C/D-level %(cd)d.") % {"ab": head["a_b"], "cd": head["c_d"]}
    unrecovered = head["unrecovered"]
    if unrecovered:
        counts = _joined(
            counts,
            ngettext("%(count)d not yet recovered.", "%(count)d not yet recovered.", unrecovered)
            % {"count": unrecovered},
        )
    return counts


def _mttr(head: dict) -> str:
    mttr, before = head["mttr_seconds"], head["previous_mttr_seconds"]
    if mttr is None:
        return _("MTTR: no incident recovered in the period.")
    text = _("MTTR %(mttr)s.") % {"mttr": human_duration(mttr)}
    if before is None:
        return text
    change = head["mttr_change_seconds"]
    return _joined(text, _trend(change, amount=human_duration(abs(change)), before=human_duration(before)))


def _follow_up(report: Figures) -> str:
    head, overall = report.headline.figures, report.alerts.figures["overall"]
    if head["follow_up_rate"] is None:
        return _("5-minute alert follow-up rate: no alert counted in the period.")
    text = _("5-minute alert follow-up rate %(rate)s (%(in_time)s of %(counted)s alerts followed up in time).") % {
        "rate": percent_text(head["follow_up_rate"]),
        "in_time": count_text(overall["in_time"]),
        "counted": count_text(overall["denominator"]),
    }
    change = head["follow_up_rate_change"]
    if change is None:
        return text
    return _joined(text, _trend(change, amount=_points(change), before=percent_text(head["previous_follow_up_rate"])))


def _p0_systems(report: Figures, escape) -> list[Line]:
    availability = report.availability.figures
    year_to_date = {row["system"]: row for row in (availability.get("year_to_date") or {}).get("systems", [])}
    lines = []
    for row in availability["systems"]:
        if row["tier"] != Tier.P0:
            continue
        values = {
            "availability": availability_text(row["availability"]),
            "year": availability_text((year_to_date.get(row["system"]) or {}).get("availability")),
            "target": exact_percent_text(row["target"]),
        }
        if row["met"]:
            text = _("availability %(availability)s, year to date %(year)s.") % values
        else:
            text = _("availability %(availability)s, below its target of %(target)s; year to date %(year)s.") % values
        lines.append(Line(text, subject=escape(row["name"] or row["system"]), code=escape(row["system"])))
    return lines


def _service_levels(report: Figures, escape) -> list[Line]:
    """Each indicator measured in Prometheus (docs/service-levels.md), as the weekly report says it:
    `入金有效成功率 99.998 %（目标 99.99 %）`, with the days without data when there were any; then each day a
    P0/P1 indicator fell below its objective with no incident of its system logged."""
    section = getattr(report, "service_levels", None)
    figures = section.figures if section is not None else {}
    lines = []
    for row in figures.get("indicators", []):
        values = {
            "name": escape(row["name"]),
            "value": availability_text(row["value"]),
            "objective": exact_percent_text(row["objective"]),
            "missing": row.get("days_missing") or 0,
        }
        if values["missing"]:
            text = ngettext(
                "%(name)s %(value)s (objective %(objective)s), %(missing)d day without data.",
                "%(name)s %(value)s (objective %(objective)s), %(missing)d days without data.",
                values["missing"],
            )
        else:
            text = _("%(name)s %(value)s (objective %(objective)s).")
        lines.append(Line(text % values))
    for row in figures.get("possible_unlogged", []):
        text = _(
            "On %(day)s %(name)s of %(system)s was %(value)s, below its objective of %(objective)s, and no "
            "incident of the system was logged for that day: a possible unlogged incident."
        ) % {
            "day": row["day"],
            "name": escape(row["indicator_name"]),
            "system": escape(row["system_name"] or row["system"]),
            "value": availability_text(row["value"]),
            "objective": exact_percent_text(row["objective"]),
        }
        lines.append(Line(text, target=Target(APPENDIX, table="possible_unlogged")))
    return lines


def _operation(report: Figures, escape) -> list[Line]:
    head, detection = report.headline.figures, report.detection.figures
    lines = [Line(_incident_counts(head)), Line(_mttr(head)), Line(_follow_up(report))]
    if head["incidents"]:
        lines.append(
            Line(
                _("Found by monitoring %(monitoring)s, by customers %(customer)s.")
                % {
                    "monitoring": percent_text(detection["monitoring_share"]),
                    "customer": percent_text(detection["customer_share"]),
                }
            )
        )
    systems = _p0_systems(report, escape)
    return lines + (systems or [Line(_("No P0 system in this report's scope."))]) + _service_levels(report, escape)


def _health(report: Figures, escape) -> list[Line]:
    health = report.health.figures
    ranked = health.get("teams_ranked") or len(health["teams"])
    lines = []
    for row in health["teams"]:
        text = _("score %(score)s, rank %(rank)d of %(teams)d.") % {
            "score": row["score"],
            "rank": row["rank"],
            "teams": ranked,
        }
        change, previous_rank = Decimal(row["change"]), row.get("previous_rank")
        before = row["previous_score"]
        if previous_rank is not None:
            before = _("%(score)s, rank %(rank)d") % {"score": row["previous_score"], "rank": previous_rank}
        lines.append(
            Line(
                _joined(text, _trend(change, amount=str(abs(change)), before=before)),
                subject=escape(row["name"] or row["team"]),
                code=escape(row["team"]),
            )
        )
    return lines


# Focus rules (the module's docstring): each gives the lines it has to say, none when all is well.


def _missed_alerts(**filters) -> Target:
    return Target(MISSED_ALERTS, filters=tuple((name, value) for name, value in filters.items() if value))


def _focus_follow_up(report: Figures, escape) -> list[Line]:
    head, alerts = report.headline.figures, report.alerts.figures
    rate, change = head["follow_up_rate"], head["follow_up_rate_change"]
    below = rate is not None and rate < FOLLOW_UP_TARGET
    fell = change is not None and change < 0
    if not (below or fell):
        return []
    overall = alerts["overall"]
    sentences = [
        _("5-minute alert follow-up rate %(rate)s: %(missed)s of %(counted)s alerts not followed up within %(window)s.")
        % {
            "rate": percent_text(rate),
            "missed": count_text(overall["missed"]),
            "counted": count_text(overall["denominator"]),
            "window": human_duration(alerts["window_seconds"]),
        }
    ]
    if below:
        sentences.append(_("The target is %(target)s.") % {"target": percent_text(FOLLOW_UP_TARGET)})
    if fell:
        sentences.append(_trend(change, amount=_points(change), before=percent_text(head["previous_follow_up_rate"])))
    return [Line(_joined(*sentences), target=_missed_alerts())]


def _focus_teams_following_up(report: Figures, escape) -> list[Line]:
    groups = report.alerts.figures["by_team"]
    if len(groups) < 2:
        return []
    below = sorted(
        (g for g in groups if g["rate"] is not None and g["rate"] < FOLLOW_UP_TARGET),
        key=lambda g: (g["rate"], -g["missed"], str(g["key"])),
    )
    return [
        Line(
            _("follow-up rate %(rate)s, %(missed)s of %(counted)s missed.")
            % {
                "rate": percent_text(g["rate"]),
                "missed": count_text(g["missed"]),
                "counted": count_text(g["denominator"]),
            },
            subject=escape(g.get("name") or g["key"] or "–"),
            code=escape(g["key"] or ""),
            target=_missed_alerts(team=g["key"]),
        )
        for g in below[:FOCUS_NAMES]
    ]


def _focus_rules(report: Figures, escape) -> list[Line]:
    return [
        Line(
            _("%(missed)s of %(counted)s alerts missed.")
            % {"missed": count_text(rule["missed"]), "counted": count_text(rule["denominator"])},
            subject=escape(rule["key"] or "–"),
            target=_missed_alerts(rule=rule["key"]),
        )
        for rule in report.alerts.figures["worst_missed_rules"][:FOCUS_NAMES]
    ]


def _focus_availability(report: Figures, escape) -> list[Line]:
    missed = sorted(
        (row for row in report.availability.figures["systems"] if not row["met"]),
        key=lambda row: (Decimal(row["availability"]), row["system"]),
    )
    return [
        Line(
            _("availability %(availability)s, below its target of %(target)s: %(consumed)s of the error budget used.")
            % {
                "availability": availability_text(row["availability"]),
                "target": exact_percent_text(row["target"]),
                "consumed": percent_text(row["budget_consumed"]) if row["budget_consumed"] is not None else "–",
            },
            subject=escape(row["name"] or row["system"]),
            code=escape(row["system"]),
            target=Target(APPENDIX, table="availability"),
        )
        for row in missed[:FOCUS_NAMES]
    ]


def _focus_recovery(report: Figures, escape) -> list[Line]:
    compliance = report.recovery.figures["recovery_target_compliance"]
    missed = compliance["recovered"] - compliance["within_target"]
    if missed <= 0:
        return []
    levels = _listed(
        _("level %(level)s: %(count)d") % {"level": LEVELS.get(level, level), "count": n}
        for level, figures in compliance["by_level"].items()
        if (n := figures["recovered"] - figures["within_target"]) > 0
    )
    return [
        Line(
            _(
                "%(missed)d of %(recovered)d recovered incidents took longer than their level's recovery "
                "target (%(levels)s)."
            )
            % {"missed": missed, "recovered": compliance["recovered"], "levels": levels},
            target=Target(APPENDIX, table="recovery_compliance_by_level"),
        )
    ]


def _focus_mttr(report: Figures, escape) -> list[Line]:
    head = report.headline.figures
    change = head["mttr_change_seconds"]
    if change is None or change <= 0:
        return []
    return [
        Line(
            _("MTTR rose from %(before)s to %(mttr)s.")
            % {"before": human_duration(head["previous_mttr_seconds"]), "mttr": human_duration(head["mttr_seconds"])}
        )
    ]


def _focus_overdue(report: Figures, escape) -> list[Line]:
    overdue = report.closed_loop.figures["overdue"]
    if not overdue["count"]:
        return []
    oldest = max((item["days_overdue"] or 0 for item in overdue["items"]), default=0)
    return [
        Line(
            ngettext(
                "%(count)d closed-loop item overdue, the oldest by %(days)d days.",
                "%(count)d closed-loop items overdue, the oldest by %(days)d days.",
                overdue["count"],
            )
            % {"count": overdue["count"], "days": oldest},
            target=Target(APPENDIX, table="overdue_items"),
        )
    ]


def _focus_health(report: Figures, escape) -> list[Line]:
    fell = sorted(
        (row for row in report.health.figures["teams"] if Decimal(row["change"]) < 0),
        key=lambda row: (Decimal(row["change"]), row["team"]),
    )
    return [
        Line(
            _("health score down %(change)s to %(score)s.")
            % {"change": str(abs(Decimal(row["change"]))), "score": row["score"]},
            subject=escape(row["name"] or row["team"]),
            code=escape(row["team"]),
        )
        for row in fell[:FOCUS_NAMES]
    ]


def _focus_unrecovered(report: Figures, escape) -> list[Line]:
    count = report.headline.figures["unrecovered"]
    if not count:
        return []
    return [
        Line(
            ngettext("%(count)d incident not yet recovered.", "%(count)d incidents not yet recovered.", count)
            % {"count": count},
            target=Target(INCIDENTS),
        )
    ]


def _focus_customers(report: Figures, escape) -> list[Line]:
    by_source = report.detection.figures["by_detection_source"]
    found = by_source.get(DetectionSource.CUSTOMER, 0)
    if not found:
        return []
    return [
        Line(
            _("%(count)d of %(incidents)d incidents were first reported by customers.")
            % {"count": found, "incidents": sum(by_source.values())}
        )
    ]


FOCUS_RULES = (
    _focus_follow_up,
    _focus_teams_following_up,
    _focus_rules,
    _focus_availability,
    _focus_recovery,
    _focus_mttr,
    _focus_overdue,
    _focus_health,
    _focus_unrecovered,
    _focus_customers,
)


def _focus(report: Figures, escape) -> list[Line]:
    return [line for rule in FOCUS_RULES for line in rule(report, escape)]


def _by_source(loop: dict) -> list[Line]:
    """Closed-loop progress by source, when items came from more than incidents: one line naming each
    source with items counted (done on time of counted)."""
    rows = [row for row in loop.get("by_source", []) if row["due_in_period"]]
    if not any(row["source"] != ActionItem.Source.INCIDENT for row in rows):
        return []
    parts = [
        _("%(source)s %(done)d of %(counted)d")
        % {"source": SOURCES.get(row["source"], row["source"]), "done": row["numerator"], "counted": row["denominator"]}
        for row in rows
    ]
    return [Line(_("Done on time by source: %(sources)s.") % {"sources": _listed(parts)})]


def _drill_coverage(loop: dict, escape) -> list[Line]:
    """Drill coverage of the P0 systems in the period's quarter, naming a few systems not drilled."""
    coverage = loop.get("drill_coverage")
    if not coverage or not coverage["denominator"]:  # a report published before drills, or no P0 system
        return []
    text = _("Drills held in %(quarter)s covered %(covered)d of %(systems)d P0 systems (%(rate)s).") % {
        "quarter": coverage["quarter"],
        "covered": coverage["numerator"],
        "systems": coverage["denominator"],
        "rate": percent_text(coverage["rate"]),
    }
    uncovered = coverage["uncovered"]
    if uncovered:
        named = [escape(row["code"]) for row in uncovered[:OVERDUE_NAMED]]
        if len(uncovered) > OVERDUE_NAMED:
            named.append(_("%(count)d more") % {"count": len(uncovered) - OVERDUE_NAMED})
        text += " " + _("Not drilled: %(systems)s.") % {"systems": _listed(named)}
    return [Line(text, target=Target(APPENDIX, table="drill_uncovered") if uncovered else None)]


def _closed_loop(report: Figures, escape) -> list[Line]:
    loop = report.closed_loop.figures
    on_time, overdue, incidents = loop["on_time_completion"], loop["overdue"], loop["incident_closed_loop"]
    if on_time["denominator"]:
        lines = [
            Line(
                _("Items due in the period done on time: %(done)d of %(counted)d (%(rate)s).")
                % {
                    "done": on_time["numerator"],
                    "counted": on_time["denominator"],
                    "rate": percent_text(on_time["rate"]),
                }
            )
        ]
    else:
        lines = [Line(_("No closed-loop item came due in the period."))]
    if overdue["count"]:
        owners = [
            _("%(owner)s %(count)d") % {"owner": escape(row["owner"] or "–"), "count": row["count"]}
            for row in overdue["by_owner"][:OVERDUE_NAMED]
        ]
        if len(overdue["by_owner"]) > OVERDUE_NAMED:
            owners.append(_("%(count)d more owners") % {"count": len(overdue["by_owner"]) - OVERDUE_NAMED})
        lines.append(
            Line(_("Overdue: %(count)d (%(owners)s).") % {"count": overdue["count"], "owners": _listed(owners)})
        )
    else:
        lines.append(Line(_("No item is overdue.")))
    if incidents["denominator"]:
        lines.append(
            Line(
                _("Incidents closed: %(closed)d of %(recovered)d recovered (%(rate)s).")
                % {
                    "closed": incidents["numerator"],
                    "recovered": incidents["denominator"],
                    "rate": percent_text(incidents["rate"]),
                }
            )
        )
    lines.extend(_by_source(loop))
    for item in overdue["items"][:OVERDUE_NAMED]:
        values = {"owner": escape(item["owner"] or "–"), "days": item["days_overdue"] or 0}
        if item["incident"] is not None:
            text = _("owner %(owner)s, %(days)d days overdue, incident #%(incident)d.") % {
                **values,
                "incident": item["incident"],
            }
        else:
            text = _("owner %(owner)s, %(days)d days overdue, from %(source)s.") % {
                **values,
                "source": SOURCES.get(item.get("source"), item.get("source")),
            }
        lines.append(
            Line(text, subject=escape(item["title"]), target=Target(ITEM, id=item["id"], incident=item["incident"]))
        )
    lines.extend(_drill_coverage(loop, escape))
    return lines


def _incidents(report: Figures, escape, limit: int | None) -> tuple[list[Line], int]:
    rows = report.incidents.figures["list"]
    shown_rows = rows if limit is None else rows[:limit]
    lines = [Line(incident_line(row, escape=escape), target=Target(INCIDENT, id=row["id"])) for row in shown_rows]
    return lines, len(rows)


def narrative(
    report: Figures, *, escape: Callable[[str], str] = _as_is, limit: int | None = None
) -> tuple[Paragraph, ...]:
    """The report's narrative in the active language, paragraph by paragraph. `escape` is applied to every
    piece of user text (titles, causes, names); `limit`: at most that many lines a paragraph (the page; the
    PDF, the Markdown and the JSON-rebuilt report have them all), `total` counting them all."""

    def paragraph(key, heading, lines, **options) -> Paragraph:
        total = options.pop("total", len(lines))
        kept = tuple(lines if limit is None else lines[:limit])
        return Paragraph(key=key, heading=heading, lines=kept, total=total, **options)

    events, total_events = _incidents(report, escape, limit)
    return (
        paragraph(
            "operation",
            _("System operation"),
            _operation(report, escape),
            everything=Target(APPENDIX, table="availability_year_to_date"),
        ),
        paragraph(
            "events",
            _("Production stability events"),
            events,
            total=total_events,
            numbered=True,
            empty=_("No incident in this period."),
            everything=Target(INCIDENTS),
        ),
        paragraph(
            "health",
            _("Health score"),
            _health(report, escape),
            empty=_("No team in this report's scope."),
            everything=Target(APPENDIX, table="health_scores"),
        ),
        paragraph(
            "focus",
            _("Focus"),
            _focus(report, escape),
            numbered=True,
            empty=_("Nothing stands out: every figure is on target and none fell."),
        ),
        paragraph("closed_loop", _("Closed-loop progress"), _closed_loop(report, escape)),
    )


def plain_lines(paragraphs: Iterable[Paragraph], *, more: Callable[[Paragraph], str] | None = None) -> list[str]:
    """Paragraphs as plain text lines: each heading, then its lines (numbered or with "- "), or what it says
    when empty; `more` says what follows a paragraph with lines left out."""
    text = []
    for paragraph in paragraphs:
        text.append(paragraph.heading)
        for number, line in enumerate(paragraph.lines, start=1):
            text.append(f"{number}. {line.plain()}" if paragraph.numbered else f"- {line.plain()}")
        if not paragraph.lines and paragraph.empty:
            text.append(paragraph.empty)
        if paragraph.more and more is not None:
            text.append(more(paragraph))
    return text


# --- Markdown -----------------------------------------------------------------------------------------


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-!|~])")
_LINE_BREAKS = re.compile(r"\s*[\r\n]+\s*")
# Cells that may hold someone's text (a title, an owner, a rule): escaped; figures are ours.
_TEXT_KINDS = {Kind.TEXT, Kind.CODE, Kind.CHOICE}


def markdown_text(text: str) -> str:
    """User text (titles, causes, handling, names) as literal text in Markdown: each Markdown control
    character backslash-escaped, HTML's special characters as entities (a title `<script>` stays text
    wherever the Markdown is rendered), line breaks as spaces (a line of its own could start a heading)."""
    return html.escape(_MARKDOWN_SPECIAL.sub(r"\\\1", _LINE_BREAKS.sub(" ", text)), quote=False)


def _markdown_cell(column, value) -> str:
    text = shown(column, value)
    return markdown_text(text) if column.kind in _TEXT_KINDS else text


def _markdown_table(table: Table) -> list[str]:
    """A table of the appendix, summarised: pairs as a list, a grid's first MARKDOWN_ROWS rows."""
    lines = [f"### {markdown_text(table.title)}", ""] if table.title else []
    if table.pairs:
        (figures,) = table.rows
        shown_columns = [c for c in table.columns if c.kind is not Kind.LIST]
        if not shown_columns:
            return []
        return lines + [
            f"- {markdown_text(str(c.label))}{separator()}{_markdown_cell(c, figures.get(c.key))}"
            for c in shown_columns
        ]
    if not table.rows:
        return []
    head = [markdown_text(str(c.label)) for c in table.columns]
    labels = list(table.row_labels)
    if labels:
        head = ["", *head]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for index, row in enumerate(table.rows[:MARKDOWN_ROWS]):
        cells = [_markdown_cell(c, row.get(c.key)) for c in table.columns]
        if labels:
            cells = [markdown_text(labels[index]), *cells]
        lines.append("| " + " | ".join(cells) + " |")
    if len(table.rows) > MARKDOWN_ROWS:
        lines += [
            "",
            _("First %(shown)d of %(total)d rows; the CSV export has them all.")
            % {"shown": MARKDOWN_ROWS, "total": len(table.rows)},
        ]
    return lines


def markdown(report: Figures, *, language: str) -> str:
    """The report in Markdown, ready to paste: title, the narrative, then the appendix's tables summarised
    (their first rows; the CSV export has every one). User text is escaped (markdown_text)."""
    with translation.override(language):
        whom = scope_name(report)
        heading = title(report.period) + (f" · {markdown_text(whom)}" if whom else "")
        lines = [f"# {heading}"]
        for paragraph in narrative(report, escape=markdown_text):
            lines += ["", f"## {paragraph.heading}", ""]
            for number, line in enumerate(paragraph.lines, start=1):
                lines.append(f"{number}. {line.plain()}" if paragraph.numbered else f"- {line.plain()}")
            if not paragraph.lines and paragraph.empty:
                lines.append(paragraph.empty)
        lines += ["", f"## {_('Appendix')}"]
        for section in report.sections:
            tables = [table_lines for table in section.tables() if (table_lines := _markdown_table(table))]
            if not tables:
                continue
            lines += ["", f"### {section.title}"]
            for table_lines in tables:
                lines += ["", *[("#" + line if line.startswith("### ") else line) for line in table_lines]]
        return "\n".join(lines) + "\n"
