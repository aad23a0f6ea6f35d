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
    # Exact decimals as written; a percentage that is missing reads "no data" like a rate.
    assert cell(Column("a", "A", Kind.DECIMAL), "1200") == {"kind": "text", "value": "1200"}
    assert cell(Column("a", "A", Kind.PERCENT_DIGITS), "99.953703") == {"kind": "text", "value": "99.953703"}
    assert cell(Column("a", "A", Kind.PERCENT_DIGITS), None) == {"kind": "rate", "value": None}
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
    assert items["MTTR"] == {"label": "MTTR", "kind": "duration", "value": 2040.0}
    assert items["Lowest P0 availability (%)"]["value"] == "99.953703"
    lines = summary_lines(report)
    assert "5-minute follow-up rate: 62.5 %" in lines
    assert "MTTR: 34.0 min" in lines


def test_one_csv_table_is_the_same_as_in_all_of_them(report):
    tables = report_csv_tables(report)
    assert list(tables) == list(CSV_TABLES)
    for name in CSV_TABLES:
        assert report_csv_table(report, name) == tables[name]
