"""A WHIP H264 publisher goes out as LL-HLS without transcoding: the segments carry
the published frames byte for byte, its Opus plays along, and the playlist validates."""

from __future__ import annotations

import io

import aiohttp
import av
import pytest_asyncio
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription

from streaming.fmp4 import annexb_units
from tests.media import H264PacketTrack, ToneTrack
from tests.server import start_server
from tests.hls_checks import check_playlist, complete, fetch, playlist_until
from tests.test_whip_whep import NO_ICE_SERVERS, http_offer

PW = "pw-123456"


@pytest_asyncio.fixture
async def server(tmp_path):
    running, runner = await start_server(str(tmp_path / "data"), live_size="640x360",
                                         live_x264_preset="ultrafast")
    yield running
    await runner.cleanup()


def nal_units(sample: bytes) -> list[bytes]:
    """NAL units of an MP4 sample (4-byte lengths)."""
    units, pos = [], 0
    while pos + 4 <= len(sample):
        size = int.from_bytes(sample[pos:pos + 4], "big")
        units.append(sample[pos + 4:pos + 4 + size])
        pos += 4 + size
    return units


async def whip_h264(server, room: str) -> tuple[RTCPeerConnection, H264PacketTrack]:
    """An OR encoder publishing pre-encoded H264 and Opus over WHIP."""
    track = H264PacketTrack()
    publisher = RTCPeerConnection(NO_ICE_SERVERS)
    transceiver = publisher.addTransceiver(track, direction="sendonly")
    transceiver.setCodecPreferences([c for c in RTCRtpSender.getCapabilities("video").codecs
                                     if c.mimeType == "video/H264" and c.parameters.get("packetization-mode") == "1"])
    publisher.addTransceiver(ToneTrack(), direction="sendonly")  # Opus goes along untouched
    token = await server.token(room, PW, role="device", name="OR encoder")
    status, _, answer = await http_offer(f"{server.url}/whip/{room}", token, publisher)
    assert status == 201, answer
    await publisher.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    return publisher, track


async def test_whip_h264_is_repackaged_byte_for_byte(server):
    await server.create_room("or-encoder", PW)
    publisher, track = await whip_h264(server, "or-encoder")
    try:
        admin = {"Authorization": f"Bearer {server.admin_key}"}
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{server.url}/api/rooms/or-encoder/live", headers=admin) as r:
                assert r.status == 200
                assert (await r.json())["live"]["mode"] == "passthrough"
            async with session.post(f"{server.url}/api/rooms/or-encoder/live/link", headers=admin) as r:
                url = server.url + (await r.json())["url"]
            base = url.split("index.m3u8")[0]
            playlist = await playlist_until(session, url, lambda p: len(complete(p)) >= 3)
            check_playlist(playlist)
            _, init = await fetch(session, base + playlist.segments[0].init_section.uri)
            body = init
            for segment in complete(playlist):
                status, data = await fetch(session, base + segment.uri)
                assert status == 200
                body += data
        container = av.open(io.BytesIO(body))
        samples = [bytes(p) for p in container.demux(video=0) if p.size]
        assert len(samples) >= 80
        published = [annexb_units(unit) for unit in track.sent]
        first = published.index(nal_units(samples[0]))
        assert [nal_units(s) for s in samples] == published[first:first + len(samples)]
        container = av.open(io.BytesIO(body))
        assert sum(1 for _ in container.decode(video=0)) >= len(samples) - 1
        container = av.open(io.BytesIO(body))
        container = av.open(io.BytesIO(body))
        assert container.streams.audio[0].codec_context.name == "opus"
        # ToneTrack's 160-sample frames make aiortc send an Opus packet every 120 ms.
        assert sum(1 for _ in container.decode(audio=0)) >= 15
    finally:
        await publisher.close()
