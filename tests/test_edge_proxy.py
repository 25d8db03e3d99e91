"""Behind a trusted reverse proxy the client's address, scheme and host come from
X-Forwarded-*; from anyone else those headers are ignored."""

from __future__ import annotations

import aiohttp
import pytest

from tests.server import start_server


@pytest.fixture(params=[True, False], ids=["trusted", "untrusted"])
async def proxied(request, tmp_path):
    running, runner = await start_server(str(tmp_path / "data"),
                                         trusted_proxies=["127.0.0.1"] if request.param else [])
    yield running, request.param
    await runner.cleanup()


async def test_the_public_origin_comes_from_the_proxy(proxied):
    server, trusted = proxied
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "consult.hospital.example",
                 "X-Forwarded-For": "198.51.100.7", "Origin": "https://consult.hospital.example"}
    async with aiohttp.ClientSession() as session:
        try:
            async with session.ws_connect(f"{server.url}/ws", headers=forwarded):
                upgraded = True
        except aiohttp.WSServerHandshakeError as exc:
            assert exc.status == 403
            upgraded = False
    assert upgraded is trusted


async def test_login_limits_see_the_forwarded_client(proxied):
    server, trusted = proxied
    await server.create_room("behind-proxy", "pw-123456")
    url = f"{server.url}/api/rooms/behind-proxy/token"
    async with aiohttp.ClientSession() as session:
        for attempt in range(30):  # one client guesses until it is locked out
            async with session.post(url, json={"password": f"guess-{attempt}"},
                                    headers={"X-Forwarded-For": "203.0.113.1"}) as r:
                if r.status == 429:
                    break
                assert r.status == 401
        else:
            pytest.fail("never locked out")
        # The locked-out client cannot escape by writing another address in front of the
        # one the proxy appended: only the right-most untrusted entry counts.
        async with session.post(url, json={"password": "pw-123456"},
                                headers={"X-Forwarded-For": "198.51.100.2, 203.0.113.1"}) as r:
            assert r.status == 429
        # A different client behind the same proxy still gets in, if the proxy is believed.
        async with session.post(url, json={"password": "pw-123456"},
                                headers={"X-Forwarded-For": "203.0.113.1, 198.51.100.2"}) as r:
            assert (r.status == 200) is trusted, await r.text()
