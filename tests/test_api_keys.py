"""API keys for hospital systems: made and revoked with the admin key, stored hashed, and able
to create rooms and mint tokens for identities the hospital vouches for."""

from __future__ import annotations

import asyncio
import hashlib
import uuid

import aiohttp
import jwt
import pytest

from telemed_client import Client, ClientError, create_room, fetch_token
from tests.redis_server import redis_url  # noqa: F401  (fixture)
from tests.server import start_server


async def call(method: str, url: str, body: dict | None = None, token: str | None = None) -> tuple[int, dict | None]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as session:
        async with session.request(method, url, json=body, headers=headers) as r:
            return r.status, (await r.json(content_type=None)) if r.status != 204 else None


async def new_key(server, name: str = "Portal") -> str:
    status, made = await call("POST", f"{server.url}/api/keys", {"name": name}, server.admin_key)
    assert status == 201, made
    return f"{made['key_id']}.{made['secret']}"


async def test_a_portal_creates_a_room_and_mints_tokens_for_its_users(server):
    status, made = await call("POST", f"{server.url}/api/keys", {"name": "City portal"}, server.admin_key)
    assert status == 201 and set(made) == {"key_id", "name", "created_at", "revoked", "secret"}
    key = f"{made['key_id']}.{made['secret']}"
    stored = await server.core.credentials.get_api_key(made["key_id"])
    assert made["secret"] not in repr(stored) and made["secret"] not in str(stored.to_record())
    assert stored.secret_sha256 == hashlib.sha256(made["secret"].encode()).hexdigest()

    await create_room(server.url, "portal-room", "host-pw-1", admin_key=key)
    token = await fetch_token(server.url, "portal-room", role="participant", name="Dr Ng",
                              identity="emp-4711", api_key=key)
    assert (token["identity"], token["role"]) == ("emp-4711", "participant")
    claims = jwt.decode(token["token"], options={"verify_signature": False})
    assert claims["cred"] == f"apikey:{made['key_id']}"
    client = await Client.join(server.url, token["token"])
    try:
        assert (client.info["identity"], client.info["name"]) == ("emp-4711", "Dr Ng")
    finally:
        await client.close()
    url = f"{server.url}/api/rooms/portal-room/token"
    assert (await call("POST", url, {"name": "x"}, key))[1]["code"] == "bad-request"  # no role named
    status, body = await call("POST", url, {"role": "host", "identity": "a\nb"}, key)
    assert (status, body["code"]) == (400, "bad-request")
    status, body = await call("POST", f"{server.url}/api/rooms/nosuch/token", {"role": "host"}, key)
    assert status == 404


async def test_listing_shows_no_secrets_and_a_revoked_key_is_refused(server):
    key = await new_key(server)
    key_id = key.split(".")[0]
    status, listed = await call("GET", f"{server.url}/api/keys", token=server.admin_key)
    assert status == 200 and [k["key_id"] for k in listed["keys"]] == [key_id]
    assert key.split(".")[1] not in str(listed) and "secret" not in str(listed)
    await create_room(server.url, "r1", "host-pw-1", admin_key=key)

    assert (await call("DELETE", f"{server.url}/api/keys/{key_id}", token=server.admin_key)) == (204, None)
    status, body = await call("POST", f"{server.url}/api/rooms/r1/token", {"role": "host"}, key)
    assert (status, body["code"]) == (401, "unauthorized") and "revoked" in body["error"]
    with pytest.raises(ClientError) as err:
        await create_room(server.url, "r2", "host-pw-1", admin_key=key)
    assert err.value.code == "unauthorized"
    status, listed = await call("GET", f"{server.url}/api/keys", token=server.admin_key)
    assert listed["keys"][0]["revoked"] is True
    assert (await call("DELETE", f"{server.url}/api/keys/{key_id}x", token=server.admin_key))[0] == 404


async def test_a_wrong_secret_and_an_unknown_key_are_refused(server):
    key = await new_key(server)
    key_id, secret = key.split(".")
    await server.create_room("r1", "host-pw-1")
    url = f"{server.url}/api/rooms/r1/token"
    wrong = f"{key_id}.{secret[:-1]}{'A' if secret[-1] != 'A' else 'B'}"
    unknown = f"tmk_{'0' * 16}.{secret}"
    for presented in (wrong, unknown):
        status, body = await call("POST", url, {"role": "host"}, presented)
        assert (status, body["code"]) == (401, "unauthorized")
    status, _ = await call("POST", url, {"role": "host"}, key)
    assert status == 200


async def test_only_the_admin_key_manages_api_keys(server):
    key = await new_key(server)
    url = f"{server.url}/api/keys"
    assert (await call("POST", url, {"name": "more"}, key))[0] == 401  # a key cannot mint keys
    assert (await call("GET", url, None, key))[0] == 401
    assert (await call("GET", url))[0] == 401
    await server.create_room("r1", "host-pw-1")
    host = await server.token("r1", "host-pw-1", "host")
    assert (await call("GET", url, None, host))[0] == 401
    for body in [{}, {"name": ""}, {"name": "x" * 81}, {"name": "a\tb"}, {"name": 5}]:
        status, reply = await call("POST", url, body, server.admin_key)
        assert (status, reply["code"]) == (400, "bad-request"), body


async def test_without_an_admin_key_no_api_keys_are_handed_out(tmp_path):
    running, runner = await start_server(str(tmp_path / "open"), admin_key=None)
    try:
        status, body = await call("POST", f"{running.url}/api/keys", {"name": "Portal"})
        assert (status, body["code"]) == (403, "forbidden")
    finally:
        await runner.cleanup()


async def test_the_cli_makes_a_key_that_a_server_sharing_the_store_honours(tmp_path, redis_url, capsys):
    from signaling.cli import main

    await asyncio.to_thread(main, ["apikey", "create", "Night portal", "--room-store", redis_url])
    printed = capsys.readouterr().out
    bearer = next(line.split("Bearer ", 1)[1] for line in printed.splitlines() if "Bearer " in line)
    running, runner = await start_server(str(tmp_path / "data"), room_store=redis_url)
    try:
        room = f"cli-{uuid.uuid4().hex[:8]}"
        await create_room(running.url, room, "host-pw-1", admin_key=bearer)
        token = await fetch_token(running.url, room, role="device", name="Ambulance", api_key=bearer)
        assert token["role"] == "device"
        await asyncio.to_thread(main, ["apikey", "revoke", bearer.split(".")[0], "--room-store", redis_url])
        with pytest.raises(ClientError) as err:
            await fetch_token(running.url, room, role="device", name="Ambulance", api_key=bearer)
        assert err.value.code == "unauthorized"
    finally:
        await runner.cleanup()
    with pytest.raises(SystemExit):
        await asyncio.to_thread(main, ["apikey", "create", "Portal", "--room-store", "memory"])
