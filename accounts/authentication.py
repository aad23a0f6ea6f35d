from datetime import timedelta
from typing import NoReturn

from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions

from accounts.guessing import token_failure, token_refusal
from accounts.models import ApiToken
from accounts.tokens import digest_of

# Writing last_used_at on every request would turn reads into writes; a minute is precise enough.
LAST_USED_RESOLUTION = timedelta(minutes=1)
GUESSING_SCOPE = "api"


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <personal API token>`."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        # An address past the wrong-token limit is refused before its token is tested (accounts/guessing.py).
        wait = token_refusal(scope=GUESSING_SCOPE, request=request)
        if len(header) != 2:
            self._refuse(wait, _("Invalid Authorization header: expected 'Bearer <token>'."), request)
        token = header[1].decode(errors="replace")
        api_token = (
            None
            if wait is not None
            else ApiToken.objects.select_related("user")
            .filter(digest=digest_of(token), revoked_at__isnull=True)
            .first()
        )
        if api_token is None or not api_token.user.is_active:
            self._refuse(wait, _("Invalid or revoked API token."), request)
        now = timezone.now()
        if api_token.last_used_at is None or now - api_token.last_used_at > LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=api_token.pk).update(last_used_at=now)
        return api_token.user, api_token

    def _refuse(self, wait: int | None, detail: str, request) -> NoReturn:
        """401, or 429 with Retry-After once the address is past the wrong-token limit."""
        wait = wait or token_failure(scope=GUESSING_SCOPE, request=request)
        if wait:
            # DRF adds "Expected available in N seconds." and the Retry-After header.
            raise exceptions.Throttled(wait=wait, detail=str(_("Too many wrong tokens from this address.")))
        raise exceptions.AuthenticationFailed(detail)

    def authenticate_header(self, request):
        return f'{self.keyword} realm="api"'
