from django.db import transaction
from django.utils import timezone

from accounts.models import ApiToken, User
from accounts.tokens import new_secret


@transaction.atomic
def api_token_create(*, user: User, name: str = "") -> tuple[ApiToken, str]:
    """Create a personal API token; returns the row and the token, which is never stored."""
    secret = new_secret("u")
    token = ApiToken.objects.create(user=user, name=name, prefix=secret.prefix, digest=secret.digest)
    return token, secret.token


def api_token_revoke(*, token: ApiToken) -> None:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
