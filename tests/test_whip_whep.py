"""A WHIP publisher and two WHEP viewers, as plain HTTP WebRTC clients would do it."""

from __future__ import annotations

import asyncio

import aiohttp
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from tests.media import PatternTrack, ToneTrack
from tests.test_forwarding import frames

NO_ICE_SERVERS = RTCConfiguration(iceServers=[])  # never aiortc's public STUN default


async def http_offer(url: str, token: str, pc: RTCPeerConnection) -> tuple[int, str, str]:
    # aiortc gathers every candidate before setLocalDescription returns: a non-trickle offer.
    await pc.setLocalDescription(await pc.createOffer())
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=pc.localDescription.sdp, headers={
                "Authorization": f"Bearer {token}", "Content-Type": "application/sdp"}) as r:
            return r.status, r.headers.get("Location", ""), await r.text()


async def test_whip_publisher_and_two_whep_viewers(server):
    await server.create_room("or-1", "pw-123456")
    publisher = RTCPeerConnection(NO_ICE_SERVERS)
    publisher.addTransceiver(PatternTrack(), direction="sendonly")
    publisher.addTransceiver(ToneTrack(), direction="sendonly")
    token = await server.token("or-1", "pw-123456", role="device", name="OR camera")
    status, location, answer = await http_offer(f"{server.url}/whip/or-1", token, publisher)
    assert status == 201 and location.startswith("/whip/or-1/")
    await publisher.setRemoteDescription(RTCSessionDescription(answer, "answer"))

    viewers = []
    try:
        for n in range(2):
            pc = RTCPeerConnection(NO_ICE_SERVERS)
            pc.addTransceiver("video", direction="recvonly")
            pc.addTransceiver("audio", direction="recvonly")
            viewer_token = await server.token("or-1", "pw-123456", role="viewer", name=f"Trainee {n}")
            status, _, answer = await http_offer(f"{server.url}/whep/or-1", viewer_token, pc)
            assert status == 201, answer
            await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
            viewers.append(pc)
        for pc in viewers:
            video, audio = (t.receiver.track for t in pc.getTransceivers())
            assert (await frames(video, 10))[-1].width == 320
            assert len(await frames(audio, 10)) == 10

        async with aiohttp.ClientSession() as session:
            headers = {"Authorization": f"Bearer {token}"}
            fragment = "a=mid:0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\r\n"
            async with session.patch(f"{server.url}{location}", data=fragment, headers={
                    **headers, "Content-Type": "application/trickle-ice-sdpfrag"}) as r:
                assert r.status == 204
            async with session.patch(f"{server.url}{location}", data="a=candidate:garbage\r\n", headers={
                    **headers, "Content-Type": "application/trickle-ice-sdpfrag"}) as r:
                assert r.status == 400 and "error" in await r.json()
            async with session.delete(f"{server.url}{location}", headers=headers) as r:
                assert r.status == 200
            async with session.delete(f"{server.url}{location}", headers=headers) as r:
                assert r.status == 200  # idempotent for a while (docs/interop.md)
        await asyncio.sleep(0.2)
        assert not server.core.live.rooms["or-1"].router.producers
    finally:
        for pc in [publisher, *viewers]:
            await pc.close()


async def test_whep_with_nothing_published_and_bad_sdp(server):
    await server.create_room("empty", "pw-123456")
    token = await server.token("empty", "pw-123456", role="viewer")
    pc = RTCPeerConnection(NO_ICE_SERVERS)
    pc.addTransceiver("video", direction="recvonly")
    status, _, body = await http_offer(f"{server.url}/whep/empty", token, pc)
    assert status == 404 and "nothing is being published" in body
    await pc.close()
    async with aiohttp.ClientSession() as session:
        for sdp in ["", "garbage", "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 RTP/AVP\r\n"]:
            async with session.post(f"{server.url}/whip/empty", data=sdp, headers={
                    "Authorization": f"Bearer {await server.token('empty', 'pw-123456', role='device')}",
                    "Content-Type": "application/sdp"}) as r:
                assert r.status == 400, sdp
                assert "error" in await r.json()
        async with session.post(f"{server.url}/whip/empty", data="v=0", headers={
                "Authorization": f"Bearer {token}", "Content-Type": "text/plain"}) as r:
            assert r.status in (403, 415)
