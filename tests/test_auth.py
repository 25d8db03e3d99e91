"""Wrong password, bad tokens and a viewer trying to publish are each refused."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import jwt
import pytest

from telemed_client import Client, ClientError, fetch_token
from tests.media import PatternTrack


async def post(url: str, body: dict, headers: dict | None = None) -> tuple[int, dict, dict]:
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json=body, headers=headers or {}) as r:
            return r.status, await r.json(content_type=None), dict(r.headers)


async def test_wrong_password_is_401_then_rate_limited(server):
    await server.create_room("ward", "right-password")
    url = f"{server.url}/api/rooms/ward/token"
    for _ in range(5):
        status, body, _ = await post(url, {"password": "nope", "role": "participant"})
        assert status == 401 and body["code"] == "unauthorized"
    status, body, headers = await post(url, {"password": "right-password"})
    assert status == 429 and int(headers["Retry-After"]) > 0
    # another room is not locked by failures on this one
    await server.create_room("ward2", "right-password")
    status, _, _ = await post(f"{server.url}/api/rooms/ward2/token", {"password": "right-password"})
    assert status == 200


async def test_unknown_room_and_bad_bodies(server):
    status, body, _ = await post(f"{server.url}/api/rooms/nosuch/token", {"password": "x"})
    assert status == 401  # no hint whether the room exists
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{server.url}/api/rooms/x/token", data=b"{not json") as r:
            assert r.status == 400 and (await r.json())["code"] == "bad-json"
        async with session.post(f"{server.url}/api/rooms", json={"name": "a b", "password": "p"},
                                headers={"Authorization": f"Bearer {server.admin_key}"}) as r:
            assert r.status == 400 and "error" in await r.json()
        async with session.post(f"{server.url}/api/rooms", json={"name": "ok", "password": "p"}) as r:
            assert r.status == 401  # the admin key is configured


async def test_password_is_never_stored_in_clear(server):
    await server.create_room("hashed", "clear-text-pw")
    room = await server.core.store.get("hashed")
    assert "clear-text-pw" not in room.password_hash and room.password_hash.startswith("scrypt$")
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{server.url}/api/rooms/hashed",
                               headers={"Authorization": f"Bearer {server.admin_key}"}) as r:
            assert "password" not in str(await r.json())


@pytest.mark.parametrize("case", ["forged", "expired", "garbage", "wrong-room"])
async def test_bad_tokens_are_refused(server, case):
    await server.create_room("icu", "pw-123456")
    await server.create_room("other", "pw-123456")
    good = await server.token("icu", "pw-123456")
    claims = jwt.decode(good, options={"verify_signature": False})
    token = {
        "forged": jwt.encode(claims, "another-secret-that-is-long-enough-000000", algorithm="HS256"),
        "expired": jwt.encode({**claims, "exp": int(time.time()) - 60}, "s" * 48, algorithm="HS256"),
        "garbage": "not.a.token",
        "wrong-room": good,
    }[case]
    room = "other" if case == "wrong-room" else "icu"
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{server.url}/api/rooms/{room}",
                               headers={"Authorization": f"Bearer {token}"}) as r:
            assert r.status == (403 if case == "wrong-room" else 401)
            assert "error" in await r.json()
        async with session.post(f"{server.url}/whip/{room}", data="v=0\r\n",
                                headers={"Authorization": f"Bearer {token}",
                                         "Content-Type": "application/sdp"}) as r:
            assert r.status == (403 if case == "wrong-room" else 401)
    if case != "wrong-room":
        with pytest.raises(ClientError) as err:
            await Client.join(server.url, token)
        assert err.value.code == "unauthorized"


async def test_viewer_cannot_publish(server):
    await server.create_room("lecture", "pw-123456")
    viewer = await Client.join(server.url, await server.token("lecture", "pw-123456", role="viewer"))
    try:
        with pytest.raises(ClientError) as err:
            await viewer.publish(PatternTrack())
        assert err.value.code == "forbidden"
        assert not server.core.live.rooms["lecture"].router.producers
        # over WHIP too
        token = await server.token("lecture", "pw-123456", role="viewer")
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{server.url}/whip/lecture", data="v=0\r\n",
                                    headers={"Authorization": f"Bearer {token}",
                                             "Content-Type": "application/sdp"}) as r:
                assert r.status == 403
        # the viewer's session is still usable afterwards
        assert (await viewer.request({"type": "ping"}))["type"] == "pong"
    finally:
        await viewer.close()


async def test_only_host_sets_layout(server):
    await server.create_room("theatre", "pw-123456")
    host = await Client.join(server.url, await server.token("theatre", "pw-123456", role="host"))
    guest = await Client.join(server.url, await server.token("theatre", "pw-123456"))
    try:
        with pytest.raises(ClientError) as err:
            await guest.request({"type": "set-layout", "layout": {"preset": "grid"}})
        assert err.value.code == "forbidden"
        await host.set_layout({"preset": "surgery"})
        event = await guest.wait_event("layout")
        assert event["layout"]["preset"] == "surgery"
        late = await Client.join(server.url, await server.token("theatre", "pw-123456"))
        assert late.layout["preset"] == "surgery"
        await late.close()
    finally:
        await host.close()
        await guest.close()


async def test_token_response_shape(server):
    await server.create_room("shape", "pw-123456")
    data = await fetch_token(server.url, "shape", "pw-123456", role="device", name="Ambulance 7")
    assert data["grants"] == {"publish": True, "subscribe": False, "data": True, "admin": False,
                              "recordings": False}
    assert data["expires_in"] > 0


async def test_a_joined_session_refreshes_its_token(server):
    await server.create_room("long-consult", "pw-123456")
    token = await server.token("long-consult", "pw-123456", role="host", name="Dr Ada")
    client = await Client.join(server.url, token)
    try:
        joined_until = client.info["token_expires_at"]
        assert joined_until > time.time()
        await asyncio.sleep(1.1)  # token times are whole seconds
        fresh = await client.refresh_token()
        assert fresh["expires_at"] > joined_until and client.token == fresh["token"]
        again = await Client.join(server.url, fresh["token"])
        assert (again.info["role"], again.info["name"], again.info["room"]) == ("host", "Dr Ada", "long-consult")
        assert again.info["identity"] == client.info["identity"]
        await again.close()
    finally:
        await client.close()


async def test_refresh_token_before_join_is_refused(server):
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(server.url.replace("http", "ws", 1) + "/ws") as ws:
            await ws.send_json({"type": "refresh-token", "id": 1})
            reply = await ws.receive_json(timeout=5)
            assert (reply["type"], reply["code"], reply["id"]) == ("error", "not-joined", 1)
