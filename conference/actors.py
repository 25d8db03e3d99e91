"""The audit trail's Actor for a token's holder: identity, name and role as the token
says (the server issued it), plus the address the request came from."""

from __future__ import annotations

from clinical.actor import Actor
from rooms import Claims


def actor_for(claims: Claims, address: str = "", credential: str | None = None) -> Actor:
    """``credential`` overrides the token's own record of what it was obtained with."""
    if credential is None:
        credential = getattr(claims, "credential", "")  # Claims.credential lands with trust-credentials
    return Actor(claims.identity, claims.name, claims.role.value, credential, address, claims.token_id)
