"""Rooms, roles, passwords, invites, API keys, tokens, login rate limiting, layout and the
room and credential stores."""

from rooms.api_keys import ApiKey, split_presented
from rooms.credential_store import CredentialStore, MemoryCredentialStore
from rooms.grants import Grants, Role, may_yield
from rooms.invites import Invite, InviteCodec, InviteError
from rooms.layout import MAX_PIP_TRACKS, PRESETS, Layout
from rooms.oidc import ExternalIdentity, OidcError, OidcVerifier, parse_role_map
from rooms.password_hasher import HasherBusy, PasswordHasher
from rooms.passwords import (
    MAX_PASSWORD_LENGTH,
    check_password_strength,
    hash_password,
    scrypt_runs,
    verify_password,
)
from rooms.ratelimit import Attempt, LoginLimiter, LoginLimits, Throttled
from rooms.redis_credential_store import RedisCredentialStore
from rooms.redis_signing_keys import RedisSigningKeys
from rooms.redis_store import RedisRoomStore
from rooms.role_passwords import check_role_passwords, hash_role_passwords, role_for_password
from rooms.room import Room, RoomSettings, validate_room_name
from rooms.shared_login_limiter import SharedAttempt, SharedLoginLimiter
from rooms.signing_keys import SigningKeys
from rooms.sqlite_store import SqliteRoomStore
from rooms.store import MemoryRoomStore, RoomExists, RoomNotFound, RoomStore, RoomStoreUnavailable
from rooms.store_factory import open_credential_store, open_room_store
from rooms.tokens import Claims, TokenError, TokenIssuer

__all__ = [
    "ApiKey",
    "CredentialStore",
    "ExternalIdentity",
    "Invite",
    "InviteCodec",
    "InviteError",
    "MemoryCredentialStore",
    "OidcError",
    "OidcVerifier",
    "RedisCredentialStore",
    "RedisSigningKeys",
    "SharedAttempt",
    "SharedLoginLimiter",
    "SigningKeys",
    "check_role_passwords",
    "hash_role_passwords",
    "may_yield",
    "open_credential_store",
    "parse_role_map",
    "role_for_password",
    "split_presented",
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
