"""Short-lived signed links to a shared object, so a viewer can open an image with a
plain GET (an <img src>, a download) without putting its room token in a URL.

A signature covers (room, object, who, expiry): one link opens the object and every
preview of it, for one named person, until it expires. ``who`` is what the audit log
records as the actor.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Mapping
from urllib.parse import urlencode

MAX_EXP_DIGITS = 12
DEFAULT_TTL = 300  # seconds: long enough to open a notice, short enough to be useless if leaked


class SignatureError(Exception):
    """The link is malformed, forged or expired; the message is safe to show."""


class UrlSigner:
    def __init__(self, secret: str | None = None, ttl: int = DEFAULT_TTL,
                 clock: Callable[[], float] = time.time) -> None:
        # Derived, not reused: a leaked link key must not sign tokens, nor the reverse.
        # Wall-clock expiry (like a JWT's exp) so that another node with the same
        # secret judges a link the same way.
        base = secret.encode() if secret else secrets.token_bytes(32)
        self._key = hmac.new(base, b"telemed object links v1", hashlib.sha256).digest()
        self.ttl = ttl
        self._clock = clock

    def query(self, room: str, object_id: str, who: str) -> str:
        """The query string (without '?') that authorises ``who`` to open the object."""
        expires = int(self._clock()) + self.ttl
        return urlencode({"who": who, "exp": expires, "sig": self._sign(room, object_id, who, expires)})

    def object_links(self, room: str, sha256: str, who: str) -> dict[str, str]:
        """A shared object's download and preview links, relative to the server."""
        query = self.query(room, sha256, who)
        base = f"/api/rooms/{room}/objects/{sha256}"
        return {"url": f"{base}?{query}", "preview_url": f"{base}/preview.png?{query}"}

    def verify(self, room: str, object_id: str, query: Mapping[str, str]) -> str:
        """``who`` of a valid link, else SignatureError."""
        who, expires, sig = query.get("who"), query.get("exp"), query.get("sig")
        # ASCII digits only ("²".isdigit() holds) and no longer than a timestamp can be,
        # so int() neither fails nor chews on a megabyte of nines.
        if not who or not sig or not expires or len(expires) > MAX_EXP_DIGITS \
                or not (expires.isascii() and expires.isdigit()):
            raise SignatureError("the link needs who, exp and sig")
        if not hmac.compare_digest(sig, self._sign(room, object_id, who, int(expires))):
            raise SignatureError("the link signature is invalid")
        if int(expires) < self._clock():
            raise SignatureError("the link has expired")
        return who

    def _sign(self, room: str, object_id: str, who: str, expires: int) -> str:
        # Room names and hex ids hold no newline and expiry is digits only and last, so
        # the fields cannot be shifted into one another even if ``who`` holds newlines.
        message = "\n".join((room, object_id, who, str(expires))).encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()
