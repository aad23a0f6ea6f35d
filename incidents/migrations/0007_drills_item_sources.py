"""Items beyond incidents and drills (演练).

An item now has a source (incident, drill, review meeting, audit, governance) and its own team: every
existing item comes from its incident, so it gets source "incident" (the field's default) and its
incident's team, then the team becomes required. Drills are a new record whose findings become items.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def team_from_incident(apps, schema_editor):
    ActionItem = apps.get_model("incidents", "ActionItem")
    Incident = apps.get_model("incidents", "Incident")
    # One UPDATE whatever the number of items.
    ActionItem.objects.filter(team__isnull=True).update(
        team=models.Subquery(Incident.objects.filter(pk=models.OuterRef("incident_id")).values("team_id")[:1])
    )
    if schema_editor.connection.vendor == "postgresql":
        # The new foreign key is checked at commit; check it now, or PostgreSQL refuses the ALTER TABLE
        # that makes the column required ("pending trigger events").
        schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")


class Migration(migrations.Migration):
    dependencies = [
        ("incidents", "0006_incident_review"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="actionitem",
            name="source",
            field=models.CharField(
                choices=[
                    ("incident", "Incident"),
                    ("drill", "Drill"),
                    ("review_meeting", "Review meeting"),
                    ("audit", "Audit"),
                    ("governance", "Governance"),
                ],
                default="incident",
                max_length=20,
                verbose_name="source",
            ),
        ),
        migrations.AddField(
            model_name="actionitem",
            name="source_note",
            field=models.CharField(
                blank=True,
                help_text="Which meeting, audit or piece of work it comes from, e.g. the bimonthly stability review.",
                max_length=200,
                verbose_name="source note",
            ),
        ),
        migrations.AddField(
            model_name="actionitem",
            name="team",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="action_items",
                to="incidents.team",
                verbose_name="team",
            ),
        ),
        migrations.RunPython(team_from_incident, migrations.RunPython.noop, elidable=True),
        migrations.AlterField(
            model_name="actionitem",
            name="team",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="action_items",
                to="incidents.team",
                verbose_name="team",
            ),
        ),
        migrations.AlterField(
            model_name="actionitem",
            name="incident",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="action_items",
                to="incidents.incident",
                verbose_name="incident",
            ),
        ),
        migrations.CreateModel(
            name="Drill",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("title", models.CharField(max_length=200, verbose_name="title")),
                (
                    "scenario",
                    models.CharField(
                        choices=[
                            ("bank_channel_switch", "Bank channel switch-over"),
                            ("failover", "Primary/standby failover"),
                            ("capacity", "Capacity load test"),
                            ("disaster_recovery", "Disaster recovery"),
                            ("other", "Other"),
                        ],
                        max_length=30,
                        verbose_name="scenario",
                    ),
                ),
                ("planned_at", models.DateTimeField(verbose_name="planned at")),
                ("held_at", models.DateTimeField(blank=True, null=True, verbose_name="held at")),
                (
                    "result",
                    models.CharField(
                        blank=True,
                        choices=[("passed", "Passed"), ("partly", "Partly passed"), ("failed", "Failed")],
                        max_length=10,
                        verbose_name="result",
                    ),
                ),
                (
                    "switch_over_seconds",
                    models.PositiveIntegerField(
                        blank=True,
                        help_text="From the start of the switch-over to traffic on the other side.",
                        null=True,
                        verbose_name="time to switch over (seconds)",
                    ),
                ),
                ("findings", models.TextField(blank=True, verbose_name="findings")),
                ("created_at", models.DateTimeField(auto_now_add=True, verbose_name="created at")),
                ("updated_at", models.DateTimeField(auto_now=True, verbose_name="updated at")),
                (
                    "created_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                        verbose_name="created by",
                    ),
                ),
                (
                    "systems",
                    models.ManyToManyField(related_name="drills", to="incidents.system", verbose_name="systems"),
                ),
                (
                    "team",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="drills",
                        to="incidents.team",
                        verbose_name="team",
                    ),
                ),
            ],
            options={
                "verbose_name": "drill",
                "verbose_name_plural": "drills",
                "ordering": ["-planned_at", "-id"],
            },
        ),
        migrations.AddField(
            model_name="actionitem",
            name="drill",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="action_items",
                to="incidents.drill",
                verbose_name="drill",
            ),
        ),
        migrations.AddIndex(
            model_name="actionitem",
            index=models.Index(fields=["team", "due_at"], name="actionitem_team_due"),
        ),
        migrations.AddConstraint(
            model_name="actionitem",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("source", "incident"), ("incident__isnull", False), ("drill__isnull", True)),
                    models.Q(("source", "drill"), ("drill__isnull", False), ("incident__isnull", True)),
                    models.Q(
                        models.Q(("source__in", ["incident", "drill"]), _negated=True),
                        ("incident__isnull", True),
                        ("drill__isnull", True),
                    ),
                    _connector="OR",
                ),
                name="actionitem_source_matches_origin",
            ),
        ),
        migrations.AddIndex(
            model_name="drill",
            index=models.Index(fields=["team", "planned_at"], name="drill_team_planned"),
        ),
        migrations.AddIndex(
            model_name="drill",
            index=models.Index(fields=["held_at"], name="drill_held"),
        ),
        migrations.AddConstraint(
            model_name="drill",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("held_at__isnull", True), ("result", "")),
                    models.Q(("held_at__isnull", False), ("result__in", ["passed", "partly", "failed"])),
                    _connector="OR",
                ),
                name="drill_result_when_held",
            ),
        ),
    ]
