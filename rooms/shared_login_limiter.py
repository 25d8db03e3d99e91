"""The login limiter's failure windows in Redis, so that its limits hold across nodes.

A password check reserves here first: one Lua script checks the three windows (address and
room, address, room) and counts the failure in each before the slow hash runs, atomically
across nodes, exactly as LoginLimiter does in one process. The node's own LoginLimiter then
applies the caps on checks in flight (they guard that node's hashing threads) and its own
windows, which can only be stricter than these by never seeing other nodes' failures.
A right password takes the failure back and marks the address as known in the room.

If Redis cannot be reached the node's own limiter still applies, so an outage loosens the
limits to one node's, never lifts them.

Keys: ``<prefix>login:ar:<address>:<room>``, ``login:a:<address>``, ``login:r:<room>``
(sorted sets of failure times) and ``login:known:<address>:<room>`` (expires).
"""

from __future__ import annotations

import asyncio
import logging
import secrets

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from rooms.ratelimit import Attempt, LoginLimiter, Throttled

log = logging.getLogger("telemed.logins")

# KEYS: ar, a, r, known. ARGV: short window ms, long window ms, limits ar/a/r, member.
# Returns {0, known} when counted, {1, wait ms} (address) or {2, wait ms} (room).
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local short, long = tonumber(ARGV[1]), tonumber(ARGV[2])
local function wait(key, limit, window)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local n = redis.call('ZCARD', key)
  if n < limit then return 0 end
  local oldest = redis.call('ZRANGE', key, n - limit, n - limit, 'WITHSCORES')
  return tonumber(oldest[2]) + window - now
end
local w = math.max(wait(KEYS[1], tonumber(ARGV[3]), short), wait(KEYS[2], tonumber(ARGV[4]), long))
if w > 0 then return {1, w} end
local known = redis.call('EXISTS', KEYS[4])
if known == 0 then
  w = wait(KEYS[3], tonumber(ARGV[5]), long)
  if w > 0 then return {2, w} end
  redis.call('ZADD', KEYS[3], now, ARGV[6])
  redis.call('PEXPIRE', KEYS[3], long)
end
redis.call('ZADD', KEYS[1], now, ARGV[6])
redis.call('PEXPIRE', KEYS[1], short)
redis.call('ZADD', KEYS[2], now, ARGV[6])
redis.call('PEXPIRE', KEYS[2], long)
return {0, known}
"""


class SharedLoginLimiter:
    def __init__(self, redis: aioredis.Redis, local: LoginLimiter, prefix: str = "telemed:") -> None:
        self._redis = redis
        self.local = local
        self._prefix = f"{prefix}login:"
        self._reserve = redis.register_script(_RESERVE)
        self._pending: set[asyncio.Task] = set()

    async def reserve(self, address: str, room: str) -> SharedAttempt:
        """A reservation to check one password, or Throttled."""
        keys = self._keys(address, room)
        member = secrets.token_hex(8)
        limits = self.local.limits
        try:
            outcome, value = await self._reserve(keys=keys, args=[
                int(limits.short_window * 1000), int(limits.long_window * 1000),
                limits.per_address_room, limits.per_address, limits.per_room, member])
        except RedisError as exc:
            log.warning("shared login limits unreachable; this node's alone apply: %r", exc)
            return SharedAttempt(self, self.local.reserve(address, room), None, keys)
        if outcome == 1:
            raise Throttled(value / 1000, "too many failed attempts from your address; try again later")
        if outcome == 2:
            raise Throttled(value / 1000, "too many failed attempts on this room's password; try "
                                          "again later, or join with an invitation")
        if value:  # known on another node: this node's room window must not refuse it either
            self.local.remember(address, room)
        try:
            attempt = self.local.reserve(address, room)
        except Throttled:
            self._soon(self._take_back(keys, member))
            raise
        return SharedAttempt(self, attempt, member, keys)

    def _keys(self, address: str, room: str) -> list[str]:
        p = self._prefix
        return [f"{p}ar:{address}:{room}", f"{p}a:{address}", f"{p}r:{room}", f"{p}known:{address}:{room}"]

    async def _take_back(self, keys: list[str], member: str, known_for: float | None = None) -> None:
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                for key in keys[:3]:
                    pipe.zrem(key, member)
                if known_for is not None:
                    pipe.set(keys[3], "1", px=int(known_for * 1000))
                await pipe.execute()
        except RedisError as exc:
            log.warning("could not take back a shared login failure: %r", exc)

    def _soon(self, work) -> None:
        task = asyncio.ensure_future(work)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)


class SharedAttempt:
    """Like Attempt (it wraps this node's), and takes back the shared failure too; that
    happens a moment later, in the background, since callers decide synchronously."""

    def __init__(self, limiter: SharedLoginLimiter, local: Attempt, shared: str | None,
                 keys: list[str]) -> None:
        self._limiter = limiter
        self._local = local
        self._shared = shared  # the member counted in Redis, None if Redis was unreachable
        self._keys = keys
        self.priority = local.priority

    def __enter__(self) -> SharedAttempt:
        return self

    def __exit__(self, *exc: object) -> None:
        self._local.__exit__(*exc)

    def succeeded(self) -> None:
        self._local.succeeded()
        if self._shared is not None:
            self._limiter._soon(self._limiter._take_back(
                self._keys, self._shared, known_for=self._limiter.local.limits.remember_success))

    def withdraw(self) -> None:
        self._local.withdraw()
        if self._shared is not None:
            self._limiter._soon(self._limiter._take_back(self._keys, self._shared))
