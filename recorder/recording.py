"""One recording of one session: its tracks (a file each), its timeline of room events,
its state, and its manifest.

While live it follows the room (``LiveRoom.listen``): every published track gets a
TrackRecorder, and joins, leaves, mutes, layout changes and clinical notices go into the
timeline with their server time and their offset from the start. Once a second it seals
what the muxers wrote, syncs the files off the event loop and saves the manifest. A disk
error stops it (``failed``) without touching the room; what was sealed stays readable.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from clinical.actor import SERVER, Actor
from conference.live_room import LiveRoom
from sfu import Producer
from vault import EncryptedWriter, VaultError

from . import manifest_file
from .media_clock import SenderClock
from .track_file import CONTAINERS, TrackFile, file_name
from .track_recorder import TrackRecorder

log = logging.getLogger("telemed.recorder")

FLUSH_INTERVAL = 1.0
RECORDING, STOPPED, INTERRUPTED, FAILED = "recording", "stopped", "interrupted", "failed"


def _iso(wall: float) -> str:
    return datetime.fromtimestamp(wall, UTC).isoformat(timespec="milliseconds")


def new_id() -> str:
    return secrets.token_hex(8)


class Recording:
    def __init__(self, directory: Path, manifest: dict, keys: tuple[bytes, bytes],
                 on_end: Callable[[Recording], None] | None = None) -> None:
        self.directory = directory
        self._on_end = on_end  # told once the recording has wound down
        self.manifest = manifest
        self._keys = keys
        self._live: LiveRoom | None = None
        self._unlisten = None
        self._tracks: dict[str, TrackRecorder] = {}   # being recorded
        self._every: list[TrackRecorder] = []          # and those that ended
        self._ended: list[Path] = []                    # files closed since the last sync
        self._senders: dict[str, SenderClock] = {}
        self._started_mono = 0.0
        self._stopping = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._dirty = False
        self._done = asyncio.Event()

    # --- identity and state ---
    @property
    def id(self) -> str:
        return self.manifest["id"]

    @property
    def room(self) -> str:
        return self.manifest["room"]

    @property
    def state(self) -> str:
        return self.manifest["state"]

    @property
    def started_by(self) -> Actor:
        """Who started it, as the manifest keeps it (identity and name only)."""
        by = self.manifest["by"]
        return Actor(by.get("identity") or SERVER, by.get("name") or "")

    def announcement(self) -> dict:
        """What a late joiner is told about a running recording."""
        return {"id": self.id, "by": self.manifest["by"]["name"], "started_at": self.manifest["started_at"]}

    # --- start ---
    @classmethod
    def begin(cls, root: Path, keys: tuple[bytes, bytes], live: LiveRoom, by: Actor,
              on_end: Callable[[Recording], None] | None = None) -> Recording:
        rec_id = new_id()
        directory = root / rec_id
        directory.mkdir(mode=0o700, parents=True)
        seq = live.clinical.log.last_seq if live.clinical is not None else 0
        manifest = {
            "id": rec_id, "room": live.name, "state": RECORDING, "started_at": _iso(time.time()),
            "stopped_at": None, "by": {"identity": by.identity, "name": by.name or by.identity},
            "tracks": [], "events": [], "session_log": {"from_seq": seq + 1, "to_seq": seq},
        }
        manifest["segments"] = [{"started_at": manifest["started_at"], "stopped_at": None}]
        recording = cls(directory, manifest, keys, on_end)
        try:
            recording._follow(live)
        except OSError:
            shutil.rmtree(directory, ignore_errors=True)  # nothing was recorded or announced
            raise
        return recording

    def continue_in(self, live: LiveRoom, ring, on_end: Callable[[Recording], None] | None = None) -> None:
        """Go on recording ``live`` in a new segment: the room's previous host died while
        recording it (docs/multinode.md). Its files end at their last complete chunk; the
        new segment's tracks and events continue the same timeline (by wall clock, the
        only clock two nodes share), the gap between them is a gap."""
        self._close_torn_files(ring)
        segments = self.manifest.setdefault("segments", [{"started_at": self.manifest["started_at"]}])
        segments[-1]["stopped_at"] = self.manifest.get("updated_at")
        segments.append({"started_at": _iso(time.time()), "stopped_at": None})
        self._on_end = on_end
        began = datetime.fromisoformat(self.manifest["started_at"]).timestamp()
        self._follow(live, time.monotonic() - (time.time() - began))
        self._event({"type": "segment", "segment": len(segments) - 1})

    def _follow(self, live: LiveRoom, started_mono: float | None = None) -> None:
        self._live = live
        self._started_mono = time.monotonic() if started_mono is None else started_mono
        self._save()  # fails here, before anyone is told or anything attached, if the disk refuses
        for peer in live.peers.values():
            self._event({"type": "participant", **peer.describe()})
        self._event({"type": "layout", "layout": live.layout.to_dict()})
        for producer in live.router.producers.values():
            self._add_track(producer)
        self._unlisten = live.listen(self._on_room_event)
        self._task = asyncio.ensure_future(self._run())
        live.broadcast({"type": "recording", "state": "started", "id": self.id,
                        "by": self.manifest["by"]["name"]})

    # --- the room's events ---
    def _on_room_event(self, event: dict) -> None:
        kind = event.get("type")
        if kind == "track-published":
            producer = self._live.router.get(event["track"]["id"])
            if producer is not None:
                self._add_track(producer)
            self._event({"type": "track-published", "track_id": event["track"]["id"]})
        elif kind == "track-unpublished":
            track = self._tracks.pop(event["track_id"], None)
            if track is not None:
                track.finish()
                self._ended.append(self.directory / track.entry["file"])
            self._event({"type": "track-unpublished", "track_id": event["track_id"]})
        elif kind == "track-updated":
            track = event["track"]
            self._event({"type": "mute", "track_id": track["id"], "muted": track["muted"]})
        elif kind == "participant-joined":
            self._event({"type": "join", **event["participant"]})
        elif kind == "participant-left":
            self._event({"type": "leave", "peer_id": event["peer_id"]})
        elif kind == "layout":
            self._event({"type": "layout", "layout": event["layout"]})
        elif kind == "clinical":
            self._event({"type": "clinical", "kind": event.get("kind"), "seq": event.get("seq"),
                         "server_t": event.get("t"), "sender": event.get("sender"),
                         "body": event.get("body")})
        # our own and other recordings' notices are not part of the timeline

    def _event(self, event: dict) -> None:
        now = time.monotonic()
        event.setdefault("server_t", round(now, 3))
        self.manifest["events"].append({"t": round(now - self._started_mono, 3), **event})
        self._dirty = True

    def _add_track(self, producer: Producer) -> None:
        if producer.id in self._tracks or producer.codec.mime_type.lower() not in CONTAINERS:
            return
        peer_id = producer.appdata.get("peer_id")
        peer = self._live.peers.get(peer_id) if peer_id else None
        sender = self._senders.setdefault(peer_id or producer.id, SenderClock())
        # A later segment records the same live track again, as an entry (and file) of its own.
        segment = len(self.manifest.get("segments", ())) - 1
        entry_id = producer.id if segment <= 0 else f"{producer.id}-s{segment}"
        name = file_name(entry_id, producer.codec.mime_type)
        try:
            file = TrackFile(self.directory / name, *self._keys, producer.codec.mime_type)
        except OSError as exc:
            self._disk_error(exc)
            return
        track = TrackRecorder(producer, file, sender, self._disk_error)
        track.entry = {
            "id": entry_id, "track_id": producer.id, "segment": max(segment, 0), "kind": producer.kind, "codec": producer.codec.mime_type,
            "container": file.container, "file": name, "peer_id": peer_id,
            "identity": peer.identity if peer else None, "name": peer.name if peer else "",
            "source": producer.appdata.get("source", "camera"), "label": producer.appdata.get("label", ""),
            "start": None, "end": None,
        }
        self.manifest["tracks"].append(track.entry)
        self._tracks[producer.id] = track
        self._every.append(track)
        track.attach()

    # --- upkeep ---
    async def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                try:
                    await asyncio.wait_for(self._stopping.wait(), FLUSH_INTERVAL)
                except TimeoutError:
                    pass
                if self.state != RECORDING:
                    return
                self._flush()
                files = [t.file for t in self._tracks.values() if not t.failed]
                ended, self._ended = self._ended, []
                try:
                    await asyncio.to_thread(_sync, files, ended)
                    if self._dirty:
                        await self._save_off_loop()
                except OSError as exc:
                    self._disk_error(exc)
        except Exception:
            log.exception("recording %s of room %s broke", self.id, self.room)
            self._fail("internal error")
        finally:
            self._done.set()

    def _flush(self) -> None:
        now = time.monotonic()
        for track in list(self._tracks.values()):
            track.tick(now)
            if not track.failed:
                try:
                    track.file.flush()
                except OSError as exc:
                    self._disk_error(exc)
                    return
        self._update_times()

    def _update_times(self) -> None:
        for track in self._every:
            start, end = track.clock.start(), track.clock.end()
            if start is not None:
                last_frame = 0.02 if track.kind == "audio" else 0.0  # an Opus packet lasts 20 ms
                track.entry.update(start=round(start - self._started_mono, 3),
                                   end=round(end - self._started_mono + last_frame, 3),
                                   frames=track.file.frames, frames_dropped=track.frames_dropped)
                self._dirty = True

    def _save(self) -> None:
        manifest_file.save(self.directory, self._snapshot(), *self._keys)

    async def _save_off_loop(self) -> None:
        # The snapshot is taken here: the room's events keep changing the manifest meanwhile.
        await asyncio.to_thread(manifest_file.save, self.directory, self._snapshot(), *self._keys)

    def _snapshot(self) -> dict:
        self._dirty = False
        self.manifest["updated_at"] = _iso(time.time())
        return json.loads(json.dumps(self.describe()))

    def describe(self) -> dict:
        """The manifest as served: tracks that wrote nothing are left out."""
        return {**self.manifest, "tracks": [t for t in self.manifest["tracks"] if t["start"] is not None],
                "events": list(self.manifest["events"])}

    # --- the end ---
    async def stop(self, reason: str = "stopped") -> None:
        if self.state != RECORDING:
            return
        self.manifest["state"] = STOPPED
        await self._end(reason)

    def _disk_error(self, exc: OSError) -> None:
        if self.state == RECORDING:
            log.error("recording %s of room %s failed: %s", self.id, self.room, exc)
            self._fail(f"disk: {exc.strerror or exc}")

    def _fail(self, reason: str) -> None:
        """Stop as ``failed``; the room is told and carries on."""
        if self.state == RECORDING:
            self.manifest["state"] = FAILED
            asyncio.ensure_future(self._end(reason))

    async def _end(self, reason: str) -> None:
        """Wind down after the state left ``recording``: close the files, save, tell the room."""
        state = self.state
        self._stopping.set()
        if self._task is not None:
            await self._done.wait()  # no sync thread may still hold a file
        if self._unlisten is not None:
            self._unlisten()
        for track in list(self._tracks.values()):
            track.finish()
        self._tracks.clear()
        self._update_times()
        paths = [self.directory / t.entry["file"] for t in self._every]
        seq = self._live.clinical.log.last_seq if self._live and self._live.clinical is not None else None
        if seq is not None:
            self.manifest["session_log"]["to_seq"] = seq
        self.manifest["stopped_at"] = _iso(time.time())
        if self.manifest.get("segments"):
            self.manifest["segments"][-1]["stopped_at"] = self.manifest["stopped_at"]
        if state == FAILED or reason != "stopped":
            self.manifest["reason"] = reason
        try:
            await asyncio.to_thread(_sync, [], paths)  # durable before anyone hears it stopped
            await self._save_off_loop()
        except OSError as exc:
            log.error("recording %s not saved whole: %s", self.id, exc)
        if self._live is not None:
            notice = {"type": "recording", "state": "failed" if state == FAILED else "stopped",
                      "id": self.id, "by": self.manifest["by"]["name"]}
            if state == FAILED:
                notice["reason"] = reason
            self._live.broadcast(notice)
        if self._on_end is not None:
            self._on_end(self)

    # --- at rest ---
    @classmethod
    def load(cls, directory: Path, ring) -> Recording:
        manifest, wrapped = manifest_file.load(directory, ring)
        return cls(directory, manifest, (ring.unwrap(wrapped), wrapped))

    def files(self) -> list[Path]:
        """Its track files that exist (a track that wrote nothing may have none)."""
        paths = (self.directory / t["file"] for t in self.manifest["tracks"])
        return [p for p in paths if p.exists()]

    def save_archived(self, archive: dict, publish: Callable[[Path], None]) -> None:
        """Say in the manifest where the recording is archived (blocking). ``publish``
        uploads the sealed manifest first: the local one says so only once it is there."""
        manifest = json.loads(json.dumps({**self.describe(), "archive": archive}))
        manifest_file.save(self.directory, manifest, *self._keys, publish)
        self.manifest["archive"] = archive

    def mark_interrupted(self, ring) -> None:
        """Found ``recording`` on start-up: the process died while recording. Each track
        file is closed where its last complete chunk ends (a torn tail is cut off)."""
        self._close_torn_files(ring)
        self.manifest["state"] = INTERRUPTED
        self.manifest["stopped_at"] = self.manifest.get("updated_at")
        self.manifest["reason"] = "the server stopped while recording"
        self._save()

    def _close_torn_files(self, ring) -> None:
        """Close each track file a dead process left open where its last complete chunk
        ends (a torn tail is cut off); files closed already stay as they are."""
        for track in self.manifest["tracks"]:
            path = self.directory / track["file"]
            try:
                EncryptedWriter.resume(path, ring, fsync_interval=0).close()
            except VaultError as exc:
                if exc.code != "closed":
                    log.error("track %s of recording %s not closed: %s", track["id"], self.id, exc)
            except OSError as exc:
                log.error("track %s of recording %s not closed: %s", track["id"], self.id, exc)


def _sync(files: list[TrackFile], closed: list[Path]) -> None:
    """fsync open track files, and closed ones by path (what close() wrote last)."""
    for file in files:
        file.sync()
    for path in closed:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
