"""A room: its name, its password hashes (host, and optionally one per joining role), its
incarnation, its settings and its current layout."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rooms.layout import Layout

MAX_PARTICIPANTS_LIMIT = 10_000
RECORD_MODES = {"manual", "auto"}
# Roles that may have their own room password; the host's is ``Room.password_hash``.
JOIN_PASSWORD_ROLES = ("participant", "viewer", "device")

# Names end up in URLs, Redis keys and file paths, so keep them to a safe alphabet.
_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")


def new_incarnation() -> str:
    return secrets.token_urlsafe(12)


def validate_room_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise ValueError("room name must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-'")
    return name


@dataclass(frozen=True, slots=True)
class RoomSettings:
    require_deidentification: bool = False
    max_participants: int = 100
    record: str = "manual"  # "auto": recorded from the first published track to the last leaver
    # Guests (every role but host) wait until a host admits them.
    waiting_room: bool = False

    def __post_init__(self) -> None:
        if self.record not in RECORD_MODES:
            raise ValueError(f"record must be one of {sorted(RECORD_MODES)}")
        for flag in ("require_deidentification", "waiting_room"):
            if not isinstance(getattr(self, flag), bool):
                raise ValueError(f"{flag} must be a boolean")
        mp = self.max_participants
        if not isinstance(mp, int) or isinstance(mp, bool) or not 1 <= mp <= MAX_PARTICIPANTS_LIMIT:
            raise ValueError(f"max_participants must be an integer from 1 to {MAX_PARTICIPANTS_LIMIT}")

    @classmethod
    def from_dict(cls, d: Any) -> RoomSettings:
        if not isinstance(d, dict):
            raise ValueError("room settings must be an object")
        unknown = set(d) - {"require_deidentification", "max_participants", "record", "waiting_room"}
        if unknown:
            raise ValueError(f"unknown room setting(s): {sorted(map(str, unknown))}")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return {
            "require_deidentification": self.require_deidentification,
            "max_participants": self.max_participants,
            "record": self.record,
            "waiting_room": self.waiting_room,
        }


@dataclass(frozen=True, slots=True)
class Room:
    name: str
    password_hash: str = field(repr=False)
    created_at: float  # wall-clock epoch seconds, for display only
    settings: RoomSettings = field(default_factory=RoomSettings)
    layout: Layout = field(default_factory=Layout)
    # role -> scrypt hash, for the roles in JOIN_PASSWORD_ROLES that have their own password.
    role_password_hashes: Mapping[str, str] = field(default_factory=dict, repr=False)
    # A room deleted and created again under the same name is another room: tokens name the
    # incarnation they were issued for, so old ones stop working.
    incarnation: str = field(default_factory=new_incarnation)

    def __post_init__(self) -> None:
        validate_room_name(self.name)
        if not isinstance(self.password_hash, str) or not self.password_hash:
            raise ValueError("password_hash must be a non-empty string")
        hashes = self.role_password_hashes
        if not isinstance(hashes, Mapping) or not set(hashes) <= set(JOIN_PASSWORD_ROLES) \
                or not all(isinstance(h, str) and h for h in hashes.values()):
            raise ValueError(f"role passwords may be set for {', '.join(JOIN_PASSWORD_ROLES)} only")
        if not isinstance(self.incarnation, str) or not self.incarnation:
            raise ValueError("incarnation must be a non-empty string")

    def to_public_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "created_at": self.created_at,
            "settings": self.settings.to_dict(),
            "layout": self.layout.to_dict(),
        }

    # The record form carries the password hashes: for stores only, never for API responses.
    def to_record(self) -> dict[str, Any]:
        return {**self.to_public_dict(), "password_hash": self.password_hash,
                "role_password_hashes": dict(self.role_password_hashes),
                "incarnation": self.incarnation}

    @classmethod
    def from_record(cls, d: dict[str, Any]) -> Room:
        return cls(
            name=d["name"],
            password_hash=d["password_hash"],
            created_at=float(d["created_at"]),
            settings=RoomSettings.from_dict(d["settings"]),
            layout=Layout.from_dict(d["layout"]),
            role_password_hashes=d.get("role_password_hashes") or {},
            # Records written before incarnations existed all share one.
            incarnation=d.get("incarnation") or "0",
        )
