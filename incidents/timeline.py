"""The incident timeline in the reader's language.

A timeline row stores an event (kind, field, old, new, author, the text a person typed, and `data`: the
values the system knows, never sentences); `describe` says it in the active language when it is read, so
a Chinese reader of a 复盘 never meets "Action item #29 ... added, owner engineer". The pages, the API
(`Accept-Language`) and the exports all call it.
"""

from datetime import datetime

from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.text import capfirst
from django.utils.translation import gettext as _

from incidents import severity
from incidents.models import TIMESTAMP_FIELDS, ActionItem, Incident, ReviewSection, Status, TimelineEntry

EMPTY = "∅"

# data["event"] of an action item's row -> what it says ("%(id)s" is the item's number).
ITEM_EVENTS = {
    "start": lambda: _("Action item #%(id)s started"),
    "complete": lambda: _("Action item #%(id)s done, awaiting verification"),
    "verify": lambda: _("Action item #%(id)s verified"),
    "waive": lambda: _("Action item #%(id)s waived"),
    "reopen": lambda: _("Action item #%(id)s reopened"),
}


def level_name(level: str) -> str:
    """'B级' in Chinese, 'level B' in English."""
    if not level:
        return EMPTY
    return _("level %(level)s") % {"level": level}


def _model_of(entry: TimelineEntry) -> type[models.Model]:
    return ActionItem if entry.kind == TimelineEntry.Kind.ACTION_ITEM else Incident


def field_name(entry: TimelineEntry) -> str:
    """The field's verbose name in the reader's language (the row stores its name)."""
    if entry.field == "level_override":
        return _("level override")
    try:
        return str(_model_of(entry)._meta.get_field(entry.field).verbose_name)
    except FieldDoesNotExist:  # a row may name a field that no longer exists
        return entry.field


def _when(value: str) -> str:
    moment = parse_datetime(value)
    if moment is None:
        return value
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, timezone.get_default_timezone())
    return f"{timezone.localtime(moment):%Y-%m-%d %H:%M:%S}"


def value_text(entry: TimelineEntry, value: str) -> str:
    """A recorded value as the reader wants it: a time in the local zone, a choice's label, yes/no."""
    if value in ("", None):
        return EMPTY
    name = entry.field
    if name in (*TIMESTAMP_FIELDS, "closed_at", "due_at", "started_at", "completed_at", "verified_at", "waived_at"):
        return _when(value)
    if name in ("level", "level_override", "classified_level"):
        return level_name(value)
    if name == "status" and entry.kind != TimelineEntry.Kind.ACTION_ITEM:
        return Status(value).label if value in Status.values else value
    try:
        model_field = _model_of(entry)._meta.get_field(name)
    except FieldDoesNotExist:
        return value
    if getattr(model_field, "choices", None):
        return str(dict(model_field.choices).get(value, value))
    if value in ("True", "False"):
        return _("yes") if value == "True" else _("no")
    return value


def _change(entry: TimelineEntry) -> str:
    return f"{capfirst(field_name(entry))}: {value_text(entry, entry.old_value)} → {value_text(entry, entry.new_value)}"


def _explanation(entry: TimelineEntry) -> str:
    """Why the level is what it is, from the matched conditions kept on the row."""
    if "matches" in entry.data:
        return severity.explain(entry.new_value, entry.data["matches"])
    return ""


def _with_text(sentence: str, text: str) -> str:
    return f"{sentence} · {text}" if text else sentence


def describe(entry: TimelineEntry) -> str:
    """The row in the active language (what happened; the time and the author are shown apart)."""
    data = entry.data or {}
    kind = entry.kind
    if kind == TimelineEntry.Kind.NOTE:
        return entry.text
    if kind == TimelineEntry.Kind.UPDATE:
        return _("Update: %(text)s") % {"text": entry.text}
    if kind == TimelineEntry.Kind.RESPONDED:
        return _("Responded: on it")
    if kind == TimelineEntry.Kind.CREATED:
        # "Logged: B: 14,999 failed transactions (>= 10,000)", the explanation naming the level.
        return f"{_('Logged')}: {_explanation(entry) or entry.text or level_name(entry.new_value)}"
    if kind == TimelineEntry.Kind.SEVERITY:
        sentence = _change(entry) if entry.field else level_name(entry.new_value)
        return _with_text(sentence, entry.text or _explanation(entry))
    if kind == TimelineEntry.Kind.STATUS:
        sentence = _change(entry)
        if data.get("event") == "item_reopened":
            sentence = _with_text(
                sentence, _("Action item #%(id)s reopened: the loop is open again") % {"id": data.get("item")}
            )
        return _with_text(sentence, entry.text)
    if kind == TimelineEntry.Kind.ACTION_ITEM:
        return _describe_item(entry, data)
    if kind == TimelineEntry.Kind.REVIEW:
        return _("Review (version %(version)s) written: %(sections)s") % {
            "version": data.get("version", ""),
            "sections": section_names(data.get("sections", [])),
        }
    return _with_text(_change(entry), entry.text)


def section_names(keys) -> str:
    """Review sections by name in the reader's language: "Summary, Lessons", "摘要，经验教训"."""
    return _(", ").join(str(ReviewSection(key).label) if key in ReviewSection.values else key for key in keys)


def _describe_item(entry: TimelineEntry, data: dict) -> str:
    item_id = data.get("item", entry.action_item_id)
    event = data.get("event")
    if event == "item_added":
        sentence = _('Action item #%(id)s "%(title)s" added, owner %(owner)s, due %(due)s') % {
            "id": item_id,
            "title": data.get("title", ""),
            "owner": data.get("owner", ""),
            "due": data.get("due", ""),
        }
        return _with_text(sentence, entry.text)
    if event in ITEM_EVENTS:
        sentence = ITEM_EVENTS[event]() % {"id": item_id}
        return f"{sentence}: {entry.text}" if entry.text else sentence
    if entry.field:
        return _with_text(_("Action item #%(id)s") % {"id": item_id} + ": " + _change(entry), entry.text)
    return _with_text(_("Action item #%(id)s") % {"id": item_id}, entry.text)


def at_text(moment: datetime) -> str:
    return f"{timezone.localtime(moment):%Y-%m-%d %H:%M:%S}"
