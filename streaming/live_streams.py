"""The live programs of this node, one per room at most. A stopped program stays
(ended) until the room goes live again, so its players see the end of the playlist.

While a program is live, ``<vod_root>/<room>/live.json`` says where it stands (updated
with every segment), so that the node that takes the room over when this one dies
carries the same stream on (docs/multinode.md)."""

from __future__ import annotations

import json
import logging
import os
import uuid
from pathlib import Path

from conference.live_room import LiveRoom
from vault import KeyRing

from .live_stream import LiveStream
from .program import ProgramFormat
from .vod_archive import VodArchive

log = logging.getLogger("telemed.live")


class LiveStreams:
    def __init__(self, program: ProgramFormat, vod_root: Path | None = None, ring: KeyRing | None = None) -> None:
        """With `vod_root` and `ring`, every stream is also kept, encrypted, for VOD."""
        self.program = program
        self.streams: dict[str, LiveStream] = {}
        self._vod_root = vod_root
        self._ring = ring

    def get(self, room: str) -> LiveStream | None:
        """The room's program, live or ended."""
        return self.streams.get(room)

    def live(self, room: str) -> LiveStream | None:
        stream = self.streams.get(room)
        return stream if stream is not None and not stream.window.ended else None

    def state(self, room: str) -> dict:
        stream = self.live(room)
        return stream.describe() if stream is not None else {"state": "stopped", "viewers": 0}

    async def start(self, room: LiveRoom, carried: dict | None = None) -> LiveStream:
        """Go live (again); a room that is live already stays as it is. ``carried``: the
        position of the room's stream on a node that died (see ``carry_on``)."""
        stream = self.live(room.name)
        if stream is not None and stream.room is room:
            return stream
        if stream is not None:
            await self.stop(room.name)
        stream = self.streams[room.name] = LiveStream(room, self.program, carried=carried)
        if self._vod_root is not None and self._ring is not None:
            # A carried-on stream is kept apart: the dead node's archive ends where it died.
            kept = stream.id if carried is None else uuid.uuid4().hex[:10]
            stream.archive = VodArchive(self._vod_root, self._ring, room.name, kept, stream.started_at)
            stream.on_segment = self._note_position
        await stream.start()
        log.info("live", extra={"fields": {"room": room.name, "stream": stream.id, "carried": carried is not None}})
        return stream  # the room hears "started" with the first part, when it can be watched

    async def carry_on(self, room: LiveRoom) -> LiveStream | None:
        """The room was live on a node that died: go on with its stream here."""
        try:
            carried = json.loads(self._position_file(room.name).read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.error("the live stream of room %s does not go on: %r", room.name, exc)
            return None
        return await self.start(room, carried)

    def forget(self, room: str) -> None:
        """The room opens afresh: a position left by a node that died long ago is stale."""
        if self._vod_root is not None:
            self._position_file(room).unlink(missing_ok=True)

    def _position_file(self, room: str) -> Path:
        if self._vod_root is None:
            raise FileNotFoundError("no stream directory")
        return self._vod_root / room / "live.json"

    def _note_position(self, stream: LiveStream) -> None:
        path = self._position_file(stream.room.name)
        tmp = path.with_name(".live.json.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(stream.position()))
            os.replace(tmp, path)
        except OSError as exc:  # the stream goes on; only a failover would not
            log.warning("live position of room %s not saved: %s", stream.room.name, exc)

    async def stop(self, room: str) -> bool:
        stream = self.live(room)
        if stream is None:
            return False
        await stream.stop()
        self.forget(room)
        log.info("live stopped", extra={"fields": {"room": room, "stream": stream.id}})
        stream.room.broadcast({"type": "live", "state": "stopped", "viewers": 0})
        return True

    async def close(self) -> None:
        for name in list(self.streams):
            await self.stop(name)
