from datetime import UTC, datetime

import pytest

from incidents import periods


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_month_is_cut_in_asia_shanghai():
    november = periods.parse("2026-11")
    assert (november.start, november.end) == (utc(2026, 10, 31, 16), utc(2026, 11, 30, 16))
    assert november.label == "2026-11"
    assert november.seconds == 30 * 86400


def test_previous_periods():
    assert periods.parse("2026-01").previous().label == "2025-12"
    assert periods.parse("2026-Q1").previous().label == "2025-Q4"
    assert periods.parse("2026-W01").previous().label == "2025-W52"
    assert periods.parse("2026").previous().label == "2025"
    assert periods.parse("2026-11-01..2026-11-10").previous().label == "2026-10-22..2026-10-31"


def test_iso_week_and_quarter_and_range():
    week = periods.parse("2026-W01")
    assert week.start == utc(2025, 12, 28, 16)  # Monday 2025-12-29 00:00 in Shanghai
    quarter = periods.parse("2026-Q4")
    assert (quarter.start, quarter.end) == (utc(2026, 9, 30, 16), utc(2026, 12, 31, 16))
    days = periods.parse("2026-11-01..2026-11-15")
    assert (days.start, days.end) == (utc(2026, 10, 31, 16), utc(2026, 11, 15, 16))


def test_containing():
    assert periods.containing("month", utc(2026, 10, 31, 17)).label == "2026-11"
    assert periods.containing("month", utc(2026, 10, 31, 15, 59, 59)).label == "2026-10"


@pytest.mark.parametrize("text", ["2026-13", "2026-W60", "2026-Q5", "Nov", "2026-11-10..2026-11-01", ""])
def test_bad_periods_are_refused(text):
    with pytest.raises(ValueError, match="Not a period"):
        periods.parse(text)


def test_periods_are_cut_in_the_organisation_zone_whatever_zone_a_page_shows():
    from zoneinfo import ZoneInfo

    from django.utils import timezone

    november = periods.month(2026, 11)
    with timezone.override(ZoneInfo("UTC")):  # a reader whose browser says UTC
        assert november.label == "2026-11"
        october = november.previous()
        assert (october.label, october.end) == ("2026-10", november.start)
        assert periods.containing("month", november.start).label == "2026-11"


def test_requested_reads_the_text_or_gives_the_default():
    now = utc(2026, 11, 20, 4)
    assert periods.requested("2026-Q4", now=now).label == "2026-Q4"
    assert periods.requested(None, now=now).label == "2026-11"
    assert periods.requested("", default=periods.last_complete_month, now=now).label == "2026-10"
    assert periods.requested(None, default=None, now=now) is None


def test_requested_refuses_with_the_translated_message():
    from django.core.exceptions import ValidationError
    from django.utils import translation

    with pytest.raises(ValidationError, match="Not a period") as refused:
        periods.requested("Nov")
    assert refused.value.code == "invalid_period"
    with translation.override("zh-hans"), pytest.raises(ValidationError) as refused_in_chinese:
        periods.requested("Nov")
    assert "Not a period" not in refused_in_chinese.value.messages[0]


def test_requested_parameter_names_the_parameter():
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as refused:
        periods.requested_parameter("2026-13", name="since")
    assert list(refused.value.message_dict) == ["since"]
    assert periods.requested_parameter("2026-11").label == "2026-11"
