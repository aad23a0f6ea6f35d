"""Incidents as CSV: the export of a filtered list, and the import of a team's past incidents.

One column layout for both ways, so an export can be edited and imported elsewhere; cells that a
spreadsheet would run as a formula are guarded on export and unguarded on import (incidents.spreadsheet).
An import reads every row with incidents.inputs.IncidentInput (as the API reads a posted incident) and
checks it by incidents.services.incident_create inside a transaction that is rolled back (the preview),
and writes only when confirmed: all rows in one transaction, or none.
"""

import csv
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import User
from incidents import spreadsheet
from incidents.inputs import IncidentInput
from incidents.models import Incident
from incidents.services import incident_create

# What a person writes (the arguments of incident_create).
WRITABLE_COLUMNS = (
    "title",
    "systems",
    "team",
    "owner",
    "detection_source",
    "occurred_at",
    "detected_at",
    "responded_at",
    "recovered_at",
    "resolved_at",
    "affected_users",
    "affected_transactions",
    "funds_loss",
    "data_or_security_breach",
    "regulatory_reportable",
    "availability_impact",
    "cause_category",
    "summary",
    "cause",
    "handling",
)
# What the tracker computes; exported for reading, ignored by an import.
COMPUTED_COLUMNS = (
    "id",
    "status",
    "level",
    "classified_level",
    "level_override",
    "closed_at",
    "time_to_detect_seconds",
    "time_to_respond_seconds",
    "time_to_recover_seconds",
    "time_to_resolve_seconds",
)
EXPORT_COLUMNS = ("id", *WRITABLE_COLUMNS, *COMPUTED_COLUMNS[1:])
REQUIRED_COLUMNS = ("title", "systems", "detection_source", "occurred_at", "detected_at")
MAX_ROWS = 1000
_LIST_SEPARATOR = re.compile(r"[\s,;，；]+")


def _cell(value) -> str:
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return timezone.localtime(value).isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _seconds(delta) -> str:
    return "" if delta is None else str(int(delta.total_seconds()))


def export_rows(incidents: Iterable[Incident]) -> Iterator[list[str]]:
    """The header, then one row per incident; times in the reader's zone, with their offset."""
    yield list(EXPORT_COLUMNS)
    for incident in incidents:
        values = {
            "id": incident.pk,
            "systems": " ".join(s.code for s in incident.systems.all()),
            "team": incident.team.slug,
            "owner": incident.owner.username if incident.owner else "",
            "time_to_detect_seconds": _seconds(incident.time_to_detect),
            "time_to_respond_seconds": _seconds(incident.time_to_respond),
            "time_to_recover_seconds": _seconds(incident.time_to_recover),
            "time_to_resolve_seconds": _seconds(incident.time_to_resolve),
        }
        yield [_cell(values[name]) if name in values else _cell(getattr(incident, name)) for name in EXPORT_COLUMNS]


class _Echo:
    """A file that hands back what is written to it, for streaming csv.writer rows."""

    def write(self, value: str) -> str:
        return value


def export_stream(incidents: Iterable[Incident]) -> Iterator[str]:
    writer = spreadsheet.writer(_Echo())
    yield "\ufeff"  # a BOM, so spreadsheet programs read the Chinese text as UTF-8
    for row in export_rows(incidents):
        yield writer.writerow(row)


@dataclass
class ImportRow:
    line: int  # line number in the file, the header being line 1
    values: dict[str, str]
    errors: dict[str, list[str]] = field(default_factory=dict)
    incident: Incident | None = None


@dataclass
class ImportResult:
    rows: list[ImportRow]
    errors: list[str] = field(default_factory=list)  # about the file as a whole
    written: bool = False

    @property
    def ok(self) -> bool:
        return not self.errors and all(not row.errors for row in self.rows)

    @property
    def error_rows(self) -> int:
        return sum(1 for row in self.rows if row.errors)


def parse(content: str) -> ImportResult:
    """Read the CSV; errors about its shape (columns, size) come back in `errors`."""
    reader = csv.DictReader(io.StringIO(content))
    header = [name.strip() for name in (reader.fieldnames or [])]
    reader.fieldnames = header
    result = ImportResult(rows=[])
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    unknown = [name for name in header if name and name not in WRITABLE_COLUMNS and name not in COMPUTED_COLUMNS]
    if not header:
        result.errors.append(_("The file is empty."))
        return result
    if missing:
        result.errors.append(_("Missing columns: %(columns)s.") % {"columns": ", ".join(missing)})
    if unknown:
        result.errors.append(_("Unknown columns: %(columns)s.") % {"columns": ", ".join(unknown)})
    for row in reader:
        if len(result.rows) >= MAX_ROWS:
            result.errors.append(_("More than %(max)s rows; split the file.") % {"max": MAX_ROWS})
            break
        values = {
            name: spreadsheet.unguard((value or "").strip()) for name, value in row.items() if name in WRITABLE_COLUMNS
        }
        if any(values.values()):
            result.rows.append(ImportRow(line=reader.line_num, values=values))
    if not result.rows and not result.errors:
        result.errors.append(_("The file has no rows."))
    return result


def _serializer_input(values: dict[str, str]) -> dict:
    data = {name: value for name, value in values.items() if value != ""}
    if "systems" in data:
        data["systems"] = [code for code in _LIST_SEPARATOR.split(data["systems"]) if code]
    return data


def _messages(detail) -> list[str]:
    if isinstance(detail, dict):
        return [message for value in detail.values() for message in _messages(value)]
    if isinstance(detail, list):
        return [message for value in detail for message in _messages(value)]
    return [str(detail)]


def run(content: str, *, by: User, commit: bool) -> ImportResult:
    """Check every row by creating it; keep the incidents only if `commit` and no row has an error.

    Each row is created in a savepoint, so one bad row never hides the errors of the others."""
    result = parse(content)
    if result.errors:
        return result
    with transaction.atomic():
        for row in result.rows:
            serializer = IncidentInput(data=_serializer_input(row.values))
            if not serializer.is_valid():
                row.errors = {name: _messages(detail) for name, detail in serializer.errors.items()}
                continue
            try:
                with transaction.atomic():
                    row.incident = incident_create(by=by, **serializer.validated_data)
            except ValidationError as exc:
                row.errors = exc.message_dict if hasattr(exc, "error_dict") else {"": exc.messages}
        result.written = commit and result.ok
        if not result.written:
            transaction.set_rollback(True)
    if not result.written:
        for row in result.rows:
            row.incident = None
    return result
