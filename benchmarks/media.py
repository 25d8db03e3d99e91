"""Media ends of the benchmark: a paced pre-encoded sender and an RTP counter.

Latency is measured by matching payloads: both SFUs forward the VP8 payload
byte-identical, but either may rewrite the payload descriptor (picture id), so
the key is a CRC of the bytes *after* the VP8 payload descriptor. The sender
knows those bytes in advance because aiortc's VP8 packetizer cuts each frame
into fixed-size chunks behind a 4-byte descriptor (checked at run time: the
report's `unmatched` share would jump if it changed).
"""

from __future__ import annotations

import asyncio
import fractions
import time
import zlib

import av
from aiortc import MediaStreamTrack
from aiortc.codecs import vpx
from aiortc.mediastreams import MediaStreamError

from .clip import OPUS_FRAME, OPUS_RATE, Clip

# aiortc's VP8 packetizer always writes X, I and a 15-bit picture id: 4 bytes.
VP8_DESCRIPTOR_BYTES = 4
VP8_CHUNK = vpx.PACKET_MAX - VP8_DESCRIPTOR_BYTES
CLOCK = time.monotonic  # CLOCK_MONOTONIC: one clock for every process on the host


def payload_key(data: bytes) -> int:
    return zlib.crc32(data) ^ (len(data) << 32)


class Pacer:
    """Paces the packets of a pre-encoded stream by their index, one every `interval`
    seconds from the first; having fallen far behind (e.g. a stalled loop), it skips
    ahead instead of sending a burst."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._start: float | None = None

    async def wait(self, index: int, early: asyncio.Event | None = None) -> None:
        """Until packet `index` is due, or `early` is set."""
        now = CLOCK()
        if self._start is None:
            self._start = now
        due = self._start + index * self.interval
        if due > now:
            if early is None:
                await asyncio.sleep(due - now)
            elif not early.is_set():
                try:
                    await asyncio.wait_for(early.wait(), due - now)
                except asyncio.TimeoutError:
                    pass
        elif now - due > 1.0:
            self._start = now - index * self.interval


class ClipTrack(MediaStreamTrack):
    """Loops the clip as av.Packets, paced by pts, recording when each goes out.

    aiortc's sender sees packets, not frames, and only packetizes them
    (RTCRtpSender._next_encoded_frame). `sent` maps payload key -> send times.

    It answers keyframe requests as a live encoder would (`request_keyframe`, wired to
    the sender's PLI/FIR by benchmarks.peers): the next frame goes out at once, and it
    is the clip's next keyframe (the replay jumps ahead to it), so a subscriber does not
    wait for the clip's own keyframe interval. Both SFUs get the same publisher.
    """

    kind = "video"
    ON_KEYFRAME_REQUEST = "sends the clip's next keyframe at once (jumping ahead to it)"

    def __init__(self, clip: Clip) -> None:
        super().__init__()
        self._clip = clip
        self._index = 0      # frames sent: paces them and gives their pts
        self._position = 0   # where in the clip the next frame comes from
        self._pacer = Pacer(1 / clip.fps)
        self._time_base = fractions.Fraction(1, clip.fps)
        self._keys = [self._frame_keys(f) for f in clip.frames]
        self._keyframe_wanted = asyncio.Event()
        self.recording = False
        self.sent: dict[int, list[float]] = {}
        self.frames_sent = 0
        self.keyframe_requests = 0
        self.keyframes_forced = 0

    @staticmethod
    def _frame_keys(frame: bytes) -> list[int]:
        return [payload_key(frame[pos : pos + VP8_CHUNK]) for pos in range(0, len(frame), VP8_CHUNK)]

    def request_keyframe(self) -> None:
        """A PLI or FIR came in: the next frame is a keyframe, sent without waiting."""
        self.keyframe_requests += 1
        self._keyframe_wanted.set()

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        await self._pacer.wait(self._index, early=self._keyframe_wanted)
        count = len(self._clip.frames)
        i = self._position % count
        if self._keyframe_wanted.is_set():
            self._keyframe_wanted.clear()
            if not self._clip.keyframes[i]:
                i = next(j % count for j in range(i, i + count) if self._clip.keyframes[j % count])
                self.keyframes_forced += 1
        packet = av.Packet(self._clip.frames[i])
        packet.pts = self._index
        packet.time_base = self._time_base
        if self.recording:
            t = CLOCK()
            for key in self._keys[i]:
                self.sent.setdefault(key, []).append(t)
        self._index += 1
        self._position = i + 1
        self.frames_sent += 1
        return packet


class OpusTrack(MediaStreamTrack):
    """Loops pre-encoded Opus packets (`clip.opus_loop`) as av.Packets, one per 20 ms:
    a microphone beside the camera, costing no encoding."""

    kind = "audio"

    def __init__(self, packets: list[bytes]) -> None:
        super().__init__()
        self._packets = packets
        self._index = 0
        self._pacer = Pacer(OPUS_FRAME / OPUS_RATE)
        self._time_base = fractions.Fraction(1, OPUS_RATE)

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        await self._pacer.wait(self._index)
        packet = av.Packet(self._packets[self._index % len(self._packets)])
        packet.pts, packet.time_base = self._index * OPUS_FRAME, self._time_base
        self._index += 1
        return packet


def rtp_payload_offset(packet: bytes) -> int:
    """Where the RTP payload starts (after CSRCs and header extension), or -1."""
    n = len(packet)
    if n < 12:
        return -1
    pos = 12 + 4 * (packet[0] & 0x0F)
    if packet[0] & 0x10:
        if pos + 4 > n:
            return -1
        pos += 4 + 4 * int.from_bytes(packet[pos + 2 : pos + 4], "big")
    return pos if pos < n else -1


def vp8_media_offset(packet: bytes, pos: int) -> int:
    """Offset of the VP8 frame bytes behind the payload descriptor at `pos`, or -1."""
    n = len(packet)
    b = packet[pos]
    pos += 1
    if b & 0x80:
        if pos >= n:
            return -1
        x = packet[pos]
        pos += 1
        if x & 0x80:
            pos += 2 if (pos < n and packet[pos] & 0x80) else 1
        if x & 0x40:
            pos += 1
        if x & 0x30:
            pos += 1
    return pos if pos <= n else -1


def is_vp8_keyframe_start(packet: bytes, descriptor: int, media: int) -> bool:
    """First packet of a VP8 keyframe: S=1, partition 0, and the frame's P bit clear."""
    b = packet[descriptor]
    return bool(b & 0x10) and (b & 0x0F) == 0 and media < len(packet) and not packet[media] & 0x01


class RtpCounter:
    """Counts one subscriber's video RTP: packets, loss from sequence numbers,
    and (while recording) payload key -> arrival time for latency matching."""

    def __init__(self, payload_type: int | None = None) -> None:
        self.payload_type = payload_type
        self.first_packet_at: float | None = None
        self.first_keyframe_at: float | None = None  # a keyframe's first packet
        # The first decodable picture: a keyframe whose packets all came, in order.
        self.first_frame_at: float | None = None
        self._keyframe_next: int | None = None  # the next sequence number of that keyframe
        self.recording = False
        self.received: list[tuple[int, float]] = []
        self._reset_window()

    def _reset_window(self) -> None:
        self.packets = 0
        self.bytes = 0
        self.other = 0  # RTX, padding or another payload type
        self._ssrc: int | None = None
        self._base: int | None = None
        self._highest = 0  # extended sequence number relative to the first one
        self._seen: set[int] = set()
        self.duplicates = 0

    def start_window(self) -> None:
        self._reset_window()
        self.received = []
        self.recording = True

    def stop_window(self) -> dict:
        self.recording = False
        expected = self._highest + 1 if self._base is not None else 0
        unique = len(self._seen)
        return {
            "packets": self.packets,
            "bytes": self.bytes,
            "expected": expected,
            "lost": max(0, expected - unique),
            "duplicates": self.duplicates,
            "other": self.other,
        }

    def on_rtp(self, data: bytes) -> None:
        now = CLOCK()
        if self.first_packet_at is None:
            self.first_packet_at = now
        descriptor = rtp_payload_offset(data)
        media = vp8_media_offset(data, descriptor) if descriptor >= 0 else -1
        if self.first_frame_at is None:
            self._first_frame(data, now, media > 0 and is_vp8_keyframe_start(data, descriptor, media))
        if not self.recording:
            return
        pt = data[1] & 0x7F
        ssrc = int.from_bytes(data[8:12], "big")
        if (self.payload_type is not None and pt != self.payload_type) or (
            self._ssrc is not None and ssrc != self._ssrc
        ):
            self.other += 1
            return
        seq = (data[2] << 8) | data[3]
        if self._base is None:
            self._ssrc, self._base = ssrc, seq
            ext = 0
        else:
            # Unwrap relative to the highest seen so far.
            delta = (seq - (self._base + self._highest)) & 0xFFFF
            ext = self._highest + delta if delta < 0x8000 else self._highest - (0x10000 - delta)
            if ext < 0:
                self.other += 1  # from before the window
                return
        if ext in self._seen:
            self.duplicates += 1
            return
        self._seen.add(ext)
        if ext > self._highest:
            self._highest = ext
        self.packets += 1
        self.bytes += len(data)
        if media >= 0:
            end = len(data) - (data[-1] if data[0] & 0x20 else 0)
            self.received.append((payload_key(data[media:end]), now))

    def _first_frame(self, data: bytes, now: float, keyframe_start: bool) -> None:
        seq = (data[2] << 8) | data[3]
        if keyframe_start:
            if self.first_keyframe_at is None:
                self.first_keyframe_at = now
            self._keyframe_next = seq
        if self._keyframe_next is None:
            return
        if seq != self._keyframe_next:
            self._keyframe_next = None  # a gap: that keyframe cannot be decoded
            return
        self._keyframe_next = (seq + 1) & 0xFFFF
        if data[1] & 0x80:  # marker: the keyframe's last packet
            self.first_frame_at = now

    def on_rtcp(self, data: bytes) -> None:
        pass
