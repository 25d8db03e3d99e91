"""Invite links against the real server: made by hosts, redeemed once per use, refused in plain
words when expired, used up, revoked, tampered with or for another room."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import aiohttp
import jwt
import pytest

from telemed_client import Client

HOST_PW = "host-pw-1"


async def call(method: str, url: str, body: dict | None = None, token: str | None = None) -> tuple[int, dict | None]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as session:
        async with session.request(method, url, json=body, headers=headers) as r:
            return r.status, (await r.json(content_type=None)) if r.status != 204 else None


async def invite(server, room: str, token: str, **body: object) -> dict:
    status, reply = await call("POST", f"{server.url}/api/rooms/{room}/invites", body, token)
    assert status == 201, reply
    return reply


async def redeem(server, room: str, code: str, name: str = "Dr B", **extra: object) -> tuple[int, dict]:
    return await call("POST", f"{server.url}/api/rooms/{room}/token", {"invite": code, "name": name, **extra})


@pytest.fixture
async def host(server) -> str:
    await server.create_room("consult", HOST_PW)
    return await server.token("consult", HOST_PW, "host", "Dr Host")


async def test_a_host_invites_and_the_guest_joins_with_the_role_of_the_invite(server, host):
    made = await invite(server, "consult", host, role="viewer", label="Trainees", max_uses=5)
    assert set(made) == {"invite", "code", "link"} and made["link"] == f"/?invite={made['code']}"
    info = made["invite"]
    assert {k: info[k] for k in ("role", "label", "max_uses", "uses", "revoked")} == \
        {"role": "viewer", "label": "Trainees", "max_uses": 5, "uses": 0, "revoked": False}
    assert 86400 - 5 <= info["expires_at"] - time.time() <= 86400 + 1

    status, token = await redeem(server, "consult", made["code"], name="Trainee 1")
    assert status == 200 and token["role"] == "viewer"
    assert set(token) >= {"token", "expires_in", "expires_at", "identity", "role", "grants", "ice_servers"}
    claims = jwt.decode(token["token"], options={"verify_signature": False})
    assert claims["cred"] == f"invite:{info['id']}" and claims["name"] == "Trainee 1"
    client = await Client.join(server.url, token["token"])
    try:
        assert client.info["role"] == "viewer"
    finally:
        await client.close()

    status, listed = await call("GET", f"{server.url}/api/rooms/consult/invites", token=host)
    assert status == 200 and [i["uses"] for i in listed["invites"]] == [1]
    assert made["code"] not in str(listed) and "code" not in listed["invites"][0]

    # An invite never yields more than its role, and never lets the guest pick an identity;
    # neither refusal spends a use.
    status, body = await redeem(server, "consult", made["code"], role="participant")
    assert (status, body["code"]) == (403, "role-not-allowed")
    status, body = await redeem(server, "consult", made["code"], identity="dr-host")
    assert (status, body["code"]) == (400, "identity-not-allowed")
    status, listed = await call("GET", f"{server.url}/api/rooms/consult/invites", token=host)
    assert [i["uses"] for i in listed["invites"]] == [1]


async def test_who_may_make_invites_and_what_they_may_be(server, host):
    url = f"{server.url}/api/rooms/consult/invites"
    guest = await server.token("consult", HOST_PW, "participant")
    assert (await call("POST", url, {"role": "viewer"}, guest))[0] == 403
    assert (await call("GET", url, None, guest))[0] == 403
    assert (await call("POST", url, {"role": "viewer"}))[0] == 401
    assert (await call("POST", url, {"role": "viewer"}, server.admin_key))[0] == 201
    await server.create_room("other", HOST_PW)
    other_host = await server.token("other", HOST_PW, "host")
    assert (await call("POST", url, {"role": "viewer"}, other_host))[0] == 403
    for body in [{"role": "host"}, {"role": "nurse"}, {}, {"role": "viewer", "expires_in": 30 * 86400 + 1},
                 {"role": "viewer", "expires_in": 0}, {"role": "viewer", "expires_in": "1d"},
                 {"role": "viewer", "max_uses": 0}, {"role": "viewer", "max_uses": True},
                 {"role": "viewer", "label": "x" * 81}, {"role": "viewer", "label": "a\nb"}]:
        status, reply = await call("POST", url, body, host)
        assert (status, reply["code"]) == (400, "bad-request"), body
    assert (await call("POST", f"{server.url}/api/rooms/nosuch/invites", {"role": "viewer"}, server.admin_key))[0] == 404


async def test_an_expired_invite_is_refused_in_plain_words(server, host):
    made = await invite(server, "consult", host, role="participant")
    store = server.core.credentials
    stored = (await store.list_invites("consult", (await server.core.room("consult")).incarnation))[0]
    # Time passes: the record says expired although the link's own expiry lies ahead ...
    await store.add_invite(dataclasses.replace(stored, expires_at=time.time() - 1))
    status, body = await redeem(server, "consult", made["code"])
    assert (status, body["code"]) == (401, "invite-expired")
    assert body["error"] == "This invitation has expired — ask the host for a new one."
    # ... and a link whose own expiry passed.
    late = server.core.invites.encode(dataclasses.replace(stored, expires_at=time.time() - 60))
    status, body = await redeem(server, "consult", late)
    assert (status, body["code"]) == (401, "invite-expired")


async def test_an_invite_is_used_up_exactly_at_its_count_even_under_concurrency(server, host):
    made = await invite(server, "consult", host, role="participant", max_uses=3)
    results = await asyncio.gather(*(redeem(server, "consult", made["code"], name=f"Dr {n}") for n in range(10)))
    statuses = sorted(status for status, _ in results)
    assert statuses == [200] * 3 + [401] * 7
    assert {body["code"] for status, body in results if status == 401} == {"invite-used-up"}
    assert "ask the host" in next(body["error"] for status, body in results if status == 401)
    status, listed = await call("GET", f"{server.url}/api/rooms/consult/invites", token=host)
    assert listed["invites"][0]["uses"] == 3


async def test_an_invite_for_another_room_is_refused(server, host):
    await server.create_room("elsewhere", HOST_PW)
    made = await invite(server, "consult", host, role="participant")
    status, body = await redeem(server, "elsewhere", made["code"])
    assert (status, body["code"]) == (403, "invite-wrong-room")
    status, _ = await redeem(server, "consult", made["code"])  # and it was not spent
    assert status == 200


@pytest.mark.parametrize("how", ["flipped-payload", "flipped-signature", "truncated", "garbage",
                                 "access-token", "other-secret", "empty", "number"])
async def test_a_tampered_invite_is_refused(server, host, how):
    made = await invite(server, "consult", host, role="viewer")
    header, payload, signature = made["code"].split(".")
    claims = jwt.decode(made["code"], options={"verify_signature": False})
    code = {
        "flipped-payload": f"{header}.{payload[:-2]}{'A' if payload[-2] != 'A' else 'B'}{payload[-1]}.{signature}",
        "flipped-signature": f"{header}.{payload}.{signature[:-2]}{'A' if signature[-2] != 'A' else 'B'}{signature[-1]}",
        "truncated": made["code"][:-10],
        "garbage": "not-an-invite",
        "access-token": host,
        "other-secret": jwt.encode(claims, "x" * 48, algorithm="HS256"),
        "empty": "",
        "number": 12,
    }[how]
    status, body = await redeem(server, "consult", code)
    assert (status, body["code"]) == (401, "invite-invalid"), body
    assert "not valid" in body["error"]
    # Nor does an invite code pass for an access token.
    assert (await call("GET", f"{server.url}/api/rooms/consult", token=made["code"]))[0] == 401


async def test_a_revoked_invite_is_refused_and_deleting_is_for_hosts(server, host):
    made = await invite(server, "consult", host, role="device", label="Ambulance 7")
    invite_id = made["invite"]["id"]
    url = f"{server.url}/api/rooms/consult/invites/{invite_id}"
    guest = await server.token("consult", HOST_PW, "participant")
    assert (await call("DELETE", url, token=guest))[0] == 403
    assert (await call("DELETE", url, token=host)) == (204, None)
    status, body = await redeem(server, "consult", made["code"])
    assert (status, body["code"]) == (401, "invite-revoked")
    assert "ask the host" in body["error"]
    status, listed = await call("GET", f"{server.url}/api/rooms/consult/invites", token=host)
    assert listed["invites"][0]["revoked"] is True
    assert (await call("DELETE", f"{server.url}/api/rooms/consult/invites/nosuch", token=host))[0] == 404
    assert (await call("DELETE", f"{server.url}/api/rooms/consult/invites/a:b", token=host))[0] == 404


async def test_an_invite_dies_with_its_room(server, host):
    made = await invite(server, "consult", host, role="participant")
    assert (await call("DELETE", f"{server.url}/api/rooms/consult", token=server.admin_key))[0] == 204
    await server.create_room("consult", HOST_PW)
    status, body = await redeem(server, "consult", made["code"])
    assert (status, body["code"]) == (401, "invite-revoked")
    new_host = await server.token("consult", HOST_PW, "host")
    status, listed = await call("GET", f"{server.url}/api/rooms/consult/invites", token=new_host)
    assert listed == {"invites": []}


async def test_an_invite_gets_in_while_the_address_is_locked_out(server, host):
    made = await invite(server, "consult", host, role="participant")
    url = f"{server.url}/api/rooms/consult/token"
    for _ in range(5):
        await call("POST", url, {"password": "wrong-guess"})
    status, body = await call("POST", url, {"password": HOST_PW})
    assert status == 429
    status, body = await redeem(server, "consult", made["code"])
    assert status == 200 and body["role"] == "participant"
