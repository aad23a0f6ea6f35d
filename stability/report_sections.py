"""The sections of the stability report as typed values: each knows its title, and the tables it is read
as, each column with its label and the kind of its values (count, rate, duration, ...). The page, the
PDF, the Markdown and the chat summary present a value by its column's kind, never by guessing from a
key's name, and in human units (the functions under "How a value reads"): durations in d / h / min / s,
availability with three decimals and a % sign, changes of rates in percentage points, names before codes.

A section holds its figures as the JSON API gives them (numbers, strings of exact decimals, ISO times:
stability.reports builds them from the selectors); nothing is computed here.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, ClassVar

from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext_lazy

from incidents.durations import human_duration
from incidents.models import ActionItem, CauseCategory, DetectionSource, Status, Tier


class Kind(StrEnum):
    """How a column's values read. The first six are the template's names (web.templatetags.web_tags.report_cell); the
    others are written out here (`shown`) and drawn as a "figure" (stability.report_pdf.cell)."""

    COUNT = "number"  # a whole number: 1,234
    RATE = "rate"  # a share in [0, 1] as a percentage, one decimal; missing: "no data"
    DURATION = "duration"  # seconds, in human units
    DATETIME = "moment"  # an ISO time, in the reader's zone
    CHOICE = "label"  # a choice's value shown as its label, yes or no: a short word kept on one line
    TEXT = "text"  # as it is
    CODE = "code"  # a system's code, a team's slug: after the name, in small print
    # Exact decimals: strings that keep their digits (the JSON's), written out for people.
    AVAILABILITY = "availability"  # a percentage, three decimals, never rounded up: 99.953 %
    PERCENT_DIGITS = "percent_digits"  # a percentage as written: a target, 99.99 %
    SHARE_DIGITS = "share_digits"  # a share (1 = all of it) as a percentage: error budget consumed 462.9 %
    SECONDS_DIGITS = "seconds_digits"  # seconds, in human units: 54 min 31 s
    DECIMAL = "decimal"  # a score, as written
    # Changes from the previous period, signed.
    POINTS = "points"  # of a rate, in percentage points: +12.5 pp
    DURATION_CHANGE = "duration_change"  # of a duration: +14 min
    DECIMAL_CHANGE = "decimal_change"  # of a score: -72.5
    # A list of entries: a table of its own; among a section's pairs only when empty, as "–".
    LIST = "list"


# --- How a value reads ------------------------------------------------------------------------------

MISSING = "–"
_THOUSANDTH = Decimal("0.001")


def _decimal(value) -> Decimal | None:
    try:
        return None if value is None or value == "" else Decimal(str(value))
    except InvalidOperation:
        return None


def _signed(text: str, value) -> str:
    return ("+" if value > 0 else "") + text


def percent_text(rate) -> str:
    """A share in [0, 1] as a percentage with one decimal: 62.5 %; None is "no data", never 0 %."""
    if rate is None:
        return _("no data")
    return f"{round(float(rate) * 100, 1):.1f} %"


def availability_text(value) -> str:
    """An availability (an exact percentage) with three decimals, cut, never rounded up (99.99996 % of a
    month is not 100 %): "99.864907" reads 99.864 %."""
    exact = _decimal(value)
    if exact is None:
        return _("no data")
    return f"{exact.quantize(_THOUSANDTH, rounding=ROUND_DOWN)} %"


def exact_percent_text(value) -> str:
    """A percentage as written, trailing zeros dropped: a target "99.990" reads 99.99 %."""
    exact = _decimal(value)
    if exact is None:
        return _("no data")
    text = f"{exact:f}"
    return (text.rstrip("0").rstrip(".") if "." in text else text) + " %"


def points_text(change) -> str:
    """The change of a rate in percentage points, one decimal, signed: +12.5 pp (个百分点)."""
    if change is None:
        return MISSING
    points = round(float(change) * 100, 1)
    return _signed(_("%(points)s pp") % {"points": f"{points:.1f}"}, points)


def seconds_text(value) -> str:
    """Seconds (a number or the JSON's exact decimal string) in human units: 3271.2 reads 54 min 31 s."""
    exact = _decimal(value)
    return MISSING if exact is None else human_duration(float(exact))


def duration_change_text(value) -> str:
    """The change of a duration, signed: +14 min, -1 h 5 min."""
    exact = _decimal(value)
    return MISSING if exact is None else _signed(human_duration(float(exact)), exact)


def decimal_change_text(value) -> str:
    exact = _decimal(value)
    return MISSING if exact is None else _signed(str(value), exact)


def count_text(value) -> str:
    return MISSING if value is None else f"{value:,}"


_WRITTEN = {
    Kind.AVAILABILITY: availability_text,
    Kind.PERCENT_DIGITS: exact_percent_text,
    Kind.SHARE_DIGITS: lambda value: percent_text(_decimal(value)),
    Kind.SECONDS_DIGITS: seconds_text,
    Kind.POINTS: points_text,
    Kind.DURATION_CHANGE: duration_change_text,
    Kind.DECIMAL_CHANGE: decimal_change_text,
}


def written(kind: "Kind") -> bool:
    """Whether a kind is written out here (not by the template's own filters)."""
    return kind in _WRITTEN


def shown(column: "Column", value) -> str:
    """A value as people read it, by its column's kind, as plain text (the Markdown, the chat summary; the
    page's template formats the first six kinds the same way with its filters)."""
    if column.kind in _WRITTEN:
        return _WRITTEN[column.kind](value)
    if column.kind is Kind.CHOICE:
        if isinstance(value, bool):
            return _("Yes") if value else _("No")
        return MISSING if value is None or value == "" else str(column.choices.get(value, value))
    if value is None or value == "" or column.kind is Kind.LIST:
        return _("no data") if column.kind is Kind.RATE else MISSING
    if column.kind is Kind.RATE:
        return percent_text(value)
    if column.kind is Kind.DURATION:
        return human_duration(value)
    if column.kind is Kind.COUNT:
        return count_text(value)
    return str(value)


@dataclass(frozen=True)
class Column:
    key: str
    label: str | Promise
    kind: Kind = Kind.TEXT
    choices: Mapping[str, Any] = field(default_factory=dict)  # Kind.CHOICE: value -> label


WIDE_COLUMNS = 6


@dataclass(frozen=True)
class Table:
    """Rows of figures under a title. `pairs`: one figure per row (`columns[i]` describes `rows[0][i]`'s
    key), headed by the column's label; otherwise a row per entry, a column per figure, and `row_labels`
    name each row (a level, a measure) in a first, unheaded column. `key` names a list table (the page
    links "all rows" of a long one by it: `?appendix=<key>`)."""

    title: str
    columns: tuple[Column, ...]
    rows: list[Mapping[str, Any]]
    pairs: bool = False
    row_labels: tuple[str, ...] = ()
    key: str = ""

    @property
    def wide(self) -> bool:
        """More than WIDE_COLUMNS columns: printed on landscape pages (the PDF's `.wide`)."""
        return not self.pairs and len(self.columns) + bool(self.row_labels) > WIDE_COLUMNS


# A status column holds an incident's or an item's status: they share the value "open".
STATUSES = {**dict(ActionItem.Status.choices), **dict(Status.choices)}
LEVELS = {level: level for level in "ABCD"}

# The follow-up figures of a group of alerts (stability.selectors.follow_up_rate), overall and per group.
FOLLOW_UP = (
    Column("rate", gettext_lazy("Rate"), Kind.RATE),
    Column("in_time", gettext_lazy("In time"), Kind.COUNT),
    Column("missed", gettext_lazy("Missed"), Kind.COUNT),
    Column("denominator", gettext_lazy("Alerts counted"), Kind.COUNT),
    Column("followed_up", pgettext_lazy("report column", "Followed up"), Kind.COUNT),
    Column("received", pgettext_lazy("report column", "Received"), Kind.COUNT),
    Column("excluded", gettext_lazy("Excluded"), Kind.COUNT),
    Column("pending", pgettext_lazy("report column", "Pending"), Kind.COUNT),
    Column("flapping_excluded", gettext_lazy("Flapping, excluded"), Kind.COUNT),
    Column("median_delay", gettext_lazy("Median delay"), Kind.DURATION),
    Column("p90_delay", gettext_lazy("p90 delay"), Kind.DURATION),
)
CODE = Column("key", gettext_lazy("Code"), Kind.CODE)
FOLLOW_UP_TEAM = (Column("name", gettext_lazy("Team")), CODE, *FOLLOW_UP)
FOLLOW_UP_SYSTEM = (Column("name", gettext_lazy("System")), CODE, *FOLLOW_UP)
FOLLOW_UP_RULE = (Column("key", gettext_lazy("Alert rule")), *FOLLOW_UP)
AS_OF = Column("as_of", gettext_lazy("As of"), Kind.DATETIME)


def _title(*parts) -> str:
    return " · ".join(str(part) for part in parts)


def counts_by(title, counts: Mapping[str, int], labels: Mapping[str, Any]) -> Table:
    """Counts keyed by a choice (a level, a detection source, a cause category) as pairs."""
    columns = tuple(Column(key, labels.get(key, key), Kind.COUNT) for key in counts)
    return Table(title=str(title), columns=columns, rows=[counts], pairs=True)


def pairs(title, figures: Mapping[str, Any], columns: Iterable[Column]) -> Table:
    return Table(title=str(title), columns=tuple(columns), rows=[figures], pairs=True)


def grid(title, rows: list[Mapping[str, Any]], columns: Iterable[Column], *, key: str = "") -> Table:
    return Table(title=str(title), columns=tuple(columns), rows=rows, key=key)


def by_row(
    title, figures: Mapping[str, Mapping[str, Any]], labels: Mapping[str, Any], columns, *, key: str = ""
) -> Table:
    """One row per entry of `figures` (a measure, a level), labelled, a column per figure."""
    return Table(
        title=str(title),
        columns=tuple(columns),
        rows=list(figures.values()),
        row_labels=tuple(str(labels.get(key, key)) for key in figures),
        key=key,
    )


@dataclass(frozen=True)
class Section:
    """One section of the report: its figures as the JSON API has them, and its tables."""

    key: ClassVar[str]
    title: ClassVar[Promise]
    figures: dict

    def tables(self) -> list[Table]:
        return []


class Headline(Section):
    key = "headline"
    title = gettext_lazy("Headline")
    COLUMNS = (
        Column("incidents", gettext_lazy("Incidents"), Kind.COUNT),
        Column("a_b", gettext_lazy("A/B-level incidents"), Kind.COUNT),
        Column("c_d", gettext_lazy("C/D-level incidents"), Kind.COUNT),
        Column("unrecovered", gettext_lazy("Not yet recovered"), Kind.COUNT),
        Column("mttr_seconds", gettext_lazy("MTTR"), Kind.DURATION),
        Column("previous_mttr_seconds", gettext_lazy("MTTR, previous period"), Kind.DURATION),
        Column("mttr_change_seconds", gettext_lazy("MTTR change"), Kind.DURATION_CHANGE),
        Column("follow_up_rate", gettext_lazy("5-minute follow-up rate"), Kind.RATE),
        Column("previous_follow_up_rate", gettext_lazy("Follow-up rate, previous period"), Kind.RATE),
        Column("follow_up_rate_change", gettext_lazy("Follow-up rate change"), Kind.POINTS),
        Column("lowest_p0_availability", gettext_lazy("Lowest P0 availability"), Kind.AVAILABILITY),
        Column("lowest_p0_system_name", gettext_lazy("Lowest P0 system")),
        Column("lowest_p0_system", gettext_lazy("Lowest P0 system, code"), Kind.CODE),
        Column(
            "lowest_p0_year_to_date_availability",
            gettext_lazy("Lowest P0 system, availability year to date"),
            Kind.AVAILABILITY,
        ),
        Column("on_time_completion_rate", gettext_lazy("Items done on time"), Kind.RATE),
        Column("overdue_items", gettext_lazy("Overdue items"), Kind.COUNT),
    )

    def tables(self) -> list[Table]:
        return [pairs("", self.figures, self.COLUMNS)]


class Incidents(Section):
    """Counts by level, and the list (shown in the weekly report's words, not as a table)."""

    key = "incidents"
    title = gettext_lazy("Incidents")

    def tables(self) -> list[Table]:
        return [counts_by(gettext_lazy("By level"), self.figures["by_level"], LEVELS)]


MEASURES = {
    "time_to_detect": gettext_lazy("Time to detect"),
    "time_to_respond": gettext_lazy("Time to respond"),
    "time_to_recover": gettext_lazy("Time to recover"),
}


class Recovery(Section):
    key = "recovery"
    title = gettext_lazy("Recovery")
    MEASURE = (
        Column("count", gettext_lazy("Count"), Kind.COUNT),
        Column("mean", gettext_lazy("Mean"), Kind.DURATION),
        Column("median", gettext_lazy("Median"), Kind.DURATION),
        Column("p90", gettext_lazy("p90"), Kind.DURATION),
    )
    COMPLIANCE = (
        Column("rate", gettext_lazy("Rate"), Kind.RATE),
        Column("within_target", gettext_lazy("Within target"), Kind.COUNT),
        Column("recovered", gettext_lazy("Recovered"), Kind.COUNT),
    )

    def tables(self) -> list[Table]:
        compliance = self.figures["recovery_target_compliance"]
        title = gettext_lazy("Recovery-target compliance")
        measures = {key: self.figures[key] for key in MEASURES}
        return [
            by_row("", measures, MEASURES, self.MEASURE, key="recovery"),
            pairs(title, compliance, self.COMPLIANCE),
            by_row(
                _title(title, _("By level")),
                compliance["by_level"],
                LEVELS,
                (self.COMPLIANCE[2], self.COMPLIANCE[1], self.COMPLIANCE[0]),
                key="recovery_compliance_by_level",
            ),
        ]


class Trend(Section):
    """The last periods of the same kind: drawn as charts, not tabled."""

    key = "trend"
    title = gettext_lazy("Trend")


class Alerts(Section):
    key = "alerts"
    title = gettext_lazy("Alerts")

    def tables(self) -> list[Table]:
        return [
            pairs(
                "",
                self.figures,
                [
                    Column("window_seconds", gettext_lazy("Follow-up window"), Kind.DURATION),
                    Column("by_team", gettext_lazy("By team"), Kind.LIST),
                    Column("by_system", gettext_lazy("By system"), Kind.LIST),
                    Column("worst_missed_rules", gettext_lazy("Alert rules most often missed"), Kind.LIST),
                ],
            ),
            pairs(gettext_lazy("Overall"), self.figures["overall"], FOLLOW_UP),
            grid(gettext_lazy("By team"), self.figures["by_team"], FOLLOW_UP_TEAM, key="alerts_by_team"),
            grid(gettext_lazy("By system"), self.figures["by_system"], FOLLOW_UP_SYSTEM, key="alerts_by_system"),
            grid(
                gettext_lazy("Alert rules most often missed"),
                self.figures["worst_missed_rules"],
                FOLLOW_UP_RULE,
                key="worst_missed_rules",
            ),
        ]


class Availability(Section):
    key = "availability"
    title = gettext_lazy("Availability")
    SYSTEM = (
        Column("name", gettext_lazy("System")),
        Column("system", gettext_lazy("Code"), Kind.CODE),
        Column("tier", gettext_lazy("Tier"), Kind.CHOICE, dict(Tier.choices)),
        Column("team", gettext_lazy("Team"), Kind.CODE),
        Column("period_seconds", gettext_lazy("Period length"), Kind.DURATION),
        Column("measured_seconds", gettext_lazy("Measured time"), Kind.SECONDS_DIGITS),
        Column("incidents", gettext_lazy("Incidents"), Kind.COUNT),
        Column("downtime_seconds", gettext_lazy("Downtime"), Kind.SECONDS_DIGITS),
        Column("availability", gettext_lazy("Availability"), Kind.AVAILABILITY),
        Column("target", gettext_lazy("Target"), Kind.PERCENT_DIGITS),
        Column("error_budget_seconds", gettext_lazy("Error budget"), Kind.SECONDS_DIGITS),
        Column("budget_consumed", gettext_lazy("Error budget consumed"), Kind.SHARE_DIGITS),
        Column("met", gettext_lazy("Target met"), Kind.CHOICE),
    )
    YEAR_TO_DATE = (
        Column("name", gettext_lazy("System")),
        Column("system", gettext_lazy("Code"), Kind.CODE),
        Column("availability", gettext_lazy("Availability, year to date"), Kind.AVAILABILITY),
        Column("downtime_seconds", gettext_lazy("Downtime"), Kind.SECONDS_DIGITS),
        Column("target", gettext_lazy("Target"), Kind.PERCENT_DIGITS),
        Column("met", gettext_lazy("Target met"), Kind.CHOICE),
    )

    def tables(self) -> list[Table]:
        title = gettext_lazy("Systems")
        year_to_date = self.figures.get("year_to_date") or {"label": "", "systems": []}
        return [
            pairs("", self.figures, [Column("systems", title, Kind.LIST)]),
            grid(title, self.figures["systems"], self.SYSTEM, key="availability"),
            grid(
                _title(_("P0 systems, year to date"), year_to_date["label"]),
                year_to_date["systems"],
                self.YEAR_TO_DATE,
                key="availability_year_to_date",
            ),
        ]


class ClosedLoop(Section):
    key = "closed_loop"
    title = gettext_lazy("Closed loop")
    ON_TIME = (
        Column("rate", gettext_lazy("Rate"), Kind.RATE),
        Column("numerator", gettext_lazy("Done on time"), Kind.COUNT),
        Column("denominator", gettext_lazy("Items counted"), Kind.COUNT),
        Column("due_in_period", gettext_lazy("Due in the period"), Kind.COUNT),
        Column("completed", gettext_lazy("Completed"), Kind.COUNT),
        Column("completed_late", gettext_lazy("Completed late"), Kind.COUNT),
        Column("overdue", gettext_lazy("Overdue"), Kind.COUNT),
        Column("not_yet_due", gettext_lazy("Not yet due"), Kind.COUNT),
        Column("waived", gettext_lazy("Waived"), Kind.COUNT),
    )
    INCIDENTS_CLOSED = (
        Column("rate", gettext_lazy("Rate"), Kind.RATE),
        Column("numerator", gettext_lazy("Incidents closed"), Kind.COUNT),
        Column("denominator", gettext_lazy("Incidents recovered"), Kind.COUNT),
    )
    ITEM = (
        Column("id", gettext_lazy("No.")),
        Column("title", gettext_lazy("Title")),
        Column("status", gettext_lazy("Status"), Kind.CHOICE, STATUSES),
        Column("priority", gettext_lazy("Priority"), Kind.CHOICE, dict(ActionItem.Priority.choices)),
        Column("owner", gettext_lazy("Owner")),
        Column("team", gettext_lazy("Team"), Kind.CODE),
        Column("due_at", gettext_lazy("Due"), Kind.DATETIME),
        Column("days_overdue", gettext_lazy("Days overdue"), Kind.COUNT),
        Column("source", gettext_lazy("Source"), Kind.CHOICE, dict(ActionItem.Source.choices)),
        Column("incident", gettext_lazy("Incident")),
        Column("incident_title", gettext_lazy("Incident title")),
    )
    COUNT = Column("count", gettext_lazy("Count"), Kind.COUNT)
    BY_SOURCE = (
        Column("source", gettext_lazy("Source"), Kind.CHOICE, dict(ActionItem.Source.choices)),
        Column("rate", gettext_lazy("Rate"), Kind.RATE),
        Column("numerator", gettext_lazy("Done on time"), Kind.COUNT),
        Column("denominator", gettext_lazy("Items counted"), Kind.COUNT),
        Column("due_in_period", gettext_lazy("Due in the period"), Kind.COUNT),
        Column("completed", gettext_lazy("Completed"), Kind.COUNT),
        Column("overdue", gettext_lazy("Overdue"), Kind.COUNT),
        Column("waived", gettext_lazy("Waived"), Kind.COUNT),
    )
    DRILL_COVERAGE = (
        Column("quarter", gettext_lazy("Quarter")),
        Column("rate", gettext_lazy("Rate"), Kind.RATE),
        Column("numerator", gettext_lazy("P0 systems drilled"), Kind.COUNT),
        Column("denominator", gettext_lazy("P0 systems"), Kind.COUNT),
        Column("uncovered", gettext_lazy("Not drilled"), Kind.LIST),
    )
    UNCOVERED = (
        Column("code", gettext_lazy("Code"), Kind.CODE),
        Column("name", gettext_lazy("System")),
        Column("team", gettext_lazy("Team"), Kind.CODE),
    )

    def tables(self) -> list[Table]:
        overdue = self.figures["overdue"]
        overdue_title = gettext_lazy("Overdue")
        return [
            pairs("", self.figures, [AS_OF]),
            pairs(gettext_lazy("On-time completion"), self.figures["on_time_completion"], self.ON_TIME),
            pairs(
                overdue_title,
                overdue,
                [
                    self.COUNT,
                    Column("items", gettext_lazy("Items"), Kind.LIST),
                    Column("by_owner", gettext_lazy("By owner"), Kind.LIST),
                    Column("by_team", gettext_lazy("By team"), Kind.LIST),
                ],
            ),
            grid(_title(overdue_title, _("Items")), overdue["items"], self.ITEM, key="overdue_items"),
            grid(
                _title(overdue_title, _("By owner")),
                overdue["by_owner"],
                [Column("owner", _("Owner")), self.COUNT],
                key="overdue_by_owner",
            ),
            grid(
                _title(overdue_title, _("By team")),
                overdue["by_team"],
                [Column("team", _("Team"), Kind.CODE), self.COUNT],
                key="overdue_by_team",
            ),
            pairs(
                gettext_lazy("Incident closed-loop rate"), self.figures["incident_closed_loop"], self.INCIDENTS_CLOSED
            ),
            grid(
                _("On-time completion by source"),
                self.figures.get("by_source", []),
                self.BY_SOURCE,
                key="closed_loop_by_source",
            ),
            *self._drills(),
        ]

    def _drills(self) -> list[Table]:
        coverage = self.figures.get("drill_coverage")  # absent from reports published before drills
        if coverage is None:
            return []
        title = _("Drill coverage of P0 systems")
        return [
            pairs(title, coverage, self.DRILL_COVERAGE),
            grid(_title(title, _("Not drilled")), coverage["uncovered"], self.UNCOVERED, key="drill_uncovered"),
        ]


class Health(Section):
    key = "health"
    title = gettext_lazy("Health score")
    TEAM = (
        Column("rank", gettext_lazy("Rank"), Kind.COUNT),
        Column("name", gettext_lazy("Team")),
        Column("team", gettext_lazy("Code"), Kind.CODE),
        Column("score", gettext_lazy("Score"), Kind.DECIMAL),
        Column("previous_score", gettext_lazy("Previous score"), Kind.DECIMAL),
        Column("change", gettext_lazy("Change"), Kind.DECIMAL_CHANGE),
        Column("previous_rank", gettext_lazy("Previous rank"), Kind.COUNT),
    )
    TERMS = {
        "incidents": gettext_lazy("Incidents"),
        "follow_up": gettext_lazy("Alert follow-up"),
        "closed_loop": gettext_lazy("Closed loop"),
        "recovery": gettext_lazy("Recovery"),
    }

    def tables(self) -> list[Table]:
        settings = self.figures["settings"]
        title = gettext_lazy("Settings")
        return [
            pairs(
                "",
                self.figures,
                [
                    Column("period", gettext_lazy("Period")),
                    Column("previous_period", gettext_lazy("Previous period")),
                    AS_OF,
                    Column("teams_ranked", gettext_lazy("Teams ranked"), Kind.COUNT),
                    Column("teams", gettext_lazy("Teams"), Kind.LIST),
                ],
            ),
            grid(gettext_lazy("Teams"), self.figures["teams"], self.TEAM, key="health_scores"),
            counts_by(_title(title, _("Weights")), settings["weights"], self.TERMS),
            counts_by(_title(title, _("Penalties")), settings["penalties"], LEVELS),
        ]


class Detection(Section):
    key = "detection"
    title = gettext_lazy("Detection")
    SHARES = (
        Column("monitoring_share", gettext_lazy("Found by monitoring"), Kind.RATE),
        Column("customer_share", gettext_lazy("Found by customers"), Kind.RATE),
    )
    CAUSE = (
        Column("cause_category", gettext_lazy("Cause category"), Kind.CHOICE, dict(CauseCategory.choices)),
        Column("incidents", gettext_lazy("Incidents"), Kind.COUNT),
        *SHARES,
    )

    def tables(self) -> list[Table]:
        return [
            pairs(
                "",
                self.figures,
                [
                    *self.SHARES,
                    Column(
                        "by_cause_category_and_source",
                        gettext_lazy("By cause category and detection source"),
                        Kind.LIST,
                    ),
                ],
            ),
            counts_by(
                gettext_lazy("By detection source"),
                self.figures["by_detection_source"],
                dict(DetectionSource.choices),
            ),
            counts_by(
                gettext_lazy("By cause category"), self.figures["by_cause_category"], dict(CauseCategory.choices)
            ),
            grid(
                gettext_lazy("By cause category and detection source"),
                self.figures["by_cause_category_and_source"],
                self.CAUSE,
                key="detection_by_cause",
            ),
        ]


# The report's sections in the order of the JSON API, the page and the PDF.


class ServiceLevels(Section):
    """Service levels measured in Prometheus (service_levels.selectors, docs/service-levels.md): per indicator
    the period's value against its objective, and the days that may hide an unlogged incident."""

    key = "service_levels"
    title = gettext_lazy("Service levels")
    INDICATOR = (
        Column("system_name", gettext_lazy("System")),
        Column("name", gettext_lazy("Indicator")),
        Column("value", gettext_lazy("Service level"), Kind.AVAILABILITY),
        Column("objective", gettext_lazy("Objective"), Kind.PERCENT_DIGITS),
        Column("error_budget_left", gettext_lazy("Error budget left"), Kind.SHARE_DIGITS),
        Column("days_missing", gettext_lazy("Days missing"), Kind.COUNT),
        Column("year_to_date", gettext_lazy("Year to date"), Kind.AVAILABILITY),
    )
    UNLOGGED = (
        Column("day", gettext_lazy("Day")),
        Column("system_name", gettext_lazy("System")),
        Column("indicator_name", gettext_lazy("Indicator")),
        Column("value", gettext_lazy("Service level"), Kind.AVAILABILITY),
        Column("objective", gettext_lazy("Objective"), Kind.PERCENT_DIGITS),
    )

    def tables(self) -> list[Table]:
        # A published report of before the service levels has none: empty tables.
        indicators = [
            {**row, "year_to_date": (row.get("year_to_date") or {}).get("value")}
            for row in self.figures.get("indicators", [])
        ]
        return [
            grid(_("Indicators"), indicators, self.INDICATOR, key="service_levels"),
            grid(
                _("Possible unlogged incidents"),
                self.figures.get("possible_unlogged", []),
                self.UNLOGGED,
                key="possible_unlogged",
            ),
        ]


SECTIONS: tuple[type[Section], ...] = (
    Headline,
    Incidents,
    Recovery,
    Trend,
    Alerts,
    Availability,
    ClosedLoop,
    Health,
    Detection,
    ServiceLevels,
)
