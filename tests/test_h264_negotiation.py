"""H264 between a WHIP publisher and WHEP viewers, negotiated per RFC 6184: a viewer gets
the stream only if its stated profile and level cover it, and is refused otherwise."""

from __future__ import annotations

import json

import aiohttp
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription

from sfu.h264_profile import decodable, shown_to_aiortc
from tests.media import PatternTrack
from tests.test_forwarding import frames
from tests.test_whip_whep import http_offer


@pytest.mark.parametrize("stream, receiver, ok", [
    ("42e01f", "42e01f", True),
    ("42e01f", "42001f", True),     # Constrained Baseline conforms to Baseline
    ("42e01f", "4d0032", True),     # ... and to Main
    ("42001f", "42e01f", False),    # Baseline may use what Constrained Baseline decoders lack
    ("42e028", "42e01f", False),    # level 4 stream, level 3.1 decoder
    ("42e01f", "42e028", True),
    ("640032", "4d0032", False),
    ("42e01f", "zz", False),
])
def test_decodable(stream, receiver, ok):
    params = {"packetization-mode": "1"}
    assert decodable({**params, "profile-level-id": stream}, {**params, "profile-level-id": receiver}) is ok


def test_packetization_mode_must_match():
    assert not decodable({"packetization-mode": "1", "profile-level-id": "42e01f"},
                         {"packetization-mode": "0", "profile-level-id": "42e01f"})


def test_aiortc_is_shown_profiles_it_does_not_know_as_constrained_baseline():
    # A browser's receive offer (Baseline, High) and a hardware encoder's (High only):
    # aiortc would match only the Baseline payload type and refuse the encoder outright.
    offer = ("v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96 102 106 97\r\na=rtpmap:96 VP8/90000\r\n"
             "a=rtpmap:102 H264/90000\r\na=fmtp:102 packetization-mode=1;profile-level-id=42001f\r\n"
             "a=rtpmap:106 H264/90000\r\na=fmtp:106 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640c34\r\n"
             "a=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=106\r\n"
             "m=video 9 UDP/TLS/RTP/SAVPF 100\r\na=rtpmap:100 H264/90000\r\n"
             "a=fmtp:100 packetization-mode=1;sprop-parameter-sets=Z2QAFK,aO4=;profile-level-id=64001f\r\n")
    shown = shown_to_aiortc(offer)
    assert shown == (offer.replace("profile-level-id=640c34", "profile-level-id=42e034")
                     .replace("profile-level-id=64001f", "profile-level-id=42e01f"))


def h264_only(pc: RTCPeerConnection, profile_level_id: str, direction: str, track=None) -> None:
    transceiver = pc.addTransceiver(track or "video", direction=direction)
    transceiver.setCodecPreferences([
        c for c in RTCRtpSender.getCapabilities("video").codecs
        if c.mimeType == "video/H264" and c.parameters.get("profile-level-id") == profile_level_id])


async def publish_h264(server, room: str, profile_level_id: str) -> RTCPeerConnection:
    await server.create_room(room, "pw-123456")
    publisher = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    h264_only(publisher, profile_level_id, "sendonly", PatternTrack())
    token = await server.token(room, "pw-123456", role="device", name="OR encoder")
    status, _, answer = await http_offer(f"{server.url}/whip/{room}", token, publisher)
    assert status == 201, answer
    await publisher.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    return publisher


async def view(server, room: str, profile_level_id: str) -> tuple[RTCPeerConnection, int, str]:
    viewer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    h264_only(viewer, profile_level_id, "recvonly")
    token = await server.token(room, "pw-123456", role="viewer", name="Trainee")
    status, _, body = await http_offer(f"{server.url}/whep/{room}", token, viewer)
    return viewer, status, body


async def test_viewer_that_cannot_decode_is_refused_not_left_silent(server):
    publisher = await publish_h264(server, "or-h264", "42001f")
    viewer, status, body = await view(server, "or-h264", "42e01f")
    try:
        assert status == 406
        error = json.loads(body)
        assert error["code"] == "codec-mismatch" and "42001f" in error["error"]
        assert len(server.core.live.rooms["or-h264"].peers) == 1  # the refused viewer is gone
    finally:
        await viewer.close()
        await publisher.close()


async def test_constrained_baseline_reaches_a_baseline_viewer(server):
    publisher = await publish_h264(server, "or-cb", "42e01f")
    viewer, status, body = await view(server, "or-cb", "42001f")
    try:
        assert status == 201, body
        await viewer.setRemoteDescription(RTCSessionDescription(body, "answer"))
        received = await frames(viewer.getTransceivers()[0].receiver.track, 5)
        assert received[-1].width == 320
    finally:
        await viewer.close()
        await publisher.close()


async def test_publisher_level_is_answered_as_offered(server):
    """A level-4 (1080p) encoder must not be told to stay at aiortc's level 3.1."""
    await server.create_room("or-1080", "pw-123456")
    publisher = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    h264_only(publisher, "42e01f", "sendonly", PatternTrack())
    await publisher.setLocalDescription(await publisher.createOffer())
    offer = publisher.localDescription.sdp.replace("profile-level-id=42e01f", "profile-level-id=42e028")
    token = await server.token("or-1080", "pw-123456", role="device", name="OR encoder")
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{server.url}/whip/or-1080", data=offer, headers={
                "Authorization": f"Bearer {token}", "Content-Type": "application/sdp"}) as r:
            assert r.status == 201
            answer = await r.text()
    await publisher.close()
    assert "profile-level-id=42e028" in answer and "profile-level-id=42e01f" not in answer
    producer = next(iter(server.core.live.rooms["or-1080"].router.producers.values()))
    assert producer.codec.parameters["profile-level-id"] == "42e028"
