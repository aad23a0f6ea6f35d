"""The wire formats alerting systems send, read into one shape (IncomingAlert).

- Prometheus Alertmanager webhook, version 4, and Grafana alerting webhooks share the alert
  shape: status, labels, annotations, startsAt, endsAt, generatorURL, fingerprint.
- The generic format (documented in the OpenAPI schema) is {"alerts": [...]}, each alert with
  labels (required), and optionally status, annotations, starts_at, ends_at, fingerprint,
  source_url and silenced.

A body that is not an object with an alert list is a BodyError (the whole delivery is rejected);
a malformed alert inside a good body is reported by index with its reason, and the others go on.
read_body raises nothing else, whatever the bytes (tests/stability/test_webhooks.py checks it with
hypothesis), and what it accepts can always be stored and read back:

- Timestamps lie in [EARLIEST_TIMESTAMP (2000-01-01), now + CLOCK_SKEW (1 day)]; anything else
  rejects that alert with its reason. "0001-01-01T..." (Go's zero time, sent by Alertmanager and
  Grafana for "no end") means absent.
- Strings PostgreSQL cannot store, NUL (\u0000) and lone surrogates (\ud800 in JSON), are cleaned:
  each such character becomes U+FFFD, in keys and values alike. The alert is kept, not rejected, so
  a sender's odd byte never loses it; the same odd labels always clean to the same fingerprint.
"""

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from incidents.models import EARLIEST_TIMESTAMP

# Alertmanager's "no end" timestamp.
ZERO_TIME_PREFIX = "0001-01-01"
# How far ahead of the tracker's clock a sender's may seem to run. NTP keeps real skew to seconds, but
# senders that write local time as UTC exist (a Beijing host is 8 hours "ahead"; tests/stability/
# test_follow_up.py keeps such alerts working); a day covers every zone (UTC+14) and a host without NTP.
# Further ahead is no clock at all (9999-12-31): rejected.
CLOCK_SKEW = timedelta(days=1)
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")  # a surrogate left in a str is always lone
# Where in a body's bytes such a character can come from: an escape (\u0000, \ud800-\udfff), a surrogate
# encoded in UTF-8 (json.loads lets it pass) or a body in UTF-16/32 (it has NUL bytes). A body with none
# of them, nearly every one, is read without looking at each string (it was a third of reading 50 alerts).
_UNSTORABLE_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")


def _may_be_unstorable(raw_body: bytes) -> bool:
    # Substring tests first: they run at memory speed, a regex with alternatives does not.
    return b"\x00" in raw_body or b"\xed" in raw_body or bool(_UNSTORABLE_ESCAPE.search(raw_body))


class BodyError(ValueError):
    pass


@dataclass(frozen=True)
class IncomingAlert:
    fingerprint: str
    starts_at: datetime | None  # None: match the open occurrence of this fingerprint, else start now
    status: str  # firing | resolved
    labels: dict[str, str]
    annotations: dict[str, str]
    ends_at: datetime | None
    generator_url: str
    silenced: bool = False


@dataclass(frozen=True)
class RejectedAlert:
    index: int
    reason: str


def label_fingerprint(labels: dict[str, str]) -> str:
    """For sources that send none: SHA-256 of the sorted label set."""
    canonical = json.dumps(sorted(labels.items()), ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def storable(value: str) -> str:
    """value with each character PostgreSQL cannot store (NUL, a lone surrogate) replaced by U+FFFD."""
    if value.isascii() and "\x00" not in value:  # the common case, in C: no regex run
        return value
    return _UNSTORABLE.sub("\ufffd", value)


def _timestamp(value, name: str, *, now: datetime) -> datetime | None:
    if value in (None, "") or (isinstance(value, str) and value.startswith(ZERO_TIME_PREFIX)):
        return None
    if not isinstance(value, str):
        raise ValueError(f"{name} must be an RFC 3339 timestamp string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{name} is not an RFC 3339 timestamp: {value[:40]!r}") from None
    if parsed.tzinfo is None:
        raise ValueError(f"{name} has no time zone offset: {value[:40]!r}")
    # Compared before any conversion: 9999-12-31T23:59:59-14:00 is past datetime.max in UTC, and once
    # stored, every page showing it failed converting it to the reader's zone.
    if parsed < EARLIEST_TIMESTAMP:
        raise ValueError(f"{name} is before 2000-01-01: {value[:40]!r}")
    if parsed > now + CLOCK_SKEW:
        raise ValueError(f"{name} is more than a day ahead of the tracker's clock: {value[:40]!r}")
    return parsed.astimezone(UTC)


def _as_is(value: str) -> str:
    return value


def _string_map(value, name: str, *, required: bool, text=_as_is) -> dict[str, str]:
    if value is None and not required:
        return {}
    if not isinstance(value, dict) or (required and not value):
        raise ValueError(f"{name} must be a non-empty object" if required else f"{name} must be an object")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ValueError(f"{name} must map strings to strings")
    return value if text is _as_is else {text(k): text(v) for k, v in value.items()}


def _string(value, name: str, text=_as_is) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string")
    return text(value)


def _status(value) -> str:
    if value in (None, ""):
        return "firing"
    if value not in ("firing", "resolved"):
        # Never str() of the value: a deeply nested one would recurse.
        shown = f", not {value[:20]!r}" if isinstance(value, str) else ""
        raise ValueError(f"status must be 'firing' or 'resolved'{shown}")
    return value


def _fingerprint(value, labels: dict[str, str], text=_as_is) -> str:
    if value in (None, ""):
        return label_fingerprint(labels)
    if not isinstance(value, str) or len(value) > 64:
        raise ValueError("fingerprint must be a string of at most 64 characters")
    return text(value)


def _alert_list(body) -> list:
    if not isinstance(body, dict):
        raise BodyError("The body must be a JSON object with an 'alerts' list.")
    alerts = body.get("alerts")
    if not isinstance(alerts, list):
        raise BodyError("The body has no 'alerts' list.")
    return alerts


def _prometheus_alert(raw, now: datetime, text) -> IncomingAlert:
    if not isinstance(raw, dict):
        raise ValueError("an alert must be an object")
    labels = _string_map(raw.get("labels"), "labels", required=True, text=text)
    status = _status(raw.get("status"))
    starts_at = _timestamp(raw.get("startsAt"), "startsAt", now=now)
    if starts_at is None:
        raise ValueError("startsAt is required")
    return IncomingAlert(
        fingerprint=_fingerprint(raw.get("fingerprint"), labels, text),
        starts_at=starts_at,
        status=status,
        labels=labels,
        annotations=_string_map(raw.get("annotations"), "annotations", required=False, text=text),
        ends_at=_timestamp(raw.get("endsAt"), "endsAt", now=now) if status == "resolved" else None,
        generator_url=_string(raw.get("generatorURL"), "generatorURL", text),
    )


def _generic_alert(raw, now: datetime, text) -> IncomingAlert:
    if not isinstance(raw, dict):
        raise ValueError("an alert must be an object")
    labels = _string_map(raw.get("labels"), "labels", required=True, text=text)
    status = _status(raw.get("status"))
    silenced = raw.get("silenced", False)
    if not isinstance(silenced, bool):
        raise ValueError("silenced must be true or false")
    return IncomingAlert(
        fingerprint=_fingerprint(raw.get("fingerprint"), labels, text),
        starts_at=_timestamp(raw.get("starts_at"), "starts_at", now=now),
        status=status,
        labels=labels,
        annotations=_string_map(raw.get("annotations"), "annotations", required=False, text=text),
        ends_at=_timestamp(raw.get("ends_at"), "ends_at", now=now) if status == "resolved" else None,
        generator_url=_string(raw.get("source_url"), "source_url", text),
        silenced=silenced,
    )


_READERS = {"alertmanager": _prometheus_alert, "grafana": _prometheus_alert, "generic": _generic_alert}


def read_body(
    kind: str, raw_body: bytes, *, now: datetime | None = None
) -> tuple[list[IncomingAlert], list[RejectedAlert]]:
    """Parse a webhook body of `kind` received at `now` (default: the clock); raises BodyError, and
    nothing else, when nothing in it can be used."""
    try:
        body = json.loads(raw_body)
    except RecursionError:  # nesting deeper than the interpreter's recursion limit (about 1,000)
        raise BodyError("The body is not valid JSON: it is nested too deeply.") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an integer of over 4,300 digits
        raise BodyError(f"The body is not valid JSON: {storable(str(exc))[:200]}") from None
    now = now or datetime.now(UTC)
    read_alert = _READERS[kind]
    text = storable if _may_be_unstorable(raw_body) else _as_is
    accepted, rejected = [], []
    for index, raw in enumerate(_alert_list(body)):
        try:
            accepted.append(read_alert(raw, now, text))
        except ValueError as exc:
            rejected.append(RejectedAlert(index=index, reason=str(exc)))
    return accepted, rejected
