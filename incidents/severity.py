"""A-D classification (docs/severity.md), as a pure function of impact facts and a policy.

A policy's `rules` map each of A, B, C to a list of conditions; a level matches when ANY of its
conditions holds, the most severe matching level wins, D when none does. Thresholds are
inclusive. Version 1, the default policy of docs/severity.md, is seeded by migration
incidents/0002_default_severity_policy. Condition kinds:

    {"kind": "tier_impact", "tier": "P0", "minutes": 30}    tier at least as critical, impact >= minutes
    {"kind": "funds_loss", "at_least": "100000"}
    {"kind": "affected_users", "at_least": 10000}
    {"kind": "affected_transactions", "at_least": 10000}
    {"kind": "flag", "flag": "data_or_security_breach" | "regulatory_reportable"}
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.formats import number_format
from django.utils.translation import gettext as _

from incidents.models import LEVEL_RANK, TIER_RANK, Level, Tier

CLASSIFIED_LEVELS = (Level.A, Level.B, Level.C)
FLAGS = ("data_or_security_breach", "regulatory_reportable")
COUNT_KINDS = ("affected_users", "affected_transactions")


@dataclass(frozen=True)
class ImpactFacts:
    tier: str | None  # the most critical tier among the impacted systems
    impact: timedelta  # (recovered_at, or now while unrecovered) - occurred_at
    affected_users: int = 0
    affected_transactions: int = 0
    funds_loss: Decimal = Decimal(0)
    data_or_security_breach: bool = False
    regulatory_reportable: bool = False


@dataclass(frozen=True)
class Classification:
    level: str
    matches: list[dict] = field(default_factory=list)  # the winning level's conditions that held, with observed values


def most_critical_tier(tiers: Iterable[str]) -> str | None:
    return min(tiers, key=TIER_RANK.__getitem__, default=None)


def impact_of(*, occurred_at: datetime, recovered_at: datetime | None, now: datetime) -> timedelta:
    return max((recovered_at or now) - occurred_at, timedelta(0))


def incident_facts(incident, tiers: Iterable[str], *, now: datetime) -> ImpactFacts:
    """The facts the policy reads of an incident (its fields) whose systems have these tiers, as of `now`
    (an unrecovered incident's impact grows): what classifies it when it is written, and what the
    policy form's preview classifies the last quarter's incidents by."""
    return ImpactFacts(
        tier=most_critical_tier(tiers),
        impact=impact_of(occurred_at=incident.occurred_at, recovered_at=incident.recovered_at, now=now),
        affected_users=incident.affected_users,
        affected_transactions=incident.affected_transactions,
        funds_loss=incident.funds_loss,
        data_or_security_breach=incident.data_or_security_breach,
        regulatory_reportable=incident.regulatory_reportable,
    )


def _observed(condition: Mapping, facts: ImpactFacts) -> dict | None:
    """The observed values when `condition` holds for `facts`, else None."""
    kind = condition["kind"]
    if kind == "tier_impact":
        if facts.tier is None or TIER_RANK[facts.tier] > TIER_RANK[condition["tier"]]:
            return None
        if facts.impact < timedelta(minutes=condition["minutes"]):
            return None
        return {"observed_tier": facts.tier, "observed_minutes": int(facts.impact.total_seconds() // 60)}
    if kind == "funds_loss":
        return {"observed": str(facts.funds_loss)} if facts.funds_loss >= Decimal(condition["at_least"]) else None
    if kind in COUNT_KINDS:
        value = getattr(facts, kind)
        return {"observed": value} if value >= condition["at_least"] else None
    if kind == "flag":
        return {} if getattr(facts, condition["flag"]) else None
    raise ValueError(f"unknown condition kind {kind!r}")


def classify(facts: ImpactFacts, rules: Mapping[str, list]) -> Classification:
    for level in CLASSIFIED_LEVELS:
        matches = []
        for condition in rules.get(level, []):
            observed = _observed(condition, facts)
            if observed is not None:
                matches.append({**condition, **observed})
        if matches:
            return Classification(level=level, matches=matches)
    return Classification(level=Level.D, matches=[])


def _number(value) -> str:
    return number_format(value, force_grouping=True)


def describe_match(match: Mapping) -> str:
    kind = match["kind"]
    if kind == "tier_impact":
        if match["observed_tier"] == match["tier"]:
            return _("%(tier)s system impacted %(observed)s min (>= %(minutes)s min)") % {
                "tier": match["observed_tier"],
                "observed": _number(match["observed_minutes"]),
                "minutes": _number(match["minutes"]),
            }
        return _("%(tier)s system impacted %(observed)s min (%(rule_tier)s or above >= %(minutes)s min)") % {
            "tier": match["observed_tier"],
            "observed": _number(match["observed_minutes"]),
            "rule_tier": match["tier"],
            "minutes": _number(match["minutes"]),
        }
    if kind == "funds_loss":
        return _("funds loss %(observed)s %(currency)s (>= %(threshold)s)") % {
            "observed": _number(Decimal(match["observed"])),
            "currency": settings.CURRENCY,
            "threshold": _number(Decimal(match["at_least"])),
        }
    if kind == "affected_users":
        return _("%(observed)s affected users (>= %(threshold)s)") % {
            "observed": _number(match["observed"]),
            "threshold": _number(match["at_least"]),
        }
    if kind == "affected_transactions":
        return _("%(observed)s failed transactions (>= %(threshold)s)") % {
            "observed": _number(match["observed"]),
            "threshold": _number(match["at_least"]),
        }
    if match["flag"] == "data_or_security_breach":
        return _("data or security breach")
    return _("reportable to the regulator")


def explain(level: str, matches: list[Mapping]) -> str:
    """E.g. "B: P0 system impacted 45 min (>= 30 min); 12,000 failed transactions (>= 10,000)"."""
    if not matches:
        return _("%(level)s: no A-C condition met") % {"level": level}
    return f"{level}: " + "; ".join(describe_match(m) for m in matches)


def describe_condition(condition: Mapping) -> str:
    """A policy condition in words, for showing the policy itself."""
    kind = condition["kind"]
    if kind == "tier_impact":
        return _("%(tier)s impacted >= %(minutes)s min") % {
            "tier": condition["tier"],
            "minutes": _number(condition["minutes"]),
        }
    if kind == "funds_loss":
        return _("funds loss >= %(threshold)s") % {"threshold": _number(Decimal(condition["at_least"]))}
    if kind == "affected_users":
        return _("affected users >= %(threshold)s") % {"threshold": _number(condition["at_least"])}
    if kind == "affected_transactions":
        return _("affected transactions >= %(threshold)s") % {"threshold": _number(condition["at_least"])}
    return (
        _("data or security breach")
        if condition["flag"] == "data_or_security_breach"
        else _("reportable to the regulator")
    )


# Bounds that keep every threshold usable (a timedelta, a funds_loss column, a formatted number).
MAX_MINUTES = 10 * 366 * 24 * 60
MAX_COUNT = 10**15
MAX_FUNDS = Decimal(10) ** 14
MAX_TARGET_SECONDS = 10 * 366 * 24 * 3600
CONDITION_KEYS = {
    "tier_impact": {"kind", "tier", "minutes"},
    "funds_loss": {"kind", "at_least"},
    "affected_users": {"kind", "at_least"},
    "affected_transactions": {"kind", "at_least"},
    "flag": {"kind", "flag"},
}


def _whole_number_within(value, upper: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= upper


def _condition_errors(condition) -> list[str]:
    if not isinstance(condition, Mapping):
        return [_("a condition must be an object")]
    kind = condition.get("kind")
    if kind not in CONDITION_KEYS:
        return [_("unknown condition kind %(kind)r") % {"kind": kind}]
    extra = sorted(set(condition) - CONDITION_KEYS[kind])
    errors = [_("unknown keys: %(keys)s") % {"keys": ", ".join(extra)}] if extra else []
    if kind == "tier_impact":
        if condition.get("tier") not in Tier.values:
            errors.append(_("tier must be one of %(tiers)s") % {"tiers": ", ".join(Tier.values)})
        if not _whole_number_within(condition.get("minutes"), MAX_MINUTES):
            errors.append(_("minutes must be a whole number from 0 to %(max)s") % {"max": MAX_MINUTES})
    elif kind == "funds_loss":
        try:
            amount = Decimal(str(condition.get("at_least")))
            ok = amount.is_finite() and 0 <= amount < MAX_FUNDS
        except InvalidOperation:
            ok = False
        if not ok:
            errors.append(_("at_least must be an amount from 0 to below %(max)s") % {"max": MAX_FUNDS})
    elif kind in COUNT_KINDS:
        if not _whole_number_within(condition.get("at_least"), MAX_COUNT):
            errors.append(_("at_least must be a whole number from 0 to %(max)s") % {"max": MAX_COUNT})
    elif condition.get("flag") not in FLAGS:
        errors.append(_("flag must be one of %(flags)s") % {"flags": ", ".join(FLAGS)})
    return errors


def validate_policy(rules, recovery_targets) -> None:
    """Raise a ValidationError naming each bad part of a policy."""
    errors: dict[str, list[str]] = {}
    if not isinstance(rules, Mapping) or set(rules) - set(CLASSIFIED_LEVELS):
        errors["rules"] = [_("rules must be an object with keys among A, B, C (D is what matches nothing)")]
    else:
        for level, conditions in rules.items():
            if not isinstance(conditions, list):
                errors.setdefault("rules", []).append(_("%(level)s: must be a list of conditions") % {"level": level})
                continue
            for index, condition in enumerate(conditions):
                for message in _condition_errors(condition):
                    errors.setdefault("rules", []).append(f"{level}[{index}]: {message}")
    if not isinstance(recovery_targets, Mapping) or set(recovery_targets) != set(Level.values):
        errors["recovery_targets"] = [_("recovery_targets must give seconds for each of A, B, C and D")]
    elif any(not _whole_number_within(v, MAX_TARGET_SECONDS) or v == 0 for v in recovery_targets.values()):
        errors["recovery_targets"] = [
            _("each recovery target must be a whole number of seconds from 1 to %(max)s") % {"max": MAX_TARGET_SECONDS}
        ]
    if errors:
        raise ValidationError(errors)


def level_is_higher(new: str, old: str) -> bool:
    return LEVEL_RANK[new] < LEVEL_RANK[old]
