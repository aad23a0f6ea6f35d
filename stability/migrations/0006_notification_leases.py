# Delivery leases with a heartbeat, outcomes that are unknown (a request sent, no answer), and a robot's
# budget counted from its messages in flight or answered in the last 60 s.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("stability", "0005_alert_day_counts"),
    ]

    operations = [
        migrations.AddField(
            model_name="outboundmessage",
            name="attempted_at",
            field=models.DateTimeField(
                blank=True, help_text="Empty: it never went out.", null=True, verbose_name="request sent at"
            ),
        ),
        migrations.AlterField(
            model_name="outboundmessage",
            name="ok",
            field=models.BooleanField(
                help_text="Empty while it is being sent, or when the outcome is unknown.",
                null=True,
                verbose_name="delivered",
            ),
        ),
        migrations.AlterField(
            model_name="notification",
            name="status",
            field=models.CharField(
                choices=[
                    ("pending", "Pending"),
                    ("sent", "Sent"),
                    ("failed", "Failed"),
                    ("skipped", "Skipped"),
                    ("unknown", "Outcome unknown"),
                ],
                default="pending",
                max_length=10,
                verbose_name="status",
            ),
        ),
        migrations.AlterField(
            model_name="notification",
            name="claimed_at",
            field=models.DateTimeField(
                blank=True,
                help_text="A worker holds it: the last heartbeat of its lease (renewed while the worker lives).",
                null=True,
                verbose_name="claimed at",
            ),
        ),
        migrations.AddIndex(
            model_name="outboundmessage",
            index=models.Index(fields=["channel", "finished_at"], name="outbound_channel_finished"),
        ),
    ]
