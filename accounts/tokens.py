"""Bearer secrets, stored only as digests. Used for personal API tokens and integration tokens.

The secrets are 256-bit random values, so an unsalted SHA-256 digest is safe to store and
lets a request be matched with one indexed lookup.
"""

import hashlib
import hmac
import secrets
from typing import NamedTuple

PREFIX_LENGTH = 8


class NewSecret(NamedTuple):
    token: str
    prefix: str
    digest: str


def digest_of(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_secret(kind: str) -> NewSecret:
    """A fresh token such as `st_u_3kX...`; `kind` tells tokens apart when one leaks."""
    body = secrets.token_urlsafe(32)
    token = f"st_{kind}_{body}"
    return NewSecret(token=token, prefix=body[:PREFIX_LENGTH], digest=digest_of(token))


def digests_match(token: str, digest: str) -> bool:
    return hmac.compare_digest(digest_of(token), digest)
