"""Security events on the audit trail, against the real server: logins (good and bad),
tokens minted, joins, leaves, rooms created and deleted; each under one Actor shape with
the server-assigned identity, the token id and the client's address."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import jwt
import redis

from clinical.audit_check import check_trail
from telemed_client import Client, fetch_token
from tests.clinical_peers import PASSWORD
from tests.server import start_server
from tests.tmpfs import Filler, small_disk  # noqa: F401 (fixture)


def records(server) -> list[dict]:
    return [json.loads(line) for line in server.core.audit.path.read_text().splitlines()]


async def wait_for_record(server, match, timeout: float = 10) -> dict:
    """Joins and leaves are audited without holding anyone up: wait until on record."""
    async def scan() -> dict:
        while True:
            found = next((r for r in records(server) if match(r)), None)
            if found is not None:
                return found
            await asyncio.sleep(0.02)
    return await asyncio.wait_for(scan(), timeout)


def jti(token: str) -> str:
    return jwt.decode(token, options={"verify_signature": False})["jti"]


async def post(url: str, body: dict, headers: dict | None = None) -> int:
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json=body, headers=headers or {}) as r:
            return r.status


async def test_security_events_are_audited_under_server_identities(server):
    await server.create_room("audited", PASSWORD)
    created = next(r for r in records(server) if r["action"] == "room-created")
    assert (created["room"], created["actor"]) == ("audited", {
        "identity": "admin", "credential": "admin", "address": "127.0.0.1"})

    assert await post(f"{server.url}/api/rooms/audited/token",
                      {"password": "wrong-password", "role": "host", "name": "Mallory"}) == 401
    failed = await wait_for_record(server, lambda r: r["action"] == "login-failed")
    assert failed["actor"] == {"identity": "anonymous", "credential": "password", "address": "127.0.0.1"}
    assert failed["details"]["code"] == "unauthorized"
    assert (failed["room"], failed["details"]["role"], failed["details"]["name"]) == ("audited", "host", "Mallory")
    assert "wrong-password" not in server.core.audit.path.read_text()

    issued = await fetch_token(server.url, "audited", PASSWORD, "participant", "Dr A")
    login = records(server)[-1]  # on record before the token was handed out
    assert login["action"] == "login" and login["object"] == jti(issued["token"])
    assert login["actor"] == {"identity": issued["identity"], "name": "Dr A", "role": "participant",
                              "credential": "password:host", "address": "127.0.0.1",
                              "token_id": jti(issued["token"])}

    host_token = await server.mint("audited", "host", "Dr H", identity="portal-user-7")
    minted = records(server)[-1]
    assert (minted["action"], minted["object"]) == ("token-minted", jti(host_token))
    assert minted["actor"] == {"identity": "portal-user-7", "name": "Dr H", "role": "host", "credential": "admin",
                               "address": "127.0.0.1", "token_id": jti(host_token)}

    client = await Client.join(server.url, issued["token"])
    try:
        joined = await wait_for_record(server, lambda r: r["action"] == "join")
        assert (joined["object"], joined["actor"]["identity"], joined["actor"]["token_id"]) == (
            client.peer_id, issued["identity"], jti(issued["token"]))
        assert joined["actor"]["address"] == "127.0.0.1"
        fresh = await client.refresh_token()
        refreshed = records(server)[-1]
        assert (refreshed["action"], refreshed["object"], refreshed["details"]) == (
            "token-minted", jti(fresh["token"]), {"via": "refresh", "expires_at": fresh["expires_at"]})
        assert jti(fresh["token"]) == jti(issued["token"])  # a refresh extends the same grant
    finally:
        await client.close()
    left = await wait_for_record(server, lambda r: r["action"] == "leave")
    assert (left["object"], left["actor"]["identity"]) == (client.peer_id, issued["identity"])

    async with aiohttp.ClientSession() as session:
        async with session.delete(f"{server.url}/api/rooms/audited",
                                  headers={"Authorization": f"Bearer {host_token}"}) as r:
            assert r.status == 204
    deleted = records(server)[-1]
    assert deleted["action"] == "room-deleted" and deleted["actor"]["role"] == "host"
    assert deleted["actor"]["token_id"] == jti(host_token)
    report = check_trail(server.core.settings.data_dir, server.core.audit.key)
    assert report.ok, report.lines


async def test_no_token_leaves_the_server_unless_it_is_on_record(small_disk):
    server, runner = await start_server(str(small_disk / "data"))
    filler = None
    try:
        await server.create_room("strict", PASSWORD)
        filler = Filler(small_disk)
        handed_out = []  # the log's last page may still take a few records
        async with aiohttp.ClientSession() as session:
            for _ in range(200):
                async with session.post(f"{server.url}/api/rooms/strict/token",
                                        json={"password": PASSWORD, "name": "Dr A"}) as r:
                    status, body = r.status, await r.json()
                if status != 200:
                    break
                handed_out.append(jti(body["token"]))
        assert status == 503 and body["code"] == "storage-unavailable" and "token" not in body
        logged = {r["object"] for r in records(server) if r["action"] == "login"}
        assert set(handed_out) <= logged
        filler.remove()
        filler = None
        token = await server.token("strict", PASSWORD, name="Dr A")
        assert records(server)[-1]["object"] == jti(token)
    finally:
        if filler is not None:
            filler.remove()
        await runner.cleanup()


async def test_the_server_anchors_each_day_in_redis(tmp_path, redis_url):
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.delete("telemed:audit:anchors")
    server, runner = await start_server(str(tmp_path / "data"), audit_anchor_redis=redis_url)
    try:
        await server.create_room("anchored", PASSWORD)
        await server.token("anchored", PASSWORD, name="Dr A")
    finally:
        await runner.cleanup()  # waits for the anchor to follow the last record
    last = records(server)[-1]
    assert json.loads(client.hget("telemed:audit:anchors", last["wall"][:10])) == {
        "seq": last["seq"], "mac": last["mac"]}
    client.close()
    report = check_trail(tmp_path / "data", server.core.audit.key, redis_url)
    assert report.ok, report.lines
