"""An in-process consumer on a producer that turns its RTP back into encoded frames
for the compositor (the recorder's depacketizers and frame assembler: a short reorder
window, keyframe recovery). It sits in the producer's Python fan-out list, beside the
remote subscribers; nothing is decoded here."""

from __future__ import annotations

import time
from collections.abc import Callable

from recorder.depacketizer import DEPACKETIZERS
from recorder.frame_assembler import Frame, FrameAssembler
from sfu import Consumer, Producer
from sfu.rtp_packet import RtpPacket

# on_frame(producer, frame) -> False when the frame could not be taken (the compositor is
# behind): the tap then skips to the next keyframe, so the decoder never sees a hole.
FrameSink = Callable[[Producer, Frame], bool]


def can_tap(producer: Producer) -> bool:
    return producer.codec.mime_type.lower() in DEPACKETIZERS


class FrameTap(Consumer):
    def __init__(self, producer: Producer, on_frame: FrameSink) -> None:
        super().__init__(producer)
        depacketizer = DEPACKETIZERS[producer.codec.mime_type.lower()]()
        # Audio packets stand alone (Opus): no assembling, no waiting for a keyframe.
        self._assembler = (FrameAssembler(depacketizer, producer.request_keyframe)
                           if producer.kind == "video" else None)
        self._on_frame = on_frame
        self._skipping = False
        self.frames = 0

    def write(self, packet: RtpPacket, seq: int, timestamp: int) -> None:
        if self._assembler is None:
            self._deliver(Frame(packet.payload, packet.timestamp, True))
            return
        for frame in self._assembler.push(packet, time.monotonic()):
            self._deliver(frame)

    def _deliver(self, frame: Frame) -> None:
        if self._skipping and not frame.keyframe:
            return
        self._skipping = not self._on_frame(self.producer, frame)
        if self._skipping:
            self.producer.request_keyframe()
        else:
            self.frames += 1
