"""The report's tables on A4 paper (the PDF, stability.report_pdf.render_html): every column is printed.

A table that does not fit the width of a portrait page is printed on landscape pages (its section has the
class "wide": `@page landscape` in web/templates/web/reports/_styles.html), at 8 pt rather than 8.5; one
that does not fit even there is printed in parts, each with as many of its columns as fit, and each
repeating the row's label (its first column) so a row can be read across the parts. Nothing is cut.

Whether a table fits is worked out from its text as the PDF's stylesheet (web/reports/pdf.html) prints it,
in the font's own widths (stability.report_fonts): header cells on one line, in bold; text wrapped where
a line may break (at a space, around a Chinese character); a code in small monospace (DejaVu Sans Mono,
0.8 em, 0.602 em a character); any other cell (a number, a rate, a duration, a time, a label, a figure
written out) on one line; 1.5 mm of padding each side of a cell.
"""

import re
from collections.abc import Sequence

from django.utils.translation import gettext as _

from incidents.durations import human_duration
from stability import report_fonts

# The printable width of A4 (210 x 297 mm) less the page's side margins (14 mm each: _styles.html), less
# 2 mm for what the widths leave out (the cells' borders, rounding).
PORTRAIT_MM = 210 - 2 * 14 - 2
LANDSCAPE_MM = 297 - 2 * 14 - 2
POINT_MM = 25.4 / 72
PORTRAIT_FONT_MM = 8.5 * POINT_MM  # table.list's font size
LANDSCAPE_FONT_MM = 8 * POINT_MM  # .wide table.list's
PADDING_MM = 2 * 1.5
CODE_EM = 0.8 * 0.602  # small.code: a character of DejaVu Sans Mono at 0.8 em
# The kind of cell whose text wraps (web/reports/_styles.html: td.cell-...).
WRAPPED = {"text"}
# Where a wrapped cell's text may break: at white space, and around a Chinese (wide) character.
_WIDE = "\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef"
_PIECES = re.compile(f"[{_WIDE}]|[^\\s{_WIDE}]+")


def cell_text(cell: dict) -> str:
    """Roughly what web.templatetags.web_tags.report_cell prints for a cell, as long as it or longer."""
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


def cell_width(cell: dict, *, font_mm: float = PORTRAIT_FONT_MM) -> float:
    """The narrowest a cell prints, in millimetres, padding included: all of it if it stays on one line,
    its widest unbreakable piece if it wraps."""
    text = cell_text(cell)
    kind = cell.get("kind")
    if kind in WRAPPED:
        pieces = _PIECES.findall(text)
        return max((report_fonts.text_width(piece, font_mm) for piece in pieces), default=0.0) + PADDING_MM
    if kind == "code" and text != "–":
        return len(text) * CODE_EM * font_mm + PADDING_MM
    return report_fonts.text_width(text, font_mm) + PADDING_MM


def column_widths(table: dict, *, font_mm: float = PORTRAIT_FONT_MM) -> list[float]:
    """The narrowest each column of a table prints, in millimetres: its header on one line, or its widest
    cell."""
    widths = [report_fonts.text_width(str(head), font_mm, bold=True) + PADDING_MM for head in table["head"]]
    for row in table["rows"]:
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], cell_width(cell, font_mm=font_mm))
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
    if sum(column_widths(table)) <= PORTRAIT_MM and not table.get("wide"):
        return [table]
    groups = column_groups(column_widths(table, font_mm=LANDSCAPE_FONT_MM), LANDSCAPE_MM)
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
