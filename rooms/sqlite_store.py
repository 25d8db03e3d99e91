"""Rooms in one SQLite file, so that the embedded server keeps them across restarts.

One row per room: ``record`` (JSON: name, hash, created_at, settings), ``layout`` (JSON,
without version) and ``layout_version``, which SQLite increments in the same statement that
stores the layout. The file is in WAL mode with full sync: a room the API acknowledged
survives a crash or power loss (rooms/sqlite_file.py runs the file).
"""

from __future__ import annotations

import builtins
import json
import sqlite3
from pathlib import Path
from typing import Any

from rooms.layout import Layout
from rooms.room import Room
from rooms.sqlite_file import SqliteFile
from rooms.store import RoomExists, RoomNotFound

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
        self._file = SqliteFile(path, _SCHEMA, "room store")
        self.path = self._file.path
        self._run = self._file.run

    def __repr__(self) -> str:
        return f"SqliteRoomStore({str(self.path)!r})"

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
        await self._file.close()


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _room_from_row(row: tuple[str, str, int]) -> Room:
    record, layout, version = row
    return Room.from_record({**json.loads(record), "layout": {**json.loads(layout), "version": version}})
