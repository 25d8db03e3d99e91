"""Everyone knows when a room is recorded: the device client (attribute and callback,
also for a late joiner) and a WHEP viewer (a header on its 201 and a pollable link)."""

from __future__ import annotations

import asyncio

import aiohttp
from aiortc import RTCPeerConnection

from telemed_client import Client
from tests.media import PatternTrack
from tests.test_whip_whep import NO_ICE_SERVERS

ROOM, PASSWORD = "consent", "pw-123456"


async def rest(server, method: str, path: str) -> dict:
    async with aiohttp.ClientSession() as http, http.request(
            method, f"{server.url}/api/rooms/{ROOM}/recordings{path}",
            headers={"Authorization": f"Bearer {server.admin_key}"}) as response:
        assert response.status in (200, 201), await response.text()
        return (await response.json())["recording"]


async def test_device_client_knows_at_once_and_on_change(server):
    await server.create_room(ROOM, PASSWORD)
    device = await Client.join(server.url, await server.token(ROOM, PASSWORD, "device", "Ambulance 7"))
    late = None
    try:
        assert device.recording is None
        changes: list[dict | None] = []
        changed = asyncio.Event()
        device.on_recording = lambda recording: (changes.append(recording), changed.set())

        started = await rest(server, "POST", "")
        await asyncio.wait_for(changed.wait(), 10)
        assert device.recording["id"] == started["id"]
        assert device.recording["by"] == "admin"

        late = await Client.join(server.url, await server.token(ROOM, PASSWORD, "viewer", "Trainee"))
        assert late.recording["id"] == started["id"]  # from `joined`, before any notice

        changed.clear()
        await rest(server, "POST", f"/{started['id']}/stop")
        await asyncio.wait_for(changed.wait(), 10)
        assert device.recording is None
        assert [c and c["id"] for c in changes] == [started["id"], None]
    finally:
        await device.close()
        if late is not None:
            await late.close()


async def test_whep_viewer_is_told_and_can_poll(server):
    await server.create_room(ROOM, PASSWORD)
    publisher = await Client.join(server.url, await server.token(ROOM, PASSWORD, "participant", "Dr. A"))
    viewer = RTCPeerConnection(NO_ICE_SERVERS)
    try:
        await publisher.publish(PatternTrack())
        started = await rest(server, "POST", "")
        viewer.addTransceiver("video", direction="recvonly")
        token = await server.token(ROOM, PASSWORD, "viewer", "Trainee")
        await viewer.setLocalDescription(await viewer.createOffer())
        auth = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{server.url}/whep/{ROOM}", data=viewer.localDescription.sdp,
                                 headers={**auth, "Content-Type": "application/sdp"}) as r:
                assert r.status == 201
                assert r.headers["Recording"] == f'?1;id="{started["id"]}"'
                link = r.links.get("urn:telemed:recording")
                location = r.headers["Location"]
            assert link is not None and str(link["url"]) == f"{server.url}{location}/recording"
            state_url = f"{server.url}{location}/recording"

            async with http.get(state_url, headers=auth) as r:
                assert r.status == 200
                assert (await r.json())["recording"]["id"] == started["id"]
                etag = r.headers["ETag"]
            async with http.get(state_url, headers={**auth, "If-None-Match": etag}) as r:
                assert r.status == 304

            await rest(server, "POST", f"/{started['id']}/stop")
            async with http.get(state_url, headers={**auth, "If-None-Match": etag}) as r:
                assert r.status == 200 and (await r.json())["recording"] is None
            async with http.options(state_url) as r:
                assert r.status == 204 and r.headers["Allow"] == "GET, OPTIONS"
            # Only the session's own token may ask.
            other = await server.token(ROOM, PASSWORD, "viewer", "Someone else")
            async with http.get(state_url, headers={"Authorization": f"Bearer {other}"}) as r:
                assert r.status == 403
            async with http.get(state_url) as r:
                assert r.status == 401
            async with http.delete(f"{server.url}{location}", headers=auth) as r:
                assert r.status == 200
            async with http.get(state_url, headers=auth) as r:
                assert r.status == 404
    finally:
        await viewer.close()
        await publisher.close()
