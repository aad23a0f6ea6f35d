"""incidents.spreadsheet: the formula guard of every CSV cell, and its exact inverse for the import."""

import csv
import io

import pytest

from incidents import spreadsheet


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("'quoted", "''quoted"),
        ("plain = text", "plain = text"),
        ("", ""),
        ("收银台", "收银台"),
    ],
)
def test_guard_and_unguard_are_inverses(value, written):
    assert spreadsheet.guard(value) == written
    assert spreadsheet.unguard(written) == value


def test_a_hand_typed_quote_is_kept_on_import():
    assert spreadsheet.unguard("'abc") == "'abc"


def test_the_writers_guard_strings_and_leave_numbers():
    buffer = io.StringIO()
    spreadsheet.writer(buffer, lineterminator="\n").writerow(["=x", -5, 1.5, None])
    writer = spreadsheet.DictWriter(buffer, fieldnames=["-a", "b"], lineterminator="\n")
    writer.writeheader()
    writer.writerow({"-a": "@y", "b": -2})
    assert list(csv.reader(io.StringIO(buffer.getvalue()))) == [["'=x", "-5", "1.5", ""], ["'-a", "b"], ["'@y", "-2"]]
