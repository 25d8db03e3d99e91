"""Picks the room store from one setting: SQLite in the data directory is the embedded default."""

from __future__ import annotations

from pathlib import Path

from rooms.credential_store import CredentialStore, MemoryCredentialStore
from rooms.redis_credential_store import RedisCredentialStore
from rooms.redis_store import RedisRoomStore
from rooms.sqlite_credential_store import SqliteCredentialStore
from rooms.sqlite_store import SqliteRoomStore
from rooms.store import MemoryRoomStore, RoomStore

_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
SQLITE_FILE = "rooms.sqlite3"


def open_room_store(url: str | None, data_dir: str | Path | None = None,
                    prefix: str = "telemed:") -> RoomStore:
    """``"sqlite"`` -> ``<data_dir>/rooms.sqlite3``; ``"sqlite:///path"`` -> that file;
    ``None``, ``""`` or ``"memory"`` -> in-process store, lost on exit; a Redis URL -> shared
    Redis store."""
    if url is None or url.strip() in ("", "memory", "memory://"):
        return MemoryRoomStore()
    sqlite_path = _sqlite_path(url, data_dir)
    if sqlite_path is not None:
        return SqliteRoomStore(sqlite_path)
    if url.startswith(_REDIS_SCHEMES):
        return RedisRoomStore(url, prefix=prefix)
    # Show only the scheme: the rest of a store URL may carry a password.
    scheme = url.split("://", 1)[0] if "://" in url else "(none)"
    raise ValueError(f"unsupported room store URL scheme {scheme!r}: use 'sqlite', 'memory' or redis://")


def open_credential_store(url: str | None, data_dir: str | Path | None = None,
                          prefix: str = "telemed:") -> CredentialStore:
    """Invites, API keys and revocations live where the rooms do, chosen by the same URL
    (which open_room_store has already checked): in the same SQLite file, the same Redis,
    or in memory."""
    if url is None or url.strip() in ("", "memory", "memory://"):
        return MemoryCredentialStore()
    sqlite_path = _sqlite_path(url, data_dir)
    if sqlite_path is not None:
        return SqliteCredentialStore(sqlite_path)
    if url.startswith(_REDIS_SCHEMES):
        return RedisCredentialStore(url, prefix=prefix)
    raise ValueError("unsupported store URL: use 'sqlite', 'memory' or redis://")


def _sqlite_path(url: str, data_dir: str | Path | None) -> Path | None:
    if url.strip() in ("sqlite", "sqlite://"):
        if data_dir is None:
            raise ValueError("the sqlite room store needs a data directory")
        return Path(data_dir) / SQLITE_FILE
    if url.startswith("sqlite:///"):
        return Path(url.removeprefix("sqlite://"))
    return None
