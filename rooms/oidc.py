"""Tokens from a hospital's own identity provider, checked against its JWKS document.

The provider's signature, issuer, audience and expiry are all checked; one claim (e.g.
``roles`` or ``telemed_role``) is mapped to a room role. The identity is the provider's
issuer and subject together, so two providers' subjects never collide.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from rooms.grants import Role

# Public-key algorithms only: accepting HS* would let anyone who read the JWKS document
# sign with the public key as an HMAC secret.
_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
_LEEWAY_SECONDS = 30
MAX_ID_TOKEN_LENGTH = 16 * 1024
# The strongest mapped role wins when the claim lists several.
_ROLE_PREFERENCE = (Role.HOST, Role.PARTICIPANT, Role.VIEWER, Role.DEVICE)
DEFAULT_ROLE_MAP = {role.value: role.value for role in Role}


class OidcError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True, slots=True)
class ExternalIdentity:
    identity: str  # "<issuer>#<subject>"
    issuer: str
    role: Role
    name: str


def parse_role_map(value: Any) -> dict[str, str]:
    """A JSON object (or mapping) of claim value -> role, checked."""
    mapping = json.loads(value) if isinstance(value, str) else value
    if not isinstance(mapping, Mapping) or not all(
            isinstance(k, str) and v in {r.value for r in Role} for k, v in mapping.items()):
        raise ValueError("oidc_role_map must be a JSON object of claim value -> "
                         "host, participant, viewer or device")
    return dict(mapping)


class OidcVerifier:
    def __init__(self, jwks_url: str, issuer: str, audience: str, role_claim: str = "role",
                 role_map: Mapping[str, str] | None = None, timeout: float = 10.0) -> None:
        self.issuer = issuer
        self._audience = audience
        self._role_claim = role_claim
        self._role_map = {k: Role(v) for k, v in parse_role_map(role_map or DEFAULT_ROLE_MAP).items()}
        self._jwks = jwt.PyJWKClient(jwks_url, timeout=timeout, lifespan=300)

    def __repr__(self) -> str:
        return f"OidcVerifier(issuer={self.issuer!r})"

    def verify(self, id_token: Any) -> ExternalIdentity:
        """Check ``id_token``. Blocking (may fetch the JWKS document): run it in a thread."""
        if not isinstance(id_token, str) or not id_token or len(id_token) > MAX_ID_TOKEN_LENGTH:
            raise OidcError(401, "oidc-invalid", "id_token must be a token string")
        try:
            key = self._jwks.get_signing_key_from_jwt(id_token)
        except jwt.PyJWKClientConnectionError:
            raise OidcError(503, "oidc-unavailable",
                            "the identity provider's keys could not be fetched; try again") from None
        except (jwt.PyJWKClientError, jwt.InvalidTokenError):
            raise OidcError(401, "oidc-invalid", "the id_token is not signed by a known key") from None
        try:
            payload = jwt.decode(id_token, key.key, algorithms=_ALGORITHMS, audience=self._audience,
                                 issuer=self.issuer, leeway=_LEEWAY_SECONDS,
                                 options={"require": ["iss", "sub", "aud", "exp"]})
        except jwt.ExpiredSignatureError:
            raise OidcError(401, "oidc-invalid", "the id_token has expired") from None
        except jwt.InvalidAudienceError:
            raise OidcError(401, "oidc-invalid", "the id_token is for another audience") from None
        except jwt.InvalidIssuerError:
            raise OidcError(401, "oidc-invalid", "the id_token is from another issuer") from None
        except jwt.InvalidTokenError:
            raise OidcError(401, "oidc-invalid", "the id_token is not valid") from None
        subject = payload["sub"]
        identity = f"{self.issuer}#{subject}"
        if not isinstance(subject, str) or not identity.isprintable() or len(identity) > 256:
            raise OidcError(401, "oidc-invalid", "the id_token's subject is not usable")
        return ExternalIdentity(identity, self.issuer, self._role(payload), _display_name(payload, subject))

    def _role(self, payload: dict[str, Any]) -> Role:
        values = payload.get(self._role_claim)
        values = [values] if isinstance(values, str) else values if isinstance(values, list) else []
        roles = {self._role_map[v] for v in values if isinstance(v, str) and v in self._role_map}
        for role in _ROLE_PREFERENCE:
            if role in roles:
                return role
        raise OidcError(403, "oidc-no-role",
                        f"the id_token's {self._role_claim!r} claim grants no role in this service")


def _display_name(payload: dict[str, Any], subject: str) -> str:
    for claim in ("name", "preferred_username"):
        value = payload.get(claim)
        if isinstance(value, str) and value.strip():
            text = "".join(ch for ch in value.strip() if ch.isprintable())[:64]
            if text:
                return text
    return subject[:64] if subject.isprintable() and subject else "Guest"
