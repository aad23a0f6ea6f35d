"""The received_at index becomes covering: the follow-up figures of a period read from the index alone
(stability.selectors: reports, trends, health scores). Added before the plain one is dropped."""

from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('incidents', '0003_action_items'),
        ('stability', '0003_monthly_report'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddIndex(
            model_name='alertoccurrence',
            index=models.Index(fields=['received_at'], include=('excluded', 'followed_up_at', 'resolved_at', 'resolved_by', 'team', 'system', 'alertname'), name='alert_received_follow_up'),
        ),
        migrations.RemoveIndex(
            model_name='alertoccurrence',
            name='stability_a_receive_c8e54f_idx',
        ),
    ]
