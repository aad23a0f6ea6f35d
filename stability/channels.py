"""Notification channels: what a valid one is, how each kind of robot or webhook is written to, signed,
posted and answered, and the writes that configure channels.

One sender per kind builds the request body, signs it, posts it (urllib, HTTP(S) only) and checks
the reply; any problem is a DeliveryError whose reason says what went wrong in words an admin can act
on (HTTP status and the start of the body, or the robot's error code and message). Email is sent by
stability.delivery with Django's mail backends.

Vendors' rules followed here:
- WeCom group robot: markdown message; answer {"errcode": 0}.
- DingTalk robot with signing: timestamp in ms, sign = urlencode(base64(HMAC-SHA256(key=secret,
  msg="{timestamp}\\n{secret}"))), both added to the webhook URL; answer {"errcode": 0}.
- Feishu robot with signing: timestamp in s, sign = base64(HMAC-SHA256(key="{timestamp}\\n{secret}",
  msg="")), both in the JSON body; answer {"code": 0}.
- Slack incoming webhook: {"text": ...} in mrkdwn; answer 200 "ok".
- Generic webhook: one JSON object per notification (event, title, text, url, ids), header
  Idempotency-Key: <the notification's key> (the same on every retry); with a secret, header
  X-Stability-Signature: sha256=<hex HMAC-SHA256 of the body>.
"""

import base64
import hashlib
import hmac
import http.client
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator, URLValidator
from django.db import transaction
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from stability.models import NotificationChannel, subscribable_events

Kind = NotificationChannel.Kind
EXCERPT = 300  # characters of a reply kept in an error


class DeliveryError(Exception):
    """A message could not be delivered; `retryable` False when trying again cannot help (configuration);
    `unknown` True when the request went out and no answer came back: the receiver may have it."""

    def __init__(self, reason: str, *, retryable: bool = True, unknown: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.unknown = unknown


# --- what is sent ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One notification as a chat entry or an email: a title linking back, detail lines, and (a digest)
    links to several items."""

    title: str
    url: str
    details: tuple[str, ...] = ()
    links: tuple[tuple[str, str], ...] = ()

    def as_text(self) -> str:
        lines = [self.title, *self.details, *(f"- {text}: {url}" for text, url in self.links), self.url]
        return "\n".join(lines)


def heading(count: int) -> str:
    return ngettext(
        "Stability Tracker: %(count)d notification", "Stability Tracker: %(count)d notifications", count
    ) % {"count": count}


def _link_text(text: str) -> str:
    # Brackets would end a markdown link's text early.
    return text.replace("[", "(").replace("]", ")")


def markdown(entries: list[Entry]) -> str:
    """WeCom and DingTalk markdown."""
    lines = [f"**{heading(len(entries))}**"]
    for entry in entries:
        lines.append(f"- [{_link_text(entry.title)}]({entry.url})")
        lines.extend(f"  {detail}" for detail in entry.details)
        lines.extend(f"  - [{_link_text(text)}]({url})" for text, url in entry.links)
    return "\n".join(lines)


def plain_text(entries: list[Entry]) -> str:
    """Feishu text."""
    lines = [heading(len(entries))]
    for entry in entries:
        lines.append(f"- {entry.title}")
        lines.extend(f"  {detail}" for detail in entry.details)
        lines.extend(f"  - {text}: {url}" for text, url in entry.links)
        lines.append(f"  {entry.url}")
    return "\n".join(lines)


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_text(entries: list[Entry]) -> str:
    lines = [f"*{_slack_escape(heading(len(entries)))}*"]
    for entry in entries:
        lines.append(f"• <{entry.url}|{_slack_escape(entry.title)}>")
        lines.extend(f"    {_slack_escape(detail)}" for detail in entry.details)
        lines.extend(f"    ◦ <{url}|{_slack_escape(text)}>" for text, url in entry.links)
    return "\n".join(lines)


# --- signing ---------------------------------------------------------------------------------------


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """base64(HMAC-SHA256(key=secret, msg="{timestamp}\\n{secret}")), not yet URL-encoded."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def feishu_sign(secret: str, timestamp_s: int) -> str:
    """base64(HMAC-SHA256(key="{timestamp}\\n{secret}", msg=""))."""
    digest = hmac.new(f"{timestamp_s}\n{secret}".encode(), b"", hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def webhook_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# --- HTTP --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: int
    text: str

    def json(self) -> Any:
        try:
            return json.loads(self.text)
        except ValueError:
            return None


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= EXCERPT else text[: EXCERPT - 1] + "…"


def post_json(
    url: str, payload: Any, *, headers: Mapping[str, str] | None = None, timeout: float | None = None
) -> Reply:
    """POST a JSON body; a reply of any status is returned, a failure to get one is a DeliveryError.
    `timeout` in seconds, REMINDER_HTTP_TIMEOUT_SECONDS by default."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload, ensure_ascii=False).encode()
    request = urllib.request.Request(
        url,
        data=body,
        headers={
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "stability-tracker",
            **(headers or {}),
        },
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout or settings.REMINDER_HTTP_TIMEOUT_SECONDS) as answer:
            return Reply(answer.status, answer.read(65536).decode("utf-8", "replace"))
    except urllib.error.HTTPError as error:
        return Reply(error.code, error.read(65536).decode("utf-8", "replace"))
    except urllib.error.URLError as error:
        # urllib wraps what fails while connecting and writing the request: the receiver has nothing whole.
        # The reason, never the URL: robot URLs carry their access token.
        raise DeliveryError(_("No answer from the server: %(reason)s") % {"reason": error.reason}) from error
    except (http.client.HTTPException, OSError) as error:
        # The request was written, then the answer timed out or the connection dropped: the receiver may
        # have processed it. Saying "failed" here and trying again is how a reminder arrives twice.
        raise DeliveryError(
            _("Outcome unknown: the request was sent but no answer came (%(reason)s).")
            % {"reason": str(error) or type(error).__name__},
            unknown=True,
        ) from error


def _timeout(seconds: float | None) -> dict:
    # Only a test message asks for its own timeout; deliveries keep post_json's default.
    return {} if seconds is None else {"timeout": seconds}


def check_target(url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DeliveryError(_("The channel's target is not an http(s) URL; correct the channel."), retryable=False)


def _http_error(reply: Reply) -> DeliveryError:
    return DeliveryError(_("HTTP %(status)s: %(body)s") % {"status": reply.status, "body": _excerpt(reply.text)})


def _check_errcode(reply: Reply, *, vendor: str, code_field: str = "errcode", message_field: str = "errmsg") -> None:
    if reply.status != 200:
        raise _http_error(reply)
    answer = reply.json()
    if not isinstance(answer, dict) or code_field not in answer:
        raise DeliveryError(
            _("%(vendor)s answered something other than its JSON: %(body)s")
            % {"vendor": vendor, "body": _excerpt(reply.text)}
        )
    if answer[code_field] != 0:
        raise DeliveryError(
            _("%(vendor)s error %(code)s: %(message)s")
            % {"vendor": vendor, "code": answer[code_field], "message": _excerpt(str(answer.get(message_field, "")))}
        )


# --- senders -----------------------------------------------------------------------------------------


class ChatSender:
    """A chat robot: several notifications batched into one message of at most `max_bytes`."""

    max_bytes: int

    def payload(self, entries: list[Entry], *, secret: str) -> tuple[dict, dict[str, str], dict[str, str]]:
        """(JSON body, extra query parameters, extra headers)."""
        raise NotImplementedError

    def content_size(self, entries: list[Entry]) -> int:
        raise NotImplementedError

    def check(self, reply: Reply) -> None:
        raise NotImplementedError

    def send(self, target: str, entries: list[Entry], *, secret: str, timeout: float | None = None) -> None:
        check_target(target)
        body, query, headers = self.payload(entries, secret=secret)
        url = target
        if query:
            url += ("&" if urllib.parse.urlsplit(target).query else "?") + urllib.parse.urlencode(query)
        self.check(post_json(url, body, headers=headers, **_timeout(timeout)))


class WeComSender(ChatSender):
    max_bytes = 4096  # markdown content

    def payload(self, entries, *, secret):
        return {"msgtype": "markdown", "markdown": {"content": markdown(entries)}}, {}, {}

    def content_size(self, entries):
        return len(markdown(entries).encode())

    def check(self, reply):
        _check_errcode(reply, vendor="WeCom")


class DingTalkSender(ChatSender):
    max_bytes = 18000  # DingTalk refuses messages over 20,000 bytes

    def payload(self, entries, *, secret):
        body = {"msgtype": "markdown", "markdown": {"title": heading(len(entries)), "text": markdown(entries)}}
        query = {}
        if secret:
            timestamp = int(time.time() * 1000)
            query = {"timestamp": str(timestamp), "sign": dingtalk_sign(secret, timestamp)}
        return body, query, {}

    def content_size(self, entries):
        return len(markdown(entries).encode())

    def check(self, reply):
        _check_errcode(reply, vendor="DingTalk")


class FeishuSender(ChatSender):
    max_bytes = 18000  # Feishu refuses request bodies over 20 KB

    def payload(self, entries, *, secret):
        body: dict[str, Any] = {"msg_type": "text", "content": {"text": plain_text(entries)}}
        if secret:
            timestamp = int(time.time())
            body = {"timestamp": str(timestamp), "sign": feishu_sign(secret, timestamp), **body}
        return body, {}, {}

    def content_size(self, entries):
        return len(plain_text(entries).encode())

    def check(self, reply):
        if reply.status == 200 and isinstance(reply.json(), dict) and reply.json().get("StatusCode") == 0:
            return  # the older answer shape
        _check_errcode(reply, vendor="Feishu", code_field="code", message_field="msg")


class SlackSender(ChatSender):
    max_bytes = 35000  # Slack truncates text after 40,000 characters

    def payload(self, entries, *, secret):
        return {"text": slack_text(entries)}, {}, {}

    def content_size(self, entries):
        return len(slack_text(entries).encode())

    def check(self, reply):
        if reply.status != 200 or reply.text.strip() != "ok":
            raise _http_error(reply)


CHAT_SENDERS: dict[str, ChatSender] = {
    Kind.WECOM: WeComSender(),
    Kind.DINGTALK: DingTalkSender(),
    Kind.FEISHU: FeishuSender(),
    Kind.SLACK: SlackSender(),
}


IDEMPOTENCY_HEADER = "Idempotency-Key"


def send_webhook(target: str, payload: dict, *, secret: str, timeout: float | None = None) -> None:
    """The generic webhook: one notification per POST; any 2xx is a success. Every attempt of one
    notification carries the same Idempotency-Key header (its key), so a receiver that keeps the keys it
    has processed drops the repeat a retry after a timeout sends."""
    check_target(target)
    body = json.dumps(payload, ensure_ascii=False, sort_keys=True).encode()
    headers = {IDEMPOTENCY_HEADER: payload["key"]}
    if secret:
        headers["X-Stability-Signature"] = webhook_signature(secret, body)
    reply = post_json(target, body, headers=headers, **_timeout(timeout))
    if not 200 <= reply.status < 300:
        raise _http_error(reply)


# --- configuration -----------------------------------------------------------------------------------


def email_addresses(target: str) -> list[str]:
    return [address.strip() for address in target.replace(";", ",").split(",") if address.strip()]


def validate_channel(channel: NotificationChannel, *, fields: bool = True) -> None:
    """The field checks (unless `fields` is False: a model form made them), a team or a person (not
    both), a target that suits the kind, known events."""
    errors: dict[str, list[str]] = {}
    if fields:
        try:
            channel.full_clean(validate_constraints=False)
        except ValidationError as error:
            errors.update(error.message_dict)
    if (channel.team_id is None) == (channel.user_id is None):
        errors.setdefault("team", []).append(_("A channel belongs to a team or to a person: choose exactly one."))
    for name, problems in (("target", _target_problems(channel)), ("events", _events_problems(channel.events))):
        if problems:
            errors.setdefault(name, []).extend(problems)
    if errors:
        raise ValidationError(errors)


def _target_problems(channel: NotificationChannel) -> list[str]:
    """Email: addresses (a person's channel may leave them out: their own); any other kind: an http(s) URL."""
    target = channel.target.strip()
    if channel.kind == Kind.EMAIL:
        addresses = email_addresses(target)
        problems = []
        if not addresses and channel.user_id is None:
            problems.append(_("A team's email channel needs at least one address."))
        for address in addresses:
            try:
                EmailValidator()(address)
            except ValidationError:
                problems.append(_("Not an email address: %(address)s") % {"address": address})
        return problems
    if channel.kind:
        try:
            URLValidator(schemes=["http", "https"])(target)
        except ValidationError:
            return [_("The robot's or webhook's URL, starting with https://.")]
    return []


def _events_problems(events) -> list[str]:
    if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
        return [_("A list of event names.")]
    known = [value for value, _label in subscribable_events()]
    unknown = sorted(set(events) - set(known))
    if unknown:
        return [
            _("Unknown events: %(events)s; known: %(known)s.")
            % {"events": ", ".join(unknown), "known": ", ".join(known)}
        ]
    return []


CHANNEL_FIELDS = (
    "kind",
    "name",
    "target",
    "secret",
    "team",
    "user",
    "events",
    "language",
    "messages_per_minute",
    "enabled",
)


@transaction.atomic
def channel_create(**values) -> NotificationChannel:
    """A new channel, checked by validate_channel."""
    unknown = set(values) - set(CHANNEL_FIELDS)
    if unknown:
        raise TypeError(f"unknown channel fields: {sorted(unknown)}")
    channel = NotificationChannel(**values)
    validate_channel(channel)
    channel.save()
    return channel


@transaction.atomic
def channel_update(*, channel_id: int, changes: Mapping[str, Any]) -> NotificationChannel:
    """Change a channel. Secrets are never read back: leave `secret` out to keep it, "" to clear it."""
    unknown = set(changes) - set(CHANNEL_FIELDS)
    if unknown:
        raise TypeError(f"unknown channel fields: {sorted(unknown)}")
    channel = NotificationChannel.objects.select_for_update().get(pk=channel_id)
    for name, value in changes.items():
        setattr(channel, name, value)
    validate_channel(channel)
    channel.save()
    return channel


@transaction.atomic
def channel_delete(*, channel_id: int) -> None:
    """Remove a channel (the settings page, the API, the admin): what was sent through it stays logged."""
    NotificationChannel.objects.filter(pk=channel_id).delete()
