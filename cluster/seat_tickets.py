"""What a seat needs to be resumed on another node (docs/multinode.md "A node lost"):
one Redis key per seat, ``<prefix>seat:<room>:<peer id>`` (a JSON object the live room
writes, its resume secret hashed), living ``ttl`` seconds past its host's last renewal,
and ``<prefix>seats:<room>`` indexing the room's seats. When the host dies its tickets
outlive it long enough for the room's next host to rebuild the seats, waiting for their
clients to resume."""

from __future__ import annotations

import json
from collections.abc import Iterable

import redis.asyncio as aioredis


class SeatTickets:
    def __init__(self, redis: aioredis.Redis, prefix: str, ttl: float) -> None:
        self._redis = redis
        self._prefix = prefix
        self._ttl_ms = int(ttl * 1000)

    async def put(self, tickets: Iterable[tuple[str, str, dict]]) -> None:
        """Write (or renew) ``(room, peer id, ticket)``s, each for another ``ttl``."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for room, peer_id, ticket in tickets:
                pipe.set(self._key(room, peer_id), json.dumps(ticket, separators=(",", ":")), px=self._ttl_ms)
                pipe.sadd(self._index(room), peer_id)
                pipe.pexpire(self._index(room), self._ttl_ms)
            await pipe.execute()

    async def room(self, room: str) -> list[dict]:
        """The seats of ``room`` whose tickets are alive."""
        ids = sorted(str(i) for i in await self._redis.smembers(self._index(room)))
        if not ids:
            return []
        raw = await self._redis.mget([self._key(room, i) for i in ids])
        gone = [peer_id for peer_id, value in zip(ids, raw) if value is None]
        if gone:
            await self._redis.srem(self._index(room), *gone)
        return [json.loads(value) for value in raw if value is not None]

    async def drop(self, room: str, peer_id: str) -> None:
        """The seat ended (a leave): nobody may resume it anywhere."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._key(room, peer_id))
            pipe.srem(self._index(room), peer_id)
            await pipe.execute()

    def _key(self, room: str, peer_id: str) -> str:
        return f"{self._prefix}seat:{room}:{peer_id}"

    def _index(self, room: str) -> str:
        return f"{self._prefix}seats:{room}"
