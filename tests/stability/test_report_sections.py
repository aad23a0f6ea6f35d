"""The report's typed sections (stability.report_sections) and their presenters: every figure a table shows
is declared with its kind, and a cell reads by that kind, never by its key's name."""

import pytest

from stability.report_pdf import cell, headline, section_context, summary_lines, table_context
from stability.report_sections import Column, Kind, Table
from stability.reports import CSV_TABLES, build_report, report_csv_table, report_csv_tables, report_json
from stability.reports import stability_report as json_report
from tests.stability.test_report_golden import NOVEMBER, NOW, golden  # noqa: F401

pytestmark = pytest.mark.django_db


@pytest.fixture
def report(golden):  # noqa: F811
    return build_report(period=NOVEMBER, now=NOW)


def _scalars(row: dict) -> set[str]:
    return {key for key, value in row.items() if not isinstance(value, dict | list)}


def test_every_figure_a_table_shows_is_declared_and_every_declared_one_exists(report):
    for section in report.sections:
        for table in section.tables():
            declared = {column.key for column in table.columns}
            if table.pairs:
                (figures,) = table.rows
                assert declared <= set(figures), (section.key, table.title, declared - set(figures))
            else:
                # A row's nested figures (a team's terms, a cause's counts by source) are not columns.
                for row in table.rows:
                    assert _scalars(row) == declared, (section.key, table.title, _scalars(row) ^ declared)


def test_the_json_is_the_apis_and_the_sections_in_its_order(report, golden):  # noqa: F811
    figures = report_json(report)
    assert figures == json_report(period=NOVEMBER, now=NOW)
    assert list(figures) == ["period", "scope", "generated_at", *(section.key for section in report.sections)]
    assert figures["alerts"] is report.alerts.figures  # presented, not copied or recomputed


def test_cells_read_by_their_columns_kind():
    assert cell(Column("a", "A", Kind.RATE), None) == {"kind": "rate", "value": None}  # "no data"
    assert cell(Column("a", "A", Kind.RATE), 0.5) == {"kind": "rate", "value": 0.5}
    assert cell(Column("a", "A", Kind.DURATION), None) == {"kind": "duration", "value": None}
    assert cell(Column("a", "A", Kind.COUNT), 3) == {"kind": "number", "value": 3}
    assert cell(Column("a", "A", Kind.COUNT), None) == {"kind": "text", "value": None}
    assert cell(Column("a", "A", Kind.DATETIME), "2026-11-30T15:58:00+00:00")["kind"] == "moment"
    assert cell(Column("a", "A", Kind.DATETIME), None) == {"kind": "text", "value": None}
    # A score as written; exact decimals written out for people: a percentage with its sign, an
    # availability with three decimals (cut), seconds in words; missing, a percentage reads "no data".
    assert cell(Column("a", "A", Kind.DECIMAL), "1200") == {"kind": "text", "value": "1200"}
    assert cell(Column("a", "A", Kind.PERCENT_DIGITS), "99.990") == {"kind": "figure", "value": "99.99 %"}
    assert cell(Column("a", "A", Kind.AVAILABILITY), "99.953703") == {"kind": "figure", "value": "99.953 %"}
    assert cell(Column("a", "A", Kind.AVAILABILITY), None) == {"kind": "figure", "value": "no data"}
    assert cell(Column("a", "A", Kind.SECONDS_DIGITS), "3271.2") == {"kind": "figure", "value": "54 min 31 s"}
    assert cell(Column("a", "A", Kind.SECONDS_DIGITS), None) == {"kind": "figure", "value": "–"}
    assert cell(Column("a", "A", Kind.POINTS), 0.125) == {"kind": "figure", "value": "+12.5 pp"}
    assert cell(Column("a", "A", Kind.CODE), "cashier") == {"kind": "code", "value": "cashier"}
    choice = Column("tier", "Tier", Kind.CHOICE, {"P0": "P0 – core money path"})
    assert cell(choice, "P0") == {"kind": "label", "value": "P0 – core money path"}
    assert cell(choice, "P9") == {"kind": "text", "value": "P9"}
    assert cell(Column("met", "Met", Kind.CHOICE), False) == {"kind": "label", "value": "No"}
    # A key that looks like a rate is text unless declared otherwise.
    assert cell(Column("success_rate", "Rate"), 0.5) == {"kind": "text", "value": 0.5}


def test_an_empty_list_reads_as_a_dash_among_its_sections_pairs():
    columns = (Column("count", "Count", Kind.COUNT), Column("items", "Items", Kind.LIST))
    empty = table_context(Table(title="Overdue", columns=columns, rows=[{"count": 0, "items": []}], pairs=True))
    assert [[c["value"] for c in row] for row in empty["rows"]] == [["Count", 0], ["Items", None]]
    full = table_context(Table(title="Overdue", columns=columns, rows=[{"count": 1, "items": [{}]}], pairs=True))
    assert [row[0]["value"] for row in full["rows"]] == ["Count"]  # the list is a table of its own
    assert table_context(Table(title="Items", columns=columns, rows=[])) is None


def test_the_page_draws_the_sections_tables(report):
    recovery = section_context(report.recovery)
    measures, compliance, by_level = recovery["tables"]
    assert measures["head"] == ["", "Count", "Mean", "Median", "p90"]
    assert [row[0]["value"] for row in measures["rows"]] == ["Time to detect", "Time to respond", "Time to recover"]
    assert [c["kind"] for c in measures["rows"][0]] == ["text", "number", "duration", "duration", "duration"]
    assert compliance["pairs"] and compliance["title"] == "Recovery-target compliance"
    assert by_level["title"] == "Recovery-target compliance · By level"
    assert by_level["head"] == ["", "Recovered", "Within target", "Rate"]
    # The cause category's own label, not the detection source's of the same value.
    detection = section_context(report.detection)["tables"]
    causes = next(table for table in detection if table["title"] == "By cause category")
    assert "Third party / bank channel" in [row[0]["value"] for row in causes["rows"]]


def test_the_headline_and_the_chat_summary(report):
    items = {item["label"]: item for item in headline(report)}
    # MTTR 2,040 s = 34 min; October 1,200 s = 20 min; +840 s = +14 min.
    assert items["MTTR"] == {"label": "MTTR", "value": "34 min", "detail": "previous period 20 min, +14 min"}
    # 0.625 -> 62.5 %; October 0.5; +0.125 = +12.5 percentage points.
    assert items["5-minute follow-up rate"]["detail"] == "previous period 50.0 %, +12.5 pp"
    # The name first, the code in small print, three decimals; year to date 99.993762 -> 99.993 %.
    assert items["Lowest P0 availability"] == {
        "label": "Lowest P0 availability",
        "value": "99.953 %",
        "name": "收银台",
        "code": "cashier",
        "detail": "year to date 99.993 %",
    }
    assert items["Incidents"]["detail"] == "A/B-level 1, C/D-level 4, 1 not yet recovered"
    assert items["Items done on time"] == {"label": "Items done on time", "value": "25.0 %", "detail": "2 overdue"}
    lines = summary_lines(report)
    assert lines[:2] == ["Monthly report 2026-11", "System operation"]
    assert "- MTTR 34 min. Up 14 min from 20 min in the previous period." in lines


def test_wide_tables_and_the_first_rows_of_a_long_one(report):
    availability = next(table for table in report.availability.tables() if table.key == "availability")
    assert availability.wide and len(availability.columns) == 13
    by_owner = next(table for table in report.closed_loop.tables() if table.key == "overdue_by_owner")
    assert not by_owner.wide
    # Four systems; the first two, two more.
    drawn = table_context(availability, rows=2)
    assert (len(drawn["rows"]), drawn["total"], drawn["more"], drawn["wide"]) == (2, 4, 2, True)
    assert [row[0]["value"] for row in drawn["rows"]] == ["收银台", "代付"]
    assert table_context(availability)["more"] == 0  # the PDF: every row


def test_one_csv_table_is_the_same_as_in_all_of_them(report):
    tables = report_csv_tables(report)
    assert list(tables) == list(CSV_TABLES)
    for name in CSV_TABLES:
        assert report_csv_table(report, name) == tables[name]
