"""One SQLite file used from asyncio, for the embedded stores (rooms, credentials).

sqlite3 blocks, so every call runs on one worker thread that owns the connection: the
event loop never waits on the disk, and the single thread serialises writes without a
lock. WAL with full sync and autocommit: every statement is its own transaction, and one
that was answered survives a crash or power loss. A full or read-only disk or a damaged
file becomes ``RoomStoreUnavailable`` (the statement was rolled back); a constraint
violation stays ``sqlite3.IntegrityError`` for the store to interpret.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from rooms.store import RoomStoreUnavailable

T = TypeVar("T")


class SqliteFile:
    def __init__(self, path: str | Path, schema: str, name: str) -> None:
        self.path = Path(path)
        self._name = name
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name.replace(" ", "-"))
        self._db: sqlite3.Connection | None = None
        # Open now, so that an unusable file stops the server at start-up, not at first use.
        self._executor.submit(self._open, schema).result()

    def _open(self, schema: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, timeout=5.0)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(schema)
        except BaseException:
            db.close()
            raise
        self._db = db

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            if self._db is None:
                raise RuntimeError(f"the {self._name} is closed")
            return fn(self._db)
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, call)
        except sqlite3.IntegrityError:
            raise
        except sqlite3.DatabaseError as exc:  # full or read-only disk, damaged file: rolled back
            raise RoomStoreUnavailable(f"the {self._name} cannot be written: {exc}") from exc

    async def close(self) -> None:
        def shut(db: sqlite3.Connection) -> None:
            db.close()
            self._db = None

        if self._db is not None:
            await self.run(shut)
        self._executor.shutdown(wait=False)
