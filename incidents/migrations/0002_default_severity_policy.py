"""Seed version 1 of the A-D policy, as docs/severity.md describes it.

The values are written out here rather than imported: a migration must keep meaning what it
meant when it was written, whatever later becomes of incidents.severity.DEFAULT_RULES.
"""

from django.db import migrations

RULES_V1 = {
    "A": [
        {"kind": "tier_impact", "tier": "P0", "minutes": 60},
        {"kind": "funds_loss", "at_least": "1000000"},
        {"kind": "affected_users", "at_least": 100000},
        {"kind": "flag", "flag": "data_or_security_breach"},
        {"kind": "flag", "flag": "regulatory_reportable"},
    ],
    "B": [
        {"kind": "tier_impact", "tier": "P0", "minutes": 30},
        {"kind": "tier_impact", "tier": "P1", "minutes": 60},
        {"kind": "funds_loss", "at_least": "100000"},
        {"kind": "affected_users", "at_least": 10000},
        {"kind": "affected_transactions", "at_least": 10000},
    ],
    "C": [
        {"kind": "tier_impact", "tier": "P0", "minutes": 10},
        {"kind": "tier_impact", "tier": "P1", "minutes": 30},
        {"kind": "tier_impact", "tier": "P2", "minutes": 60},
        {"kind": "funds_loss", "at_least": "10000"},
        {"kind": "affected_users", "at_least": 1000},
        {"kind": "affected_transactions", "at_least": 1000},
    ],
}
RECOVERY_TARGETS_V1 = {"A": 1800, "B": 3600, "C": 14400, "D": 86400}


def seed(apps, schema_editor):
    SeverityPolicy = apps.get_model("incidents", "SeverityPolicy")
    SeverityPolicy.objects.get_or_create(
        version=1,
        defaults={"rules": RULES_V1, "recovery_targets": RECOVERY_TARGETS_V1,
                  "note": "Default policy of severity.md"},
    )


class Migration(migrations.Migration):
    dependencies = [("incidents", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
