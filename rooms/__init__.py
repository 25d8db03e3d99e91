"""Rooms, roles, passwords, tokens, login rate limiting, layout and the room store."""

from rooms.grants import Grants, Role
from rooms.layout import MAX_PIP_TRACKS, PRESETS, Layout
from rooms.passwords import MAX_PASSWORD_LENGTH, hash_password, verify_password
from rooms.ratelimit import AttemptLimiter
from rooms.redis_store import RedisRoomStore
from rooms.room import Room, RoomSettings, validate_room_name
from rooms.sqlite_store import SqliteRoomStore
from rooms.store import MemoryRoomStore, RoomExists, RoomNotFound, RoomStore
from rooms.store_factory import open_room_store
from rooms.tokens import Claims, TokenError, TokenIssuer

__all__ = [
    "MAX_PASSWORD_LENGTH",
    "MAX_PIP_TRACKS",
    "PRESETS",
    "AttemptLimiter",
    "Claims",
    "Grants",
    "Layout",
    "MemoryRoomStore",
    "RedisRoomStore",
    "Role",
    "Room",
    "RoomExists",
    "RoomNotFound",
    "RoomSettings",
    "RoomStore",
    "SqliteRoomStore",
    "TokenError",
    "TokenIssuer",
    "hash_password",
    "open_room_store",
    "validate_room_name",
    "verify_password",
]
