"""The report's PDF keeps every column of every table: a table too wide for a portrait page is on landscape
pages, one too wide even for those in parts of its columns, each repeating the row's label
(stability.report_layout). Checked on the PDF itself: the text pdftotext reads from it holds every header
cell of every table of the HTML it is made from, in English and in Chinese, and its pages, rendered to PNG,
are kept in ARTEFACT_DIR (default var/artefacts/report-pdf/) for CI's readers."""

import os
import re
import shutil
import struct
import subprocess
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext as _

from incidents.models import Incident
from stability import report_layout, report_pdf
from stability.report_layout import LANDSCAPE_FONT_MM, LANDSCAPE_MM, PADDING_MM, PORTRAIT_MM, column_groups, fit
from stability.reports import build_report
from tests.factories import ActionItemFactory
from tests.stability.test_report_golden import NOVEMBER, NOW, golden  # noqa: F401

ARTEFACT_DIR = Path(os.environ.get("ARTEFACT_DIR") or settings.BASE_DIR / "var" / "artefacts" / "report-pdf")
needs_poppler = pytest.mark.skipif(
    not (shutil.which("pdftotext") and shutil.which("pdftoppm")),
    reason="needs pdftotext and pdftoppm (apt-get install poppler-utils; CI installs it)",
)
EM = 8.5 * 25.4 / 72  # the tables' font size in mm: 2.9986


# --- fitting the columns (no PDF) -------------------------------------------------------------------


def test_columns_are_grouped_in_order_each_group_led_by_the_row_label():
    # 30 + 100 + 100 = 230 <= 250; adding the last 100 makes 330: a second part, [label, last].
    assert column_groups([30, 100, 100, 100], 250) == [[0, 1, 2], [0, 3]]
    # everything fits: one part
    assert column_groups([30, 100, 100], 250) == [[0, 1, 2]]
    # a column wider than a page on its own still gets a part (with the label), never dropped
    assert column_groups([30, 300, 10], 250) == [[0, 1], [0, 2]]


def test_a_cells_narrowest_width_by_its_kind():
    # Chinese text wraps between characters: one square character, 1 em, plus 3 mm of padding.
    assert report_layout.cell_width({"kind": "text", "value": "收银台支付"}) == pytest.approx(EM + PADDING_MM)
    # English wraps at spaces; the widest word is "Payout", in the font's thousandths of an em
    # P 633 + a 563 + y 521 + o 606 + u 607 + t 377 = 3,307 ("batch": 618 + 563 + 377 + 510 + 607 = 2,675).
    assert report_layout.cell_width({"kind": "text", "value": "Payout batch"}) == pytest.approx(3.307 * EM + PADDING_MM)
    # A duration stays on one line as it reads: "54 min 31 s" is 5 555 + 4 555 + space 224 + m 926 + i 275 +
    # n 610 + space 224 + 3 555 + 1 555 + space 224 + s 468 = 5,171.
    with translation.override("en"):
        width = report_layout.cell_width({"kind": "duration", "value": 3271.2})
    assert width == pytest.approx(5.171 * EM + PADDING_MM)


def _table(columns: int, *, title="Systems") -> dict:
    head = ["", *(f"Column {n:02d}" for n in range(1, columns))]
    rows = [[{"kind": "text", "value": "cashier"}, *({"kind": "number", "value": n} for n in range(1, columns))]]
    return {"title": title, "head": head, "rows": rows}


def test_a_table_that_fits_a_portrait_page_stays_as_it_is():
    # "Column 01" in bold: C 656 + o 626 + l 315 + u 637 + m 964 + n 641 + space 227 + 0 590 + 1 590 = 5,246
    # thousandths of an em = 15.73 mm, + 3 = 18.73 mm a column; the label column (an empty header, its
    # "cashier": c 510 + a 563 + s 468 + h 607 + i 275 + e 554 + r 388 = 3.365 em = 10.09 mm + 3 = 13.09 mm)
    # and 4 of them: 88.0 mm.
    assert sum(report_layout.column_widths(_table(5))) < PORTRAIT_MM
    assert fit(_table(5)) == [_table(5)]


def test_a_table_too_wide_for_portrait_goes_on_landscape_pages_whole():
    table = _table(11)  # 13.09 + 10 x 18.73 = 200.4 mm: more than 180
    assert sum(report_layout.column_widths(table)) > PORTRAIT_MM
    assert fit(table) == [{**table, "wide": True}]
    # marked wide by the sections (more than six columns): landscape even when it would fit
    assert fit({**_table(5), "wide": True}) == [{**_table(5), "wide": True}]


def test_a_table_too_wide_for_landscape_is_printed_in_parts_that_keep_every_column():
    # On landscape pages at 8 pt (2.822 mm an em): a column 5.246 x 2.822 + 3 = 17.81 mm, the label column
    # 3.365 x 2.822 + 3 = 12.50 mm; (267 - 12.50) / 17.81 = 14.3: 14 columns a part, then 5.
    table = _table(20)
    with translation.override("en"):
        parts = fit(table)
    assert [part["title"] for part in parts] == ["Systems · part 1 of 2", "Systems · part 2 of 2"]
    assert [len(part["head"]) for part in parts] == [15, 6]
    for part in parts:
        assert part["wide"] and part["head"][0] == "" and part["rows"][0][0]["value"] == "cashier"
        assert sum(report_layout.column_widths(part, font_mm=LANDSCAPE_FONT_MM)) <= LANDSCAPE_MM
    assert [head for part in parts for head in part["head"][1:]] == table["head"][1:]
    assert [cell for part in parts for cell in part["rows"][0][1:]] == table["rows"][0][1:]


# --- the PDF ------------------------------------------------------------------------------------------


class _Tables(HTMLParser):
    """Each <table>'s header cells: its head row (thead th), or its rows' labels (tbody th)."""

    def __init__(self):
        super().__init__()
        self.tables: list[dict] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append({"head": [], "row_labels": [], "in_head": False})
        elif tag == "thead" and self.tables:
            self.tables[-1]["in_head"] = True
        elif tag == "th" and self.tables:
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "thead":
            self.tables[-1]["in_head"] = False
        elif tag == "th" and self._cell is not None:
            table, text = self.tables[-1], " ".join("".join(self._cell).split())
            (table["head"] if table["in_head"] else table["row_labels"]).append(text)
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def tables_of(html: str) -> list[dict]:
    parser = _Tables()
    parser.feed(html)
    return parser.tables


def _squeezed(text: str) -> str:
    return re.sub(r"\s+", "", text)


def in_order_on_one_line(cells: list[str], lines: list[str]) -> bool:
    """Whether one line of the PDF's text holds every cell, left to right (white space aside: pdftotext
    spaces letters by where they stand)."""
    wanted = [_squeezed(cell) for cell in cells if cell.strip()]
    for line in lines:
        position = 0
        for cell in wanted:
            position = line.find(cell, position)
            if position < 0:
                break
            position += len(cell)
        else:
            return True
    return False


def render(language: str) -> tuple[str, bytes]:
    """The HTML the PDF is made from and the PDF, of the golden November, in `language`."""
    with translation.override(language):
        report = build_report(period=NOVEMBER, now=NOW)
        return report_pdf.render_html(report, generated_at=NOW), report_pdf.report_pdf_bytes(report, generated_at=NOW)


def pdf_text(pdf: bytes) -> str:
    return subprocess.run(
        ["pdftotext", "-layout", "-", "-"], input=pdf, capture_output=True, check=True
    ).stdout.decode()


@needs_poppler
@pytest.mark.django_db
@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_every_header_cell_of_every_table_is_in_the_pdf(golden, language):  # noqa: F811
    html, pdf = render(language)
    tables = tables_of(html)
    lines = [_squeezed(line) for line in pdf_text(pdf).splitlines()]
    with translation.override(language):
        # the columns a portrait page used to cut, each in its reader's words
        dropped_before = {_("Target"), _("Error budget"), _("Error budget consumed"), _("p90 delay")}
    heads = {head for table in tables for head in table["head"]}
    assert dropped_before <= heads, dropped_before - heads
    assert len([table for table in tables if table["head"]]) >= 6
    text = "".join(lines)
    for table in tables:
        assert in_order_on_one_line(table["head"], lines) if table["head"] else True, table["head"]
        for label in table["row_labels"]:
            assert _squeezed(label) in text, label
    if language == "zh-hans":
        assert "系统" in text  # Chinese text comes out as text (a CJK font with its Unicode map)
        fonts = subprocess.run(["pdffonts", "-"], input=pdf, capture_output=True).stdout.decode()
        assert "Noto-Sans-CJK-SC" in fonts or not shutil.which("pdffonts"), fonts


def png_size(path: Path) -> tuple[int, int]:
    """A PNG's width and height, from its IHDR chunk."""
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", header[16:24])


@needs_poppler
@pytest.mark.django_db
@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_the_pdfs_pages_are_kept_as_pictures_and_wide_tables_are_on_landscape_ones(golden, language):  # noqa: F811
    with translation.override(language):
        report = build_report(period=NOVEMBER, now=NOW)
        sections = report_layout.on_paper(report_pdf.context(report)["sections"])
        pdf = report_pdf.report_pdf_bytes(report, generated_at=NOW)
    assert any(section["wide"] for section in sections)  # the systems' availability: 13 columns
    ARTEFACT_DIR.mkdir(parents=True, exist_ok=True)
    for old in ARTEFACT_DIR.glob(f"{language}-*.png"):
        old.unlink()
    (ARTEFACT_DIR / f"report-{language}.pdf").write_bytes(pdf)
    subprocess.run(["pdftoppm", "-r", "60", "-png", "-", str(ARTEFACT_DIR / language)], input=pdf, check=True)
    pages = sorted(ARTEFACT_DIR.glob(f"{language}-*.png"))
    assert len(pages) >= 2
    sizes = [png_size(page) for page in pages]
    # A4 at 60 dpi: 496 x 702 portrait, 702 x 496 landscape; the report opens on a portrait page
    assert sizes[0][0] < sizes[0][1]
    assert any(width > height for width, height in sizes), sizes


@needs_poppler
@pytest.mark.django_db
def test_a_long_table_goes_on_over_pages_with_its_header_row_and_every_row(golden):  # noqa: F811
    # 90 more overdue items (due on Nov 20, open at NOW): the overdue items' table runs over several pages.
    incident = Incident.objects.get(title="对账文件缺失236条")
    for number in range(1, 91):
        ActionItemFactory(incident=incident, title=f"补数任务 {number:03d}", due_at=datetime(2026, 11, 20, tzinfo=UTC))
    html, pdf = render("en")
    (items,) = [table for table in tables_of(html) if "Days overdue" in table["head"]]
    text = pdf_text(pdf)
    pages = [[_squeezed(line) for line in page.splitlines()] for page in text.split("\f")]
    with_head = [lines for lines in pages if in_order_on_one_line(items["head"], lines)]
    assert len(with_head) >= 2  # the header row again on the page the table goes on to
    text = _squeezed(text)
    assert all(f"补数任务{number:03d}" in text for number in range(1, 91))  # the PDF keeps every row
