"""Asking a Prometheus server one number: an instant query through its HTTP API (`POST /api/v1/query`),
with the source's credentials, TLS choice and timeout, always. urllib, like stability.channels: no
HTTP library is a dependency of the tracker.

A query either gives a number, gives no data (an empty answer, or NaN: nothing to measure that day), or
fails with a Problem: a code and its detail (Prometheus's own words where it gave some), put in words
in the reader's language by `problem_text`.
"""

import base64
import http.client
import json
import math
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import datetime

from django.utils.translation import gettext as _

from service_levels.models import PrometheusSource

# An answer longer than this is not one number (a query returning thousands of series): refused unread.
MAX_ANSWER_BYTES = 1024 * 1024


class Problem:
    """Why a query gave no number. Failures are tried again; NO_DATA and NAN are days without data."""

    UNREACHABLE = "unreachable"
    TIMEOUT = "timeout"
    AUTH = "auth"
    BAD_QUERY = "bad_query"
    HTTP = "http"
    BAD_ANSWER = "bad_answer"
    MANY_SERIES = "many_series"
    NOT_A_NUMBER = "not_a_number"
    INFINITE = "infinite"
    NEGATIVE = "negative"
    GOOD_ABOVE_TOTAL = "good_above_total"
    RATIO_RANGE = "ratio_range"
    NO_DATA = "no_data"
    NAN = "nan"
    NO_EVENTS = "no_events"
    GOOD_MISSING = "good_missing"


_TEXTS = {
    Problem.UNREACHABLE: lambda d: _("Prometheus could not be reached: %(detail)s") % {"detail": d},
    Problem.TIMEOUT: lambda d: _("Prometheus gave no answer within %(detail)s s.") % {"detail": d},
    Problem.AUTH: lambda d: (
        _("Prometheus refused the credentials (HTTP %(detail)s): check the source's token or password.") % {"detail": d}
    ),
    Problem.BAD_QUERY: lambda d: _("Prometheus refused the expression: %(detail)s") % {"detail": d},
    Problem.HTTP: lambda d: _("Prometheus answered with an error: %(detail)s") % {"detail": d},
    Problem.BAD_ANSWER: lambda d: (
        _("The answer is not a Prometheus query answer (is the URL the server's base URL?): %(detail)s") % {"detail": d}
    ),
    Problem.MANY_SERIES: lambda d: (
        _("The expression gives %(detail)s series, not one number: aggregate it, e.g. with sum(...).") % {"detail": d}
    ),
    Problem.NOT_A_NUMBER: lambda d: _("The expression gives a %(detail)s, not one number.") % {"detail": d},
    Problem.INFINITE: lambda d: _("The expression gives %(detail)s, not a finite number.") % {"detail": d},
    Problem.NEGATIVE: lambda d: (
        _("Negative counts (%(detail)s): count events with increase() on counters.") % {"detail": d}
    ),
    Problem.GOOD_ABOVE_TOTAL: lambda d: (
        _("More good events than events (%(detail)s): are the two expressions swapped?") % {"detail": d}
    ),
    Problem.RATIO_RANGE: lambda d: (
        _("A ratio of %(detail)s is not between 0 and 1: give a share, not a percentage.") % {"detail": d}
    ),
    Problem.NO_DATA: lambda d: _("No data: Prometheus has no samples for it."),
    Problem.NAN: lambda d: _("No data: the expression gives NaN (nothing was measured, e.g. 0 / 0)."),
    Problem.NO_EVENTS: lambda d: _("No data: no events at all (the total is 0)."),
    Problem.GOOD_MISSING: lambda d: (
        _(
            "The all-events expression gives %(detail)s but the good events' gives no data: make it give 0 when "
            "nothing succeeded, e.g. sum(...) or vector(0)."
        )
        % {"detail": d}
    ),
}

# Problems that mean "nothing to measure", not "the pull failed".
NO_DATA_PROBLEMS = frozenset({Problem.NO_DATA, Problem.NAN, Problem.NO_EVENTS})


def problem_text(problem: str, detail: str = "") -> str:
    """A problem in words, in the active language."""
    text = _TEXTS.get(problem)
    return text(detail) if text else detail


class QueryFailed(Exception):
    def __init__(self, problem: str, detail: str = ""):
        super().__init__(problem, detail)
        self.problem = problem
        self.detail = detail

    def __str__(self) -> str:
        return problem_text(self.problem, self.detail)


@dataclass(frozen=True)
class Answer:
    """One number, or none with the reason (Problem.NO_DATA or Problem.NAN)."""

    value: float | None
    problem: str = ""


def _request(source: PrometheusSource, expression: str, at: datetime) -> urllib.request.Request:
    body = urllib.parse.urlencode(
        {"query": expression, "time": f"{at.timestamp():.3f}", "timeout": f"{source.timeout_seconds}s"}
    ).encode()
    request = urllib.request.Request(
        source.url.rstrip("/") + "/api/v1/query",
        data=body,
        method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
    )
    if source.auth == PrometheusSource.Auth.BEARER and source.bearer_token:
        request.add_header("Authorization", f"Bearer {source.bearer_token}")
    elif source.auth == PrometheusSource.Auth.BASIC and source.username:
        pair = f"{source.username}:{source.password}".encode()
        request.add_header("Authorization", "Basic " + base64.b64encode(pair).decode())
    return request


def _tls(source: PrometheusSource) -> ssl.SSLContext | None:
    if source.url.startswith("https:") and not source.verify_tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return None


def _read(answer) -> bytes:
    body = answer.read(MAX_ANSWER_BYTES + 1)
    if len(body) > MAX_ANSWER_BYTES:
        raise QueryFailed(Problem.BAD_ANSWER, f"> {MAX_ANSWER_BYTES} bytes")
    return body


def _error_of(body: bytes) -> tuple[str, str] | None:
    """(errorType, error) of a Prometheus error answer, None when the body is not one."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    if isinstance(parsed, dict) and parsed.get("status") == "error":
        return str(parsed.get("errorType", "")), str(parsed.get("error", ""))
    return None


def _http_failure(status: int, body: bytes) -> QueryFailed:
    if status in (401, 403):
        return QueryFailed(Problem.AUTH, str(status))
    error = _error_of(body)
    if error is not None:
        error_type, text = error
        if error_type == "timeout":
            return QueryFailed(Problem.TIMEOUT, text)
        # bad_data: the expression does not parse; execution: it cannot be evaluated (422).
        if error_type in ("bad_data", "execution") or status in (400, 422):
            return QueryFailed(Problem.BAD_QUERY, text)
        return QueryFailed(Problem.HTTP, f"HTTP {status} {error_type}: {text}")
    snippet = body[:200].decode("utf-8", "replace").strip()
    return QueryFailed(Problem.HTTP, f"HTTP {status} {snippet}".strip())


def _post(source: PrometheusSource, expression: str, at: datetime) -> bytes:
    request = _request(source, expression, at)
    try:
        with urllib.request.urlopen(request, timeout=source.timeout_seconds, context=_tls(source)) as answer:
            return _read(answer)
    except urllib.error.HTTPError as error:
        with error:
            raise _http_failure(error.code, _read(error)) from None
    except urllib.error.URLError as error:
        if isinstance(error.reason, TimeoutError | socket.timeout):
            raise QueryFailed(Problem.TIMEOUT, str(source.timeout_seconds)) from None
        raise QueryFailed(Problem.UNREACHABLE, str(error.reason)) from None
    except TimeoutError:
        raise QueryFailed(Problem.TIMEOUT, str(source.timeout_seconds)) from None
    except (OSError, ValueError, http.client.HTTPException) as error:  # reset mid-answer; an URL urllib cannot use
        raise QueryFailed(Problem.UNREACHABLE, str(error)) from None


def _number(text) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        raise QueryFailed(Problem.BAD_ANSWER, repr(text)[:100]) from None


def _value(body: bytes) -> Answer:
    try:
        parsed = json.loads(body)
        data = parsed["data"]
        result_type, result = data["resultType"], data["result"]
    except (ValueError, KeyError, TypeError):
        raise QueryFailed(Problem.BAD_ANSWER, body[:200].decode("utf-8", "replace")) from None
    if parsed.get("status") != "success":
        raise QueryFailed(Problem.BAD_ANSWER, str(parsed.get("status")))
    if result_type == "scalar":
        value = _number(result[1])
    elif result_type == "vector":
        if not result:
            return Answer(None, Problem.NO_DATA)
        if len(result) > 1:
            raise QueryFailed(Problem.MANY_SERIES, str(len(result)))
        value = _number(result[0]["value"][1])
    else:  # a range vector (matrix) or a string
        raise QueryFailed(Problem.NOT_A_NUMBER, result_type)
    if math.isnan(value):
        return Answer(None, Problem.NAN)
    if math.isinf(value):
        raise QueryFailed(Problem.INFINITE, str(value))
    return Answer(value)


def instant_query(source: PrometheusSource, expression: str, *, at: datetime) -> Answer:
    """The value of `expression` at `at` (Prometheus' instant query), within the source's timeout.

    Raises QueryFailed when Prometheus cannot be reached, refuses the credentials or the expression,
    answers something else than one number, or takes longer than the timeout."""
    return _value(_post(source, expression, at))
