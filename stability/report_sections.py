"""The sections of the stability report as typed values: each knows its title, and the tables it is read
as, each column with its label and the kind of its values (count, rate, duration, ...). The page, the
PDF and the chat summary present a cell by its column's kind, never by guessing from a key's name.

A section holds its figures as the JSON API gives them (numbers, strings of exact decimals, ISO times:
stability.reports builds them from the selectors); nothing is computed here.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext_lazy

from incidents.models import ActionItem, CauseCategory, DetectionSource, Status, Tier


class Kind(StrEnum):
    """How a column's values read. The first six are the template's names (web/reports/_cell.html); the
    others are shown as one of those (stability.report_pdf.cell)."""

    COUNT = "number"  # a whole number: 1,234
    RATE = "rate"  # a share in [0, 1], or the change of one, as a percentage; missing: "no data"
    DURATION = "duration"  # seconds, in human units
    DATETIME = "moment"  # an ISO time, in the reader's zone
    CHOICE = "label"  # a choice's value shown as its label, yes or no: a short word kept on one line
    TEXT = "text"  # as it is
    # Exact decimals, strings that keep their digits, shown as written. A percentage (availability) or a
    # multiple (error budget consumed) reads "no data" when missing, like a rate; seconds and scores "–".
    PERCENT_DIGITS = "percent_digits"
    DECIMAL = "decimal"
    # A list of entries: a table of its own; among a section's pairs only when empty, as "–".
    LIST = "list"


@dataclass(frozen=True)
class Column:
    key: str
    label: str | Promise
    kind: Kind = Kind.TEXT
    choices: Mapping[str, Any] = field(default_factory=dict)  # Kind.CHOICE: value -> label


@dataclass(frozen=True)
class Table:
    """Rows of figures under a title. `pairs`: one figure per row (`columns[i]` describes `rows[0][i]`'s
    key), headed by the column's label; otherwise a row per entry, a column per figure, and `row_labels`
    name each row (a level, a measure) in a first, unheaded column."""

    title: str
    columns: tuple[Column, ...]
    rows: list[Mapping[str, Any]]
    pairs: bool = False
    row_labels: tuple[str, ...] = ()


# A status column holds an incident's or an item's status: they share the value "open".
STATUSES = {**dict(ActionItem.Status.choices), **dict(Status.choices)}
LEVELS = {level: level for level in "ABCD"}

# The follow-up figures of a group of alerts (stability.selectors.follow_up_rate), overall and per group.
FOLLOW_UP = (
    Column("rate", gettext_lazy("Rate"), Kind.RATE),
    Column("in_time", gettext_lazy("In time"), Kind.COUNT),
    Column("missed", gettext_lazy("Missed"), Kind.COUNT),
    Column("denominator", gettext_lazy("Counted"), Kind.COUNT),
    Column("followed_up", pgettext_lazy("report column", "Followed up"), Kind.COUNT),
    Column("received", pgettext_lazy("report column", "Received"), Kind.COUNT),
    Column("excluded", gettext_lazy("Excluded"), Kind.COUNT),
    Column("pending", pgettext_lazy("report column", "Pending"), Kind.COUNT),
    Column("flapping_excluded", gettext_lazy("Flapping, excluded"), Kind.COUNT),
    Column("median_delay", gettext_lazy("Median delay"), Kind.DURATION),
    Column("p90_delay", gettext_lazy("p90 delay"), Kind.DURATION),
)
FOLLOW_UP_GROUP = (Column("key", gettext_lazy("Name")), *FOLLOW_UP)
AS_OF = Column("as_of", gettext_lazy("As of"), Kind.DATETIME)


def _title(*parts) -> str:
    return " · ".join(str(part) for part in parts)


def counts_by(title, counts: Mapping[str, int], labels: Mapping[str, Any]) -> Table:
    """Counts keyed by a choice (a level, a detection source, a cause category) as pairs."""
    columns = tuple(Column(key, labels.get(key, key), Kind.COUNT) for key in counts)
    return Table(title=str(title), columns=columns, rows=[counts], pairs=True)


def pairs(title, figures: Mapping[str, Any], columns: Iterable[Column]) -> Table:
    return Table(title=str(title), columns=tuple(columns), rows=[figures], pairs=True)


def grid(title, rows: list[Mapping[str, Any]], columns: Iterable[Column]) -> Table:
    return Table(title=str(title), columns=tuple(columns), rows=rows)


def by_row(title, figures: Mapping[str, Mapping[str, Any]], labels: Mapping[str, Any], columns) -> Table:
    """One row per entry of `figures` (a measure, a level), labelled, a column per figure."""
    return Table(
        title=str(title),
        columns=tuple(columns),
        rows=list(figures.values()),
        row_labels=tuple(str(labels.get(key, key)) for key in figures),
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
        Column("mttr_change_seconds", gettext_lazy("MTTR change"), Kind.DURATION),
        Column("follow_up_rate", gettext_lazy("5-minute follow-up rate"), Kind.RATE),
        Column("previous_follow_up_rate", gettext_lazy("Follow-up rate, previous period"), Kind.RATE),
        Column("follow_up_rate_change", gettext_lazy("Follow-up rate change"), Kind.RATE),
        Column("lowest_p0_availability", gettext_lazy("Lowest P0 availability (%)"), Kind.PERCENT_DIGITS),
        Column("lowest_p0_system", gettext_lazy("Lowest P0 system")),
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
            by_row("", measures, MEASURES, self.MEASURE),
            pairs(title, compliance, self.COMPLIANCE),
            by_row(
                _title(title, _("By level")),
                compliance["by_level"],
                LEVELS,
                (self.COMPLIANCE[2], self.COMPLIANCE[1], self.COMPLIANCE[0]),
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
                    Column("window_seconds", gettext_lazy("Window"), Kind.DURATION),
                    Column("by_team", gettext_lazy("By team"), Kind.LIST),
                    Column("by_system", gettext_lazy("By system"), Kind.LIST),
                    Column("worst_missed_rules", gettext_lazy("Alert rules most often missed"), Kind.LIST),
                ],
            ),
            pairs(gettext_lazy("Overall"), self.figures["overall"], FOLLOW_UP),
            grid(gettext_lazy("By team"), self.figures["by_team"], FOLLOW_UP_GROUP),
            grid(gettext_lazy("By system"), self.figures["by_system"], FOLLOW_UP_GROUP),
            grid(gettext_lazy("Alert rules most often missed"), self.figures["worst_missed_rules"], FOLLOW_UP_GROUP),
        ]


class Availability(Section):
    key = "availability"
    title = gettext_lazy("Availability")
    SYSTEM = (
        Column("system", gettext_lazy("System")),
        Column("name", gettext_lazy("Name")),
        Column("tier", gettext_lazy("Tier"), Kind.CHOICE, dict(Tier.choices)),
        Column("team", gettext_lazy("Team")),
        Column("period_seconds", gettext_lazy("Period length"), Kind.DURATION),
        Column("measured_seconds", gettext_lazy("Measured"), Kind.DECIMAL),
        Column("incidents", gettext_lazy("Incidents"), Kind.COUNT),
        Column("downtime_seconds", gettext_lazy("Downtime"), Kind.DECIMAL),
        Column("availability", gettext_lazy("Availability"), Kind.PERCENT_DIGITS),
        Column("target", gettext_lazy("Target"), Kind.DECIMAL),
        Column("error_budget_seconds", gettext_lazy("Error budget"), Kind.DECIMAL),
        Column("budget_consumed", gettext_lazy("Error budget consumed"), Kind.PERCENT_DIGITS),
        Column("met", gettext_lazy("Target met"), Kind.CHOICE),
    )

    def tables(self) -> list[Table]:
        title = gettext_lazy("Systems")
        return [
            pairs("", self.figures, [Column("systems", title, Kind.LIST)]),
            grid(title, self.figures["systems"], self.SYSTEM),
        ]


class ClosedLoop(Section):
    key = "closed_loop"
    title = gettext_lazy("Closed loop")
    ON_TIME = (
        Column("rate", gettext_lazy("Rate"), Kind.RATE),
        Column("numerator", gettext_lazy("Numerator"), Kind.COUNT),
        Column("denominator", gettext_lazy("Counted"), Kind.COUNT),
        Column("due_in_period", gettext_lazy("Due in the period"), Kind.COUNT),
        Column("completed", gettext_lazy("Completed"), Kind.COUNT),
        Column("completed_late", gettext_lazy("Completed late"), Kind.COUNT),
        Column("overdue", gettext_lazy("Overdue"), Kind.COUNT),
        Column("not_yet_due", gettext_lazy("Not yet due"), Kind.COUNT),
        Column("waived", gettext_lazy("Waived"), Kind.COUNT),
    )
    ITEM = (
        Column("id", gettext_lazy("No."), Kind.COUNT),
        Column("title", gettext_lazy("Title")),
        Column("status", gettext_lazy("Status"), Kind.CHOICE, STATUSES),
        Column("priority", gettext_lazy("Priority"), Kind.CHOICE, dict(ActionItem.Priority.choices)),
        Column("owner", gettext_lazy("Owner")),
        Column("team", gettext_lazy("Team")),
        Column("due_at", gettext_lazy("Due"), Kind.DATETIME),
        Column("days_overdue", gettext_lazy("Days overdue"), Kind.COUNT),
        Column("incident", gettext_lazy("Incident"), Kind.COUNT),
        Column("incident_title", gettext_lazy("Incident title")),
    )
    COUNT = Column("count", gettext_lazy("Count"), Kind.COUNT)

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
            grid(_title(overdue_title, _("Items")), overdue["items"], self.ITEM),
            grid(_title(overdue_title, _("By owner")), overdue["by_owner"], [Column("owner", _("Owner")), self.COUNT]),
            grid(_title(overdue_title, _("By team")), overdue["by_team"], [Column("team", _("Team")), self.COUNT]),
            pairs(gettext_lazy("Incident closed-loop rate"), self.figures["incident_closed_loop"], self.ON_TIME[:3]),
        ]


class Health(Section):
    key = "health"
    title = gettext_lazy("Health score")
    TEAM = (
        Column("rank", gettext_lazy("Rank"), Kind.COUNT),
        Column("team", gettext_lazy("Team")),
        Column("name", gettext_lazy("Name")),
        Column("score", gettext_lazy("Score"), Kind.DECIMAL),
        Column("previous_score", gettext_lazy("Previous score"), Kind.DECIMAL),
        Column("change", gettext_lazy("Change"), Kind.DECIMAL),
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
                    Column("teams", gettext_lazy("Teams"), Kind.LIST),
                ],
            ),
            counts_by(_title(title, _("Weights")), settings["weights"], self.TERMS),
            counts_by(_title(title, _("Penalties")), settings["penalties"], LEVELS),
            grid(gettext_lazy("Teams"), self.figures["teams"], self.TEAM),
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
            ),
        ]


# The report's sections in the order of the JSON API, the page and the PDF.
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
)
