"""WHIP/WHEP sessions whose client never connects are removed after
whip_connect_timeout and stop filling the room; one token holds only a few sessions."""

from __future__ import annotations


import aiohttp
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from telemed_client import Client
from tests.media import PatternTrack
from tests.polling import until
from tests.server import start_server

NO_ICE_SERVERS = RTCConfiguration(iceServers=[])


async def offer_sdp(*directions: tuple[object, str]) -> str:
    pc = RTCPeerConnection(NO_ICE_SERVERS)
    for track, direction in directions:
        pc.addTransceiver(track, direction=direction)
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()  # this client vanishes after its POST
    return sdp


async def post(url: str, token: str, sdp: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=sdp, headers={
                "Authorization": f"Bearer {token}", "Content-Type": "application/sdp"}) as r:
            return r.status, r.headers.get("Location", ""), await r.text()


@pytest.fixture
async def reaping_server(tmp_path):
    running, runner = await start_server(str(tmp_path / "data"), whip_connect_timeout=1.5)
    yield running
    await runner.cleanup()


async def test_sessions_that_never_connect_are_reaped_and_free_the_room(reaping_server):
    server = reaping_server
    await server.create_room("or-2", "pw-123456", max_participants=2)
    # A publisher that really connects comes first and must outlive the reaping.
    good = RTCPeerConnection(NO_ICE_SERVERS)
    good.addTransceiver(PatternTrack(), direction="sendonly")
    await good.setLocalDescription(await good.createOffer())
    status, _, answer = await post(f"{server.url}/whip/or-2", await server.token("or-2", "pw-123456", "device", "OR"),
                                   good.localDescription.sdp)
    assert status == 201, answer
    await good.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    try:
        await until(lambda: good.connectionState == "connected")
        ghost_offer = await offer_sdp((PatternTrack(), "sendonly"))
        status, _, body = await post(f"{server.url}/whip/or-2",
                                     await server.token("or-2", "pw-123456", "device", "Ghost"), ghost_offer)
        assert status == 201, body
        live = server.core.live.rooms["or-2"]
        assert len(live.peers) == 2
        status, _, body = await post(f"{server.url}/whip/or-2",
                                     await server.token("or-2", "pw-123456", "device", "Third"), ghost_offer)
        assert status == 409 and '"room-full"' in body

        await until(lambda: len(live.peers) == 1)  # the ghost is gone, the connected one stays
        assert [p.name for p in live.peers.values()] == ["OR"]
        doctor = await Client.join(server.url, await server.token("or-2", "pw-123456", name="Doctor"))
        await doctor.close()
    finally:
        await good.close()


async def test_one_token_cannot_fill_a_room_with_sessions(server):
    await server.create_room("or-3", "pw-123456", max_participants=10)
    publisher = await offer_sdp((PatternTrack(), "sendonly"))
    status, _, body = await post(f"{server.url}/whip/or-3", await server.token("or-3", "pw-123456", "device"), publisher)
    assert status == 201, body
    viewer_offer = await offer_sdp(("video", "recvonly"))
    viewer = await server.token("or-3", "pw-123456", "viewer", "Trainee")
    cap = server.core.settings.whip_sessions_per_token
    locations = []
    for _ in range(cap):
        status, location, body = await post(f"{server.url}/whep/or-3", viewer, viewer_offer)
        assert status == 201, body
        locations.append(location)
    for _ in range(20):
        status, _, body = await post(f"{server.url}/whep/or-3", viewer, viewer_offer)
        assert status == 429 and '"too-many-sessions"' in body
    assert len(server.core.live.rooms["or-3"].peers) == 1 + cap

    # Another person still gets in; a DELETE gives the token a slot back.
    other = await server.token("or-3", "pw-123456", "viewer", "Other trainee")
    assert (await post(f"{server.url}/whep/or-3", other, viewer_offer))[0] == 201
    async with aiohttp.ClientSession() as session:
        async with session.delete(f"{server.url}{locations[0]}", headers={"Authorization": f"Bearer {viewer}"}) as r:
            assert r.status == 200
    assert (await post(f"{server.url}/whep/or-3", viewer, viewer_offer))[0] == 201
    # Refused offers hold no slot: after them, the other token still fills its own quota.
    for _ in range(5):
        assert (await post(f"{server.url}/whep/or-3", other, "garbage"))[0] == 400
    for _ in range(cap - 1):
        assert (await post(f"{server.url}/whep/or-3", other, viewer_offer))[0] == 201
    assert (await post(f"{server.url}/whep/or-3", other, viewer_offer))[0] == 429
