"""Published reports (docs/report.md, "Published reports"): a report as it was sent, frozen, and what has
changed in its period since.

Publishing stores report_json(report) as the snapshot of a new revision of its period and scope (a team,
or all teams): revisions are numbered 1, 2, ... per scope, publishers of one scope queue behind each other
(a lock on the scope) and the unique constraint is the backstop. A delivery publishes through
publish_delivered, which answers the latest revision when its figures are the same.

frozen_report() rebuilds the Report from the snapshot, so the page, the PDF and the Markdown show exactly
what was sent: the presenters read the sections' figures and query nothing.

Revised since publication: revisions() compares the figures of compared_figures() (the period's own
figures; not the trend, not the previous period's) in the snapshot with those of the report built now,
each change with the records behind it. Building the report is the costly part, so it is done only when a
record the report reads may have changed since the last check, which a few indexed queries tell:

- incidents that occurred in the period or the one before (an incident may run into the period and
  lower its availability): their count, the sum of their versions (every saved change increments an
  incident's version) and their latest updated_at; a change, an incident added, imported, moved or
  deleted changes one of the three;
- action items due in the period: the same three;
- alerts received in the period: those whose changed_at (stamped by every write that can change a
  follow-up figure) falls after the last check, less stability.follow_up.MARGIN for writes committed
  late; the ones seen at the last check are not news.

When nothing changed, the changes found last time are answered as they are. Figures that move with the
clock alone (an item falling overdue while its period is still running) are a revision only once a
record of the period changes too.
"""

import hashlib
import json
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Max, QuerySet, Sum
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from incidents.models import ActionItem, Incident, System, Team
from incidents.periods import Period
from stability import report_sections
from stability.follow_up import MARGIN
from stability.models import AlertOccurrence, PublishedReport
from stability.report_sections import Headline, Kind
from stability.reports import Report, build_report, report_json

INCIDENTS, ALERTS, ACTION_ITEMS = "incidents", "alerts", "action_items"
RECORD_KINDS = (INCIDENTS, ALERTS, ACTION_ITEMS)
# Records listed per change and kind; more are counted, not listed.
RECORDS_LISTED = 20
# Alerts of the period changed since the last check that one check remembers; more: build again.
ALERTS_REMEMBERED = 100


# --- the figures compared -------------------------------------------------------------------------


@dataclass(frozen=True)
class Measure:
    """A figure revisions compare: its name, how its value reads, which records move it."""

    label: str | Promise
    kind: Kind
    moved_by: tuple[str, ...]


def _headline(key: str, label: Promise, kind: Kind, moved_by: tuple[str, ...]) -> Measure:
    """A headline figure, named and read as the headline names and reads it (these are the defaults)."""
    column = next((column for column in Headline.COLUMNS if column.key == key), None)
    return Measure(column.label if column else label, column.kind if column else kind, moved_by)


_AVAILABILITY = _headline("lowest_p0_availability", _("Lowest P0 availability (%)"), Kind.PERCENT_DIGITS, ())

MEASURES: dict[str, Measure] = {
    "incidents": _headline("incidents", _("Incidents"), Kind.COUNT, (INCIDENTS,)),
    "a_b": _headline("a_b", _("A/B-level incidents"), Kind.COUNT, (INCIDENTS,)),
    "c_d": _headline("c_d", _("C/D-level incidents"), Kind.COUNT, (INCIDENTS,)),
    "unrecovered": _headline("unrecovered", _("Not yet recovered"), Kind.COUNT, (INCIDENTS,)),
    "mttr_seconds": Measure(_("MTTR"), Kind.DURATION, (INCIDENTS,)),
    "mttd_seconds": Measure(_("MTTD"), Kind.DURATION, (INCIDENTS,)),
    "mtta_seconds": Measure(_("MTTA"), Kind.DURATION, (INCIDENTS,)),
    "recovery_target_compliance": Measure(_("Recovery-target compliance"), Kind.RATE, (INCIDENTS,)),
    "follow_up_rate": _headline("follow_up_rate", _("5-minute follow-up rate"), Kind.RATE, (ALERTS,)),
    "lowest_p0_availability": replace(_AVAILABILITY, moved_by=(INCIDENTS,)),
    "on_time_completion_rate": _headline(
        "on_time_completion_rate", _("Items done on time"), Kind.RATE, (ACTION_ITEMS,)
    ),
    "overdue_items": _headline("overdue_items", _("Overdue items"), Kind.COUNT, (ACTION_ITEMS,)),
    "incident_closed_loop_rate": Measure(_("Incident closed-loop rate"), Kind.RATE, (INCIDENTS,)),
    "monitoring_share": Measure(_("Found by monitoring"), Kind.RATE, (INCIDENTS,)),
    "customer_share": Measure(_("Found by customers"), Kind.RATE, (INCIDENTS,)),
    # Per system and per team: the subject is the system's or the team's name.
    "availability": Measure(_("Availability"), _AVAILABILITY.kind, (INCIDENTS,)),
    "team_follow_up_rate": Measure(_("5-minute follow-up rate"), Kind.RATE, (ALERTS,)),
    "health_score": Measure(_("Health score"), Kind.DECIMAL, RECORD_KINDS),
}


@dataclass(frozen=True)
class Figure:
    """One compared figure of a report: which measure, about what (a system or a team, or the report's
    whole scope), and its value."""

    measure: str
    value: Any
    subject: str = ""  # the system's or the team's name
    team: str | None = None  # slug: the records of this team move it
    system: str | None = None  # code: the incidents impacting this system move it

    @property
    def key(self) -> str:
        subject = f"system={self.system}" if self.system else f"team={self.team}" if self.team else ""
        return ":".join(filter(None, [self.measure, subject]))


def _value(value):
    # Floats computed twice over the same records may differ in the last bits.
    return round(value, 9) if isinstance(value, float) else value


def _get(figures: dict, *path):
    for key in path:
        if not isinstance(figures, dict):
            return None
        figures = figures.get(key)
    return figures


def compared_figures(snapshot: dict) -> dict[str, Figure]:
    """The figures of a report (report_json's form) that revisions compare, by key: the period's own
    figures, not the trend and not the previous period's. Their digest tells two reports apart."""
    found = [
        Figure(measure, _get(snapshot, "headline", measure))
        for measure in (
            "incidents",
            "a_b",
            "c_d",
            "unrecovered",
            "mttr_seconds",
            "follow_up_rate",
            "lowest_p0_availability",
            "on_time_completion_rate",
            "overdue_items",
        )
    ]
    found += [
        Figure("mttd_seconds", _get(snapshot, "recovery", "time_to_detect", "mean")),
        Figure("mtta_seconds", _get(snapshot, "recovery", "time_to_respond", "mean")),
        Figure("recovery_target_compliance", _get(snapshot, "recovery", "recovery_target_compliance", "rate")),
        Figure("incident_closed_loop_rate", _get(snapshot, "closed_loop", "incident_closed_loop", "rate")),
        Figure("monitoring_share", _get(snapshot, "detection", "monitoring_share")),
        Figure("customer_share", _get(snapshot, "detection", "customer_share")),
    ]
    for row in _get(snapshot, "availability", "systems") or []:
        found.append(
            Figure(
                "availability",
                row.get("availability"),
                subject=row.get("name") or row["system"],
                system=row["system"],
            )
        )
    teams = _get(snapshot, "health", "teams") or []
    names = {row["team"]: row.get("name") or row["team"] for row in teams}
    # A team's report has its one team's rate as its headline's already.
    by_team = [] if _get(snapshot, "scope", "team") else _get(snapshot, "alerts", "by_team") or []
    for row in by_team:
        if row.get("key"):
            found.append(
                Figure(
                    "team_follow_up_rate", row.get("rate"), subject=names.get(row["key"], row["key"]), team=row["key"]
                )
            )
    for row in teams:
        found.append(Figure("health_score", row.get("score"), subject=names[row["team"]], team=row["team"]))
    return {figure.key: replace(figure, value=_value(figure.value)) for figure in found}


def figures_digest(snapshot: dict) -> str:
    """sha256 of the compared figures' values: equal for two reports of the same figures."""
    values = {key: figure.value for key, figure in compared_figures(snapshot).items()}
    return hashlib.sha256(json.dumps(values, sort_keys=True, cls=DjangoJSONEncoder).encode()).hexdigest()


# --- publishing -----------------------------------------------------------------------------------


def _stored(snapshot: dict) -> dict:
    """The snapshot as the JSON column gives it back (tuples as lists, decimals as strings): what is
    published is what is read, to the last digit."""
    return json.loads(json.dumps(snapshot, cls=DjangoJSONEncoder))


def _lock_scope(period: Period, team: Team | None) -> None:
    """Publishers of one period and scope wait for each other until their transaction ends (PostgreSQL;
    SQLite runs one writer at a time anyway)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(hashtext(%s))",
                [f"published-report:{period.label}:{team.pk if team else '*'}"],
            )


def _scope_revisions(period_label: str, team_id: int | None) -> QuerySet[PublishedReport]:
    return PublishedReport.objects.filter(period=period_label, team_id=team_id)


def scope_revisions(published: PublishedReport) -> QuerySet[PublishedReport]:
    """Every revision of the published report's period and scope, the first first."""
    return (
        _scope_revisions(published.period, published.team_id)
        .select_related("published_by")
        .only(
            "pk",
            "revision",
            "published_at",
            "reason",
            "published_by__username",
            "published_by__first_name",
            "published_by__last_name",
            "period",
            "team_id",
        )
        .order_by("revision")
    )


def _new_revision(report: Report, *, by, reason: str, snapshot: dict, digest: str) -> PublishedReport:
    period = report.period
    start, end = period.start, period.end
    watched, alerts_seen = _watch(
        period=period, team_id=report.team.pk if report.team else None, before=report.generated_at
    )
    latest = _scope_revisions(period.label, report.team.pk if report.team else None).aggregate(n=Max("revision"))["n"]
    return PublishedReport.objects.create(
        period=period.label,
        period_kind=period.kind,
        period_start=start,
        period_end=end,
        team=report.team,
        revision=(latest or 0) + 1,
        reason=reason,
        published_at=timezone.now(),
        published_by=by,
        snapshot=snapshot,
        digest=digest,
        revised=[],
        revised_checked_at=report.generated_at,
        watched={**watched, ALERTS: alerts_seen},
    )


def _publish(report: Report, *, by, reason: str, unless_digest_is_latest: bool) -> PublishedReport:
    if report.system is not None:
        raise ValueError("a report of one system is not published: publish its team's or all teams'")
    snapshot = _stored(report_json(report))
    digest = figures_digest(snapshot)
    for attempt in range(3):
        try:
            with transaction.atomic():
                _lock_scope(report.period, report.team)
                if unless_digest_is_latest:
                    latest = (
                        _scope_revisions(report.period.label, report.team.pk if report.team else None)
                        .order_by("-revision")
                        .first()
                    )
                    if latest is not None and latest.digest == digest:
                        return latest
                return _new_revision(report, by=by, reason=reason, snapshot=snapshot, digest=digest)
        except IntegrityError:
            # A publisher outside the lock (another database's rules) took the number: take the next.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def publish(report: Report, *, by=None) -> PublishedReport:
    """Publish `report` (of a team, or all teams) as a new revision of its period and scope, frozen."""
    return _publish(report, by=by, reason=PublishedReport.Reason.MANUAL, unless_digest_is_latest=False)


def publish_delivered(report: Report) -> PublishedReport:
    """After a delivery of `report`: the latest revision of its period and scope when its figures are the
    same (compared_figures), else a new one. Deliveries of one report to many destinations publish once."""
    return _publish(report, by=None, reason=PublishedReport.Reason.DELIVERY, unless_digest_is_latest=True)


# --- the frozen report ----------------------------------------------------------------------------


def published_period(published: PublishedReport) -> Period:
    """The period as the report had it (its start and end in the organisation's zone)."""
    zone = timezone.get_default_timezone()
    return Period(
        published.period_kind,
        timezone.localtime(published.period_start, zone),
        timezone.localtime(published.period_end, zone),
    )


def frozen_report(published: PublishedReport) -> Report:
    """The Report as it was published, rebuilt from its snapshot without a query: the sections with the
    snapshot's figures, the team as an unsaved Team with the name and slug it had then."""
    snapshot = published.snapshot
    scope, period = snapshot.get("scope") or {}, snapshot["period"]
    team = system = None
    if scope.get("team"):
        team = Team(pk=published.team_id, slug=scope["team"]["slug"], name=scope["team"]["name"])
    if scope.get("system"):
        system = System(code=scope["system"]["code"], name=scope["system"]["name"])
    values = {
        "period": Period(
            period["kind"], datetime.fromisoformat(period["start"]), datetime.fromisoformat(period["end"])
        ),
        "team": team,
        "system": system,
        "generated_at": datetime.fromisoformat(snapshot["generated_at"]),
        **{section.key: section(snapshot.get(section.key) or {}) for section in report_sections.SECTIONS},
    }
    return Report(**{f.name: values[f.name] for f in fields(Report) if f.name in values})


# --- revised since publication --------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """A compared figure whose value differs now from the published one, and the records of the period
    changed since publication that move it."""

    measure: str
    published: Any
    current: Any
    subject: str = ""
    records: dict[str, list] = field(default_factory=dict)

    @property
    def label(self) -> str:
        measure = MEASURES[self.measure]
        return " · ".join(filter(None, [str(measure.label), self.subject]))

    @property
    def kind(self) -> Kind:
        return MEASURES[self.measure].kind

    def as_json(self) -> dict:
        return {
            "measure": self.measure,
            "figure": self.label,
            "subject": self.subject,
            "published": self.published,
            "current": self.current,
            "records": self.records,
        }


def _scoped(team_id: int | None, period: Period):
    """The records a report of `period` reads, narrowed to the team: incidents (of the period and the
    one before), action items due in the period, alerts received in it."""
    previous = period.previous()
    incidents = Incident.objects.filter(occurred_at__gte=previous.start, occurred_at__lt=period.end)
    items = ActionItem.objects.filter(due_at__gte=period.start, due_at__lt=period.end)
    alerts = AlertOccurrence.objects.filter(received_at__gte=period.start, received_at__lt=period.end)
    if team_id is not None:
        incidents = incidents.filter(team_id=team_id)
        items = items.filter(team_id=team_id)
        alerts = alerts.filter(team_id=team_id)
    return incidents, items, alerts


def _signature(records: QuerySet, before: datetime | None) -> list:
    if before is not None:
        records = records.filter(updated_at__lt=before)
    found = records.order_by().aggregate(n=Count("pk"), versions=Sum("version"), last=Max("updated_at"))
    return [found["n"], found["versions"] or 0, found["last"].isoformat() if found["last"] else None]


def _watch(*, period: Period, team_id: int | None, before: datetime | None, alerts_since: datetime | None = None):
    """What the records of the period look like: the incidents' and the items' signatures, and the alerts
    changed since `alerts_since` (default `before`), less MARGIN ([id, changed_at] pairs, at most
    ALERTS_REMEMBERED + 1). `before`: only what was written before it (a report built as of `before`)."""
    incidents, items, alerts = _scoped(team_id, period)
    since = (alerts_since or before or timezone.now()) - MARGIN
    changed = alerts.filter(changed_at__gte=since)
    if before is not None:
        changed = changed.filter(changed_at__lt=before)
    seen = [
        [pk, moment.isoformat()]
        for pk, moment in changed.order_by("changed_at", "pk").values_list("pk", "changed_at")[: ALERTS_REMEMBERED + 1]
    ]
    return {INCIDENTS: _signature(incidents, before), ACTION_ITEMS: _signature(items, before)}, seen


def _unchanged(published: PublishedReport, watched: dict, alerts_seen: list) -> bool:
    before = published.watched or {}
    known = {tuple(pair) for pair in before.get(ALERTS, [])}
    return (
        len(alerts_seen) <= ALERTS_REMEMBERED
        and all(tuple(pair) in known for pair in alerts_seen)
        and all(watched[kind] == before.get(kind) for kind in (INCIDENTS, ACTION_ITEMS))
    )


def _changed_records(published: PublishedReport, current: Report) -> dict[str, list[dict]]:
    """The records of the period written since publication, with what attributes them to a figure:
    incidents (added, edited, or no longer in the period), alerts, action items."""
    period = published_period(published)
    incidents, items, alerts = _scoped(published.team_id, period)
    since = datetime.fromisoformat(published.snapshot["generated_at"])
    found: dict[str, list[dict]] = {kind: [] for kind in RECORD_KINDS}
    edited: dict[int, dict] = {}
    for pk, team, occurred_at, system in incidents.filter(updated_at__gte=since).values_list(
        "pk", "team__slug", "occurred_at", "systems__code"
    ):
        # One of the period before moves only the availability of the systems it ran into the period on.
        row = {"id": pk, "team": team, "systems": [], "in_period": occurred_at >= period.start}
        edited.setdefault(pk, row)["systems"].append(system)
    published_list = {row["id"]: row for row in _get(published.snapshot, "incidents", "list") or []}
    current_ids = {row["id"] for row in current.incidents.figures.get("list", [])}
    for pk in sorted(set(published_list) - current_ids - set(edited)):
        # Gone from the period (deleted, or moved out of it): its systems are not known any more.
        edited[pk] = {"id": pk, "team": published_list[pk].get("team"), "systems": None, "in_period": True}
    found[INCIDENTS] = sorted(edited.values(), key=lambda row: row["id"])
    found[ALERTS] = [
        {"id": pk, "team": team, "systems": [system]}
        for pk, team, system in alerts.filter(changed_at__gte=since)
        .order_by("pk")
        .values_list("pk", "team__slug", "system__code")[:1000]
    ]
    found[ACTION_ITEMS] = [
        {"id": pk, "incident": incident, "team": team, "systems": None}
        for pk, incident, team in items.filter(updated_at__gte=since)
        .order_by("pk")
        .values_list("pk", "incident_id", "team__slug")
    ]
    return found


def _records_of(figure: Figure, records: dict[str, list[dict]]) -> dict[str, list]:
    behind = {}
    for kind in MEASURES[figure.measure].moved_by:
        rows = [
            row
            for row in records[kind]
            if (figure.team is None or row["team"] == figure.team)
            and (figure.system is None or row["systems"] is None or figure.system in row["systems"])
            and (row.get("in_period", True) or figure.measure == "availability")
        ]
        listed = rows[:RECORDS_LISTED]
        if kind == ACTION_ITEMS:
            behind[kind] = [{"id": row["id"], "incident": row["incident"]} for row in listed]
        else:
            behind[kind] = [row["id"] for row in listed]
        if len(rows) > RECORDS_LISTED:
            behind[f"{kind}_not_listed"] = len(rows) - RECORDS_LISTED
    return behind


def compare(published: PublishedReport, current: Report) -> list[Change]:
    """The compared figures whose value differs between the published snapshot and `current`, in the
    order of compared_figures, each with the records behind it."""
    then = compared_figures(published.snapshot)
    now = compared_figures(_stored(report_json(current)))
    records = None
    changes = []
    for key in [*then, *(key for key in now if key not in then)]:
        before, after = then.get(key), now.get(key)
        if before is not None and after is not None and before.value == after.value:
            continue
        if records is None:
            records = _changed_records(published, current)
        figure = after or before
        changes.append(
            Change(
                measure=figure.measure,
                subject=figure.subject,
                published=before.value if before else None,
                current=after.value if after else None,
                records=_records_of(figure, records),
            )
        )
    return changes


def _from_json(entry: dict) -> Change:
    return Change(
        measure=entry["measure"],
        subject=entry.get("subject", ""),
        published=entry.get("published"),
        current=entry.get("current"),
        records=entry.get("records", {}),
    )


def revisions(published: PublishedReport, *, now: datetime | None = None) -> list[Change]:
    """Revised since publication: the changes of compared figures between the published report and the
    report built now (see the module for when it is built again; otherwise the changes found last)."""
    now = now or timezone.now()
    period = published_period(published)
    watched, alerts_seen = _watch(
        period=period, team_id=published.team_id, before=None, alerts_since=published.revised_checked_at or now
    )
    if published.revised_checked_at is not None and _unchanged(published, watched, alerts_seen):
        # Nothing changed: the next check looks at the alerts changed from here on (written at most once per
        # MARGIN, in one statement either way).
        PublishedReport.objects.filter(pk=published.pk, revised_checked_at__lt=now - MARGIN).update(
            revised_checked_at=now, watched={**watched, ALERTS: alerts_seen}
        )
        return [_from_json(entry) for entry in published.revised]
    # Built as of a moment taken before the records are read: what is written after it is seen next time.
    checked_at = timezone.now()
    watched, alerts_seen = _watch(period=period, team_id=published.team_id, before=checked_at)
    current = build_report(period=period, team=published.team, now=now)
    changes = compare(published, current)
    published.revised = [change.as_json() for change in changes]
    published.revised_checked_at = checked_at
    published.watched = {**watched, ALERTS: alerts_seen}
    PublishedReport.objects.filter(pk=published.pk).update(
        revised=published.revised, revised_checked_at=checked_at, watched=published.watched
    )
    return changes
