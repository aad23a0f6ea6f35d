"""Writes of the stability app: integrations, and what people do with alerts."""

from django.db import transaction

from accounts.models import User
from accounts.tokens import new_secret
from incidents.models import System, Team
from stability.models import Integration


@transaction.atomic
def integration_create(
    *,
    kind: str,
    name: str,
    by: User | None = None,
    default_team: Team | None = None,
    default_system: System | None = None,
    **options,
) -> tuple[Integration, str]:
    """Create an integration; returns it and its bearer token, which is shown once and stored as a digest."""
    secret = new_secret("i")
    integration = Integration(
        kind=kind,
        name=name,
        created_by=by,
        default_team=default_team,
        default_system=default_system,
        token_prefix=secret.prefix,
        token_digest=secret.digest,
        **options,
    )
    integration.full_clean()
    integration.save()
    return integration, secret.token


@transaction.atomic
def integration_rotate_token(*, integration: Integration) -> str:
    """A new token for the integration; the old one stops working (within INGEST_CONFIG_TTL elsewhere)."""
    secret = new_secret("i")
    integration.token_prefix, integration.token_digest = secret.prefix, secret.digest
    integration.save(update_fields=["token_prefix", "token_digest"])
    return secret.token
