"""Video frames out of a packet stream that may arrive reordered, duplicated or with holes.

Packets wait in a small reorder window for the ones missing before them (the producer
NACKs every hole upstream, and retransmissions reach us like any packet). A hole still
open after ``window`` seconds is unrecoverable: the frame it cuts is dropped, the next
frames are dropped until a keyframe, and ``on_gap`` asks the publisher for one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sfu.nack_generator import seq_delta
from sfu.rtp_packet import RtpPacket

MAX_PENDING = 1024  # packets held behind a hole before it is given up regardless of time


class Depacketizer(Protocol):
    def starts_frame(self, payload: bytes) -> bool: ...
    def frame(self, payloads: list[bytes]) -> bytes: ...


@dataclass(slots=True)
class Frame:
    data: bytes
    timestamp: int     # RTP timestamp, 32-bit
    keyframe: bool


class FrameAssembler:
    def __init__(self, depacketizer: Depacketizer, on_gap: Callable[[], None],
                 window: float = 0.35) -> None:
        self._depacketizer = depacketizer
        self._on_gap = on_gap
        self.window = window
        self._pending: dict[int, tuple[RtpPacket, float]] = {}
        self._highest: int | None = None  # extended sequence numbers from here on
        self._next: int | None = None
        self._parts: list[RtpPacket] = []
        self._need_keyframe = True
        self.frames_dropped = 0
        self.gaps = 0

    def push(self, packet: RtpPacket, now: float) -> list[Frame]:
        if self._highest is None:
            self._highest = self._next = packet.seq
        ext = self._highest + seq_delta(packet.seq, self._highest & 0xFFFF)
        if ext > self._highest:
            self._highest = ext
        if ext < self._next or ext in self._pending:
            return []  # late or duplicate
        if ext == self._next and not self._pending:  # in order, nothing held: what drain() does, shorter
            out: list[Frame] = []
            self._take(packet, out)
            self._next += 1
            return out
        self._pending[ext] = (packet, now)
        return self.drain(now)

    def drain(self, now: float) -> list[Frame]:
        """Frames complete by now; gives up a hole older than the window."""
        out: list[Frame] = []
        while self._pending:
            while (entry := self._pending.pop(self._next, None)) is not None:
                self._take(entry[0], out)
                self._next += 1
            if not self._pending:
                break
            oldest = min(self._pending)
            if now - self._pending[oldest][1] < self.window and len(self._pending) < MAX_PENDING:
                break
            self._gap()
            self._next = oldest
        return out

    def _take(self, packet: RtpPacket, out: list[Frame]) -> None:
        if self._parts and packet.timestamp != self._parts[0].timestamp:
            self._emit(out)  # the previous frame's marker never came, but nothing is missing
        if not self._parts and not self._depacketizer.starts_frame(packet.payload):
            return  # the tail of a frame whose start we lost
        self._parts.append(packet)
        if packet.marker:
            self._emit(out)

    def _emit(self, out: list[Frame]) -> None:
        parts, self._parts = self._parts, []
        keyframe = parts[0].keyframe
        if self._need_keyframe and not keyframe:
            self.frames_dropped += 1
            return
        try:
            data = self._depacketizer.frame([p.payload for p in parts])
        except (ValueError, IndexError):
            self._gap()
            return
        self._need_keyframe = False
        out.append(Frame(data, parts[0].timestamp, keyframe))

    def restart(self) -> None:
        """Drop frames until the next keyframe (the one given could not be used)."""
        self._need_keyframe = True

    def _gap(self) -> None:
        self.gaps += 1
        if self._parts:
            self.frames_dropped += 1
        self._parts = []
        self._need_keyframe = True
        self._on_gap()
