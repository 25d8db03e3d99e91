"""Consent freshness (RFC 7675) for peers that never answer consent checks, such as
FFmpeg's WHIP muxer: authenticated media keeps their session; without it, it ends."""

from __future__ import annotations

import asyncio

import aioice.ice
import pytest

from telemed_client import Client
from tests.media import PatternTrack
from tests.test_forwarding import frames


def stop_answering_stun_once_connected(client: Client) -> None:
    """The client's ICE agent answers connectivity checks, then ignores every binding
    request from the moment it is connected: consent checks start later than that."""
    @client.pc.on("connectionstatechange")
    def connected() -> None:
        if client.pc.connectionState == "connected":
            connection = client.pc.getTransceivers()[0].sender.transport.transport._connection
            connection.request_received = lambda *args: None


async def server_state(server, room: str, peer_id: str, want: set[str], timeout: float) -> str:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        peer = server.core.live.rooms[room].peers.get(peer_id)
        state = peer.connection.pc.connectionState if peer and peer.connection else "gone"
        if state in want or asyncio.get_running_loop().time() > deadline:
            return state
        await asyncio.sleep(0.1)


@pytest.fixture
def fast_consent(monkeypatch):
    # Checks every ~0.5 s, so six misses (expiry) take ~3 s instead of ~30 s.
    monkeypatch.setattr(aioice.ice, "CONSENT_INTERVAL", 0.5)


async def test_media_keeps_a_consentless_publisher(server, fast_consent):
    await server.create_room("ffmpeg", "pw-123456")
    publisher = await Client.join(server.url, await server.token("ffmpeg", "pw-123456", name="OR"))
    viewer = await Client.join(server.url, await server.token("ffmpeg", "pw-123456", name="Trainee"))
    try:
        stop_answering_stun_once_connected(publisher)
        track_id = await publisher.publish(PatternTrack(), "camera")
        track = await viewer.subscribe(track_id)
        # Six missed checks (~0.5 s apart, each waiting out its 0.5 s timeout) would end
        # the session after about 6 s; media still flows well past that.
        for _ in range(10):
            await frames(track, 30)
        assert await server_state(server, "ffmpeg", publisher.peer_id, {"failed", "closed", "gone"},
                                  timeout=0) == "connected"
    finally:
        await viewer.close()
        await publisher.close()


async def test_without_media_consent_expires(server, fast_consent):
    await server.create_room("gone", "pw-123456")
    # A client that resumed would be connected again, on purpose: this one stays gone.
    publisher = await Client.join(server.url, await server.token("gone", "pw-123456", name="OR"),
                                  auto_resume=False)
    try:
        stop_answering_stun_once_connected(publisher)
        await publisher.publish(PatternTrack(), "camera")
        assert await server_state(server, "gone", publisher.peer_id, {"connected"}, timeout=10) == "connected"
        await publisher.pc.getTransceivers()[0].sender.stop()  # no more RTP or RTCP
        state = await server_state(server, "gone", publisher.peer_id, {"failed", "closed", "gone"},
                                   timeout=20)
        assert state in {"failed", "closed", "gone"}
    finally:
        await publisher.close()
