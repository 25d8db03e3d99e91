"""Request bodies are read whole, however the network splits them, and capped per
route: 413 `too-large` beyond the cap, 408 `body-timeout` when they trickle in."""

from __future__ import annotations

import json

import aiohttp
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection

from tests.media import PatternTrack
from tests.raw_http import open_stream, read_response, request_in_segments
from tests.server import start_server

NO_ICE_SERVERS = RTCConfiguration(iceServers=[])


def halves(data: bytes) -> list[bytes]:
    return [data[: len(data) // 2], data[len(data) // 2:]]


async def test_token_request_in_two_segments(server):
    await server.create_room("split", "pw-123456")
    body = json.dumps({"password": "pw-123456", "role": "participant", "name": "Dr. Split"}).encode()
    response = await request_in_segments(server.url, "POST", "/api/rooms/split/token",
                                          {"Content-Type": "application/json"}, halves(body))
    assert response.status == 200, response.body
    assert response.json()["token"]


async def test_room_creation_in_three_segments(server):
    body = json.dumps({"name": "made-slowly", "password": "pw-123456"}).encode()
    third = len(body) // 3
    response = await request_in_segments(
        server.url, "POST", "/api/rooms",
        {"Content-Type": "application/json", "Authorization": f"Bearer {server.admin_key}"},
        [body[:third], body[third:2 * third], body[2 * third:]])
    assert response.status == 201, response.body
    assert await server.core.room("made-slowly") is not None


async def test_whip_offer_and_patch_in_two_segments(server):
    await server.create_room("split-whip", "pw-123456")
    token = await server.token("split-whip", "pw-123456", role="device", name="OR camera")
    pc = RTCPeerConnection(NO_ICE_SERVERS)
    pc.addTransceiver(PatternTrack(), direction="sendonly")
    try:
        await pc.setLocalDescription(await pc.createOffer())
        auth = {"Authorization": f"Bearer {token}"}
        response = await request_in_segments(server.url, "POST", "/whip/split-whip",
                                              {**auth, "Content-Type": "application/sdp"},
                                              halves(pc.localDescription.sdp.encode()))
        assert response.status == 201, response.body
        assert response.body.startswith(b"v=0")
        location = response.headers["location"]
        fragment = b"a=mid:0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\r\n"
        response = await request_in_segments(server.url, "PATCH", location,
                                              {**auth, "Content-Type": "application/trickle-ice-sdpfrag"},
                                              halves(fragment))
        assert response.status == 204, response.body
    finally:
        await pc.close()


async def test_chunked_body_is_read_whole(server):
    await server.create_room("chunked", "pw-123456")
    body = json.dumps({"password": "pw-123456", "name": "Chunky"}).encode()

    async def pieces():
        for piece in halves(body):
            yield piece

    async with aiohttp.ClientSession() as session:  # an async generator body goes out chunked
        async with session.post(f"{server.url}/api/rooms/chunked/token", data=pieces(),
                                headers={"Content-Type": "application/json"}) as r:
            assert r.status == 200, await r.text()


async def test_json_body_over_the_cap_is_413(server):
    await server.create_room("big", "pw-123456")
    limit = server.core.settings.max_json_body
    big = json.dumps({"password": "pw-123456", "name": "x" * limit}).encode()
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{server.url}/api/rooms/big/token", data=big,
                                headers={"Content-Type": "application/json"}) as r:
            assert r.status == 413
            assert (await r.json())["code"] == "too-large"

        async def chunks():  # no Content-Length: the cap must hold while reading
            for _ in range(limit // 1024 + 2):
                yield b" " * 1024

        async with session.post(f"{server.url}/api/rooms/big/token", data=chunks(),
                                headers={"Content-Type": "application/json"}) as r:
            assert r.status == 413
            assert (await r.json())["code"] == "too-large"


async def test_sdp_cap_is_larger_than_the_json_cap(server):
    await server.create_room("sdp-cap", "pw-123456")
    token = await server.token("sdp-cap", "pw-123456", role="device")
    settings = server.core.settings
    assert settings.max_sdp_body > settings.max_json_body
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/sdp"}
    async with aiohttp.ClientSession() as session:
        # Between the two caps: not refused for size, refused for being no SDP
        between = b"v=0\r\n" + b"a=x\r\n" * ((settings.max_json_body + 1000) // 6)
        async with session.post(f"{server.url}/whip/sdp-cap", data=between, headers=headers) as r:
            assert r.status == 400 and (await r.json())["code"] == "bad-sdp"
        async with session.post(f"{server.url}/whip/sdp-cap", data=b"v" * (settings.max_sdp_body + 1),
                                headers=headers) as r:
            assert r.status == 413 and (await r.json())["code"] == "too-large"


@pytest.fixture
async def impatient_server(tmp_path):
    running, runner = await start_server(str(tmp_path / "data"), body_timeout=0.5)
    yield running
    await runner.cleanup()


async def test_body_that_stops_arriving_is_408(impatient_server):
    server = impatient_server
    await server.create_room("slow", "pw-123456")
    reader, writer = await open_stream(server.url)
    try:
        writer.write(b"POST /api/rooms/slow/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n{\"password\": ")
        await writer.drain()
        response = await read_response(reader)  # the rest never comes
        assert response.status == 408
        assert response.json()["code"] == "body-timeout"
    finally:
        writer.close()
