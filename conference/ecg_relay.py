"""Live ECG in a room: each frame is checked against its stream's announce, recorded,
and relayed byte for byte to every other peer's ``ecg`` channel.

Frames carry only a stream id, so stream ids are unique among a room's live streams:
a second device announcing a stream id already in use is refused, and picks another.

A slow receiver never holds the others back: when its channel has more than
``BUFFER_LIMIT`` bytes queued, its frames are dropped (and counted) until it drains.

Recording, one file per stream (the log's ``ecg-announce`` entry names it), for replay;
the plaintext (encrypted at rest by the opener, sealed at least every ``FLUSH_SECONDS``)::

    repeated: f64 seconds since the announce was logged, u32 frame length, the frame

A recording that fails (disk full) stops; the live relay to the doctors carries on.

Resume (docs/resume.md): frames count from seq 0, and ``acked`` is the stream's highest
seq up to which every frame arrived. A sender keeps what is not acknowledged and sends it
again after a resume; a frame that arrives twice is dropped here, so nobody sees or
records it twice. A stream carried over from a node that died (``open(carried=True)``)
starts counting at the first frame that arrives: what the sender resends, oldest first.
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from clinical.ecg import EcgAnnounce, EcgFrame, EcgStream, Gap
from clinical.errors import ClinicalError

# About 2.7 s of a 12-lead 500 Hz stream: past that a receiver is not keeping up, and
# queueing more would only turn into latency on its strip.
BUFFER_LIMIT = 32 * 1024
MAX_STREAMS_PER_SENDER = 4
RECORD_HEAD = struct.Struct("<dI")
FLUSH_SECONDS = 1.0  # a crash loses at most this much of a recording
# Frames held above a hole before we stop waiting for it (about 2.7 min at 25 frames/s).
MAX_AHEAD = 4096

log = logging.getLogger("telemed.ecg")


@dataclass
class _LiveStream:
    owner: str  # peer id
    check: EcgStream
    recording: BinaryIO | None  # None once it failed
    started: float = field(default_factory=time.monotonic)
    lost: bool = False  # the disk refused the recording; said so in the stream's end
    flushed: float = field(default_factory=time.monotonic)
    acked: int = -1  # every frame up to this seq arrived
    ahead: set[int] = field(default_factory=set)  # arrived above a hole
    carried: bool = False  # went on from a node that died: frames before the first are not ours

    def arrived_before(self, seq: int) -> bool:
        return seq <= self.acked or seq in self.ahead

    def note(self, seq: int) -> None:
        """A frame arrived (and was accepted): move the acknowledged point on."""
        if self.carried:  # the dead node had every frame before it
            self.carried = False
            self.acked = seq - 1
        self.ahead.add(seq)
        if len(self.ahead) > MAX_AHEAD:  # a hole that will not fill (or seq did not start at 0)
            self.acked = min(self.ahead) - 1
        while self.acked + 1 in self.ahead:
            self.acked += 1
            self.ahead.remove(self.acked)

    def record(self, data: bytes) -> None:
        if self.recording is None:
            return
        now = time.monotonic()
        try:
            self.recording.write(RECORD_HEAD.pack(now - self.started, len(data)))
            self.recording.write(data)
            if now - self.flushed >= FLUSH_SECONDS:
                self.recording.flush()
                self.flushed = now
        except OSError as exc:
            log.error("ECG recording stopped: %s", exc)
            self.lost = True
            self.finish()

    def finish(self) -> None:
        recording, self.recording = self.recording, None
        if recording is not None:
            try:
                recording.close()
            except OSError as exc:
                log.error("ECG recording not closed cleanly: %s", exc)
                self.lost = True


class EcgRelay:
    def __init__(self) -> None:
        self._streams: dict[int, _LiveStream] = {}  # by stream id, unique in the room
        self._channels: dict[str, Any] = {}  # peer id -> its ecg RTCDataChannel
        self.dropped: dict[str, int] = {}  # peer id -> frames not sent to it

    # --- receivers ---
    def attach(self, peer_id: str, channel: Any) -> None:
        self._channels[peer_id] = channel
        self.dropped.setdefault(peer_id, 0)

    def detach(self, peer_id: str) -> int:
        """Forget a peer's channel; returns how many frames it missed while slow."""
        self._channels.pop(peer_id, None)
        return self.dropped.pop(peer_id, 0)

    # --- streams ---
    def open(self, owner: str, announce: EcgAnnounce, open_recording: Callable[[], BinaryIO],
             carried: bool = False) -> None:
        current = self._streams.get(announce.stream_id)
        if current is not None:
            who = "you" if current.owner == owner else "another participant"
            raise ClinicalError(
                "ecg-stream-in-use", f"stream {announce.stream_id} is already live from {who}"
            )
        if len(self.owned_by(owner)) >= MAX_STREAMS_PER_SENDER:
            raise ClinicalError("ecg-busy", f"at most {MAX_STREAMS_PER_SENDER} live streams per sender")
        self._streams[announce.stream_id] = _LiveStream(owner, EcgStream(announce), open_recording(), carried=carried)

    def close(self, owner: str, stream_id: int) -> dict[str, int]:
        """End a stream; returns its receive statistics."""
        live = self._owned(owner, stream_id)
        del self._streams[stream_id]
        live.check.end()
        live.finish()
        stats = live.check.stats()
        if live.lost:
            stats["recording_lost"] = True
        return stats

    def owned_by(self, owner: str) -> list[int]:
        return [sid for sid, live in self._streams.items() if live.owner == owner]

    def close_all(self) -> None:
        for live in self._streams.values():
            live.finish()
        self._streams.clear()

    # --- frames ---
    def forward(self, owner: str, frame: EcgFrame, data: bytes) -> list[Gap] | None:
        """Check, record and relay one frame; ClinicalError if it contradicts its stream,
        None if it arrived before (sent again after a resume) and was dropped."""
        live = self._owned(owner, frame.stream_id)
        if live.arrived_before(frame.seq):
            return None
        gaps = live.check.accept(frame)  # a refused frame is not noted: it may come again, right
        live.note(frame.seq)
        live.record(data)
        for peer_id, channel in list(self._channels.items()):
            if peer_id == owner or channel.readyState != "open":
                continue
            if channel.bufferedAmount > BUFFER_LIMIT:
                self.dropped[peer_id] += 1
                continue
            try:
                channel.send(data)
            except Exception:  # a channel closing under us costs that peer one frame
                self.dropped[peer_id] += 1
        return gaps

    def acked(self, owner: str, stream_id: int) -> int:
        """The seq up to which every frame of the stream arrived (-1: none yet)."""
        return self._owned(owner, stream_id).acked

    def _owned(self, owner: str, stream_id: int) -> _LiveStream:
        live = self._streams.get(stream_id)
        if live is None or live.owner != owner:
            raise ClinicalError(
                "ecg-unknown-stream", f"stream {stream_id} was not announced by you or has ended"
            )
        return live
