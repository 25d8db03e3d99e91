"""WebSocket upgrades: only pages of the server's own origin (and configured ones) may
open one; clients without an Origin (devices, the Python client) still can; a socket
that never joins is closed after ws_join_timeout with a reason."""

from __future__ import annotations

import json

import aiohttp
import pytest
from aiohttp import WSMsgType

from telemed_client import Client
from tests.server import start_server


@pytest.fixture
async def strict_server(tmp_path):
    running, runner = await start_server(str(tmp_path / "data"), ws_origins=["https://portal.example.org"], header_timeout=0.5,
                                         ws_join_timeout=1.0)
    yield running
    await runner.cleanup()


async def upgrade_status(url: str, origin: str | None) -> tuple[int, dict | None]:
    headers = {"Origin": origin} if origin else {}
    async with aiohttp.ClientSession() as session:
        try:
            async with session.ws_connect(f"{url}/ws", headers=headers) as ws:
                await ws.send_str(json.dumps({"type": "ping"}))
                assert json.loads((await ws.receive()).data)["type"] == "pong"
                return 101, None
        except aiohttp.WSServerHandshakeError as exc:
            async with session.get(f"{url}/ws", headers={**headers, "Connection": "Upgrade", "Upgrade": "websocket",
                                                          "Sec-WebSocket-Version": "13",
                                                          "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}) as r:
                return exc.status, await r.json()


async def test_cross_origin_upgrade_is_refused(strict_server):
    server = strict_server
    own = server.url  # http://127.0.0.1:port: what the browser sends for our own pages
    assert (await upgrade_status(server.url, own))[0] == 101
    assert (await upgrade_status(server.url, own.replace("http:", "HTTP:")))[0] == 101
    assert (await upgrade_status(server.url, "https://portal.example.org"))[0] == 101  # configured
    for foreign in ("https://evil.example", "http://127.0.0.1:1", own.replace("http:", "https:"), "null",
                    "https://portal.example.org.evil.example", "garbage"):
        status, body = await upgrade_status(server.url, foreign)
        assert status == 403, foreign
        assert body["code"] == "forbidden-origin"


async def test_clients_without_an_origin_still_join(strict_server):
    server = strict_server
    await server.create_room("no-origin", "pw-123456")
    assert (await upgrade_status(server.url, None))[0] == 101
    client = await Client.join(server.url, await server.token("no-origin", "pw-123456", name="Ambulance"))
    try:
        assert (await client.request({"type": "ping"}))["type"] == "pong"
    finally:
        await client.close()


async def test_unjoined_socket_is_closed_with_a_reason_and_a_joined_one_stays(strict_server):
    server = strict_server
    await server.create_room("idle", "pw-123456")
    joined = await Client.join(server.url, await server.token("idle", "pw-123456", name="Joined"))
    try:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"{server.url}/ws") as ws:  # opened after `joined`: expires later
                message = await ws.receive(timeout=20)
                assert message.type == WSMsgType.TEXT
                assert json.loads(message.data)["code"] == "join-timeout"
                message = await ws.receive(timeout=20)
                assert message.type == WSMsgType.CLOSE
                assert message.data == 1008 and message.extra == "join-timeout"
        assert (await joined.request({"type": "ping"}))["type"] == "pong"
    finally:
        await joined.close()
