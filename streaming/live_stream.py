"""One room's live program: it follows the room (tracks, layout, mutes), taps every
producer, feeds the compositor process, and keeps the parts it cuts in an HlsWindow.

A room whose only camera is H264 when it goes live is passed through instead: that
track's frames become the parts unchanged, and the layout does not apply."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable

from conference.live_room import LiveRoom
from recorder.frame_assembler import Frame
from sfu import Producer

from . import playlist
from .compositor_process import CompositorProcess
from .frame_tap import FrameTap, can_tap
from .hls_window import HlsWindow
from .passthrough import Passthrough
from .program import ProgramFormat
from .scene import Source, plan
from .vod_archive import VodArchive

log = logging.getLogger("telemed.live")

VIEWER_IDLE = 15.0      # seconds without a playlist request before a viewer is not counted
VIEWERS_EVERY = 2.0     # how often the room hears a changed viewer count
ROOM_EVENTS = {"track-published", "track-unpublished", "track-updated", "layout",
               "participant-joined", "participant-left"}


class LiveStream:
    def __init__(self, room: LiveRoom, program: ProgramFormat, archive: VodArchive | None = None,
                 carried: dict | None = None) -> None:
        """``carried``: where the same stream stood on the node that sent it until it died
        (``position()``): it goes on from there, after a discontinuity."""
        self.room = room
        self.archive = archive
        self.program = program
        # In every URI: a restarted stream is a new one to caches (a carried-on one is not).
        self.id = str(carried["stream"]) if carried else uuid.uuid4().hex[:10]
        self._window_from = (int(carried["msn"]) + 2, int(carried["discontinuity"])) if carried else (0, -1)
        self.windows = [self._new_window()]  # one per rendition, the full-size one first
        self.window = self.windows[0]
        self.process = CompositorProcess(program)
        self.started_at = float(carried["started_at"]) if carried else time.time()
        self.on_segment: Callable[[LiveStream], None] | None = None  # a full-size segment was cut
        self.failed = False
        self._taps: dict[str, FrameTap] = {}
        self._viewers: dict[str, float] = {}
        self._announced = 0
        self._scene_version = 0
        self._wall_start = 0.0
        self._rendered: dict[tuple[bool, int], tuple[int, str]] = {}
        self._tasks: list[asyncio.Task] = []
        self._unlisten = None
        self.passthrough: Passthrough | None = None
        self._passed: tuple[str, str | None] = ("", None)  # (video, audio) producer ids

    def _new_window(self) -> HlsWindow:
        # +2: the segment being cut when the sender died was announced (LL-HLS) already.
        first_msn, discontinuity = self._window_from
        return HlsWindow(first_msn=first_msn, discontinuity_sequence=discontinuity)

    def position(self) -> dict:
        """Where the stream stands, for a node that carries it on: its id, its last whole
        segment, and how many discontinuities it has had."""
        window = self.window
        done = [s for s in window.segments if s.complete]
        return {"stream": self.id, "started_at": self.started_at,
                "msn": done[-1].msn if done else window.first_msn - 1,
                "discontinuity": window.discontinuity_sequence + sum(s.discontinuity for s in window.segments)}

    # --- lifecycle ---
    async def start(self) -> None:
        producers = list(self.room.router.producers.values())
        videos = [p for p in producers if p.kind == "video"]
        if len(videos) == 1 and videos[0].codec.name == "h264":
            video = videos[0]
            audio = next((p for p in producers if p.kind == "audio"
                          and p.appdata.get("peer_id") == video.appdata.get("peer_id")), None)
            self._passed = (video.id, audio.id if audio is not None else None)
            self.passthrough = Passthrough(self.program, self._output)
        else:
            await self.process.start()
            self._tasks.append(asyncio.ensure_future(self._read()))
        self._unlisten = self.room.listen(self._on_event)
        self._tasks.append(asyncio.ensure_future(self._count_viewers()))
        self._refresh()

    async def stop(self) -> None:
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None
        for tap in self._taps.values():
            tap.close()
        self._taps.clear()
        for task in self._tasks:
            if task is not asyncio.current_task():
                task.cancel()
        await self.process.stop()
        for window in self.windows[1:]:
            window.end()
        last = self.window.end()
        if self.archive is not None:
            if last is not None:
                self.archive.segment(last)
            self.archive.finish()

    def describe(self) -> dict:
        return {"state": "started", "viewers": self.viewers, "stream": self.id, "started_at": self.started_at,
                "mode": "passthrough" if self.passthrough is not None else "composite"}

    # --- the room ---
    def _on_event(self, event: dict) -> None:
        if event.get("type") in ROOM_EVENTS:
            self._refresh()
        elif event.get("type") == "clinical" and self.archive is not None and isinstance(event.get("seq"), int):
            self.archive.clinical(event.get("kind", ""), event["seq"], time.time())

    def _refresh(self) -> None:
        """Tap new producers, let go of gone ones, and send the scene the layout asks for."""
        producers = self.room.router.producers
        wanted = [p for p in producers.values() if self.passthrough is None or p.id in self._passed]
        for producer in wanted:
            if producer.id not in self._taps and can_tap(producer):
                tap = self._taps[producer.id] = FrameTap(producer, self._frame)
                tap.attach()
        for track in [t for t in self._taps if t not in producers]:
            self._taps.pop(track).close()
            self.process.send(("forget", track))
        if self.passthrough is not None:
            return
        videos = [Source(p.id, self._label(p), p.appdata.get("source") == "screen")
                  for p in producers.values() if p.kind == "video"]
        audio = [p.id for p in producers.values() if p.kind == "audio" and p.id not in self.room.muted]
        self._scene_version += 1
        scene = plan(self.room.layout, videos, audio, self.program.width, self.program.height,
                     self._scene_version)
        self.process.send(("scene", scene.to_dict()))

    def _label(self, producer: Producer) -> str:
        peer = self.room.peers.get(producer.appdata.get("peer_id", ""))
        name = peer.name if peer is not None else ""
        label = str(producer.appdata.get("label") or "")
        return " - ".join(x for x in (name, label) if x)

    def _frame(self, producer: Producer, frame: Frame) -> bool:
        if self.passthrough is not None:
            if producer.kind == "video":
                self.passthrough.video(frame)
            elif producer.id not in self.room.muted:
                self.passthrough.audio(frame)
            return True
        if producer.kind == "video":
            return self.process.send(("video", producer.id, producer.codec.name, frame.data), droppable=True)
        return self.process.send(("audio", producer.id, frame.data), droppable=True)

    # --- the compositor's output ---
    def _output(self, message: tuple) -> None:
        kind = message[0]
        if kind in ("part", "init"):
            rendition = message[1]
            while len(self.windows) <= rendition:
                self.windows.append(self._new_window())
            window = self.windows[rendition]
            archive = self.archive if rendition == 0 else None  # VOD keeps the full-size one
        if kind == "part":
            _, _, _index, data, start, duration, independent, starts, ends = message
            first = not window.segments
            for segment in window.add_part(data, duration, independent, starts, ends, self._wall_start + start):
                if archive is not None:
                    archive.segment(segment)
                if window is self.window and self.on_segment is not None:
                    self.on_segment(self)
            if first and window is self.window and window.segments:
                self.room.broadcast({"type": "live", "state": "started", "viewers": self.viewers})
        elif kind == "init":
            _, _, data, codecs, wall = message
            window.set_init(data, codecs)
            self._wall_start = wall
            if archive is not None:
                archive.init(data, codecs)
        elif kind == "keyframe":
            producer = self.room.router.get(message[1])
            if producer is not None:
                producer.request_keyframe()

    async def _read(self) -> None:
        async for message in self.process.messages():
            self._output(message)
        if self._unlisten is not None:  # the child died under us, not by stop()
            log.error("compositor for room %s exited", self.room.name)
            self.failed = True
            await self.stop()
            self.room.broadcast({"type": "live", "state": "stopped", "viewers": 0, "reason": "failed"})

    # --- viewers ---
    def seen(self, who: str) -> None:
        self._viewers[who] = time.monotonic()

    @property
    def viewers(self) -> int:
        cutoff = time.monotonic() - VIEWER_IDLE
        self._viewers = {w: t for w, t in self._viewers.items() if t >= cutoff}
        return len(self._viewers)

    async def _count_viewers(self) -> None:
        while True:
            await asyncio.sleep(VIEWERS_EVERY)
            count = self.viewers
            if count != self._announced:
                self._announced = count
                self.room.broadcast({"type": "live", "state": "started", "viewers": count})

    # --- playlists ---
    def playlist(self, low_latency: bool, rendition: int = 0) -> str:
        """A rendition's playlist with an access placeholder; rendered once per new part."""
        window = self.windows[rendition]
        key = (low_latency, rendition)
        cached = self._rendered.get(key)
        if cached is None or cached[0] != window.version:
            path = self.id if rendition == 0 else f"{self.id}/r{rendition}"
            text = playlist.render(window, path, self.program.part_target,
                                   self.program.segment_duration, low_latency)
            cached = self._rendered[key] = (window.version, text)
        return cached[1]

    def master(self) -> str:
        """The multivariant playlist: every rendition that has started, for ABR players."""
        variants = []
        for index, window in enumerate(self.windows):
            if window.init is None:
                continue
            if self.passthrough is not None:
                size, bitrate = None, None
            else:
                width, height, bitrate = self.program.renditions[index]
                size = (width, height)
            variants.append(("index.m3u8" if index == 0 else f"r{index}.m3u8", window.codecs, size, bitrate))
        return playlist.render_master(variants, self.program.audio_bitrate)
