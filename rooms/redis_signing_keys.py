"""Token signing keys in Redis, shared by every node, and their rotation.

``<prefix>token-keys`` is a hash: kid -> JSON ``{"secret", "created"}``. Every node reloads
it each heartbeat. A new key signs only ``activation`` seconds after it was added, so every
node knows it before the first token it signs reaches them; the newest ``KEEP`` keys are
kept, so a token outlives its key's retirement for at least one rotation period.
"""

from __future__ import annotations

import json
import secrets
import time

import redis.asyncio as aioredis

from rooms.signing_keys import SigningKeys

KEEP = 3

# KEYS: the hash. ARGV: now, rotation period, new kid, its record, how many to keep.
# Adds the key when the newest is older than the period (or there is none), then prunes.
_ROTATE = """
local all = redis.call('HGETALL', KEYS[1])
local keys = {}
for i = 1, #all, 2 do table.insert(keys, {all[i], cjson.decode(all[i + 1]).created}) end
table.sort(keys, function(a, b) return a[2] > b[2] end)
if #keys > 0 and tonumber(ARGV[1]) - keys[1][2] < tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[3], ARGV[4])
for i = tonumber(ARGV[5]), #keys do redis.call('HDEL', KEYS[1], keys[i][1]) end
return 1
"""


class RedisSigningKeys:
    def __init__(self, redis: aioredis.Redis, prefix: str, rotate_every: float, activation: float) -> None:
        self._redis = redis
        self._key = f"{prefix}token-keys"
        self._every = rotate_every
        self._activation = activation
        self._rotate = redis.register_script(_ROTATE)
        self._known: dict[str, str] = {}  # kid -> record, to put back if Redis lost them

    def __repr__(self) -> str:
        return f"RedisSigningKeys(key={self._key!r})"

    async def _stored(self) -> dict[str, str]:
        return {str(kid): str(record) for kid, record in (await self._redis.hgetall(self._key)).items()}

    async def rotate_if_due(self) -> bool:
        """Add a fresh key if the newest is older than the rotation period (or none exists);
        atomic, so that of several nodes due at once only one adds a key."""
        record = json.dumps({"secret": secrets.token_urlsafe(32), "created": time.time()})
        return bool(await self._rotate(keys=[self._key],
                                       args=[time.time(), self._every, secrets.token_hex(4), record, KEEP]))

    async def load(self) -> SigningKeys:
        """The shared keys; the first node creates one, and a node puts back keys it knew
        that Redis lost (restarted without persistence), so that no live token dies."""
        stored = await self._stored()
        if not stored:
            # All gone (none, or Redis restarted empty), not pruned: pruning keeps the newest.
            if self._known:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for kid, record in self._known.items():
                        pipe.hsetnx(self._key, kid, record)
                    await pipe.execute()
            else:
                await self.rotate_if_due()
            stored = await self._stored()
        self._known = dict(stored)
        created = {kid: float(json.loads(record)["created"]) for kid, record in stored.items()}
        ready = [kid for kid, at in created.items() if at <= time.time() - self._activation]
        # Before any key is old enough (the very first), the oldest signs: nobody has another.
        current = max(ready, key=created.__getitem__) if ready else min(created, key=created.__getitem__)
        return SigningKeys(current, {kid: json.loads(record)["secret"] for kid, record in stored.items()})
