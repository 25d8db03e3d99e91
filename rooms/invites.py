"""Invite links: signed, role-bound, expiring, optionally use-limited and revocable.

The link carries a short signed code naming the room and the invite; the invite itself
(role, expiry, uses, revoked) lives in the credential store, so that uses are counted and a
revocation takes effect at once. The code alone grants nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

import jwt

from rooms.grants import Role
from rooms.room import JOIN_PASSWORD_ROLES, validate_room_name

DEFAULT_INVITE_TTL = 24 * 3600
MAX_INVITE_TTL = 30 * 24 * 3600
MAX_INVITE_USES = 100_000
MAX_LABEL_LENGTH = 80
MAX_CODE_LENGTH = 1024
INVITE_ROLES = JOIN_PASSWORD_ROLES  # an invite never makes a host

_AUDIENCE = "telemed-invite"


class InviteError(Exception):
    """An invite was refused: ``code`` for programs, ``message`` in plain words for people."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


INVALID = InviteError(401, "invite-invalid",
                      "This invitation link is not valid — check that it was copied completely, "
                      "or ask the host for a new one.")
EXPIRED = InviteError(401, "invite-expired", "This invitation has expired — ask the host for a new one.")
USED_UP = InviteError(401, "invite-used-up",
                      "This invitation has already been used as often as allowed — ask the host for a new one.")
REVOKED = InviteError(401, "invite-revoked", "This invitation was withdrawn — ask the host for a new one.")
# Genuinely signed, but its record is gone: the room was closed (and its invites with it).
GONE = InviteError(401, "invite-revoked",
                   "This invitation is no longer valid: its room was closed — ask the host for a new one.")
WRONG_ROOM = InviteError(403, "invite-wrong-room", "This invitation is for another room.")


@dataclass(frozen=True, slots=True)
class Invite:
    id: str
    room: str
    incarnation: str  # of the room it was made for: a re-created room does not honour it
    role: Role
    label: str
    created_at: float
    expires_at: float  # wall-clock epoch seconds
    max_uses: int | None
    uses: int = 0
    revoked: bool = False

    @classmethod
    def new(cls, room: str, incarnation: str, role: Any, expires_in: Any = DEFAULT_INVITE_TTL,
            max_uses: Any = None, label: Any = "") -> Invite:
        """Check a host's request for an invite; ValueError says what is wrong with it."""
        if role not in INVITE_ROLES:
            raise ValueError(f"role must be one of {', '.join(INVITE_ROLES)}")
        if not _is_int(expires_in) or not 60 <= expires_in <= MAX_INVITE_TTL:
            raise ValueError(f"expires_in must be whole seconds from 60 to {MAX_INVITE_TTL} (30 days)")
        if max_uses is not None and (not _is_int(max_uses) or not 1 <= max_uses <= MAX_INVITE_USES):
            raise ValueError(f"max_uses must be null or an integer from 1 to {MAX_INVITE_USES}")
        if label is None:
            label = ""
        if not isinstance(label, str) or len(label) > MAX_LABEL_LENGTH or not label.isprintable():
            raise ValueError(f"label must be at most {MAX_LABEL_LENGTH} printable characters")
        now = time.time()
        return cls(secrets.token_urlsafe(9), validate_room_name(room), incarnation, Role(role),
                   label, now, float(int(now) + expires_in), max_uses)

    def check_usable(self, now: float) -> None:
        """Raise the InviteError that says why this invite cannot be redeemed now, if any."""
        if self.revoked:
            raise REVOKED
        if now >= self.expires_at:
            raise EXPIRED
        if self.max_uses is not None and self.uses >= self.max_uses:
            raise USED_UP

    def to_public_dict(self) -> dict[str, Any]:
        return {"id": self.id, "role": self.role.value, "label": self.label,
                "created_at": self.created_at, "expires_at": self.expires_at,
                "max_uses": self.max_uses, "uses": self.uses, "revoked": self.revoked}

    def to_record(self) -> dict[str, Any]:
        return {**self.to_public_dict(), "room": self.room, "incarnation": self.incarnation}

    @classmethod
    def from_record(cls, d: dict[str, Any]) -> Invite:
        return cls(d["id"], d["room"], d["incarnation"], Role(d["role"]), d["label"],
                   float(d["created_at"]), float(d["expires_at"]), d["max_uses"],
                   int(d["uses"]), bool(d["revoked"]))


class InviteCodec:
    """Signs and reads the codes in invite links (JWT, HS256)."""

    def __init__(self, secret: str) -> None:
        # A key of its own, so that no access token can pass for an invite code or back.
        self._key = hmac.new(secret.encode("utf-8"), b"telemed invite codes", hashlib.sha256).digest()

    def __repr__(self) -> str:
        return "InviteCodec()"

    def encode(self, invite: Invite) -> str:
        return jwt.encode({"room": invite.room, "iid": invite.id, "role": invite.role.value,
                           "exp": int(invite.expires_at), "aud": _AUDIENCE}, self._key, algorithm="HS256")

    def decode(self, code: Any, room: str) -> tuple[str, Role]:
        """The invite id and role in ``code``, if the code is genuine, unexpired and for ``room``."""
        if not isinstance(code, str) or not code or len(code) > MAX_CODE_LENGTH:
            raise INVALID
        try:
            payload = jwt.decode(code, self._key, algorithms=["HS256"], audience=_AUDIENCE,
                                 options={"require": ["room", "iid", "role", "exp", "aud"]})
        except jwt.ExpiredSignatureError:
            raise EXPIRED from None
        except jwt.InvalidTokenError:
            raise INVALID from None
        invite_id, role = payload["iid"], payload["role"]
        if not isinstance(invite_id, str) or not 0 < len(invite_id) <= 64 or role not in INVITE_ROLES:
            raise INVALID
        if payload["room"] != room:
            raise WRONG_ROOM
        return invite_id, Role(role)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
