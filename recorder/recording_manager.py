"""This server's recordings: the running one of each live room, and those at rest under
``<data_dir>/recordings/<id>/``.

It follows every live room, to start a room set to ``record: "auto"`` on its first
published track and to stop any recording when the room empties. On start-up, a
recording still marked ``recording`` was cut by a crash and becomes ``interrupted``
(unless the directory is shared by several nodes: another may be writing it).

While a room records, ``<data_dir>/recordings/live/<hash of the room>`` names the
recording: a node that takes over a room whose host died goes on with it (``carry_on``).
Start, stop, opening, delete and expiry are on the audit trail, under the Actor that did it.

With an S3 archive (s3_archive.py), every recording that ended is copied to the bucket by
one background loop (``run_archive``), retried with a growing pause until it succeeds, also
after a restart; a track whose local file is gone (``prune``, or never here) is then read
from the bucket.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import shutil
import time
from collections.abc import Awaitable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from clinical.actor import SERVER, Actor
from clinical.audit_trail import AuditTrail
from clinical.storage import StorageUnavailable
from conference.live_room import LiveRoom
from vault import ByteSource, FileSource, KeyRing, VaultError

from . import manifest_file
from .errors import ArchiveError, RecordingError
from .recording import FAILED, RECORDING, Recording

if TYPE_CHECKING:  # the S3 client is an optional extra: imported only where it is set up
    from .s3_archive import S3Archive

log = logging.getLogger("telemed.recorder")

AUTOMATIC = Actor(SERVER, "automatic recording")
RETENTION = Actor(SERVER, "retention")
ARCHIVER = Actor(SERVER, "archive")
_ID = re.compile(r"[0-9a-f]{16}")
EXPIRY_INTERVAL = 3600.0
ARCHIVE_RETRY = (2.0, 300.0)  # the pause after a failed archive run, doubling up to the second
ARCHIVE_LIST_INTERVAL = 600.0  # how often the bucket is listed for recordings other nodes archived


class RecordingManager:
    def __init__(self, data_dir: str | Path, keyring: KeyRing, audit: AuditTrail,
                 retention_days: float = 0.0, shared: bool = False, archive: S3Archive | None = None,
                 local_days: float = 0.0) -> None:
        self.root = Path(data_dir) / "recordings"
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._live_dir = self.root / "live"
        self._live_dir.mkdir(mode=0o700, exist_ok=True)
        self._shared = shared
        self.keyring = keyring
        self.retention_days = retention_days
        self._audit = audit
        self._recordings: dict[str, Recording] = {}
        self._active: dict[str, Recording] = {}   # by room name
        self._tasks: set[asyncio.Task] = set()
        self._archive = archive
        self.local_days = local_days  # archived recordings keep their local files this long (0: always)
        self._archive_due = asyncio.Event()
        self._deleting: set[str] = set()
        self._deleted: set[str] = set()
        self.archive_failures = 0  # failed attempts, for /metrics
        self._load()

    def _load(self) -> None:
        for directory in sorted(self.root.iterdir()):
            if not _ID.fullmatch(directory.name):
                continue
            try:
                recording = Recording.load(directory, self.keyring)
            except (OSError, ValueError, VaultError) as exc:
                log.error("recording %s is unreadable and left alone: %s", directory.name, exc)
                continue
            if recording.state == RECORDING and not self._shared:
                recording.mark_interrupted(self.keyring)
                self._unmark(recording)
                log.warning("recording %s of room %s was interrupted", recording.id, recording.room)
            self._recordings[recording.id] = recording

    # --- live rooms ---
    def follow(self, live: LiveRoom, auto: bool) -> None:
        """A live room was opened: record it automatically if set so; end with it."""
        def on_event(event: dict) -> None:
            kind = event.get("type")
            if kind == "track-published" and auto and self.active(live.name) is None and live.peers:
                self._spawn(self.start(live, AUTOMATIC))
            elif kind == "participant-left" and live.empty:
                unlisten()
                active = self.active(live.name)
                if active is not None:
                    self._spawn(self._stop(active, AUTOMATIC if auto else active.started_by, "room-empty"))
        unlisten = live.listen(on_event)

    def carry_on(self, live: LiveRoom, go_on: bool = True) -> Recording | None:
        """The room opens here, and was recording on a node that died: with ``go_on``
        (its seats were carried over, a failover) go on with that recording, in a new
        segment; else (it died long ago) that recording was interrupted. None if the
        room was not recording."""
        try:
            rec_id = self._marker(live.name).read_text().strip()
            if not _ID.fullmatch(rec_id) or self.active(live.name) is not None:
                return None
            recording = Recording.load(self.root / rec_id, self.keyring)
            if recording.state != RECORDING or recording.room != live.name:
                self._unmark(recording)  # stale: it ended, or was found interrupted
                return None
            if not go_on:
                recording.mark_interrupted(self.keyring)
                self._recordings[recording.id] = recording
                self._unmark(recording)
                return None
            recording.continue_in(live, self.keyring, self._ended)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, VaultError) as exc:
            log.error("the recording of room %s does not go on: %s", live.name, exc)
            return None
        self._recordings[recording.id] = recording
        self._active[live.name] = recording
        self._audit.record_soon("recording-continue", AUTOMATIC, live.name, f"recording/{recording.id}",
                                segment=len(recording.manifest["segments"]) - 1)
        log.info("recording goes on in a new segment",
                 extra={"fields": {"room": live.name, "recording": recording.id}})
        return recording

    def _marker(self, room: str) -> Path:
        # Hashed: a room's name may say more than the data directory should.
        return self._live_dir / hashlib.sha256(room.encode()).hexdigest()[:32]

    def _mark(self, recording: Recording) -> None:
        path = self._marker(recording.room)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(recording.id)
        os.replace(tmp, path)

    def _unmark(self, recording: Recording) -> None:
        path = self._marker(recording.room)
        try:
            if path.read_text().strip() == recording.id:
                path.unlink()
        except OSError:
            pass  # gone already; a stale marker names a recording no longer `recording`

    def active(self, room: str) -> Recording | None:
        recording = self._active.get(room)
        return recording if recording is not None and recording.state == RECORDING else None

    async def start(self, live: LiveRoom, by: Actor) -> Recording:
        if self.active(live.name) is not None:
            raise RecordingError(409, "recording", "the room is already being recorded")
        try:
            recording = Recording.begin(self.root, self.keyring.new_data_key(), live, by, self._ended)
        except OSError as exc:
            raise RecordingError(507, "disk", f"cannot record: {exc.strerror or exc}") from None
        self._recordings[recording.id] = recording
        self._active[live.name] = recording
        try:
            self._mark(recording)
        except OSError as exc:
            await recording.stop("disk")
            raise RecordingError(507, "disk", f"cannot record: {exc.strerror or exc}") from None
        try:
            await self._audit.record("recording-start", by, live.name, f"recording/{recording.id}")
        except StorageUnavailable as exc:  # not on record: not recording either
            await recording.stop("not audited")
            raise RecordingError(507, "disk", f"cannot record: the audit log refused: {exc.message}") from None
        log.info("recording started", extra={"fields": {"room": live.name, "recording": recording.id}})
        return recording

    async def stop(self, room: str, rec_id: str, by: Actor) -> Recording:
        recording = self.get(room, rec_id)
        if recording.state != RECORDING:
            raise RecordingError(409, "not-recording", f"the recording is {recording.state}")
        await self._stop(recording, by, "stopped")
        return recording

    def _ended(self, recording: Recording) -> None:
        """A recording wound down (stopped or failed): the room is free to record again."""
        if self._active.get(recording.room) is recording:
            del self._active[recording.room]
        self._unmark(recording)
        self._archive_due.set()
        if recording.state == FAILED:
            self._spawn(self._audit.record("recording-fail", recording.started_by, recording.room,
                                           f"recording/{recording.id}", reason=recording.manifest.get("reason", "")))

    async def _stop(self, recording: Recording, by: Actor, reason: str) -> None:
        await recording.stop(reason)
        await self._audit.record("recording-stop", by, recording.room, f"recording/{recording.id}", reason=reason)

    # --- at rest ---
    def list(self, room: str) -> list[dict]:
        found = [r.describe() for r in self._recordings.values() if r.room == room]
        return sorted(found, key=lambda m: m["started_at"])

    def get(self, room: str, rec_id: str) -> Recording:
        recording = self._recordings.get(rec_id) if _ID.fullmatch(rec_id) else None
        if recording is None or recording.room != room:
            raise RecordingError(404, "not-found", "no such recording")
        return recording

    async def opened(self, recording: Recording, by: Actor, what: str = "manifest") -> None:
        await self._audit.record("recording-open", by, recording.room, f"recording/{recording.id}", what=what)

    async def delete(self, room: str, rec_id: str, by: Actor) -> None:
        recording = self.get(room, rec_id)
        if recording.state == RECORDING or self._active.get(room) is recording:
            raise RecordingError(409, "recording", "stop the recording before deleting it")
        await self._remove(recording, by, "recording-delete")

    async def _remove(self, recording: Recording, by: Actor, action: str) -> None:
        if _claimed(recording):
            raise RecordingError(409, "archiving", "the recording is being archived: try again shortly")
        self._deleting.add(recording.id)  # not uploaded again while it goes
        try:
            if self._archive is not None:  # the bucket's copy first: never a local delete that leaves one
                try:
                    await asyncio.to_thread(self._archive.remove, recording.id)
                except ArchiveError as exc:
                    raise RecordingError(502, "archive-unavailable",
                                         f"cannot delete the archived copy: {exc}") from None
            # The wrapped data key lives only in these files' headers: gone with them.
            try:
                await asyncio.to_thread(shutil.rmtree, recording.directory)
            except FileNotFoundError:
                pass  # known from the S3 archive only
            except OSError as exc:
                raise RecordingError(507, "disk", f"cannot delete the recording: {exc.strerror or exc}") from None
            self._recordings.pop(recording.id, None)
            self._deleted.add(recording.id)  # never found again in a bucket listing made before
        finally:
            self._deleting.discard(recording.id)
        await self._audit.record(action, by, recording.room, f"recording/{recording.id}")

    async def expire(self, now: float | None = None) -> int:
        """Delete recordings older than the retention; returns how many went."""
        if self.retention_days <= 0:
            return 0
        cutoff = (time.time() if now is None else now) - self.retention_days * 86400
        expired = [r for r in self._recordings.values() if r.state != RECORDING
                   and datetime.fromisoformat(r.manifest["started_at"]).timestamp() < cutoff]
        removed = 0
        for recording in expired:
            try:
                await self._remove(recording, RETENTION, "recording-expire")
                removed += 1
            except RecordingError as exc:  # being archived, or the bucket down: the next pass
                log.warning("expired recording %s kept for now: %s", recording.id, exc.message)
        return removed

    async def prune(self, now: float | None = None) -> int:
        """Delete the local track files of archived recordings that ended more than
        ``local_days`` ago (the manifest stays: they replay from the bucket); returns how many."""
        if self._archive is None or self.local_days <= 0:
            return 0
        cutoff = (time.time() if now is None else now) - self.local_days * 86400
        pruned = 0
        for recording in list(self._recordings.values()):
            ended = recording.manifest.get("stopped_at") or recording.manifest["started_at"]
            if (recording.state == RECORDING or not _archived(recording)
                    or datetime.fromisoformat(ended).timestamp() >= cutoff):
                continue
            files = await asyncio.to_thread(recording.files)
            if not files:
                continue
            for path in files:
                await asyncio.to_thread(path.unlink, True)
            pruned += 1
            await self._audit.record("recording-prune", RETENTION, recording.room, f"recording/{recording.id}")
        return pruned

    async def run_expiry(self) -> None:
        while True:
            try:
                await self.expire()
                await self.prune()
            except Exception:
                log.exception("recording expiry failed")
            await asyncio.sleep(EXPIRY_INTERVAL)

    # --- the S3 archive ---
    def media_source(self, recording: Recording, name: str) -> ByteSource:
        """A recording's file to read (blocking): the local one, else the archived copy.
        Raises FileNotFoundError, or RecordingError when the bucket cannot be read."""
        try:
            return FileSource(recording.directory / name)
        except FileNotFoundError:
            if self._archive is None or not _archived(recording):
                raise
        try:
            return self._archive.open(recording.id, name)
        except ArchiveError as exc:
            raise RecordingError(502, "archive-unavailable", str(exc)) from None

    async def adopt_archived(self) -> int:
        """Know the recordings in the bucket that have no directory here (archived by a
        node that does not share this data directory): they replay from the bucket.
        Returns how many were found."""
        archive = self._archive
        assert archive is not None
        found = 0
        for rec_id in await asyncio.to_thread(archive.recording_ids):
            if not _ID.fullmatch(rec_id) or rec_id in self._recordings or rec_id in self._deleted:
                continue
            try:
                source = await asyncio.to_thread(archive.open, rec_id, manifest_file.NAME)
                manifest, wrapped = await asyncio.to_thread(manifest_file.read, source, self.keyring)
                keys = (self.keyring.unwrap(wrapped), wrapped)
            except (OSError, ValueError, VaultError) as exc:
                log.error("archived recording %s is unreadable and left alone: %s", rec_id, exc)
                continue
            if manifest.get("id") == rec_id and rec_id not in self._recordings and rec_id not in self._deleted:
                self._recordings[rec_id] = Recording(self.root / rec_id, manifest, keys)
                found += 1
        return found

    async def run_archive(self) -> None:
        """Archive every recording that ended and is not in the bucket yet; after a
        failure, try again after a pause that doubles (up to five minutes). Each pass
        first looks in the bucket for recordings that other nodes archived."""
        if self._archive is None:
            return
        pause = ARCHIVE_RETRY[0]
        while True:
            self._archive_due.clear()
            try:
                await self.adopt_archived()
            except ArchiveError as exc:  # the uploads below report it, and are retried
                log.warning("the recordings in the S3 archive are not listed: %s", exc)
            waiting = [r for r in list(self._recordings.values()) if r.state != RECORDING
                       and not _archived(r) and r not in self._active.values()]
            failed = False
            for recording in waiting:
                if recording.id not in self._recordings or recording.id in self._deleting:
                    continue  # being deleted, or gone
                failed = not await self._archive_one(recording) or failed
            try:
                await asyncio.wait_for(self._archive_due.wait(), pause if failed else ARCHIVE_LIST_INTERVAL)
            except TimeoutError:
                pass
            pause = min(pause * 2, ARCHIVE_RETRY[1]) if failed else ARCHIVE_RETRY[0]

    async def _archive_one(self, recording: Recording) -> bool:
        """Upload one recording, unless another node is at it or has done it; False if it failed."""
        assert self._archive is not None
        if not await asyncio.to_thread(_claim, recording, self.keyring):
            return True
        if _archived(recording):
            await asyncio.to_thread(_release, recording)
            return True  # another node archived it meanwhile
        try:
            archive = await asyncio.to_thread(self._archive.archive, recording)
        except Exception as exc:  # ArchiveError, or the disk refusing the manifest
            self.archive_failures += 1
            before = recording.manifest.get("archive") or {}
            recording.manifest["archive"] = {"state": "failed", "error": str(exc),
                                             "attempts": before.get("attempts", 0) + 1,
                                             "failed_at": datetime.now(UTC).isoformat(timespec="seconds")}
            log.warning("recording %s not archived (will try again): %s", recording.id, exc,
                        exc_info=not isinstance(exc, OSError))  # not the store's or the disk's: a bug
            if not before:  # the first failure is audited; the retries are logged and counted
                self._audit.record_soon("recording-archive-fail", ARCHIVER, recording.room,
                                        f"recording/{recording.id}", reason=str(exc))
            return False
        finally:
            await asyncio.to_thread(_release, recording)
        log.info("recording archived", extra={"fields": {"recording": recording.id, "bucket": archive["bucket"],
                                                           "objects": len(archive["objects"]) + 1}})
        self._audit.record_soon("recording-archive", ARCHIVER, recording.room, f"recording/{recording.id}",
                                bucket=archive["bucket"], objects=len(archive["objects"]) + 1)
        return True

    async def close(self) -> None:
        """Stop every running recording cleanly (server shutdown)."""
        for recording in list(self._active.values()):
            await self._stop(recording, recording.started_by, "server-shutdown")
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, work: Awaitable[object]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            if isinstance(exc, RecordingError):
                log.warning("automatic recording: %s", exc.message)
            else:
                log.error("recording task failed: %r", exc)


# A node uploading a recording holds this file in its directory (created exclusively, so
# one node at a time over a shared data directory); a claim older than this was left by
# a node that died and is taken over.
CLAIM = ".archiving"
CLAIM_STALE = 900.0


def _claimed(recording: Recording) -> bool:
    try:
        return time.time() - (recording.directory / CLAIM).stat().st_mtime < CLAIM_STALE
    except FileNotFoundError:
        return False


def _claim(recording: Recording, ring: KeyRing) -> bool:
    """Take the upload of `recording` (blocking); False if another node has it, or the
    recording is gone. The manifest is read again: another node may have archived it."""
    path = recording.directory / CLAIM
    if not _claimed(recording):
        path.unlink(missing_ok=True)  # stale, or none
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except (FileExistsError, FileNotFoundError):
        return False
    try:
        on_disk = manifest_file.load(recording.directory, ring)[0]
    except (OSError, ValueError, VaultError):
        return True  # the upload reports what is wrong with it
    if (on_disk.get("archive") or {}).get("state") == "archived":
        recording.manifest = on_disk
    return True


def _release(recording: Recording) -> None:
    (recording.directory / CLAIM).unlink(missing_ok=True)


def _archived(recording: Recording) -> bool:
    return (recording.manifest.get("archive") or {}).get("state") == "archived"
