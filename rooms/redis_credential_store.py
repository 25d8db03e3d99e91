"""Invites, API keys and revoked tokens in Redis, shared by every node.

- ``<prefix>invite:<room>:<id>``: hash with ``record`` (JSON, fixed at creation), ``uses``
  and ``revoked``; it expires a week after the invite does. ``<prefix>invites:<room>``
  indexes a room's invite ids.
- ``<prefix>apikey:<key_id>``: hash with ``record`` and ``revoked``; ``<prefix>apikeys``
  indexes the ids.
- ``<prefix>revoked:<token_id>``: a plain key that expires when the token would have.

Redemption checks and counts in one Lua script, so two nodes never both spend the last use.
"""

from __future__ import annotations

import builtins
import json
from typing import Any

from rooms.api_keys import ApiKey
from rooms.invites import EXPIRED, GONE, REVOKED, USED_UP, Invite
from rooms.redis_client import connect

_KEEP_AFTER_EXPIRY = 7 * 24 * 3600  # so that a dead link still says "expired" for a while

_REDEEM = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 'missing' end
local f = redis.call('HMGET', KEYS[1], 'revoked', 'uses', 'expires_at', 'max_uses')
if f[1] == '1' then return 'revoked' end
if tonumber(ARGV[1]) >= tonumber(f[3]) then return 'expired' end
if f[4] ~= '' and tonumber(f[2]) >= tonumber(f[4]) then return 'used-up' end
redis.call('HINCRBY', KEYS[1], 'uses', 1)
return f[2]
"""

_SET_IF_EXISTS = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'revoked', '1')
return 1
"""

_REFUSALS = {"missing": GONE, "revoked": REVOKED, "expired": EXPIRED, "used-up": USED_UP}


class RedisCredentialStore:
    def __init__(self, url: str, prefix: str = "telemed:") -> None:
        self._redis = connect(url)
        self._prefix = prefix
        self._redeem = self._redis.register_script(_REDEEM)
        self._set_revoked = self._redis.register_script(_SET_IF_EXISTS)

    def __repr__(self) -> str:  # the URL may hold a Redis password
        return f"RedisCredentialStore(prefix={self._prefix!r})"

    async def add_invite(self, invite: Invite) -> None:
        key = self._invite_key(invite.room, invite.id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={
                "record": _dumps(invite.to_record()), "uses": invite.uses,
                "revoked": "1" if invite.revoked else "0", "expires_at": repr(invite.expires_at),
                "max_uses": "" if invite.max_uses is None else str(invite.max_uses)})
            pipe.expireat(key, int(invite.expires_at) + _KEEP_AFTER_EXPIRY)
            pipe.sadd(self._index(invite.room), invite.id)
            await pipe.execute()

    async def list_invites(self, room: str, incarnation: str) -> builtins.list[Invite]:
        ids = sorted(await self._redis.smembers(self._index(room)))
        async with self._redis.pipeline(transaction=False) as pipe:
            for invite_id in ids:
                pipe.hgetall(self._invite_key(room, invite_id))
            hashes = await pipe.execute()
        gone = [invite_id for invite_id, fields in zip(ids, hashes) if not fields]
        if gone:
            await self._redis.srem(self._index(room), *gone)
        invites = [_invite(fields) for fields in hashes if fields]
        return sorted((i for i in invites if i.incarnation == incarnation), key=lambda i: i.created_at)

    async def revoke_invite(self, room: str, invite_id: str) -> bool:
        return bool(await self._set_revoked(keys=[self._invite_key(room, invite_id)]))

    async def redeem_invite(self, room: str, invite_id: str, now: float) -> Invite:
        key = self._invite_key(room, invite_id)
        outcome = await self._redeem(keys=[key], args=[repr(now)])
        if outcome in _REFUSALS:
            raise _REFUSALS[outcome]
        fields = await self._redis.hgetall(key)
        if not fields:  # expired out of Redis between the two calls
            raise EXPIRED
        return _invite({**fields, "uses": outcome})

    async def delete_invites(self, room: str) -> None:
        ids = await self._redis.smembers(self._index(room))
        await self._redis.delete(self._index(room), *(self._invite_key(room, i) for i in ids))

    async def add_api_key(self, key: ApiKey) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._key_key(key.key_id), mapping={
                "record": _dumps(key.to_record()), "revoked": "1" if key.revoked else "0"})
            pipe.sadd(f"{self._prefix}apikeys", key.key_id)
            await pipe.execute()

    async def get_api_key(self, key_id: str) -> ApiKey | None:
        fields = await self._redis.hgetall(self._key_key(key_id))
        return _api_key(fields) if fields else None

    async def list_api_keys(self) -> builtins.list[ApiKey]:
        ids = sorted(await self._redis.smembers(f"{self._prefix}apikeys"))
        async with self._redis.pipeline(transaction=False) as pipe:
            for key_id in ids:
                pipe.hgetall(self._key_key(key_id))
            hashes = await pipe.execute()
        return sorted((_api_key(f) for f in hashes if f), key=lambda k: k.created_at)

    async def revoke_api_key(self, key_id: str) -> bool:
        return bool(await self._set_revoked(keys=[self._key_key(key_id)]))

    async def revoke_token(self, token_id: str, until: float) -> None:
        key = f"{self._prefix}revoked:{token_id}"
        current = await self._redis.pexpiretime(key)
        # Only ever lengthen a revocation (a refresh chain may be revoked twice).
        if current < 0 or current < int(until * 1000):
            await self._redis.set(key, "1", pxat=int(until * 1000) + 1)

    async def is_token_revoked(self, token_id: str) -> bool:
        return bool(await self._redis.exists(f"{self._prefix}revoked:{token_id}"))

    async def close(self) -> None:
        await self._redis.aclose()

    def _invite_key(self, room: str, invite_id: str) -> str:
        return f"{self._prefix}invite:{room}:{invite_id}"

    def _index(self, room: str) -> str:
        return f"{self._prefix}invites:{room}"

    def _key_key(self, key_id: str) -> str:
        return f"{self._prefix}apikey:{key_id}"


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _invite(fields: dict[str, str]) -> Invite:
    record = json.loads(fields["record"])
    return Invite.from_record({**record, "uses": int(fields["uses"]), "revoked": fields["revoked"] == "1"})


def _api_key(fields: dict[str, str]) -> ApiKey:
    return ApiKey.from_record({**json.loads(fields["record"]), "revoked": fields["revoked"] == "1"})
