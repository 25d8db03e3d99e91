"""Rooms in Redis, so that several server nodes share them.

Each room is a hash at ``<prefix>room:<name>`` with three fields: ``room`` (JSON: name, hash,
created_at, settings), ``layout`` (JSON, without version) and ``layout_version`` (an integer
Redis increments itself). The set ``<prefix>rooms`` indexes the names for ``list``.
Writes that touch several fields or keys run as Lua scripts, which Redis executes atomically.
"""

from __future__ import annotations

import builtins
import json
from typing import Any

from rooms.layout import Layout
from rooms.redis_client import connect
from rooms.room import Room
from rooms.store import RoomExists, RoomNotFound

_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'room', ARGV[2], 'layout', ARGV[3], 'layout_version', ARGV[4])
redis.call('SADD', KEYS[2], ARGV[1])
return 1
"""

_DELETE = """
local removed = redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
return removed
"""

_SET_LAYOUT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local version = redis.call('HINCRBY', KEYS[1], 'layout_version', 1)
redis.call('HSET', KEYS[1], 'layout', ARGV[1])
return version
"""


class RedisRoomStore:
    def __init__(self, url: str, prefix: str = "telemed:") -> None:
        self._redis = connect(url)
        self._prefix = prefix
        self._index = f"{prefix}rooms"
        self._create = self._redis.register_script(_CREATE)
        self._delete = self._redis.register_script(_DELETE)
        self._set_layout = self._redis.register_script(_SET_LAYOUT)

    def __repr__(self) -> str:  # the URL may hold a Redis password
        return f"RedisRoomStore(prefix={self._prefix!r})"

    async def create(self, room: Room) -> None:
        record = room.to_record()
        layout = record.pop("layout")
        version = layout.pop("version")
        created = await self._create(
            keys=[self._key(room.name), self._index],
            args=[room.name, _dumps(record), _dumps(layout), version],
        )
        if not created:
            raise RoomExists(room.name)

    async def get(self, name: str) -> Room | None:
        fields = await self._redis.hgetall(self._key(name))
        return _room_from_hash(fields) if fields else None

    async def delete(self, name: str) -> bool:
        removed = await self._delete(keys=[self._key(name), self._index], args=[name])
        return bool(removed)

    async def list(self) -> builtins.list[Room]:
        names = sorted(await self._redis.smembers(self._index))
        async with self._redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(self._key(name))
            hashes = await pipe.execute()
        # A room deleted between the two round trips comes back empty: skip it.
        return [_room_from_hash(fields) for fields in hashes if fields]

    async def set_layout(self, name: str, layout: Layout) -> Layout:
        body = layout.to_dict()
        del body["version"]
        version = await self._set_layout(keys=[self._key(name)], args=[_dumps(body)])
        if version is None:
            raise RoomNotFound(name)
        return Layout.from_dict({**body, "version": int(version)})

    async def close(self) -> None:
        await self._redis.aclose()

    def _key(self, name: str) -> str:
        return f"{self._prefix}room:{name}"


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _room_from_hash(fields: dict[str, str]) -> Room:
    layout = {**json.loads(fields["layout"]), "version": int(fields["layout_version"])}
    return Room.from_record({**json.loads(fields["room"]), "layout": layout})
