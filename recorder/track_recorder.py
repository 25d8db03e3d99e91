"""The recorder's in-process consumer: one per recorded track, on the producer like any
subscriber. It starts on a keyframe (the base Consumer holds video until one, and attaching
asks for it), puts video through the frame assembler, and writes frames to the track file
with their RTP timing; sender reports place the track on the server clock.

Packets are held as they come, with their arrival times, and recorded in batches of
BATCH (and at each tick, and at the end): a packet's way through the assembler, the muxer
and the cipher, taken one at a time between the event loop's other work, cost several
times what it does in a run (benchmarks/README.md, recording). The assembler still sees
each packet's own arrival time, so only its requests for a keyframe after a hole it gives
up on come later, by at most a batch."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

import av

from sfu import Consumer, Producer
from sfu.rtp_packet import RtpPacket

from .depacketizer import DEPACKETIZERS
from .frame_assembler import Frame, FrameAssembler
from .media_clock import RtpClock, SenderClock
from .track_file import TrackFile

log = logging.getLogger("telemed.recorder")

BATCH = 32  # packets: about 0.2 s of a 720p camera, 0.6 s of a microphone


class TrackRecorder(Consumer):
    def __init__(self, producer: Producer, file: TrackFile, sender: SenderClock,
                 on_disk_error: Callable[[OSError], None]) -> None:
        super().__init__(producer)
        self.file = file
        self.clock = RtpClock(producer.codec.clock_rate, sender)
        self._on_disk_error = on_disk_error
        depacketizer = DEPACKETIZERS[producer.codec.mime_type.lower()]()
        self._assembler = (FrameAssembler(depacketizer, producer.request_keyframe)
                           if producer.kind == "video" else None)
        self.failed = False
        self._held: list[tuple[RtpPacket, float]] = []
        if producer.last_sr is not None:
            self.clock.sender_report(*producer.last_sr)

    @property
    def frames_dropped(self) -> int:
        return self._assembler.frames_dropped if self._assembler is not None else 0

    def write(self, packet: RtpPacket, seq: int, timestamp: int) -> None:
        if self.failed:
            return
        held = self._held
        held.append((packet, time.monotonic()))
        if len(held) >= BATCH:
            self._record_held()

    def _record_held(self) -> None:
        held, self._held = self._held, []
        assembler = self._assembler
        for packet, arrival in held:
            if self.failed:
                return
            if assembler is None:
                self._write([Frame(packet.payload, packet.timestamp, True)], arrival)
            else:
                self._write(assembler.push(packet, arrival), arrival)

    def tick(self, now: float) -> None:
        """Record what is held, and let go of frames held behind a hole that will not be
        filled (a quiet stream gets no packets to drive the assembler)."""
        self._record_held()
        if self._assembler is not None and not self.failed:
            self._write(self._assembler.drain(now), now)

    def on_sender_report(self, ntp: int, rtp_timestamp: int) -> None:
        arrival = self.producer.last_sr[2] if self.producer.last_sr else time.monotonic()
        self.clock.sender_report(ntp, rtp_timestamp, arrival)

    def _write(self, frames: list[Frame], now: float) -> None:
        for frame in frames:
            if self.clock.last is not None and self.clock.unwrap(frame.timestamp) <= self.clock.last:
                continue  # a late or repeated audio packet: the file's time only moves on
            pts = self.clock.frame(frame.timestamp, now)
            try:
                self.file.write(frame.data, pts, frame.keyframe)
            except OSError as exc:
                self.failed = True
                self._on_disk_error(exc)
                return
            except (ValueError, av.FFmpegError) as exc:
                log.warning("frame not recorded on %s: %s", self.producer.id, exc)
                if self.file.frames == 0 and self._assembler is not None:
                    self._assembler.restart()  # wait for a keyframe that can start the file
                    self.producer.request_keyframe()

    def finish(self) -> None:
        """Write what is still held and close the file as whole; idempotent."""
        if not self.closed:
            Consumer.close(self)
        if not self.failed:
            self.tick(math.inf)
        try:
            self.file.close()
        except OSError as exc:
            if not self.failed:
                self.failed = True
                self._on_disk_error(exc)

    def close(self) -> None:
        """The producer went away (unpublished, peer left): the file is complete."""
        super().close()
        self.finish()
