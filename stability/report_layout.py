"""The report's tables on A4 paper (the PDF, stability.report_pdf.render_html): every column is printed.

A table that does not fit the width of a portrait page is printed on landscape pages (its wrapper has the
class "wide": `@page landscape` in web/templates/web/reports/pdf.html); one that does not fit even
there is printed in parts, each with as many of its columns as fit, and each repeating the row's label
(its first column) so a row can be read across the parts. Nothing is cut, nothing is shrunk.

Whether a table fits is estimated from its text, as the PDF's stylesheet prints it: 8.5 pt, header
cells on one line (bold), text wrapped where a line may break (at a space, between Chinese characters),
any other cell (a number, a rate, a duration, a time, a label) on one line; 1.5 mm of padding each side of
a cell.
The estimate errs wide (stability.report_charts.text_width: a Chinese character a square, a capital
0.75 of one, anything else 0.6), so a table judged to fit does.
"""

import re
from collections.abc import Sequence

from django.utils.translation import gettext as _

from incidents.durations import human_duration
from stability.report_charts import text_width

# The printable width of A4 (210 x 297 mm) less the page's side margins (14 mm each: _styles.html).
PORTRAIT_MM = 210 - 2 * 14
LANDSCAPE_MM = 297 - 2 * 14
FONT_MM = 8.5 * 25.4 / 72  # table.list's font size (8.5 pt) in millimetres
BOLD = 1.08  # a header cell's bold text is a little wider
PADDING_MM = 2 * 1.5
# The kind of cell whose text wraps (web/reports/_styles.html: td.cell-...); the others (numbers, rates,
# durations, times, labels, codes, figures written out) are taken as kept on one line.
WRAPPED = {"text"}
# Where a wrapped cell's text may break: at white space, and around a Chinese (wide) character.
_WIDE = "\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef"
_PIECES = re.compile(f"[{_WIDE}]|[^\\s{_WIDE}]+")


def _mm(text: str, *, factor: float = 1.0) -> float:
    return text_width(text, FONT_MM) * factor


def cell_text(cell: dict) -> str:
    """Roughly what web/reports/_cell.html prints for a cell, as long as it or longer."""
    value, kind = cell.get("value"), cell.get("kind")
    if value is None or value == "":
        return _("no data") if kind == "rate" else "–"
    if kind == "duration":
        return human_duration(value)
    if kind == "rate":
        return f"{float(value) * 100:.1f} %"
    if kind == "moment":
        return "2026-11-30 23:59"
    if kind == "number" and isinstance(value, int | float):
        return f"{value:,}"
    return str(value)


def cell_width(cell: dict) -> float:
    """The narrowest a cell prints, in millimetres, padding included: all of it if it stays on one line,
    its widest unbreakable piece if it wraps."""
    text = cell_text(cell)
    if cell.get("kind") in WRAPPED:
        return max((_mm(piece) for piece in _PIECES.findall(text)), default=0.0) + PADDING_MM
    return _mm(text) + PADDING_MM


def column_widths(table: dict) -> list[float]:
    """The narrowest each column of a table prints, in millimetres: its header on one line, or its widest
    cell."""
    widths = [_mm(str(head), factor=BOLD) + PADDING_MM for head in table["head"]]
    for row in table["rows"]:
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], cell_width(cell))
    return widths


def column_groups(widths: Sequence[float], space: float) -> list[list[int]]:
    """The columns split into parts that each fit `space`, in order, each starting with column 0 (the row's
    label). One part if they all fit; a column wider than a part on its own gets a part to itself."""
    if sum(widths) <= space:
        return [list(range(len(widths)))]
    groups: list[list[int]] = []
    current = [0]
    for index in range(1, len(widths)):
        if len(current) > 1 and sum(widths[i] for i in current) + widths[index] > space:
            groups.append(current)
            current = [0]
        current.append(index)
    groups.append(current)
    return groups


def fit(table: dict) -> list[dict]:
    """A table (stability.report_pdf.table_context) as printed: itself, on a portrait page if it fits one,
    on landscape pages (`wide`) if not, or in parts of its columns, each on landscape pages."""
    if not table.get("head"):
        return [table]  # one figure per row (pairs): two columns, wrapped
    widths = column_widths(table)
    if sum(widths) <= PORTRAIT_MM and not table.get("wide"):
        return [table]
    groups = column_groups(widths, LANDSCAPE_MM)
    if len(groups) == 1:
        return [{**table, "wide": True}]
    parts = []
    for number, group in enumerate(groups, 1):
        part = _("part %(part)d of %(parts)d") % {"part": number, "parts": len(groups)}
        parts.append(
            {
                **table,
                "title": f"{table['title']} · {part}" if table.get("title") else part,
                "head": [table["head"][i] for i in group],
                "rows": [[row[i] for i in group] for row in table["rows"]],
                "wide": True,
            }
        )
    return parts


def on_paper(sections: Sequence[dict]) -> list[dict]:
    """The report's sections (stability.report_pdf.context) with each table fitted to the paper; a section
    holding a table printed on landscape pages is `wide` as a whole, so its heading goes with it."""
    fitted = []
    for section in sections:
        tables = [part for table in section["tables"] for part in fit(table)]
        fitted.append({**section, "tables": tables, "wide": any(table.get("wide") for table in tables)})
    return fitted
