"""The live programs of this node, one per room at most. A stopped program stays
(ended) until the room goes live again, so its players see the end of the playlist."""

from __future__ import annotations

import logging
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

    async def start(self, room: LiveRoom) -> LiveStream:
        """Go live (again); a room that is live already stays as it is."""
        stream = self.live(room.name)
        if stream is not None and stream.room is room:
            return stream
        if stream is not None:
            await self.stop(room.name)
        stream = self.streams[room.name] = LiveStream(room, self.program)
        if self._vod_root is not None and self._ring is not None:
            stream.archive = VodArchive(self._vod_root, self._ring, room.name, stream.id, stream.started_at)
        await stream.start()
        log.info("live", extra={"fields": {"room": room.name, "stream": stream.id}})
        return stream  # the room hears "started" with the first part, when it can be watched

    async def stop(self, room: str) -> bool:
        stream = self.live(room)
        if stream is None:
            return False
        await stream.stop()
        log.info("live stopped", extra={"fields": {"room": room, "stream": stream.id}})
        stream.room.broadcast({"type": "live", "state": "stopped", "viewers": 0})
        return True

    async def close(self) -> None:
        for name in list(self.streams):
            await self.stop(name)
