"""Which nodes are up, and how loaded: each node's heartbeat is a Redis key that lives
``ttl`` seconds unless beaten again, so a node that stops (kill -9, a cut cable) drops
out by itself. ``<prefix>nodes`` indexes the ids; dead ones are pruned when listed."""

from __future__ import annotations

import redis.asyncio as aioredis

from cluster.node_info import NodeInfo


class NodeRegistry:
    def __init__(self, redis: aioredis.Redis, prefix: str, ttl: float) -> None:
        self._redis = redis
        self._prefix = prefix
        self._index = f"{prefix}nodes"
        self._ttl_ms = int(ttl * 1000)

    async def beat(self, info: NodeInfo) -> None:
        """Register or refresh ``info``; after a Redis restart this is also the re-registration."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._key(info.id), info.to_json(), px=self._ttl_ms)
            pipe.sadd(self._index, info.id)
            await pipe.execute()

    async def nodes(self) -> list[NodeInfo]:
        """The nodes whose heartbeat is alive, by id."""
        ids = sorted(str(node_id) for node_id in await self._redis.smembers(self._index))
        if not ids:
            return []
        beats = await self._redis.mget([self._key(i) for i in ids])
        gone = [node_id for node_id, beat in zip(ids, beats) if beat is None]
        if gone:
            await self._redis.srem(self._index, *gone)
        return [NodeInfo.from_json(str(beat)) for beat in beats if beat is not None]

    async def get(self, node_id: str) -> NodeInfo | None:
        """The node if its heartbeat is alive."""
        beat = await self._redis.get(self._key(node_id))
        return NodeInfo.from_json(str(beat)) if beat is not None else None

    async def forget(self, node_id: str) -> None:
        """Another node found this one dead before its heartbeat lapsed (it refuses
        connections): its rooms may be placed again at once."""
        await self._redis.delete(self._key(node_id))

    async def leave(self, node_id: str) -> None:
        """A clean shutdown: gone at once rather than after the TTL."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._key(node_id))
            pipe.srem(self._index, node_id)
            await pipe.execute()

    def _key(self, node_id: str) -> str:
        return f"{self._prefix}node:{node_id}"  # RoomLeases reads these too
