"""manage.py backfill_service_levels --days N [--indicator ID]: pulls past days, re-pulls stored ones, prints
its progress."""

from datetime import UTC, datetime
from decimal import Decimal
from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command

from service_levels import services
from service_levels.models import DailyValue
from tests.factories import SystemFactory
from tests.service_levels.fake_prometheus import error, vector

NOW = datetime(2026, 11, 6, 2, 0, tzinfo=UTC)  # Nov 6 10:00 local


@pytest.fixture
def two(source, p0_system, fake_prometheus):
    fake_prometheus.answer = lambda query, at: vector("999" if "ok" in query else "1000")
    first = services.indicator_create(
        system=p0_system,
        source=source,
        name="a",
        objective=Decimal("99"),
        good_query="ok[$window]",
        total_query="all[$window]",
    )
    second = services.indicator_create(
        system=SystemFactory(code="payout"), source=source, name="b", objective=Decimal("99"), ratio_query="r[$window]"
    )
    return first, second


def run(*args) -> str:
    out = StringIO()
    with time_machine.travel(NOW, tick=False):
        call_command("backfill_service_levels", *args, stdout=out)
    return out.getvalue()


def test_every_indicator_s_days_with_progress(two, fake_prometheus):
    fake_prometheus.answer = lambda query, at: (
        vector("0.5") if query.startswith("r[") else vector("999" if "ok" in query else "1000")
    )
    out = run("--days", "3")
    assert "Pulling 3 days of 2 indicators (6 pulls)." in out
    # 999 / 1,000 = 99.9 %
    assert "[1/6] a (collection) 2026-11-03: 99.900 % (999 / 1,000)" in out
    assert "[6/6] b (payout) 2026-11-05: 50.000 %" in out
    assert "Done: ok 6, missing 0, failed 0." in out
    assert DailyValue.objects.filter(status="ok").count() == 6


def test_one_indicator_and_re_pulls_update(two, fake_prometheus):
    first, _second = two
    run("--days", "2", "--indicator", str(first.pk))
    fake_prometheus.answer = lambda query, at: vector("990" if "ok" in query else "1000")
    out = run("--days", "2", "--indicator", str(first.pk))
    assert "[2/2] a (collection) 2026-11-05: 99.000 % (990 / 1,000)" in out
    assert sorted(DailyValue.objects.values_list("good", flat=True)) == [990, 990]


def test_failures_are_printed_and_kept_values_said_so(two, fake_prometheus):
    first, _second = two
    run("--days", "1", "--indicator", str(first.pk))
    fake_prometheus.answer = lambda query, at: error(400, "bad_data", "parse error")
    out = run("--days", "2", "--indicator", str(first.pk))
    assert "2026-11-04: failed: Prometheus refused the expression: parse error" in out
    assert "2026-11-05: failed, the measured value is kept: Prometheus refused the expression: parse error" in out
    assert "Done: ok 0, missing 0, failed 2." in out


@pytest.mark.parametrize("args", [("--days", "0"), ("--days", "5000"), ("--days", "1", "--indicator", "999")])
def test_bad_arguments_are_refused(db, args):
    with pytest.raises(CommandError):
        run(*args)
