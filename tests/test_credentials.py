"""The credential decides: roles per password, identities the server assigns, resume secrets,
room incarnations, token expiry, the maximum session age and revocation. Real server, real HTTP."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import jwt
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection

from telemed_client import Client, ClientError, fetch_token
from tests.media import PatternTrack
from tests.server import start_server
from tests.test_whip_whep import http_offer

PASSWORDS = {"participant": "part-pw-1", "viewer": "view-pw-1", "device": "dev-pw-1"}
HOST_PW = "host-pw-1"


async def post(url: str, body: dict, headers: dict | None = None) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json=body, headers=headers or {}) as r:
            return r.status, await r.json(content_type=None)


async def get(url: str, token: str) -> int:
    async with aiohttp.ClientSession() as session:
        async with session.get(url, headers={"Authorization": f"Bearer {token}"}) as r:
            await r.read()
            return r.status


async def ask(server, room: str, body: dict) -> tuple[int, dict]:
    return await post(f"{server.url}/api/rooms/{room}/token", body)


@pytest.fixture
async def short_tokens(tmp_path):
    """A server whose tokens live 4 s (3 to 4 s: token times are whole seconds)."""
    running, runner = await start_server(str(tmp_path / "short"), token_ttl=4)
    yield running
    await runner.cleanup()


@pytest.fixture
async def short_sessions(tmp_path):
    """A server whose tokens would live 10 min, but whose sessions may last 2 s in all."""
    running, runner = await start_server(str(tmp_path / "short"), token_ttl=600, max_session_age=2)
    yield running
    await runner.cleanup()


async def test_each_password_yields_its_own_role_and_never_more(server):
    await server.create_room("ward", HOST_PW, passwords=PASSWORDS)
    for password, role in [(HOST_PW, "host"), *((pw, r) for r, pw in PASSWORDS.items())]:
        status, body = await ask(server, "ward", {"password": password, "name": "Dr B"})
        assert (status, body["role"]) == (200, role)
        claims = jwt.decode(body["token"], options={"verify_signature": False})
        assert claims["cred"] == f"password:{role}" and body["expires_at"] == claims["exp"]
        assert set(body) == {"token", "expires_in", "expires_at", "identity", "role", "grants", "ice_servers"}
    # A credential may ask for less than it gives ...
    for password, wanted in [(HOST_PW, "device"), (PASSWORDS["participant"], "viewer"),
                             (PASSWORDS["participant"], "device")]:
        status, body = await ask(server, "ward", {"password": password, "role": wanted})
        assert (status, body["role"]) == (200, wanted)
    # ... never more, and viewer and device do not cover each other.
    for password, wanted in [(PASSWORDS["viewer"], "host"), (PASSWORDS["viewer"], "participant"),
                             (PASSWORDS["participant"], "host"), (PASSWORDS["device"], "host"),
                             (PASSWORDS["viewer"], "device"), (PASSWORDS["device"], "viewer")]:
        status, body = await ask(server, "ward", {"password": password, "role": wanted})
        assert (status, body["code"]) == (403, "role-not-allowed"), (password, wanted)
        assert "error" in body


async def test_room_passwords_per_role_are_checked_at_creation(server):
    headers = {"Authorization": f"Bearer {server.admin_key}"}
    bad = [{"viewer": HOST_PW}, {"viewer": "same-pw-9", "device": "same-pw-9"}, {"host": "x-pw-123"},
           {"viewer": ""}, {"viewer": 7}, ["viewer"]]
    for passwords in bad:
        status, body = await post(f"{server.url}/api/rooms",
                                  {"name": "r1", "password": HOST_PW, "passwords": passwords}, headers)
        assert (status, body["code"]) == (400, "bad-request"), passwords
    room = await server.core.store.get("r1")
    assert room is None


async def test_identity_is_assigned_by_the_server_and_names_are_checked(server):
    await server.create_room("clinic", HOST_PW)
    status, body = await ask(server, "clinic", {"password": HOST_PW, "identity": "dr-victim"})
    assert (status, body["code"]) == (400, "identity-not-allowed")
    first = await fetch_token(server.url, "clinic", HOST_PW, "participant", "Dr 李")
    second = await fetch_token(server.url, "clinic", HOST_PW, "participant", "Dr 李")
    assert first["identity"] != second["identity"]
    client = await Client.join(server.url, first["token"])
    try:
        assert (client.info["identity"], client.info["name"]) == (first["identity"], "Dr 李")
    finally:
        await client.close()
    for name in ["", "   ", "a" * 65, "Dr\nEvil", "Dr\x00", "bell\x07", 42, ["x"]]:
        status, body = await ask(server, "clinic", {"password": HOST_PW, "name": name})
        assert (status, body["code"]) == (400, "bad-name"), name
    status, body = await ask(server, "clinic", {"password": HOST_PW, "name": "a" * 64})
    assert status == 200


async def test_a_viewer_cannot_end_someone_elses_whip_session(server):
    await server.create_room("theatre", HOST_PW, passwords=PASSWORDS)
    camera = await fetch_token(server.url, "theatre", PASSWORDS["device"], name="OR camera")
    publisher = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    publisher.addTransceiver(PatternTrack(), direction="sendonly")
    try:
        status, location, _ = await http_offer(f"{server.url}/whip/theatre", camera["token"], publisher)
        assert status == 201
        # Whatever the viewer types, it gets an identity of its own, so the session is not its.
        status, body = await ask(server, "theatre", {"password": PASSWORDS["viewer"], "name": "OR camera",
                                                     "identity": camera["identity"]})
        assert (status, body["code"]) == (400, "identity-not-allowed")
        viewer = await fetch_token(server.url, "theatre", PASSWORDS["viewer"], name="OR camera")
        assert viewer["identity"] != camera["identity"]
        async with aiohttp.ClientSession() as session:
            async with session.delete(f"{server.url}{location}",
                                      headers={"Authorization": f"Bearer {viewer['token']}"}) as r:
                assert r.status == 403
        assert server.core.live.rooms["theatre"].router.producers
    finally:
        await publisher.close()


async def test_resume_needs_the_secret_only_that_session_got(server):
    await server.create_room("icu", HOST_PW)
    token = await server.token("icu", HOST_PW, "participant", "Dr A")
    victim = await Client.join(server.url, token)
    others: list[Client] = []
    try:
        secret = victim.info["resume_secret"]
        assert isinstance(secret, str) and len(secret) >= 24
        seat = {"resume": victim.peer_id}
        for extra, code in [({}, "bad-request"), ({"resume_secret": "guess"}, "forbidden"),
                            ({"resume_secret": secret[:-1] + ("A" if secret[-1] != "A" else "B")}, "forbidden")]:
            with pytest.raises(ClientError) as err:
                await Client.join(server.url, token, resume={**seat, **extra})
            assert err.value.code == code
        # The same secret is useless to another identity.
        stranger = await server.token("icu", HOST_PW, "participant", "Dr A")
        with pytest.raises(ClientError) as err:
            await Client.join(server.url, stranger, resume={**seat, "resume_secret": secret})
        assert err.value.code == "forbidden"
        live = server.core.live.rooms["icu"]
        assert list(live.peers) == [victim.peer_id]
        assert (await victim.request({"type": "ping"}))["type"] == "pong"
        # With the secret, the seat moves.
        others.append(await Client.join(server.url, token, resume=victim.resume_ticket))
        kicked = await victim.wait_event("kicked")
        assert kicked["reason"] == "resumed elsewhere"
        with pytest.raises(ClientError) as err:  # the old socket can no longer extend the grant
            await victim.refresh_token()
        assert err.value.code == "not-joined"
        assert list(live.peers) == [others[0].peer_id]
        assert others[0].info["resume_secret"] != secret
    finally:
        for client in (victim, *others):
            await client.close()


async def test_a_recreated_room_refuses_old_tokens(server):
    await server.create_room("or-4", HOST_PW)
    old = await server.token("or-4", HOST_PW, "host")
    assert await get(f"{server.url}/api/rooms/or-4", old) == 200
    async with aiohttp.ClientSession() as session:
        async with session.delete(f"{server.url}/api/rooms/or-4",
                                  headers={"Authorization": f"Bearer {server.admin_key}"}) as r:
            assert r.status == 204
    await server.create_room("or-4", HOST_PW)  # same name, even the same password
    assert await get(f"{server.url}/api/rooms/or-4", old) == 401
    with pytest.raises(ClientError) as err:
        await Client.join(server.url, old)
    assert err.value.code == "unauthorized"
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{server.url}/whip/or-4", data="v=0\r\n",
                                headers={"Authorization": f"Bearer {old}", "Content-Type": "application/sdp"}) as r:
            assert r.status == 401
    fresh = await server.token("or-4", HOST_PW, "host")
    assert await get(f"{server.url}/api/rooms/or-4", fresh) == 200


async def test_a_session_whose_token_expires_is_closed(short_tokens):
    await short_tokens.create_room("night", HOST_PW)
    client = await Client.join(short_tokens.url, await short_tokens.token("night", HOST_PW, "participant"),
                               keep_token_fresh=False)
    try:
        live = short_tokens.core.live.rooms["night"]
        assert client.peer_id in live.peers
        kicked = await client.wait_event("kicked", timeout=20)
        assert kicked["reason"] == "token expired"
        assert time.time() > client.info["token_expires_at"] - 1  # not before its time
        assert client.peer_id not in live.peers
        await asyncio.wait_for(client._reader, 10)  # the server closes the socket too
    finally:
        await client.close()


async def test_refresh_cannot_outlive_the_maximum_session_age(short_sessions):
    await short_sessions.create_room("long", HOST_PW)
    token = await short_sessions.token("long", HOST_PW, "host")
    signed_in = jwt.decode(token, options={"verify_signature": False})["auth_time"]
    client = await Client.join(short_sessions.url, token, keep_token_fresh=False)
    try:
        assert client.info["token_expires_at"] == signed_in + 2
        fresh = await client.refresh_token()
        assert fresh["expires_at"] == signed_in + 2  # not now + 600
        kicked = await client.wait_event("kicked", timeout=20)
        assert kicked["reason"] == "token expired"
        # A new sign-in starts a new session.
        again = jwt.decode(await short_sessions.token("long", HOST_PW, "host"), options={"verify_signature": False})
        assert again["exp"] > signed_in + 2
    finally:
        await client.close()


async def test_the_python_client_keeps_its_session_alive_by_refreshing(tmp_path):
    # Tokens of 8 s: the client renews at half-life, which leaves seconds to spare.
    running, runner = await start_server(str(tmp_path / "refreshing"), token_ttl=8)
    await running.create_room("day", HOST_PW)
    first_token = await running.token("day", HOST_PW, "participant")
    client = await Client.join(running.url, first_token)
    try:
        first_expiry = client.info["token_expires_at"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and time.time() < first_expiry + 3:
            assert (await client.request({"type": "ping"}))["type"] == "pong"
            await asyncio.sleep(0.5)
        assert time.time() >= first_expiry + 3  # past the first token's expiry, still in
        assert client.token != first_token  # renewed by the client itself
        assert client.peer_id in running.core.live.rooms["day"].peers
        assert not any(e.get("type") == "kicked" for e in list(client.events._queue))
    finally:
        await client.close()
        await runner.cleanup()


async def test_a_revoked_token_is_refused_everywhere(server):
    await server.create_room("ward-9", HOST_PW)
    token = await server.token("ward-9", HOST_PW, "participant")
    client = await Client.join(server.url, token)
    try:
        claims = await server.core.verify(token)
        assert claims.token_id and claims.credential == "password:host"
        await server.core.revoke(claims)
        assert await get(f"{server.url}/api/rooms/ward-9", token) == 401
        with pytest.raises(ClientError) as err:
            await Client.join(server.url, token)
        assert err.value.code == "unauthorized"
        with pytest.raises(ClientError) as err:  # the joined session can no longer extend it
            await client.refresh_token()
        assert err.value.code == "unauthorized"
        other = await server.token("ward-9", HOST_PW, "participant")
        assert await get(f"{server.url}/api/rooms/ward-9", other) == 200
    finally:
        await client.close()


async def test_an_unknown_room_and_a_wrong_password_look_alike(server):
    await server.create_room("real", HOST_PW)
    missing = await ask(server, "nosuch", {"password": HOST_PW})
    wrong = await ask(server, "real", {"password": "wrong-pw-1"})
    assert missing == wrong == (401, {"error": "wrong room or password", "code": "unauthorized"})
    status, body = await ask(server, "real", {"password": HOST_PW, "invite": "x"})
    assert (status, body["code"]) == (400, "bad-request")
    status, body = await ask(server, "real", {"name": "no credential"})
    assert (status, body["code"]) == (401, "unauthorized")
