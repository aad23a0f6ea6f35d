# The weekly report (周报): a notification event of its own beside the monthly report's, carried by
# default by team channels as the monthly one is.

import django.db.models.deletion
from django.db import migrations, models

import stability.models


class Migration(migrations.Migration):
    dependencies = [
        ("stability", "0009_published_reports"),
    ]

    operations = [
        migrations.AlterField(
            model_name="notification",
            name="event",
            field=models.CharField(
                choices=[
                    ("item_before_due", "Action item due soon"),
                    ("item_due", "Action item due"),
                    ("item_overdue", "Action item overdue"),
                    ("item_escalation", "Overdue action item escalated"),
                    ("digest", "Weekly digest"),
                    ("alert_unfollowed", "Alert not followed up"),
                    ("alert_escalation", "Unfollowed alert escalated"),
                    ("weekly_report", "Weekly stability report"),
                    ("monthly_report", "Monthly stability report"),
                ],
                max_length=20,
                verbose_name="event",
            ),
        ),
        migrations.AlterField(
            model_name="notification",
            name="team",
            field=models.ForeignKey(
                blank=True,
                help_text="The team a weekly or monthly report is about.",
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="report_notifications",
                to="incidents.team",
                verbose_name="team",
            ),
        ),
        migrations.AlterField(
            model_name="notificationchannel",
            name="events",
            field=models.JSONField(
                blank=True,
                default=stability.models.default_channel_events,
                help_text="Events this channel carries; empty: a person's channel carries all of theirs, a team's the alert notices, escalations and the weekly and monthly reports.",
                verbose_name="events",
            ),
        ),
    ]
