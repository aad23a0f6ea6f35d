"""Every rule of severity.md at and just below its threshold, under the seeded policy v1."""

from datetime import timedelta
from decimal import Decimal

import pytest

from incidents.selectors import current_severity_policy
from incidents.severity import ImpactFacts, classify, explain, most_critical_tier, validate_policy

pytestmark = pytest.mark.django_db

JUST_UNDER = timedelta(minutes=1) - timedelta(seconds=1)  # 59 s: thresholds are inclusive


def level_of(**facts) -> str:
    facts.setdefault("tier", None)
    facts.setdefault("impact", timedelta(0))
    return classify(ImpactFacts(**facts), current_severity_policy().rules).level


@pytest.mark.parametrize(
    ("tier", "minutes", "at_threshold", "just_below"),
    [
        ("P0", 60, "A", "B"),
        ("P0", 30, "B", "C"),
        ("P0", 10, "C", "D"),
        ("P1", 60, "B", "C"),
        ("P1", 30, "C", "D"),
        ("P2", 60, "C", "D"),
    ],
)
def test_tier_impact_thresholds(tier, minutes, at_threshold, just_below):
    assert level_of(tier=tier, impact=timedelta(minutes=minutes)) == at_threshold
    below = timedelta(minutes=minutes - 1) + JUST_UNDER  # one second short
    assert level_of(tier=tier, impact=below) == just_below


def test_p3_is_never_raised_by_duration_alone():
    assert level_of(tier="P3", impact=timedelta(days=3)) == "D"


@pytest.mark.parametrize(
    ("amount", "level"),
    [
        ("1000000", "A"),
        ("999999.99", "B"),
        ("100000", "B"),
        ("99999.99", "C"),
        ("10000", "C"),
        ("9999.99", "D"),
    ],
)
def test_funds_loss_thresholds(amount, level):
    assert level_of(funds_loss=Decimal(amount)) == level


@pytest.mark.parametrize(
    ("users", "level"), [(100_000, "A"), (99_999, "B"), (10_000, "B"), (9_999, "C"), (1_000, "C"), (999, "D")]
)
def test_affected_users_thresholds(users, level):
    assert level_of(affected_users=users) == level


@pytest.mark.parametrize(("count", "level"), [(10_000, "B"), (9_999, "C"), (1_000, "C"), (999, "D")])
def test_affected_transactions_thresholds(count, level):
    # No A rule counts transactions: a million failed transactions alone is B.
    assert level_of(affected_transactions=count) == level
    assert level_of(affected_transactions=1_000_000) == "B"


@pytest.mark.parametrize("flag", ["data_or_security_breach", "regulatory_reportable"])
def test_flags_make_a(flag):
    assert level_of(**{flag: True}) == "A"


def test_most_severe_matching_level_wins_and_lists_its_conditions():
    result = classify(
        ImpactFacts(tier="P0", impact=timedelta(minutes=45), affected_transactions=12_000),
        current_severity_policy().rules,
    )
    assert result.level == "B"
    assert explain(result.level, result.matches) == (
        "B: P0 system impacted 45 min (>= 30 min); 12,000 failed transactions (>= 10,000)"
    )


def test_nothing_matches_is_d_with_words():
    result = classify(ImpactFacts(tier="P2", impact=timedelta(minutes=5)), current_severity_policy().rules)
    assert (result.level, explain(result.level, result.matches)) == ("D", "D: no A-C condition met")


def test_several_systems_take_the_most_critical_tier():
    assert most_critical_tier(["P2", "P0", "P1"]) == "P0"
    assert most_critical_tier([]) is None


def test_a_more_critical_tier_meets_a_rule_written_for_a_lesser_one():
    rules = {"B": [{"kind": "tier_impact", "tier": "P1", "minutes": 60}]}
    result = classify(ImpactFacts(tier="P0", impact=timedelta(minutes=61)), rules)
    assert result.level == "B"
    assert explain(result.level, result.matches) == "B: P0 system impacted 61 min (P1 or above >= 60 min)"


def test_funds_loss_explained_with_currency():
    result = classify(
        ImpactFacts(tier=None, impact=timedelta(0), funds_loss=Decimal("123456.70")), current_severity_policy().rules
    )
    assert explain(result.level, result.matches) == "B: funds loss 123,456.70 CNY (>= 100,000)"


def test_seeded_policy_is_version_1_with_default_targets():
    policy = current_severity_policy()
    assert policy.version == 1
    assert policy.recovery_targets == {"A": 1800, "B": 3600, "C": 14400, "D": 86400}


@pytest.mark.parametrize(
    ("rules", "targets", "bad"),
    [
        ({"E": []}, {"A": 1, "B": 1, "C": 1, "D": 1}, "rules"),
        ({"A": [{"kind": "tier_impact", "tier": "P9", "minutes": 5}]}, {"A": 1, "B": 1, "C": 1, "D": 1}, "rules"),
        ({"A": [{"kind": "affected_users", "at_least": -1}]}, {"A": 1, "B": 1, "C": 1, "D": 1}, "rules"),
        ({"A": [{"kind": "guess"}]}, {"A": 1, "B": 1, "C": 1, "D": 1}, "rules"),
        ({"A": []}, {"A": 1, "B": 1, "C": 1}, "recovery_targets"),
        ({"A": []}, {"A": 0, "B": 1, "C": 1, "D": 1}, "recovery_targets"),
    ],
)
def test_invalid_policies_are_refused_naming_the_part(rules, targets, bad):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as caught:
        validate_policy(rules, targets)
    assert bad in caught.value.message_dict
