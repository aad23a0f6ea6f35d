"""Incident roles (commander, communications lead) and structured timeline rows.

Rows written before stored the system's sentences in `text`, in the organisation's language (English or
Chinese). What can be parsed becomes `data` (rendered in the reader's language at read time by
incidents.timeline) and leaves `text` to what a person typed (a reason); the rest stays as text.
"""

import re

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models
from django.utils import translation

ITEM_ADDED = [
    re.compile(
        r'^Action item #(?P<item>\d+) "(?P<title>.*)" added, owner (?P<owner>\S+), due (?P<due>\d{4}-\d{2}-\d{2})$',
        re.S,
    ),
    re.compile(
        r"^已添加闭环项 #(?P<item>\d+)“(?P<title>.*)”，负责人 (?P<owner>\S+)，截止 (?P<due>\d{4}-\d{2}-\d{2})$", re.S
    ),
]
ITEM_STEPS = {
    "started": "start",
    "done, awaiting verification": "complete",
    "verified": "verify",
    "waived": "waive",
    "reopened": "reopen",
    "已开始": "start",
    "已完成，待验收": "complete",
    "已验收": "verify",
    "已豁免": "waive",
    "已重新打开": "reopen",
}
ITEM_STEP = [
    re.compile(
        r"^Action item #(?P<item>\d+) (?P<step>"
        + "|".join(re.escape(k) for k in ITEM_STEPS if k.isascii())
        + r")(?:: (?P<reason>.*))?$",
        re.S,
    ),
    re.compile(
        r"^闭环项 #(?P<item>\d+) (?P<step>"
        + "|".join(re.escape(k) for k in ITEM_STEPS if not k.isascii())
        + r")(?:: (?P<reason>.*))?$",
        re.S,
    ),
]
LOOP_REOPENED = [
    re.compile(r"^Action item #(?P<item>\d+) reopened: the loop is open again$"),
    re.compile(r"^闭环项 #(?P<item>\d+) 已重新打开：事件重新进入未闭环状态$"),
]
LANGUAGES = ("en", "zh-hans")


def _match(patterns, text):
    for pattern in patterns:
        found = pattern.match(text)
        if found:
            return found
    return None


def _explained(text, level, matches):
    """True when `text` is the explanation of `level` with `matches`, in English or Chinese."""
    from incidents import severity

    for language in LANGUAGES:
        with translation.override(language):
            if severity.explain(level, matches) == text:
                return True
    return False


def parse(row, incident_matches):
    """(data, text) for a row written in the old form, or None when nothing in it can be parsed."""
    text = row.text
    if not text:
        return None
    if row.kind == "action_item":
        found = _match(ITEM_ADDED, text)
        if found:
            return {"event": "item_added", **found.groupdict()} | {"item": int(found["item"])}, ""
        found = _match(ITEM_STEP, text)
        if found:
            return {"event": ITEM_STEPS[found["step"]], "item": int(found["item"])}, found["reason"] or ""
        return None
    if row.kind == "status":
        found = _match(LOOP_REOPENED, text)
        if found:
            return {"event": "item_reopened", "item": int(found["item"])}, ""
        return None
    if row.kind in ("created", "severity") and incident_matches is not None:
        # The incident's current matches explain the row only if they give the same sentence.
        if _explained(text, row.new_value, incident_matches):
            return {"matches": incident_matches}, ""
        if _explained(text, row.new_value, []):
            return {"matches": []}, ""
    return None


def structure_rows(apps, schema_editor):
    TimelineEntry = apps.get_model("incidents", "TimelineEntry")
    Incident = apps.get_model("incidents", "Incident")
    rows = TimelineEntry.objects.exclude(text="").exclude(kind="note").order_by("pk")
    matches = {}
    batch = []
    for row in rows.iterator(chunk_size=2000):
        if row.kind in ("created", "severity") and row.incident_id not in matches:
            matches[row.incident_id] = Incident.objects.values_list("severity_matches", flat=True).get(
                pk=row.incident_id
            )
        parsed = parse(row, matches.get(row.incident_id))
        if parsed is None:
            continue  # kept as typed text
        row.data, row.text = parsed
        batch.append(row)
        if len(batch) >= 2000:
            TimelineEntry.objects.bulk_update(batch, ["data", "text"])
            batch = []
    if batch:
        TimelineEntry.objects.bulk_update(batch, ["data", "text"])


class Migration(migrations.Migration):
    dependencies = [
        ("incidents", "0004_incident_team_lookup"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="incident",
            name="commander",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
                verbose_name="incident commander",
            ),
        ),
        migrations.AddField(
            model_name="incident",
            name="communications_lead",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
                verbose_name="communications lead",
            ),
        ),
        migrations.AddField(
            model_name="timelineentry",
            name="data",
            field=models.JSONField(blank=True, default=dict, verbose_name="details"),
        ),
        migrations.AlterField(
            model_name="timelineentry",
            name="kind",
            field=models.CharField(
                choices=[
                    ("created", "Created"),
                    ("change", "Field changed"),
                    ("status", "Status changed"),
                    ("severity", "Severity changed"),
                    ("note", "Note"),
                    ("action_item", "Action item"),
                    ("responded", "Responded"),
                    ("update", "Update"),
                ],
                max_length=12,
                verbose_name="kind",
            ),
        ),
        migrations.AlterField(
            model_name="timelineentry",
            name="text",
            field=models.TextField(
                blank=True, help_text="Only what a person typed (a note, a reason).", verbose_name="text"
            ),
        ),
        migrations.RunPython(structure_rows, migrations.RunPython.noop, elidable=True),
    ]
