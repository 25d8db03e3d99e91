"""An in-process consumer on a producer that turns its RTP back into encoded frames
for the compositor. It sits in the producer's Python fan-out list, beside the remote
subscribers; nothing is decoded here."""

from __future__ import annotations

from collections.abc import Callable

from recorder.depacketizer import EncodedFrame, depacketizer_for
from sfu import Consumer, Producer
from sfu.rtp_packet import RtpPacket

# on_frame(producer, frame) -> False when the frame could not be taken (the compositor is
# behind): the tap then skips to the next keyframe, so the decoder never sees a hole.
FrameSink = Callable[[Producer, EncodedFrame], bool]


class FrameTap(Consumer):
    def __init__(self, producer: Producer, on_frame: FrameSink) -> None:
        super().__init__(producer)
        self.depacketizer = depacketizer_for(producer.codec.mime_type)
        self._on_frame = on_frame
        self._skipping = False
        self.frames = 0

    def write(self, packet: RtpPacket, seq: int, timestamp: int) -> None:
        frame = self.depacketizer.push(packet)
        if self.depacketizer.needs_keyframe:
            self.producer.request_keyframe()  # throttled by the producer
        if frame is None:
            return
        if self._skipping and not frame.keyframe:
            return
        self._skipping = not self._on_frame(self.producer, frame)
        if self._skipping:
            self.producer.request_keyframe()
        else:
            self.frames += 1
