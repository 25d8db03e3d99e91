"""Picks the room store from one setting, so memory stays the zero-config default."""

from __future__ import annotations

from rooms.credential_store import CredentialStore, MemoryCredentialStore
from rooms.redis_credential_store import RedisCredentialStore
from rooms.redis_store import RedisRoomStore
from rooms.store import MemoryRoomStore, RoomStore

_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def open_room_store(url: str | None, prefix: str = "telemed:") -> RoomStore:
    """``None``, ``""`` or ``"memory"`` -> in-process store; a Redis URL -> shared Redis store."""
    if url is None or url.strip() in ("", "memory", "memory://"):
        return MemoryRoomStore()
    if url.startswith(_REDIS_SCHEMES):
        return RedisRoomStore(url, prefix=prefix)
    # Show only the scheme: the rest of a store URL may carry a password.
    scheme = url.split("://", 1)[0] if "://" in url else "(none)"
    raise ValueError(f"unsupported room store URL scheme {scheme!r}: use 'memory' or redis://")


def open_credential_store(url: str | None, prefix: str = "telemed:") -> CredentialStore:
    """Invites, API keys and revocations live where the rooms do, chosen by the same URL
    (which open_room_store has already checked)."""
    if url is not None and url.startswith(_REDIS_SCHEMES):
        return RedisCredentialStore(url, prefix=prefix)
    return MemoryCredentialStore()
