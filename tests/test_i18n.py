"""The Simplified Chinese catalogue: complete, consistent with its compiled .mo, and served.

The catalogue is locale/zh_Hans/LC_MESSAGES/django.po, made by
`manage.py makemessages --locale zh_Hans --no-obsolete --ignore ".venv/*" --ignore "tests/*"`
and compiled by `manage.py compilemessages --locale zh_Hans`; both files are committed.
"""

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polib
import pytest
from django.core.exceptions import ValidationError
from django.utils import translation

from incidents.models import validate_timestamps
from tests.factories import SystemFactory

LC_MESSAGES = Path(__file__).resolve().parent.parent / "locale" / "zh_Hans" / "LC_MESSAGES"
PO_PATH = LC_MESSAGES / "django.po"
MO_PATH = LC_MESSAGES / "django.mo"

PREVIEW = "/api/v1/severity/preview/"
INCIDENTS = "/api/v1/incidents/"

# A python-format placeholder: %(name)s, %(count)d, %(text)r, %(x)05.2f ...
PLACEHOLDER = re.compile(r"%\(\w+\)[#0 +-]*\d*(?:\.\d+)?[diouxXeEfFgGcrsa]")
HAN = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def po() -> polib.POFile:
    return polib.pofile(str(PO_PATH))


def _entries(catalogue):
    """The real messages: not the header (msgid ""), not obsolete."""
    return [e for e in catalogue if e.msgid and not e.obsolete]


def _pairs(catalogue) -> dict:
    pairs = {}
    for entry in _entries(catalogue):
        key = (entry.msgctxt, entry.msgid, entry.msgid_plural or None)
        pairs[key] = dict(entry.msgstr_plural) if entry.msgid_plural else entry.msgstr
    return pairs


def _placeholders(text: str) -> set[str]:
    return set(PLACEHOLDER.findall(text))


# -- the catalogue ------------------------------------------------------------------------------


def test_catalogue_has_messages(po):
    assert len(_entries(po)) > 100
    assert po.metadata["Language"] == "zh_Hans"
    assert "charset=UTF-8" in po.metadata["Content-Type"]


def test_every_entry_is_translated_and_none_is_fuzzy(po):
    assert not po.metadata_is_fuzzy, "the header is marked fuzzy"
    untranslated = [e.msgid for e in _entries(po) if not e.translated() and "fuzzy" not in e.flags]
    fuzzy = [e.msgid for e in _entries(po) if "fuzzy" in e.flags]
    assert untranslated == []
    assert fuzzy == []


def test_placeholders_survive_translation(po):
    wrong = {}
    for entry in _entries(po):
        translations = entry.msgstr_plural.values() if entry.msgid_plural else [entry.msgstr]
        for msgstr in translations:
            if _placeholders(entry.msgid) != _placeholders(msgstr):
                wrong[entry.msgid] = msgstr
    assert wrong == {}


def test_python_format_entries_are_flagged(po):
    """msgfmt --check-format only checks entries flagged python-format."""
    unflagged = [e.msgid for e in _entries(po) if _placeholders(e.msgid) and "python-format" not in e.flags]
    assert unflagged == []


def test_compiled_mo_is_up_to_date(po):
    mo = polib.mofile(str(MO_PATH))
    assert _pairs(mo) == _pairs(po), "django.mo is stale: run `manage.py compilemessages --locale zh_Hans`"


# -- served in Chinese --------------------------------------------------------------------------


@pytest.mark.django_db
def test_severity_explanation_follows_accept_language(engineer_client):
    body = {"tier": "P0", "impact_minutes": 45}

    chinese = engineer_client.post(PREVIEW, body, format="json", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert chinese.status_code == 200, chinese.content
    assert chinese["Content-Language"] == "zh-hans"
    assert chinese.json()["level"] == "B"
    assert chinese.json()["explanation"] == "B: P0 系统受影响 45 分钟 (>= 30 分钟)"

    english = engineer_client.post(PREVIEW, body, format="json")
    assert english.status_code == 200, english.content
    assert english.json()["explanation"] == "B: P0 system impacted 45 min (>= 30 min)"


@pytest.mark.django_db
def test_validation_error_comes_back_in_chinese(engineer_client):
    SystemFactory(code="cashier", tier="P0")
    body = {
        "title": "收银台支付失败",
        "systems": ["cashier"],
        "detection_source": "monitoring",
        "occurred_at": "2026-11-20T10:00:00Z",
        "detected_at": "2026-11-20T09:50:00Z",
    }

    response = engineer_client.post(INCIDENTS, body, format="json", HTTP_ACCEPT_LANGUAGE="zh-hans")

    assert response.status_code == 400, response.content
    assert response.json()["detected_at"] == ["发现时间不得早于故障开始时间（即影响开始的时间）。"]


T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


@pytest.mark.parametrize(
    "values",
    [
        {"occurred_at": T0, "detected_at": T0 - MINUTE},
        {"occurred_at": T0, "detected_at": T0, "recovered_at": T0 - MINUTE},
        {"occurred_at": T0, "detected_at": T0, "responded_at": T0 - MINUTE},
        {"occurred_at": T0, "detected_at": T0, "resolved_at": T0 + MINUTE},
        {"occurred_at": T0, "detected_at": T0, "recovered_at": T0 + 2 * MINUTE, "resolved_at": T0 + MINUTE},
        {"occurred_at": T0, "detected_at": T0 + 10 * MINUTE},
    ],
    ids=["detected", "recovered", "responded", "resolved-unrecovered", "resolved", "future"],
)
def test_every_timestamp_rule_message_is_in_the_catalogue(values):
    """incidents.models calls gettext under another name; its messages must still be translated."""
    with translation.override("zh-hans"), pytest.raises(ValidationError) as raised:
        validate_timestamps(values, now=T0)
    messages = [m for field_messages in raised.value.message_dict.values() for m in field_messages]
    assert messages
    assert all(HAN.search(m) for m in messages), messages
