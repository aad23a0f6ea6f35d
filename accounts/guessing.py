"""Limits on guessing secrets: passwords at sign-in, and bearer tokens (personal API tokens and
integration tokens) by client address. Limits are settings (README, "Configuration").

Sign-in is django-axes: a failed sign-in is an AccessAttempt row; the account is locked from an
address after SIGNIN_FAILURES_PER_ACCOUNT failures there, and the address after
SIGNIN_FAILURES_PER_ADDRESS failures on any accounts, until SIGNIN_LOCKOUT_MINUTES after the last
counted failure. An administrator unlocks by deleting the attempts (admin, "Access attempts") or with
`manage.py axes_reset_username USERNAME` / `axes_reset_ip ADDRESS`.

Tokens: each wrong bearer token from an address is counted in the "guessing" cache (Redis when
REDIS_URL is set, so every web process shares the count) in fixed windows of
TOKEN_FAILURE_WINDOW_SECONDS aligned to the clock. Past TOKEN_FAILURES_PER_ADDRESS wrong tokens in a
window the answer is 429 with Retry-After (the end of the window) instead of 401, and the process
that saw it refuses the address before testing any token until then. That refusal is kept in the
process's memory, so a request with a right token never pays a round trip for it: the webhooks' hot
path stays as it was.
"""

import math
import time

from axes.backends import AxesStandaloneBackend
from axes.handlers.database import AxesDatabaseHandler
from django.conf import settings
from django.core.cache import caches
from django.db.models import Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

# Refusals a process remembers at most; past it, expired ones are forgotten (many addresses, IPv6).
_MAX_REMEMBERED = 10_000


def client_address(request: HttpRequest) -> str:
    """The address limits count by: REMOTE_ADDR, or behind TRUSTED_PROXY_COUNT proxies that append to
    X-Forwarded-For, the address the outermost of them saw (entries further left are the client's say)."""
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        forwarded = [part for part in forwarded if part]
        if len(forwarded) >= proxies:
            return forwarded[-proxies]
    return request.META.get("REMOTE_ADDR", "")


# ---- sign-in (django-axes) ----


class SignInGuard(AxesStandaloneBackend):
    """django-axes' backend, for sign-ins from a request (the sign-in page, the admin). Code that calls
    authenticate() without a request (a shell, a management command) is no one guessing over the network:
    it goes on to the next backend instead of failing."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


class SignInAttempts(AxesDatabaseHandler):
    """Two limits where axes has one: AXES_LOCKOUT_PARAMETERS counts the failures of this account from
    this address, then of every account from this address; the second count is shifted so that reaching
    SIGNIN_FAILURES_PER_ADDRESS reads as reaching the failure limit (SIGNIN_FAILURES_PER_ACCOUNT)."""

    def get_failures(self, request, credentials: dict | None = None) -> int:
        per_account, per_address = (
            attempts.aggregate(failures=Sum("failures_since_start"))["failures"] or 0
            for attempts in self.get_user_attempts(request, credentials)
        )
        shift = settings.SIGNIN_FAILURES_PER_ADDRESS - settings.SIGNIN_FAILURES_PER_ACCOUNT
        return max(per_account, per_address - shift)


def signin_lockout_response(request, original_response=None, credentials=None) -> HttpResponse:
    """429 and the lockout page, in the reader's language."""
    minutes = settings.SIGNIN_LOCKOUT_MINUTES
    response = render(request, "registration/locked_out.html", {"minutes": minutes}, status=429)
    response["Retry-After"] = str(minutes * 60)
    return response


# ---- bearer tokens ----

# (scope, address) -> epoch second until which this process refuses the address without testing tokens.
_refused_until: dict[tuple[str, str], float] = {}


def token_refusal(*, scope: str, request) -> int | None:
    """Seconds the address must still wait, if this process already refused it; no I/O."""
    until = _refused_until.get((scope, client_address(request)))
    if until is None:
        return None
    left = until - time.time()
    return math.ceil(left) if left > 0 else None


def token_failure(*, scope: str, request) -> int | None:
    """Counts a wrong token from the request's address in `scope` ("api", "webhook"). Returns the
    seconds to wait (Retry-After) once the address is past the limit in the current window, else None
    (answer 401)."""
    address = client_address(request)
    if (wait := token_refusal(scope=scope, request=request)) is not None:
        return wait
    window = settings.TOKEN_FAILURE_WINDOW_SECONDS
    now = time.time()
    window_start = int(now // window) * window
    key = f"{scope}:{address}:{window_start}"
    cache = caches["guessing"]
    # add() then incr(): the first failure of a window creates the count with its expiry.
    cache.add(key, 0, timeout=window + 60)
    try:
        failures = cache.incr(key)
    except ValueError:  # expired between the two calls
        cache.add(key, 1, timeout=window + 60)
        failures = 1
    if failures <= settings.TOKEN_FAILURES_PER_ADDRESS:
        return None
    until = window_start + window
    if len(_refused_until) >= _MAX_REMEMBERED:
        for remembered, remembered_until in list(_refused_until.items()):
            if remembered_until <= now:
                del _refused_until[remembered]
        if len(_refused_until) >= _MAX_REMEMBERED:
            _refused_until.clear()
    _refused_until[(scope, address)] = until
    return max(1, math.ceil(until - now))


def token_refusals_forget() -> None:
    """Tests: a fresh process, remembering no refusal."""
    _refused_until.clear()
