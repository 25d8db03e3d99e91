"""Roles and the capabilities (grants) each role carries in a token."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from typing import Any


class Role(StrEnum):
    HOST = "host"
    PARTICIPANT = "participant"
    VIEWER = "viewer"
    DEVICE = "device"


@dataclass(frozen=True, slots=True)
class Grants:
    publish: bool = False
    subscribe: bool = False
    data: bool = False
    admin: bool = False
    # May open the room's recordings (list, replay, export links) without managing them: an
    # extra only an operator (admin or API key) puts in a token, never a role's default.
    recordings: bool = False

    @classmethod
    def for_role(cls, role: Role | str) -> Grants:
        return _ROLE_GRANTS[Role(role)]

    def covers(self, other: Grants) -> bool:
        """True if every capability of ``other`` is also ours."""
        return all(getattr(self, f.name) or not getattr(other, f.name) for f in fields(self))

    def to_dict(self) -> dict[str, bool]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Any) -> Grants:
        # Strict: grants come from tokens, so a missing or non-bool flag means a bad token,
        # not "default to False".
        if not isinstance(d, dict):
            raise ValueError("grants must be an object")
        names = {f.name for f in fields(cls)}
        # ``recordings`` came later: a token issued before it simply lacks it (False).
        if not names - {"recordings"} <= set(d) <= names:
            raise ValueError(f"grants must have exactly the keys {sorted(names)}")
        for key, value in d.items():
            if not isinstance(value, bool):
                raise ValueError(f"grant {key!r} must be a boolean")
        return cls(**d)


_ROLE_GRANTS = {
    Role.HOST: Grants(publish=True, subscribe=True, data=True, admin=True),
    Role.PARTICIPANT: Grants(publish=True, subscribe=True, data=True),
    # Trainees and other watchers may chat and read clinical data, but send no media.
    Role.VIEWER: Grants(subscribe=True, data=True),
    # An ambulance tablet pushes video and ECG; it has no screen to watch others on.
    Role.DEVICE: Grants(publish=True, data=True),
}


def may_yield(credential_role: Role | str, wanted: Role | str) -> bool:
    """A credential for ``credential_role`` may mint ``wanted`` only if that asks for no
    capability the credential lacks: host covers all, participant covers viewer and device,
    and viewer and device cover only themselves."""
    return Grants.for_role(credential_role).covers(Grants.for_role(wanted))
