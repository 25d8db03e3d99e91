"""Who may fetch a room's HLS: signed links with an expiry, checked with one HMAC per
request (no password hash, no store), so hundreds of players cost next to nothing.

A link names the room and the viewer; it opens the playlists and every segment and
part of that room's program until it expires.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from conference.signed_urls import SignatureError, UrlSigner

OBJECT = "hls"  # what the signature covers besides room, viewer and expiry


class HlsAccess:
    def __init__(self, secret: str | None, ttl: int, clock: Callable[[], float] = time.time) -> None:
        self._signer = UrlSigner(secret, ttl, clock)
        self.ttl = ttl

    def query(self, room: str, who: str) -> str:
        """The query string that lets `who` watch `room` for `ttl` seconds."""
        return self._signer.query(room, OBJECT, who)

    def verify(self, room: str, query: Mapping[str, str]) -> str:
        """The viewer of a valid link, else SignatureError."""
        return self._signer.verify(room, OBJECT, query)


__all__ = ["HlsAccess", "SignatureError"]
