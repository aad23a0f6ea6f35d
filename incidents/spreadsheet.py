"""Cells of every CSV file the tracker writes, guarded against spreadsheet formula injection.

A spreadsheet program runs a cell that starts with = + - @ (or a tab or carriage return before one)
as a formula: an incident titled `=HYPERLINK("https://evil.example", "details")` would become a link
in the manager's spreadsheet. OWASP's rule: prefix such a cell with a single quote, which spreadsheets
show as text and hide. A cell that already starts with a quote gets one more, so that guard() and
unguard() are exact inverses and an exported file imports back to the same values.
"""

import csv

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_GUARD = "'"


def guard(value: str) -> str:
    """The cell as written to a CSV file."""
    if value.startswith((*_FORMULA_STARTS, _GUARD)):
        return _GUARD + value
    return value


def unguard(value: str) -> str:
    """The value of a cell read from a CSV file that guard() may have written."""
    if value.startswith(_GUARD) and value[1:].startswith((*_FORMULA_STARTS, _GUARD)):
        return value[1:]
    return value


class _GuardedWriter:
    def __init__(self, writer):
        self._writer = writer

    def writerow(self, row):
        return self._writer.writerow([guard(cell) if isinstance(cell, str) else cell for cell in row])


def writer(file, **options) -> _GuardedWriter:
    """csv.writer whose string cells are guarded."""
    return _GuardedWriter(csv.writer(file, **options))


class DictWriter(csv.DictWriter):
    """csv.DictWriter whose string cells (the header's too) are guarded."""

    def __init__(self, file, fieldnames, restval="", extrasaction="raise", dialect="excel", **options):
        super().__init__(file, fieldnames, restval, extrasaction, dialect, **options)
        self.writer = writer(file, dialect=dialect, **options)
