"""RTP payloads back into whole encoded frames (VP8: RFC 7741, H264: RFC 6184, Opus).

Shared by the recorder (which writes the frames) and the streaming compositor (which
decodes them). A frame with a hole is dropped and the depacketizer waits for the next
keyframe; `needs_keyframe` tells the owner to ask the publisher for one.
"""

from __future__ import annotations

from dataclasses import dataclass

from sfu.keyframe import h264_keyframe, vp8_keyframe
from sfu.rtp_packet import RtpPacket

START_CODE = b"\x00\x00\x00\x01"
MAX_FRAME_BYTES = 4 * 1024 * 1024  # a larger "frame" is garbage, not video


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    data: bytes          # VP8 frame, H264 access unit in Annex B, or one Opus packet
    timestamp: int       # RTP timestamp, in the codec's clock rate
    keyframe: bool


class Depacketizer:
    """Collects one frame's packets (same timestamp, last one marked) in order."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._size = 0
        self._timestamp: int | None = None
        self._next_seq: int | None = None
        self._keyframe = False
        self._synced = False  # False until a keyframe starts: before it, frames are useless
        self.needs_keyframe = True
        self.frames_dropped = 0

    def push(self, packet: RtpPacket) -> EncodedFrame | None:
        """Feed packets in arrival order; returns a frame when its last packet came."""
        if self._next_seq is not None and packet.seq != self._next_seq:
            self._lose()
        self._next_seq = (packet.seq + 1) & 0xFFFF
        if self._timestamp is not None and packet.timestamp != self._timestamp:
            self._lose()  # the previous frame's marked packet never came
        if self._timestamp is None:
            if not self._starts_frame(packet.payload):
                return None  # joined mid-frame, or after a loss: wait for a frame start
            self._timestamp = packet.timestamp
            self._keyframe = self._is_keyframe(packet.payload)
            if self._keyframe:
                self._synced = True
                self.needs_keyframe = False
        try:
            chunk = self._unwrap(packet.payload)
        except (IndexError, ValueError):
            self._lose()
            return None
        self._parts.append(chunk)
        self._size += len(chunk)
        if self._size > MAX_FRAME_BYTES:
            self._lose()
            return None
        if not packet.marker:
            return None
        frame = EncodedFrame(b"".join(self._parts), self._timestamp, self._keyframe)
        self._reset()
        if not self._synced:  # whole, but it refers to a frame we lost
            self.frames_dropped += 1
            return None
        return frame if frame.data else None

    def _lose(self) -> None:
        if self._timestamp is not None:
            self.frames_dropped += 1
        self._reset()
        self._synced = False
        self.needs_keyframe = True

    def _reset(self) -> None:
        self._parts, self._size, self._timestamp, self._keyframe = [], 0, None, False

    # Codec specifics.
    def _starts_frame(self, payload: bytes) -> bool:
        raise NotImplementedError

    def _is_keyframe(self, payload: bytes) -> bool:
        raise NotImplementedError

    def _unwrap(self, payload: bytes) -> bytes:
        raise NotImplementedError


class Vp8Depacketizer(Depacketizer):
    def _starts_frame(self, payload: bytes) -> bool:
        return bool(payload) and bool(payload[0] & 0x10) and not payload[0] & 0x07

    def _is_keyframe(self, payload: bytes) -> bool:
        return vp8_keyframe(payload)

    def _unwrap(self, payload: bytes) -> bytes:
        pos = 1
        if payload[0] & 0x80:
            ext = payload[1]
            pos = 2
            if ext & 0x80:
                pos += 2 if payload[pos] & 0x80 else 1
            if ext & 0x40:
                pos += 1
            if ext & 0x30:
                pos += 1
        if pos > len(payload):
            raise ValueError("VP8 payload descriptor truncated")
        return payload[pos:]


class H264Depacketizer(Depacketizer):
    """Packetization modes 0 and 1: single NAL units, STAP-A and FU-A."""

    def __init__(self) -> None:
        super().__init__()
        self._fu: bytearray | None = None

    def _reset(self) -> None:
        super()._reset()
        self._fu = None

    def _starts_frame(self, payload: bytes) -> bool:
        if not payload:
            return False
        nal = payload[0] & 0x1F
        return nal != 28 or (len(payload) > 1 and bool(payload[1] & 0x80))

    def _is_keyframe(self, payload: bytes) -> bool:
        return h264_keyframe(payload)

    def _unwrap(self, payload: bytes) -> bytes:
        nal = payload[0] & 0x1F
        if 1 <= nal <= 23:
            return START_CODE + payload
        if nal == 24:  # STAP-A
            out, pos = [], 1
            while pos + 2 <= len(payload):
                size = (payload[pos] << 8) | payload[pos + 1]
                unit = payload[pos + 2:pos + 2 + size]
                if size == 0 or len(unit) != size:
                    raise ValueError("STAP-A unit truncated")
                out.append(START_CODE + unit)
                pos += 2 + size
            return b"".join(out)
        if nal == 28:  # FU-A: the header byte is rebuilt from the FU indicator and header
            indicator, header = payload[0], payload[1]
            if header & 0x80:
                self._fu = bytearray([(indicator & 0xE0) | (header & 0x1F)])
            elif self._fu is None:
                raise ValueError("FU-A continuation without a start")
            self._fu += payload[2:]
            if header & 0x40:
                unit, self._fu = bytes(self._fu), None
                return START_CODE + unit
            return b""
        raise ValueError(f"unsupported H264 NAL unit type {nal}")


class OpusDepacketizer(Depacketizer):
    """One Opus packet per RTP packet (RFC 7587); every packet stands alone."""

    def push(self, packet: RtpPacket) -> EncodedFrame | None:
        self.needs_keyframe = False
        return EncodedFrame(packet.payload, packet.timestamp, True) if packet.payload else None


DEPACKETIZERS = {"video/vp8": Vp8Depacketizer, "video/h264": H264Depacketizer,
                 "audio/opus": OpusDepacketizer}


def depacketizer_for(mime_type: str) -> Depacketizer:
    """A fresh depacketizer for the codec; ValueError if we cannot take it apart."""
    cls = DEPACKETIZERS.get(mime_type.lower())
    if cls is None:
        raise ValueError(f"no depacketizer for {mime_type}")
    return cls()
