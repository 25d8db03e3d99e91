"""Room passwords per role: which role a presented password opens.

The creator's password opens the host role; a room may also give participants, viewers and
devices their own passwords, so that handing one out never hands out the host role.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rooms.grants import Role
from rooms.passwords import hash_password, verify_password
from rooms.room import JOIN_PASSWORD_ROLES, Room


def hash_role_passwords(host_password: str, others: Any) -> dict[str, str]:
    """Hash the per-role passwords of a new room (slow: run it in a thread).

    Refuses an unknown role and a password shared by two roles, which would make the weaker
    role's holders indistinguishable from the stronger.
    """
    if others is None:
        others = {}
    if not isinstance(others, Mapping):
        raise ValueError("passwords must be an object of role -> password")
    unknown = set(others) - set(JOIN_PASSWORD_ROLES)
    if unknown:
        raise ValueError(f"passwords may be set for {', '.join(JOIN_PASSWORD_ROLES)} only")
    given = {role: pw for role, pw in others.items() if pw is not None}
    for pw in given.values():
        if not isinstance(pw, str) or not pw:
            raise ValueError("each role password must be a non-empty string")
    if len({host_password, *given.values()}) != len(given) + 1:
        raise ValueError("each role needs its own password, different from the host's")
    return {role: hash_password(pw) for role, pw in given.items()}


def role_for_password(room: Room, password: Any) -> Role | None:
    """The role ``password`` opens in ``room``, or None (slow: run it in a thread).

    The strongest role is tried first; passwords are distinct per room, so at most one matches.
    """
    if verify_password(password, room.password_hash):
        return Role.HOST
    for role in JOIN_PASSWORD_ROLES:
        stored = room.role_password_hashes.get(role)
        if stored is not None and verify_password(password, stored):
            return Role(role)
    return None
