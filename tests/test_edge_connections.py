"""Per-address connection caps and the request-head timeout, against the real server
and its runner: a flood of half-sent requests from one address is turned away with
429 while keep-alive and other clients go on."""

from __future__ import annotations

import json

import aiohttp
import pytest

from tests.polling import until
from tests.raw_http import closed_by_peer, open_stream, read_response
from tests.server import start_server

PARTIAL_HEAD = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


@pytest.fixture
async def capped(tmp_path):
    running, runner = await start_server(str(tmp_path / "data"), max_connections_per_address=20)
    yield running, runner
    await runner.cleanup()


async def test_half_sent_requests_beyond_the_cap_are_refused(capped):
    server, runner = capped
    streams = []
    try:
        for _ in range(20):
            reader, writer = await open_stream(server.url)
            writer.write(PARTIAL_HEAD)
            streams.append((reader, writer))
        await until(lambda: runner.caps.open.get("127.0.0.1") == 20)
        refused = []
        for _ in range(20):
            reader, writer = await open_stream(server.url)
            writer.write(PARTIAL_HEAD)
            refused.append(await read_response(reader))
            assert await closed_by_peer(reader) == b""
            writer.close()
        assert {r.status for r in refused} == {429}
        assert all(r.json()["code"] == "too-many-connections" for r in refused)
        assert all(r.headers["retry-after"] == "1" for r in refused)
        assert runner.caps.open["127.0.0.1"] == 20 and runner.caps.refused == 20

        reader, writer = streams.pop()
        writer.close()
        await until(lambda: runner.caps.open.get("127.0.0.1") == 19)
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{server.url}/healthz") as r:
                assert r.status == 200
    finally:
        for _, writer in streams:
            writer.close()
    await until(lambda: "127.0.0.1" not in runner.caps.open)


async def test_keep_alive_counts_once(capped):
    server, runner = capped
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector) as session:
        for _ in range(50):  # far more requests than the cap, over one connection
            async with session.get(f"{server.url}/api/config") as r:
                assert r.status == 200
                assert runner.caps.open["127.0.0.1"] == 1


async def test_a_trusted_proxy_is_not_capped(tmp_path):
    server, runner = await start_server(str(tmp_path / "data"), max_connections_per_address=2,
                                        trusted_proxies=["127.0.0.0/8"])
    streams = []
    try:
        for _ in range(5):
            reader, writer = await open_stream(server.url)
            writer.write(PARTIAL_HEAD)
            streams.append(writer)
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{server.url}/healthz") as r:
                assert r.status == 200
        assert runner.caps.refused == 0
    finally:
        for writer in streams:
            writer.close()
        await runner.cleanup()


async def test_a_request_head_that_never_ends_is_dropped(tmp_path):
    server, runner = await start_server(str(tmp_path / "data"), header_timeout=0.5)
    try:
        reader, writer = await open_stream(server.url)
        writer.write(PARTIAL_HEAD)  # ... and nothing more
        await closed_by_peer(reader)
        writer.close()
        # A complete request on a fresh connection is answered, and keep-alive serves a second one.
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
            for _ in range(2):
                async with session.get(f"{server.url}/healthz") as r:
                    assert json.loads(await r.text())["status"] == "ok"
    finally:
        await runner.cleanup()
