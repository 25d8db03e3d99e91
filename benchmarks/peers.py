"""aiortc peers as the benchmark uses them: one VP8 publisher, counting subscribers.

Subscribers never decode: sfu/aiortc_hook.MediaTransport takes the decrypted RTP
off the DTLS transport and hands it to an RtpCounter instead of aiortc's jitter
buffer and decoder.
"""

from __future__ import annotations

import re

from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCRtpTransceiver

from sfu.aiortc_hook import MediaTransport, on_keyframe_request

from .clip import Clip
from .media import CLOCK, ClipTrack, RtpCounter


def prefer_vp8(transceiver: RTCRtpTransceiver) -> None:
    codecs = RTCRtpSender.getCapabilities("video").codecs
    wanted = [c for c in codecs if c.mimeType.lower() in ("video/vp8", "video/rtx")]
    transceiver.setCodecPreferences(wanted)


def vp8_payload_type(sdp: str) -> int | None:
    match = re.search(r"a=rtpmap:(\d+) VP8/90000", sdp, re.IGNORECASE)
    return int(match.group(1)) if match else None


class Publisher:
    def __init__(self, clip: Clip) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.track = ClipTrack(clip)
        self.transceiver = self.pc.addTransceiver(self.track, direction="sendonly")
        prefer_vp8(self.transceiver)
        # A live encoder answers PLI/FIR with a keyframe; the replayed clip does too.
        on_keyframe_request(self.transceiver.sender, self.track.request_keyframe)

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def close(self) -> None:
        self.track.stop()
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
