"""Where credentials other than room passwords live: invites, API keys and revoked tokens.

Kept apart from the RoomStore: rooms change rarely and are read on every request, while
these records have their own lifetimes (an invite's expiry, a revocation's end).
"""

from __future__ import annotations

import builtins
import dataclasses
import time
from typing import Protocol

from rooms.api_keys import ApiKey
from rooms.invites import GONE, Invite


class CredentialStore(Protocol):
    async def add_invite(self, invite: Invite) -> None: ...

    async def list_invites(self, room: str, incarnation: str) -> builtins.list[Invite]:
        """The room's invites, oldest first (revoked and expired ones included)."""

    async def revoke_invite(self, room: str, invite_id: str) -> bool:
        """Mark it revoked (kept, so that its link says "withdrawn"); False if unknown."""

    async def redeem_invite(self, room: str, invite_id: str, now: float) -> Invite:
        """Count one use, atomically across nodes, and return the invite as it was before.

        Raise the InviteError saying why not: gone, revoked, expired or used up.
        """

    async def delete_invites(self, room: str) -> None:
        """Forget every invite of a deleted room."""

    async def add_api_key(self, key: ApiKey) -> None: ...

    async def get_api_key(self, key_id: str) -> ApiKey | None: ...

    async def list_api_keys(self) -> builtins.list[ApiKey]:
        """Every key, revoked ones included, oldest first."""

    async def revoke_api_key(self, key_id: str) -> bool:
        """False if there is no such key."""

    async def revoke_token(self, token_id: str, until: float) -> None:
        """Refuse the token id until ``until`` (epoch seconds), when it dies anyway."""

    async def is_token_revoked(self, token_id: str) -> bool: ...

    async def close(self) -> None: ...


class MemoryCredentialStore:
    """Single-process store. No awaits between check and write, so no lock is needed."""

    def __init__(self) -> None:
        self._invites: dict[str, dict[str, Invite]] = {}
        self._keys: dict[str, ApiKey] = {}
        self._revoked: dict[str, float] = {}

    async def add_invite(self, invite: Invite) -> None:
        self._invites.setdefault(invite.room, {})[invite.id] = invite

    async def list_invites(self, room: str, incarnation: str) -> builtins.list[Invite]:
        invites = [i for i in self._invites.get(room, {}).values() if i.incarnation == incarnation]
        return sorted(invites, key=lambda i: i.created_at)

    async def revoke_invite(self, room: str, invite_id: str) -> bool:
        invite = self._invites.get(room, {}).get(invite_id)
        if invite is None:
            return False
        self._invites[room][invite_id] = dataclasses.replace(invite, revoked=True)
        return True

    async def redeem_invite(self, room: str, invite_id: str, now: float) -> Invite:
        invite = self._invites.get(room, {}).get(invite_id)
        if invite is None:
            raise GONE
        invite.check_usable(now)
        self._invites[room][invite_id] = dataclasses.replace(invite, uses=invite.uses + 1)
        return invite

    async def delete_invites(self, room: str) -> None:
        self._invites.pop(room, None)

    async def add_api_key(self, key: ApiKey) -> None:
        self._keys[key.key_id] = key

    async def get_api_key(self, key_id: str) -> ApiKey | None:
        return self._keys.get(key_id)

    async def list_api_keys(self) -> builtins.list[ApiKey]:
        return sorted(self._keys.values(), key=lambda k: k.created_at)

    async def revoke_api_key(self, key_id: str) -> bool:
        key = self._keys.get(key_id)
        if key is None:
            return False
        self._keys[key_id] = dataclasses.replace(key, revoked=True)
        return True

    async def revoke_token(self, token_id: str, until: float) -> None:
        now = time.time()
        for stale in [t for t, end in self._revoked.items() if end <= now]:
            del self._revoked[stale]
        self._revoked[token_id] = max(until, self._revoked.get(token_id, 0.0))

    async def is_token_revoked(self, token_id: str) -> bool:
        return self._revoked.get(token_id, 0.0) > time.time()

    async def close(self) -> None:
        pass
