"""Room passwords per role: which role a presented password opens.

The creator's password opens the host role; a room may also give participants, viewers and
devices their own, so that handing one out never hands out the host role. All of a room's
password hashes share the host hash's salt and cost, so one scrypt run checks a guess
against every role: a room with role passwords costs and answers like any other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rooms.grants import Role
from rooms.passwords import check_password_strength, hash_password, match_password
from rooms.room import JOIN_PASSWORD_ROLES, Room


def check_role_passwords(host_password: str, others: Any, room_name: str) -> dict[str, str]:
    """The per-role passwords of a new room, checked: known roles, each strong enough, and
    each different (a shared password would make a weaker role's holders the stronger's)."""
    if others is None:
        return {}
    if not isinstance(others, Mapping):
        raise ValueError("passwords must be an object of role -> password")
    unknown = set(others) - set(JOIN_PASSWORD_ROLES)
    if unknown:
        raise ValueError(f"passwords may be set for {', '.join(JOIN_PASSWORD_ROLES)} only")
    given = {role: pw for role, pw in others.items() if pw is not None}
    for role, pw in given.items():
        try:
            check_password_strength(pw, room_name)
        except ValueError as exc:
            raise ValueError(f"{role} {exc}") from None
    if len({host_password, *given.values()}) != len(given) + 1:
        raise ValueError("each role needs its own password, different from the host's")
    return given


def hash_role_passwords(host_hash: str, passwords: Mapping[str, str]) -> dict[str, str]:
    """Hash checked role passwords with the host hash's salt and cost (slow: off the loop)."""
    return {role: hash_password(pw, like=host_hash) for role, pw in passwords.items()}


def role_for_password(password: Any, room: Room | None) -> Role | None:
    """The role ``password`` opens in ``room``, or None; one derivation in every case, a
    missing room included (slow: off the loop)."""
    if room is None:
        match_password(password, None)
        return None
    roles = [Role.HOST, *(Role(r) for r in JOIN_PASSWORD_ROLES if r in room.role_password_hashes)]
    index = match_password(password, [room.password_hash,
                                      *(room.role_password_hashes[r.value] for r in roles[1:])])
    return None if index is None else roles[index]
