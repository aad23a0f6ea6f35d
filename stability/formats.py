"""The wire formats alerting systems send, read into one shape (IncomingAlert).

- Prometheus Alertmanager webhook, version 4, and Grafana alerting webhooks share the alert
  shape: status, labels, annotations, startsAt, endsAt, generatorURL, fingerprint.
- The generic format (documented in the OpenAPI schema) is {"alerts": [...]}, each alert with
  labels (required), and optionally status, annotations, starts_at, ends_at, fingerprint,
  source_url and silenced.

A body that is not an object with an alert list is a BodyError (the whole delivery is rejected);
a malformed alert inside a good body is reported by index with its reason, and the others go on.
"""

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

# Alertmanager's "no end" timestamp.
ZERO_TIME_PREFIX = "0001-01-01"


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


def _timestamp(value, name: str) -> datetime | None:
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
    return parsed


def _string_map(value, name: str, *, required: bool) -> dict[str, str]:
    if value is None and not required:
        return {}
    if not isinstance(value, dict) or (required and not value):
        raise ValueError(f"{name} must be a non-empty object" if required else f"{name} must be an object")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ValueError(f"{name} must map strings to strings")
    return value


def _status(value) -> str:
    status = value or "firing"
    if status not in ("firing", "resolved"):
        raise ValueError(f"status must be 'firing' or 'resolved', not {str(status)[:20]!r}")
    return status


def _fingerprint(value, labels: dict[str, str]) -> str:
    if value in (None, ""):
        return label_fingerprint(labels)
    if not isinstance(value, str) or len(value) > 64:
        raise ValueError("fingerprint must be a string of at most 64 characters")
    return value


def _alert_list(body) -> list:
    if not isinstance(body, dict):
        raise BodyError("The body must be a JSON object with an 'alerts' list.")
    alerts = body.get("alerts")
    if not isinstance(alerts, list):
        raise BodyError("The body has no 'alerts' list.")
    return alerts


def _prometheus_alert(raw) -> IncomingAlert:
    if not isinstance(raw, dict):
        raise ValueError("an alert must be an object")
    labels = _string_map(raw.get("labels"), "labels", required=True)
    status = _status(raw.get("status"))
    starts_at = _timestamp(raw.get("startsAt"), "startsAt")
    if starts_at is None:
        raise ValueError("startsAt is required")
    return IncomingAlert(
        fingerprint=_fingerprint(raw.get("fingerprint"), labels),
        starts_at=starts_at,
        status=status,
        labels=labels,
        annotations=_string_map(raw.get("annotations"), "annotations", required=False),
        ends_at=_timestamp(raw.get("endsAt"), "endsAt") if status == "resolved" else None,
        generator_url=str(raw.get("generatorURL") or ""),
    )


def _generic_alert(raw) -> IncomingAlert:
    if not isinstance(raw, dict):
        raise ValueError("an alert must be an object")
    labels = _string_map(raw.get("labels"), "labels", required=True)
    status = _status(raw.get("status"))
    silenced = raw.get("silenced", False)
    if not isinstance(silenced, bool):
        raise ValueError("silenced must be true or false")
    return IncomingAlert(
        fingerprint=_fingerprint(raw.get("fingerprint"), labels),
        starts_at=_timestamp(raw.get("starts_at"), "starts_at"),
        status=status,
        labels=labels,
        annotations=_string_map(raw.get("annotations"), "annotations", required=False),
        ends_at=_timestamp(raw.get("ends_at"), "ends_at") if status == "resolved" else None,
        generator_url=str(raw.get("source_url") or ""),
        silenced=silenced,
    )


_READERS = {"alertmanager": _prometheus_alert, "grafana": _prometheus_alert, "generic": _generic_alert}


def read_body(kind: str, raw_body: bytes) -> tuple[list[IncomingAlert], list[RejectedAlert]]:
    """Parse a webhook body of `kind`; raises BodyError when nothing in it can be used."""
    try:
        body = json.loads(raw_body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BodyError(f"The body is not valid JSON: {exc}") from None
    read_alert = _READERS[kind]
    accepted, rejected = [], []
    for index, raw in enumerate(_alert_list(body)):
        try:
            accepted.append(read_alert(raw))
        except ValueError as exc:
            rejected.append(RejectedAlert(index=index, reason=str(exc)))
    return accepted, rejected
