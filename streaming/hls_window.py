"""The live edge of one program in memory: its init segment, and the last segments and
their parts, as the compositor cuts them. Players wait here for the part they ask for
(blocking playlist reload, preload hints); what fell out of the window is gone (410),
what is not cut yet is not there (404)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field


@dataclass
class Part:
    data: bytes
    duration: float
    independent: bool


@dataclass
class Segment:
    msn: int
    wall_start: float            # PROGRAM-DATE-TIME: wall clock at its first frame
    parts: list[Part] = field(default_factory=list)
    complete: bool = False
    discontinuity: bool = False  # the first of a stream carried on by another node
    _data: bytes | None = None

    @property
    def duration(self) -> float:
        return sum(p.duration for p in self.parts)

    @property
    def data(self) -> bytes:
        if self._data is None:  # joined once, when a whole segment is first asked for
            self._data = b"".join(p.data for p in self.parts)
        return self._data


class Gone(Exception):
    """Asked for something that fell out of the window."""


class HlsWindow:
    def __init__(self, keep_segments: int = 12, first_msn: int = 0, discontinuity_sequence: int = -1) -> None:
        """``first_msn`` and ``discontinuity_sequence`` (the one before this window, or
        -1): a stream that another node was sending when it died goes on here after a
        discontinuity, its media sequence numbers growing on from where they were."""
        self.init: bytes | None = None
        self.first_msn = first_msn
        self._continued = discontinuity_sequence >= 0
        self.discontinuity_sequence = max(discontinuity_sequence, 0)  # of the window's first segment
        self.codecs = ""
        self.segments: list[Segment] = []
        self.keep = keep_segments
        self.version = 0                  # grows with every part: playlists cache on it
        self.ended = False
        self._changed = asyncio.Event()

    # --- writing ---
    def set_init(self, data: bytes, codecs: str) -> None:
        self.init, self.codecs = data, codecs

    def add_part(self, data: bytes, duration: float, independent: bool, starts: bool, ends: bool,
                 wall: float) -> list[Segment]:
        """A part as cut: `starts` a segment (then it is independent), `ends` one (if known).
        Returns the segments this part completed."""
        completed = []
        open_segment = self.segments[-1] if self.segments and not self.segments[-1].complete else None
        if open_segment is not None and starts and open_segment.parts:
            open_segment.complete = True
            completed.append(open_segment)
            open_segment = None
        if open_segment is None:
            if not (starts and independent):
                return completed  # a segment must start on a keyframe
            msn = self.segments[-1].msn + 1 if self.segments else self.first_msn
            open_segment = Segment(msn, wall, discontinuity=self._continued and not self.segments)
            self.segments.append(open_segment)
            for dropped in self.segments[:-self.keep]:
                self.discontinuity_sequence += dropped.discontinuity
            del self.segments[:-self.keep]
        open_segment.parts.append(Part(data, duration, independent))
        open_segment.complete = ends
        if ends:
            completed.append(open_segment)
        self._bump()
        return completed

    def end(self) -> Segment | None:
        """No more parts; returns the open segment this completed, if any."""
        last = self.segments[-1] if self.segments and not self.segments[-1].complete else None
        if last is not None:
            last.complete = True
        self.ended = True
        self._bump()
        return last

    def _bump(self) -> None:
        self.version += 1
        self._changed.set()
        self._changed = asyncio.Event()

    # --- reading ---
    @property
    def last_msn(self) -> int:
        return self.segments[-1].msn if self.segments else -1

    def segment(self, msn: int) -> Segment | None:
        """The segment if it is in the window; Gone if it was; None if it is yet to come."""
        if not self.segments or msn > self.last_msn:
            return None
        first = self.segments[0].msn
        if msn < first:
            raise Gone()
        return self.segments[msn - first]

    def has(self, msn: int, part: int | None) -> bool:
        """Is part `part` of segment `msn` cut (or, with part None, the whole segment)?"""
        try:
            segment = self.segment(msn)
        except Gone:
            return True
        if segment is None:
            return False
        return segment.complete if part is None else (part < len(segment.parts) or segment.complete)

    async def wait_for(self, msn: int, part: int | None, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.has(msn, part) and not self.ended:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                return False
        return self.has(msn, part)

    def next_part(self) -> tuple[int, int]:
        """(msn, part index) of the part that will be cut next: the preload hint."""
        if not self.segments:
            return self.first_msn, 0
        last = self.segments[-1]
        return (last.msn + 1, 0) if last.complete else (last.msn, len(last.parts))
