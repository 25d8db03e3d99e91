"""The server's one way to audit something: ``await audit.record(action, actor, ...)``.

Records are chained and written by one writer off the event loop. Whatever arrives while
a write is under way goes into the next write together (group commit: one sync for many
records), so a burst of failed logins costs one sync per batch, not one per attempt.
``record`` returns once its record is on disk (the day's chain head is anchored right
after); it raises StorageUnavailable when the disk refuses, and then nothing of that
batch is in the log.

Layout under ``data_dir``::

    audit.jsonl                  the chain
    audit-anchor.json            each day's chain head (audit_anchor)
    audit-unkeyed-<time>.jsonl   a log from before audit keys, set aside on upgrade
    audit-cut-<time>.jsonl       a log found shorter than its anchor at start-up, set
                                 aside with its anchor (…-anchor.json) as evidence
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from clinical.actor import Actor
from clinical.audit import AuditEvent, AuditLog
from clinical.audit_anchor import AnchorFile, RedisAnchor, day_heads
from clinical.errors import ClinicalError
from clinical.storage import storing

log = logging.getLogger("telemed.audit")

AUDIT_FILE = "audit.jsonl"
ANCHOR_FILE = "audit-anchor.json"
UNKEYED_PREFIX = "audit-unkeyed-"
CUT_PREFIX = "audit-cut-"


class AuditTrail:
    def __init__(self, data_dir: str | os.PathLike[str], key: bytes, redis_url: str | None = None,
                 redis_prefix: str = "telemed:") -> None:
        self.root = Path(data_dir)
        self.key = key
        path = self.root / AUDIT_FILE
        self._anchor = AnchorFile(self.root / ANCHOR_FILE, key)
        found: list[tuple[str, Path, dict[str, Any]]] = []  # (action, file set aside, details)
        try:
            self._log = AuditLog(path, key)
        except ClinicalError as exc:
            if exc.code != "audit-unkeyed":
                raise
            found.append(("audit-archived", _set_aside(path, UNKEYED_PREFIX), {}))
            self._log = AuditLog(path, key)
        repaired = self._log.repaired
        anchored = max((head["seq"] for head in self._anchor.load().values()), default=0)
        if anchored > self._log.seq:
            # Cut while we were down. Continuing would overwrite the anchor that proves it:
            # keep both as evidence (verify reports them) and begin a new chain.
            records = self._log.seq
            self._log.close()
            aside = _set_aside(path, CUT_PREFIX)
            _set_aside(self._anchor.path, CUT_PREFIX, f"{aside.stem}-anchor.json")
            self._log = AuditLog(path, key)
            self._anchor = AnchorFile(self.root / ANCHOR_FILE, key)
            found.append(("audit-tail-cut", aside, {"records": records, "anchored": anchored}))
        self._redis = RedisAnchor(redis_url, redis_prefix) if redis_url else None
        self._queue: list[tuple[AuditEvent, asyncio.Future]] = []
        self._writer: asyncio.Task | None = None
        self._soon: set[asyncio.Task] = set()
        if repaired:
            self.record_blocking("log-repaired", Actor.server(), object_id=AUDIT_FILE, bytes_cut=repaired)
        for action, aside, details in found:
            # Pins the old log's content from now on, though not what happened before.
            self.record_blocking(action, Actor.server(), object_id=aside.name,
                                 sha256=hashlib.sha256(aside.read_bytes()).hexdigest(), **details)

    @property
    def path(self) -> Path:
        return self._log.path

    async def record(self, action: str, actor: Actor, room: str = "", object_id: str = "",
                     **details: Any) -> dict[str, Any]:
        """Write one record and return it once it is on disk (StorageUnavailable if the
        disk refuses; ClinicalError ``audit-record`` if the event is malformed)."""
        event = AuditLog.event(action, actor, room, object_id, **details)
        done = asyncio.get_running_loop().create_future()
        self._queue.append((event, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._drain())
        return await asyncio.shield(done)  # a caller giving up does not unwrite the record

    def record_soon(self, action: str, actor: Actor, room: str = "", object_id: str = "",
                    **details: Any) -> None:
        """For callers that must not wait (joins, failed logins); failures are logged."""
        task = asyncio.ensure_future(self.record(action, actor, room, object_id, **details))
        self._soon.add(task)
        task.add_done_callback(self._soon_done)

    def record_blocking(self, action: str, actor: Actor, room: str = "", object_id: str = "",
                        **details: Any) -> dict[str, Any]:
        """At start-up only, before the event loop serves anyone."""
        return self._write([AuditLog.event(action, actor, room, object_id, **details)])[0]

    async def settled(self) -> None:
        """Wait until everything asked for so far (``record_soon`` too) is written."""
        await asyncio.gather(*self._soon, return_exceptions=True)
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)

    async def close(self) -> None:
        await self.settled()
        self._log.close()
        if self._redis is not None:
            self._redis.close()

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                entries = await asyncio.to_thread(self._log.write, [event for event, _ in batch])
            except BaseException as exc:
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc if isinstance(exc, Exception) else ClinicalError("internal"))
                if not isinstance(exc, Exception):
                    raise
                continue
            for (_, done), entry in zip(batch, entries):
                if not done.done():
                    done.set_result(entry)
            # After the answers: the records are durable, the anchor follows them (the
            # next batch gathers meanwhile).
            await asyncio.to_thread(self._anchor_heads, entries)

    def _write(self, events: list[AuditEvent]) -> list[dict[str, Any]]:
        entries = self._log.write(events)
        self._anchor_heads(entries)
        return entries

    def _anchor_heads(self, entries: list[dict[str, Any]]) -> None:
        heads = day_heads(entries)
        # The records are durable now; a failing anchor only delays the next anchoring.
        try:
            self._anchor.update(heads)
        except Exception as exc:  # the records stand; the next batch anchors again
            log.error("audit anchor not written: %s", exc)
        if self._redis is not None:
            try:
                self._redis.update(heads)
            except Exception as exc:  # Redis down must not stop auditing
                log.error("audit anchor not written to Redis: %r", exc)

    def _soon_done(self, task: asyncio.Task) -> None:
        self._soon.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("audit record failed: %s", task.exception())


def _set_aside(path: Path, prefix: str, name: str | None = None) -> Path:
    target = path.with_name(name or f"{prefix}{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%fZ')}.jsonl")
    with storing("the audit log"):
        os.rename(path, target)
    reason = "had no key" if prefix == UNKEYED_PREFIX else "was cut short of its anchored head"
    log.error("the audit log %s: set aside as %s (telemed audit verify reports it)", reason, target.name)
    return target
