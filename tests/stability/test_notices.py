"""stability.notices: what a notification says (entry, webhook body), in its language, linking back under
SITE_URL; nothing is written."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import time_machine

from stability import notices, reminders
from stability.models import Notification
from tests.factories import ActionItemFactory, UserFactory

ZONE = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=ZONE)


def test_an_overdue_item_in_its_owners_language_with_a_webhook_body(db, settings):
    settings.SITE_URL = "https://stability.example.com"
    owner = UserFactory(username="lei", first_name="Lei", last_name="Wang", language="zh-hans")
    with time_machine.travel(NOW - timedelta(days=10), tick=False):
        item = ActionItemFactory(owner=owner, title="Split the batch", due_at=NOW - timedelta(days=2))
    with time_machine.travel(NOW, tick=False):
        reminders.sweep(enqueue=lambda destinations: 0)
    notification = Notification.objects.select_related("action_item__incident", "action_item__owner").get()

    rendered = notices.render([notification], now=NOW)

    ((same, entry),) = rendered.entries
    assert same is notification and rendered.empty == [] and rendered.report_of == {}
    assert entry.title == "已逾期 2 天：Split the batch"
    assert entry.url == f"https://stability.example.com/incidents/{item.incident_id}/#item-{item.pk}"
    payload = notices.webhook_payload(notification, entry)
    assert (payload["key"], payload["title"], payload["url"]) == (notification.key, entry.title, entry.url)
    assert payload["ids"]["action_item"] == item.pk and payload["ids"]["incident"] == item.incident_id


def test_a_digest_with_nothing_open_says_nothing(db):
    owner = UserFactory(username="lei")
    with time_machine.travel(NOW, tick=False):
        ActionItemFactory()  # someone else's
    notification = Notification(pk=1, event="digest", step="2026-W48", recipient=owner, language="en", fire_at=NOW)

    rendered = notices.render([notification], now=NOW)

    assert (rendered.entries, rendered.empty) == ([], [1])
