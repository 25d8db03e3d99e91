"""Invites, API keys and revoked tokens in the embedded SQLite file, next to the rooms.

Three tables; an invite's use count and revocation are columns, so that redeeming is one
``UPDATE ... WHERE`` that checks and counts at once. rooms/sqlite_file.py runs the file
(one worker thread, WAL, full sync), like the room store's.
"""

from __future__ import annotations

import builtins
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from rooms.api_keys import ApiKey
from rooms.invites import GONE, USED_UP, Invite
from rooms.sqlite_file import SqliteFile

_SCHEMA = """
CREATE TABLE IF NOT EXISTS invites (
    room TEXT NOT NULL,
    id TEXT NOT NULL,
    record TEXT NOT NULL,
    expires_at REAL NOT NULL,
    max_uses INTEGER,
    uses INTEGER NOT NULL,
    revoked INTEGER NOT NULL,
    PRIMARY KEY (room, id)
);
CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY,
    record TEXT NOT NULL,
    revoked INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS revoked_tokens (
    token_id TEXT PRIMARY KEY,
    until REAL NOT NULL
);
"""


class SqliteCredentialStore:
    def __init__(self, path: str | Path) -> None:
        self._file = SqliteFile(path, _SCHEMA, "credential store")
        self.path = self._file.path
        self._run = self._file.run

    def __repr__(self) -> str:
        return f"SqliteCredentialStore({str(self.path)!r})"

    async def add_invite(self, invite: Invite) -> None:
        await self._run(lambda db: db.execute(
            "INSERT OR REPLACE INTO invites (room, id, record, expires_at, max_uses, uses, revoked) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (invite.room, invite.id, _dumps(invite.to_record()), invite.expires_at, invite.max_uses,
             invite.uses, int(invite.revoked))))

    async def list_invites(self, room: str, incarnation: str) -> builtins.list[Invite]:
        rows = await self._run(lambda db: db.execute(
            "SELECT record, uses, revoked FROM invites WHERE room = ?", (room,)).fetchall())
        invites = [_invite(row) for row in rows]
        return sorted((i for i in invites if i.incarnation == incarnation), key=lambda i: i.created_at)

    async def revoke_invite(self, room: str, invite_id: str) -> bool:
        cursor = await self._run(lambda db: db.execute(
            "UPDATE invites SET revoked = 1 WHERE room = ? AND id = ?", (room, invite_id)))
        return cursor.rowcount > 0

    async def redeem_invite(self, room: str, invite_id: str, now: float) -> Invite:
        def redeem(db: sqlite3.Connection) -> Invite:
            row = db.execute(
                "UPDATE invites SET uses = uses + 1 WHERE room = ? AND id = ? AND revoked = 0 "
                "AND expires_at > ? AND (max_uses IS NULL OR uses < max_uses) "
                "RETURNING record, uses - 1, revoked", (room, invite_id, now)).fetchone()
            if row is not None:
                return _invite(row)
            row = db.execute("SELECT record, uses, revoked FROM invites WHERE room = ? AND id = ?",
                             (room, invite_id)).fetchone()
            if row is None:
                raise GONE
            _invite(row).check_usable(now)  # raises the reason it was not counted
            raise USED_UP  # unreachable unless the row changed between the two statements

        return await self._run(redeem)

    async def delete_invites(self, room: str) -> None:
        await self._run(lambda db: db.execute("DELETE FROM invites WHERE room = ?", (room,)))

    async def add_api_key(self, key: ApiKey) -> None:
        await self._run(lambda db: db.execute(
            "INSERT OR REPLACE INTO api_keys (key_id, record, revoked) VALUES (?, ?, ?)",
            (key.key_id, _dumps(key.to_record()), int(key.revoked))))

    async def get_api_key(self, key_id: str) -> ApiKey | None:
        row = await self._run(lambda db: db.execute(
            "SELECT record, revoked FROM api_keys WHERE key_id = ?", (key_id,)).fetchone())
        return _api_key(row) if row else None

    async def list_api_keys(self) -> builtins.list[ApiKey]:
        rows = await self._run(lambda db: db.execute("SELECT record, revoked FROM api_keys").fetchall())
        return sorted((_api_key(row) for row in rows), key=lambda k: k.created_at)

    async def revoke_api_key(self, key_id: str) -> bool:
        cursor = await self._run(lambda db: db.execute(
            "UPDATE api_keys SET revoked = 1 WHERE key_id = ?", (key_id,)))
        return cursor.rowcount > 0

    async def revoke_token(self, token_id: str, until: float) -> None:
        def revoke(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM revoked_tokens WHERE until <= ?", (time.time(),))
            db.execute("INSERT INTO revoked_tokens (token_id, until) VALUES (?, ?) ON CONFLICT (token_id) "
                       "DO UPDATE SET until = max(until, excluded.until)", (token_id, until))

        await self._run(revoke)

    async def is_token_revoked(self, token_id: str) -> bool:
        row = await self._run(lambda db: db.execute(
            "SELECT 1 FROM revoked_tokens WHERE token_id = ? AND until > ?", (token_id, time.time())).fetchone())
        return row is not None

    async def close(self) -> None:
        await self._file.close()


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _invite(row: tuple[str, int, int]) -> Invite:
    record, uses, revoked = row
    return Invite.from_record({**json.loads(record), "uses": uses, "revoked": bool(revoked)})


def _api_key(row: tuple[str, int]) -> ApiKey:
    record, revoked = row
    return ApiKey.from_record({**json.loads(record), "revoked": bool(revoked)})
