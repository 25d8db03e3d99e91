"""Rooms, roles, passwords, tokens, login rate limiting, layout and the room store."""

from rooms.grants import Grants, Role
from rooms.layout import MAX_PIP_TRACKS, PRESETS, Layout
from rooms.password_hasher import HasherBusy, PasswordHasher
from rooms.passwords import (
    MAX_PASSWORD_LENGTH,
    check_password_strength,
    hash_password,
    scrypt_runs,
    verify_password,
)
from rooms.ratelimit import Attempt, LoginLimiter, LoginLimits, Throttled
from rooms.redis_store import RedisRoomStore
from rooms.room import Room, RoomSettings, validate_room_name
from rooms.sqlite_store import SqliteRoomStore
from rooms.store import MemoryRoomStore, RoomExists, RoomNotFound, RoomStore, RoomStoreUnavailable
from rooms.store_factory import open_room_store
from rooms.tokens import Claims, TokenError, TokenIssuer

__all__ = [
    "MAX_PASSWORD_LENGTH",
    "MAX_PIP_TRACKS",
    "PRESETS",
    "Attempt",
    "Claims",
    "Grants",
    "HasherBusy",
    "Layout",
    "LoginLimiter",
    "LoginLimits",
    "MemoryRoomStore",
    "PasswordHasher",
    "RedisRoomStore",
    "Role",
    "Room",
    "RoomExists",
    "RoomNotFound",
    "RoomSettings",
    "RoomStore",
    "RoomStoreUnavailable",
    "SqliteRoomStore",
    "Throttled",
    "TokenError",
    "TokenIssuer",
    "check_password_strength",
    "hash_password",
    "open_room_store",
    "scrypt_runs",
    "validate_room_name",
    "verify_password",
]
