"""CSV export of a filtered list and import of past incidents (web/incident_csv.py): preview first,
row-level errors, nothing written until confirmed, then all rows or none."""

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.files.uploadedfile import SimpleUploadedFile

from incidents.models import Incident, Status, TimelineEntry
from tests.factories import IncidentFactory
from tests.web.conftest import text_of

T0 = datetime(2026, 11, 22, 8, 30, tzinfo=UTC)
IMPORT = "/incidents/import/"
HEADER = "title,systems,detection_source,occurred_at,detected_at,recovered_at,resolved_at,affected_users,cause\n"


@pytest.fixture(autouse=True)
def _at_t0():
    with time_machine.travel(T0, tick=False):
        yield


def upload(client, content: str, encoding: str = "utf-8"):
    return client.post(IMPORT, {"file": SimpleUploadedFile("history.csv", content.encode(encoding), "text/csv")})


def exported(response) -> list[dict]:
    body = b"".join(response.streaming_content).decode("utf-8")
    assert body.startswith("\ufeff")
    return list(csv.DictReader(io.StringIO(body.removeprefix("\ufeff"))))


# --- export ---------------------------------------------------------------------------------------------


def test_export_follows_the_list_filters(engineer, world):
    IncidentFactory(
        title="收银台超时",
        systems=[world["cashier"], world["payout"]],
        occurred_at=datetime(2026, 11, 20, 2, 0, tzinfo=UTC),
        detected_at=datetime(2026, 11, 20, 2, 3, tzinfo=UTC),
        recovered_at=datetime(2026, 11, 20, 2, 45, tzinfo=UTC),
        affected_users=1200,
    )
    IncidentFactory(title="Portal typo", systems=[world["portal"]], occurred_at=datetime(2026, 11, 1, tzinfo=UTC))

    response = engineer.get("/incidents/export.csv?system=cashier")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="incidents-20261122-1630.csv"'
    (row,) = exported(response)
    assert row["title"] == "收银台超时"
    assert row["systems"] == "cashier payout"
    assert row["team"] == "payments"
    # times in the reader's zone with the offset: 02:00Z is 10:00+08:00
    assert row["occurred_at"] == "2026-11-20T10:00:00+08:00"
    assert row["recovered_at"] == "2026-11-20T10:45:00+08:00"
    assert row["resolved_at"] == ""
    assert row["status"] == "recovered"
    # P0 for 45 min >= 30 -> B; TTD 3 min = 180 s; TTR 45 min = 2700 s
    assert row["level"] == "B"
    assert (row["time_to_detect_seconds"], row["time_to_recover_seconds"], row["time_to_respond_seconds"]) == (
        "180",
        "2700",
        "",
    )
    assert row["affected_users"] == "1200"
    assert row["data_or_security_breach"] == "false"


def test_export_of_a_wrong_filter_is_the_list_with_the_error(engineer, world):
    response = engineer.get("/incidents/export.csv?occurred_after=yesterday")

    assert response.status_code == 400
    assert "Enter a valid date/time." in text_of(response.content.decode())


# --- import -----------------------------------------------------------------------------------------------


def test_the_preview_checks_every_row_and_writes_nothing(engineer, world):
    content = HEADER + (
        "Cashier down,cashier,monitoring,2026-10-03T10:00:00+08:00,2026-10-03T10:02:00+08:00,"
        "2026-10-03T10:40:00+08:00,2026-10-04T09:00:00+08:00,500,DB pool\n"
        "Payout slow,payout portal,customer,2026-10-05 09:00,2026-10-05 09:30,,,0,\n"
    )

    response = upload(engineer, content)

    assert response.status_code == 200
    assert "2 rows are ready to import." in text_of(response.content.decode())
    assert Incident.objects.count() == 0
    assert TimelineEntry.objects.count() == 0
    confirm = response.context["confirm"]
    assert confirm.initial["content"] == content


def test_confirming_writes_every_row_through_the_service(engineer, world):
    content = HEADER + (
        "Cashier down,cashier,monitoring,2026-10-03T10:00:00+08:00,2026-10-03T10:02:00+08:00,"
        "2026-10-03T10:40:00+08:00,2026-10-04T09:00:00+08:00,500,DB pool\n"
        "Payout slow,payout；portal,customer,2026-10-05 09:00,2026-10-05 09:30,,,0,\n"
    )

    response = engineer.post(IMPORT, {"content": content})

    assert response.status_code == 302
    assert response["Location"] == "/incidents/"
    down, slow = Incident.objects.order_by("occurred_at")
    assert (down.title, down.status, down.level, down.cause) == ("Cashier down", Status.RESOLVED, "B", "DB pool")
    assert down.time_to_recover == timedelta(minutes=40)
    assert down.created_by == engineer.user
    # no offset: read in Asia/Shanghai, 09:00 local is 01:00Z
    assert slow.occurred_at == datetime(2026, 10, 5, 1, 0, tzinfo=UTC)
    assert slow.status == Status.OPEN
    assert {s.code for s in slow.systems.all()} == {"payout", "portal"}
    assert TimelineEntry.objects.filter(kind=TimelineEntry.Kind.CREATED).count() == 2


def test_row_errors_are_shown_by_line_and_nothing_is_written(engineer, world):
    content = HEADER + (
        "Fine row,cashier,monitoring,2026-10-03T10:00:00+08:00,2026-10-03T10:02:00+08:00,,,0,\n"
        "Unknown system,mainframe,monitoring,2026-10-03T10:00:00+08:00,2026-10-03T10:02:00+08:00,,,0,\n"
        "Detected first,cashier,monitoring,2026-10-03T10:00:00+08:00,2026-10-03T09:00:00+08:00,,,-5,\n"
    )

    response = upload(engineer, content)

    assert response.status_code == 400
    rows = {row.line: row.errors for row in response.context["result"].rows}
    assert rows[2] == {}
    assert rows[3] == {"systems": ["Unknown system code 'mainframe'."]}
    assert rows[4] == {"affected_users": ["Cannot be negative."]}
    text = text_of(response.content.decode())
    assert "2 rows have errors; correct the file and upload it again. Nothing was written." in text
    assert response.context["confirm"] is None
    assert Incident.objects.count() == 0


def test_a_confirmed_file_that_went_bad_meanwhile_writes_nothing(engineer, world):
    content = HEADER + (
        "Fine row,cashier,monitoring,2026-10-03T10:00:00+08:00,2026-10-03T10:02:00+08:00,,,0,\n"
        "Detected first,cashier,monitoring,2026-10-03T10:00:00+08:00,2026-10-03T09:00:00+08:00,,,0,\n"
    )

    response = engineer.post(IMPORT, {"content": content})

    assert response.status_code == 400
    rows = {row.line: row.errors for row in response.context["result"].rows}
    assert rows[3] == {"detected_at": ["Detected at must not be earlier than occurred at (when the impact started)."]}
    assert Incident.objects.count() == 0


def test_the_shape_of_the_file_is_checked_first(engineer, world):
    response = upload(engineer, "title,sytems,occurred\nx,cashier,2026-10-01\n")

    assert response.status_code == 400
    assert response.context["result"].errors == [
        "Missing columns: systems, detection_source, occurred_at, detected_at.",
        "Unknown columns: sytems, occurred.",
    ]


def test_a_gb18030_file_from_a_chinese_spreadsheet_is_read(engineer, world):
    content = HEADER + "收银台超时,cashier,monitoring,2026-10-03 10:00,2026-10-03 10:02,,,0,连接池耗尽\n"

    response = upload(engineer, content, encoding="gb18030")

    assert response.status_code == 200
    assert response.context["result"].rows[0].values["title"] == "收银台超时"


def test_an_export_imports_as_it_is(engineer, world):
    IncidentFactory(
        title="Round trip",
        systems=[world["cashier"]],
        occurred_at=datetime(2026, 10, 3, 2, 0, tzinfo=UTC),
        detected_at=datetime(2026, 10, 3, 2, 1, tzinfo=UTC),
        recovered_at=datetime(2026, 10, 3, 2, 20, tzinfo=UTC),
        cause="a release",
    )
    content = b"".join(engineer.get("/incidents/export.csv").streaming_content).decode("utf-8-sig")

    assert engineer.post(IMPORT, {"content": content}).status_code == 302

    first, second = Incident.objects.order_by("pk")
    for name in ("title", "occurred_at", "detected_at", "recovered_at", "level", "status", "cause", "team_id"):
        assert getattr(second, name) == getattr(first, name), name


def test_managers_cannot_import(manager, world):
    assert manager.get(IMPORT).status_code == 403
    assert manager.post(IMPORT, {"content": HEADER}).status_code == 403
