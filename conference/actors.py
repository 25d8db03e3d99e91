"""The audit trail's Actor for a token's holder: identity, name, role and the credential
that obtained the token, as the token says (the server issued it), plus the address the
request came from."""

from __future__ import annotations

from clinical.actor import Actor
from rooms import Claims


def actor_for(claims: Claims, address: str = "") -> Actor:
    return Actor(claims.identity, claims.name, claims.role.value, claims.credential, address, claims.token_id)
