"""Which node hosts which room: a lease in Redis, ``<prefix>lease:<room>`` = node id, that
expires ``ttl`` seconds after its owner last renewed it. A room fits on one node.

Placement and renewal run as Lua scripts, which Redis executes atomically: two nodes that
place the same room at once get the same owner. ``<prefix>node-rooms:<id>`` (a sorted set,
room -> lease expiry) lets placement count the rooms a node holds, including those placed a
moment ago, before any heartbeat could report them.
"""

from __future__ import annotations

from collections.abc import Iterable

import redis.asyncio as aioredis

from cluster.node_info import NodeInfo

# Times come from Redis's clock, so that the nodes' clocks need not agree.
_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS: the lease, then one node-rooms set per candidate. ARGV: room, ttl ms, the prefix of
# heartbeat keys, then per candidate its id and its load apart from rooms. Returns the
# owner: the lease holder while its heartbeat lives (a dead node's rooms move at once).
_PLACE = _NOW + """
local owner = redis.call('GET', KEYS[1])
if owner and redis.call('EXISTS', ARGV[3] .. owner) == 1 then return owner end
local ttl = tonumber(ARGV[2])
local best, best_key, best_score
for i = 2, #KEYS do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
  local score = tonumber(ARGV[2 * i + 1]) + redis.call('ZCARD', KEYS[i])
  if best_score == nil or score < best_score then
    best, best_key, best_score = ARGV[2 * i], KEYS[i], score
  end
end
redis.call('SET', KEYS[1], best, 'PX', ttl)
redis.call('ZADD', best_key, now + ttl, ARGV[1])
return best
"""

# KEYS: this node's node-rooms set, then one lease per room. ARGV: node id, ttl ms, then
# the rooms. Renews our leases, re-asserts those that vanished (Redis restarted, or
# they lapsed while it was unreachable), and returns the rooms another node holds now.
_RENEW = _NOW + """
local me, ttl = ARGV[1], tonumber(ARGV[2])
local lost = {}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
for i = 2, #KEYS do
  local room = ARGV[1 + i]
  local owner = redis.call('GET', KEYS[i])
  if owner == me or not owner then
    redis.call('SET', KEYS[i], me, 'PX', ttl)
    redis.call('ZADD', KEYS[1], now + ttl, room)
  else
    table.insert(lost, room)
  end
end
return lost
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
redis.call('ZREM', KEYS[2], ARGV[2])
return 1
"""


class RoomLeases:
    def __init__(self, redis: aioredis.Redis, prefix: str, node_id: str, ttl: float) -> None:
        self._redis = redis
        self._prefix = prefix
        self.node_id = node_id
        self._ttl_ms = int(ttl * 1000)
        self._heartbeats = f"{prefix}node:"  # NodeRegistry's keys
        self._place = redis.register_script(_PLACE)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    async def owner(self, room: str) -> str | None:
        owner = await self._redis.get(self._lease(room))
        return None if owner is None else str(owner)

    async def place(self, room: str, candidates: list[NodeInfo]) -> str:
        """The room's owner: the current one if it has a lease, else the least-loaded
        candidate (calm ones first, see NodeInfo.busy), which now holds the lease."""
        calm = [n for n in candidates if not n.busy] or candidates
        if not calm:
            raise ValueError("no node to place the room on")
        args: list[str | int | float] = [room, self._ttl_ms, self._heartbeats]
        for node in calm:
            args += [node.id, node.load]
        return await self._place(keys=[self._lease(room), *(self._rooms_of(n.id) for n in calm)],
                                 args=args)

    async def renew(self, rooms: Iterable[str]) -> list[str]:
        """Renew (or re-assert) this node's leases on ``rooms``; the ones lost to another node."""
        rooms = list(rooms)
        if not rooms:
            return []
        return await self._renew(keys=[self._rooms_of(self.node_id), *(self._lease(r) for r in rooms)],
                                 args=[self.node_id, self._ttl_ms, *rooms])

    async def release(self, room: str) -> None:
        await self._release(keys=[self._lease(room), self._rooms_of(self.node_id)], args=[self.node_id, room])

    def _lease(self, room: str) -> str:
        return f"{self._prefix}lease:{room}"

    def _rooms_of(self, node_id: str) -> str:
        return f"{self._prefix}node-rooms:{node_id}"
