"""The STUN/TURN servers a client is handed (in `joined`, token responses and WHIP/WHEP
`Link` headers): the static list, plus, with a TURN secret, short-lived TURN credentials
in the TURN REST API scheme that coturn's `use-auth-secret` checks without a user
database (docs/turn.md)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable


def turn_rest_credential(secret: str, identity: str, expires_at: int) -> tuple[str, str]:
    """(username, password): the username carries its own expiry, and the password is the
    HMAC-SHA1 of the username under the secret shared with the TURN server, so the TURN
    server can check it alone. The expiry goes first: coturn reads the timestamp before
    the first colon, and identities may hold colons."""
    username = f"{int(expires_at)}:{identity}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


class IceServers:
    def __init__(self, static: list[dict], turn_urls: list[str], turn_secret: str | None, ttl: int,
                 clock: Callable[[], float] = time.time) -> None:
        self._static = static
        self._turn_urls = turn_urls
        self._secret = turn_secret
        self._ttl = ttl
        self._clock = clock

    def __repr__(self) -> str:
        return f"IceServers(static={len(self._static)}, turn_urls={self._turn_urls!r})"

    @property
    def public(self) -> list[dict]:
        """What anyone may be told (`GET /api/config`): never a minted TURN credential,
        which would make the TURN server an open relay."""
        return self._static

    def for_identity(self, identity: str) -> list[dict]:
        """What one authenticated client is told; its TURN username names it in the TURN
        server's logs."""
        if not self._secret:
            return self._static
        username, password = turn_rest_credential(self._secret, identity, int(self._clock()) + self._ttl)
        return [*self._static, {"urls": list(self._turn_urls), "username": username, "credential": password}]
