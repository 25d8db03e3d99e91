"""Rooms in one SQLite file, so that the embedded server keeps them across restarts.

One row per room: ``record`` (JSON: name, hash, created_at, settings), ``layout`` (JSON,
without version) and ``layout_version``, which SQLite increments in the same statement that
stores the layout. The file is in WAL mode with full sync: a room the API acknowledged
survives a crash or power loss.

sqlite3 blocks, so every call runs on one worker thread that owns the connection: the event
loop never waits on the disk, and the single thread serialises writes without a lock.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from rooms.layout import Layout
from rooms.room import Room
from rooms.store import RoomExists, RoomNotFound, RoomStoreUnavailable

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rooms (
    name TEXT PRIMARY KEY,
    record TEXT NOT NULL,
    layout TEXT NOT NULL,
    layout_version INTEGER NOT NULL
)
"""


class SqliteRoomStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="room-store")
        self._db: sqlite3.Connection | None = None
        # Open now, so that an unusable file stops the server at start-up, not at first use.
        self._executor.submit(self._open).result()

    def __repr__(self) -> str:
        return f"SqliteRoomStore({str(self.path)!r})"

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit: every statement below is its own atomic transaction.
        db = sqlite3.connect(self.path, isolation_level=None, timeout=5.0)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute(_SCHEMA)
        except BaseException:
            db.close()
            raise
        self._db = db

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            if self._db is None:
                raise RuntimeError("the room store is closed")
            return fn(self._db)
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, call)
        except sqlite3.IntegrityError:
            raise
        except sqlite3.DatabaseError as exc:  # full or read-only disk, damaged file: rolled back
            raise RoomStoreUnavailable(f"the room store cannot be written: {exc}") from exc

    async def create(self, room: Room) -> None:
        record = room.to_record()
        layout = record.pop("layout")
        version = layout.pop("version")

        def insert(db: sqlite3.Connection) -> None:
            db.execute("INSERT INTO rooms (name, record, layout, layout_version) VALUES (?, ?, ?, ?)",
                       (room.name, _dumps(record), _dumps(layout), version))

        try:
            await self._run(insert)
        except sqlite3.IntegrityError:  # the primary key is taken
            raise RoomExists(room.name) from None

    async def get(self, name: str) -> Room | None:
        row = await self._run(lambda db: db.execute(
            "SELECT record, layout, layout_version FROM rooms WHERE name = ?", (name,)).fetchone())
        return _room_from_row(row) if row else None

    async def delete(self, name: str) -> bool:
        cursor = await self._run(lambda db: db.execute("DELETE FROM rooms WHERE name = ?", (name,)))
        return cursor.rowcount > 0

    async def list(self) -> builtins.list[Room]:
        # Sorted in Python: SQLite's default collation would agree, but the other stores
        # sort with Python's ordering, and all stores must list in the same order.
        rows = await self._run(lambda db: db.execute(
            "SELECT record, layout, layout_version FROM rooms").fetchall())
        return sorted((_room_from_row(row) for row in rows), key=lambda room: room.name)

    async def set_layout(self, name: str, layout: Layout) -> Layout:
        body = layout.to_dict()
        del body["version"]
        row = await self._run(lambda db: db.execute(
            "UPDATE rooms SET layout = ?, layout_version = layout_version + 1 WHERE name = ? "
            "RETURNING layout_version", (_dumps(body), name)).fetchone())
        if row is None:
            raise RoomNotFound(name)
        return Layout.from_dict({**body, "version": row[0]})

    async def close(self) -> None:
        def shut(db: sqlite3.Connection) -> None:
            db.close()
            self._db = None

        if self._db is not None:
            await self._run(shut)
        self._executor.shutdown(wait=False)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _room_from_row(row: tuple[str, str, int]) -> Room:
    record, layout, version = row
    return Room.from_record({**json.loads(record), "layout": {**json.loads(layout), "version": version}})
