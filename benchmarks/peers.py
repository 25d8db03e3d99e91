"""aiortc peers as the benchmark uses them: one VP8 publisher (with an Opus microphone
if asked), counting subscribers.

Subscribers never decode: sfu/aiortc_hook.MediaTransport takes the decrypted RTP
off the DTLS transport and hands it to an RtpCounter instead of aiortc's jitter
buffer and decoder.

aiortc cannot send simulcast. A `simulcast` publisher offers it the way Chromium does
(`a=rid:q/h/f send`, `a=simulcast:send`, the rid header extension, no SSRC lines) and
sends every packet aiortc's sender writes as three layers: the same packet under three
SSRCs, each with its rid. So each "layer" carries the whole 720p clip: the servers
receive three times what one stream takes, more than a browser's q/h/f (about 1.25x),
an upper bound on what simulcast adds.
"""

from __future__ import annotations

import random
import re
import struct

from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCRtpTransceiver

from sfu.aiortc_hook import MediaTransport, on_keyframe_request, tap
from sfu.rtp_packet import is_rtcp

from .clip import Clip, opus_loop
from .media import CLOCK, ClipTrack, OpusTrack, RtpCounter


def prefer_vp8(transceiver: RTCRtpTransceiver) -> None:
    codecs = RTCRtpSender.getCapabilities("video").codecs
    wanted = [c for c in codecs if c.mimeType.lower() in ("video/vp8", "video/rtx")]
    transceiver.setCodecPreferences(wanted)


def vp8_payload_type(sdp: str) -> int | None:
    match = re.search(r"a=rtpmap:(\d+) VP8/90000", sdp, re.IGNORECASE)
    return int(match.group(1)) if match else None


RIDS = ("q", "h", "f")
RID_URI = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
RID_EXT_ID = 10  # aiortc's own extensions use 1-3


def simulcast_offer(sdp: str) -> str:
    """aiortc's one-stream video offer, restated as a Chromium-style simulcast offer."""
    out = []
    for line in sdp.splitlines():
        if line.startswith(("a=ssrc:", "a=ssrc-group:")):
            continue
        out.append(line)
        if line.startswith("a=mid:"):
            out.append(f"a=extmap:{RID_EXT_ID} {RID_URI}")
            out += [f"a=rid:{rid} send" for rid in RIDS]
            out.append("a=simulcast:send " + ";".join(RIDS))
    return "\r\n".join(out) + "\r\n"


def with_extension(packet: bytes, ext_id: int, value: bytes) -> bytes:
    """`packet` with one more one-byte header extension element (RFC 8285)."""
    csrc_end = 12 + (packet[0] & 0x0F) * 4
    elements = b""
    body = csrc_end
    if packet[0] & 0x10 and packet[csrc_end:csrc_end + 2] == b"\xbe\xde":
        words = struct.unpack_from("!H", packet, csrc_end + 2)[0]
        body = csrc_end + 4 + 4 * words
        pos = csrc_end + 4
        while pos < body:  # the elements without their padding
            if packet[pos] == 0:
                pos += 1
                continue
            size = 2 + (packet[pos] & 0x0F)
            elements += packet[pos:pos + size]
            pos += size
    elements += bytes([ext_id << 4 | (len(value) - 1)]) + value
    elements += bytes(-len(elements) % 4)
    return (bytes([packet[0] | 0x10]) + packet[1:csrc_end] + b"\xbe\xde"
            + struct.pack("!H", len(elements) // 4) + elements + packet[body:])


class Publisher:
    def __init__(self, clip: Clip, simulcast: bool = False, audio: bool = False) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.track = ClipTrack(clip)
        self.transceiver = self.pc.addTransceiver(self.track, direction="sendonly")
        prefer_vp8(self.transceiver)
        self.audio_track = OpusTrack(opus_loop()) if audio else None
        self.audio_transceiver = (self.pc.addTransceiver(self.audio_track, direction="sendonly")
                                  if self.audio_track else None)
        # A live encoder answers PLI/FIR with a keyframe; the replayed clip does too.
        on_keyframe_request(self.transceiver.sender, self.track.request_keyframe)
        self.simulcast = simulcast
        self._ssrcs = [random.getrandbits(32) for _ in RIDS]

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        if not self.simulcast:
            return self.pc.localDescription.sdp
        tap(self.transceiver.sender.transport, on_sent=self._as_layers)
        return simulcast_offer(self.pc.localDescription.sdp)

    def _as_layers(self, data: bytes) -> list[bytes]:
        if is_rtcp(data):
            return [data]
        return [with_extension(data[:8] + struct.pack("!I", ssrc) + data[12:], RID_EXT_ID, rid.encode())
                for rid, ssrc in zip(RIDS, self._ssrcs)]

    async def close(self) -> None:
        self.track.stop()
        if self.audio_track:
            self.audio_track.stop()
        await self.pc.close()


class Subscriber:
    """One receive-only peer connection whose video RTP is counted, not decoded."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.counter = RtpCounter()
        # Join milestones (CLOCK times), so a slow join can be pinned on one phase.
        self.marks: dict[str, float] = {}

        @self.pc.on("iceconnectionstatechange")
        def on_ice() -> None:
            if self.pc.iceConnectionState in ("connected", "completed"):
                self.marks.setdefault("ice", CLOCK())

    def mark(self, name: str) -> None:
        self.marks[name] = CLOCK()

    def intercept(self) -> None:
        """Call once the transceiver exists and before media flows."""
        transceivers = self.pc.getTransceivers()
        MediaTransport.of(transceivers[0]).intercept(self.counter.on_rtp, self.counter.on_rtcp)
        dtls = transceivers[0].receiver.transport

        @dtls.on("statechange")
        def on_dtls() -> None:
            if dtls.state == "connected":
                self.marks.setdefault("dtls", CLOCK())

    def learn_payload_type(self) -> None:
        description = self.pc.localDescription or self.pc.remoteDescription
        self.counter.payload_type = vp8_payload_type(description.sdp) if description else None

    async def close(self) -> None:
        await self.pc.close()
