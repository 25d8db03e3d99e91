"""Signed access tokens (JWT, HS256) that bind an identity to one incarnation of a room, one
role and its grants, and name the credential that obtained them."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, replace
from typing import Any

import jwt

from rooms.grants import Grants, Role
from rooms.room import validate_room_name
from rooms.signing_keys import SigningKeys

_ALGORITHM = "HS256"
_LEEWAY_SECONDS = 5
MAX_IDENTITY_LENGTH = 256  # room for an identity provider's "<issuer>#<subject>"
MAX_NAME_LENGTH = 128
MAX_CREDENTIAL_LENGTH = 300
DEFAULT_MAX_SESSION_AGE = 12 * 3600
# A token travels in headers and query strings; anything this long is junk, not a token.
MAX_TOKEN_LENGTH = 8192


class TokenError(Exception):
    """A token was refused. ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class Claims:
    identity: str
    room: str
    role: Role
    grants: Grants
    name: str
    expires_at: float  # wall-clock epoch seconds, as JWT "exp" is
    # The JWT "jti". A refreshed token keeps it: it names the grant, so revoking it ends
    # the whole chain of refreshes.
    token_id: str
    # What obtained the grant: "password:<role>", "invite:<id>", "apikey:<kid>",
    # "oidc:<issuer>" or "admin".
    credential: str
    incarnation: str  # of the room, see rooms.room.Room.incarnation
    auth_time: float  # when the credential was presented; refreshes cannot outlive it by much


class TokenIssuer:
    def __init__(self, secret: str | SigningKeys, ttl_seconds: int = 600, issuer: str = "telemed",
                 max_session_age: int = DEFAULT_MAX_SESSION_AGE) -> None:
        """``secret``: one key, or rotating keys (which ``use_keys`` replaces later)."""
        if not isinstance(secret, SigningKeys):
            secret = SigningKeys.single(secret)  # which checks its length
        for label, value in (("ttl_seconds", ttl_seconds), ("max_session_age", max_session_age)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{label} must be a positive integer")
        self._keys = secret
        self._ttl = ttl_seconds
        self._issuer = issuer
        self._max_age = max_session_age

    def use_keys(self, keys: SigningKeys) -> None:
        """Sign with ``keys.current`` from now on, and verify with any of ``keys``."""
        self._keys = keys

    @property
    def ttl(self) -> int:
        return self._ttl

    @property
    def max_session_age(self) -> int:
        return self._max_age

    def __repr__(self) -> str:  # keep the secret out of logs and tracebacks
        return f"TokenIssuer(ttl_seconds={self._ttl}, issuer={self._issuer!r})"

    def issue(self, room: str, role: Role | str, identity: str, name: str, *, credential: str,
              incarnation: str, refresh_of: Claims | None = None, recordings: bool = False) -> str:
        """A token for ``identity``, with the ``recordings`` grant if asked; with
        ``refresh_of``, the same grant extended.

        A refresh keeps the token id and the time the credential was presented, and never
        reaches past that time plus the maximum session age: TokenError(401) once it would.
        """
        validate_room_name(room)
        role = Role(role)
        if not _is_text(identity, MAX_IDENTITY_LENGTH):
            raise ValueError(f"identity must be 1-{MAX_IDENTITY_LENGTH} printable characters")
        if not _is_text(name, MAX_NAME_LENGTH):
            raise ValueError(f"name must be 1-{MAX_NAME_LENGTH} printable characters")
        if not _is_text(credential, MAX_CREDENTIAL_LENGTH) or not _is_text(incarnation, 64):
            raise ValueError("credential and incarnation must be short printable strings")
        now = int(time.time())
        auth_time = int(refresh_of.auth_time) if refresh_of else now
        expires = min(now + self._ttl, auth_time + self._max_age)
        if expires <= now:
            raise TokenError(401, "the session has reached its maximum age; sign in again")
        payload = {
            "sub": identity,
            "room": room,
            "role": role.value,
            "grants": replace(Grants.for_role(role),
                              recordings=recordings or bool(refresh_of and refresh_of.grants.recordings)).to_dict(),
            "name": name,
            "iat": now,
            "exp": expires,
            "iss": self._issuer,
            "jti": refresh_of.token_id if refresh_of else secrets.token_urlsafe(16),
            "cred": credential,
            "inc": incarnation,
            "auth_time": auth_time,
        }
        keys = self._keys
        return jwt.encode(payload, keys.secrets[keys.current], algorithm=_ALGORITHM,
                          headers={"kid": keys.current})

    def verify(self, token: str | None, room: str | None = None) -> Claims:
        """Check a token; with ``room``, also check that it was issued for that room.

        Raises TokenError(401) when the token is absent, malformed, forged or expired, and
        TokenError(403) when it is valid but for another room.
        """
        if not token:
            raise TokenError(401, "missing token")
        if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
            raise TokenError(401, "malformed token")
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.DecodeError:
            raise TokenError(401, "malformed token") from None
        secret = self._keys.secret_for(kid) if kid is None or isinstance(kid, str) else None
        if secret is None:
            raise TokenError(401, "token signed with an unknown or retired key")
        try:
            payload = jwt.decode(
                token,
                secret,
                algorithms=[_ALGORITHM],  # pinning the algorithm is what refuses alg=none
                issuer=self._issuer,
                leeway=_LEEWAY_SECONDS,
                options={"require": ["sub", "iat", "exp", "iss", "jti", "cred", "inc", "auth_time"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenError(401, "token expired") from None
        except jwt.InvalidSignatureError:
            raise TokenError(401, "invalid token signature") from None
        except jwt.DecodeError:
            raise TokenError(401, "malformed token") from None
        except jwt.InvalidTokenError:
            raise TokenError(401, "invalid token") from None
        claims = _claims_from_payload(payload)
        if room is not None and claims.room != room:
            raise TokenError(403, "token is not valid for this room")
        return claims


def _claims_from_payload(payload: dict[str, Any]) -> Claims:
    # The signature was good, so a bad shape here means a bug or a leaked secret: refuse anyway.
    invalid = TokenError(401, "invalid token claims")
    try:
        room = validate_room_name(payload.get("room"))
        role = Role(payload.get("role"))
        grants = Grants.from_dict(payload.get("grants"))
    except ValueError:
        raise invalid from None
    identity, name = payload["sub"], payload.get("name")
    token_id, credential, incarnation = payload["jti"], payload["cred"], payload["inc"]
    auth_time = payload["auth_time"]
    if not (_is_text(identity, MAX_IDENTITY_LENGTH) and _is_text(name, MAX_NAME_LENGTH)
            and _is_text(token_id, 64) and _is_text(credential, MAX_CREDENTIAL_LENGTH)
            and _is_text(incarnation, 64)
            and isinstance(auth_time, int) and not isinstance(auth_time, bool)):
        raise invalid
    return Claims(identity, room, role, grants, name, float(payload["exp"]), token_id,
                  credential, incarnation, float(auth_time))


def _is_text(value: Any, limit: int) -> bool:
    return isinstance(value, str) and 0 < len(value) <= limit and value.isprintable()
