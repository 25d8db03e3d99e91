"""Short-lived TURN credentials: who gets them, what they look like, and that neither the
shared secret nor a handed-out credential reaches a log or a repr. Against a real coturn:
tests/test_turn_relay.py."""

from __future__ import annotations

import base64
import logging

import aiohttp
import pytest
from aiortc import RTCPeerConnection
from telemed_client import Client

from signaling import config
from signaling.cli import build_parser
from signaling.ice_servers import IceServers
from signaling.logs import JsonFormatter
from tests.media import PatternTrack
from tests.server import start_server
from tests.test_whip_whep import NO_ICE_SERVERS

SECRET = "a-turn-secret-shared-with-coturn"
URLS = ["turn:turn.example.org:3478", "turn:turn.example.org:3478?transport=tcp",
        "turns:turn.example.org:443?transport=tcp"]
STUN = {"urls": "stun:stun.example.org"}


def load(**env: str) -> config.Settings:
    return config.load(build_parser().parse_args([]), environ={f"TELEMED_{k.upper()}": v for k, v in env.items()})


def test_settings_and_their_checks():
    settings = load(turn_urls=",".join(URLS), turn_secret=SECRET, turn_ttl="600")
    assert settings.turn_urls == URLS and settings.turn_ttl == 600
    assert SECRET not in repr(settings)
    assert load().turn_ttl == 3600 and load().turn_urls == []


@pytest.mark.parametrize("env", [
    {"turn_urls": URLS[0]},                                          # no secret
    {"turn_secret": SECRET},                                         # no URLs
    {"turn_urls": URLS[0], "turn_secret": "short"},
    {"turn_urls": "stun:stun.example.org", "turn_secret": SECRET},   # not a TURN URL
    {"turn_urls": "turns:t.example.org?transport=udp", "turn_secret": SECRET},
    {"turn_urls": "turn:u:p@t.example.org", "turn_secret": SECRET},
    {"turn_urls": URLS[0], "turn_secret": SECRET, "turn_ttl": "10"},
    {"turn_urls": URLS[0], "turn_secret": SECRET, "turn_ttl": "999999999"},
])
def test_bad_turn_settings_are_refused(env):
    with pytest.raises(ValueError):
        load(**env)


def test_credentials_name_the_identity_and_expire():
    servers = IceServers([STUN], URLS, SECRET, ttl=600, clock=lambda: 1_000_000.5)
    stun, turn = servers.for_identity("https://idp.example.org#a:b")
    assert stun == STUN and turn["urls"] == URLS
    assert turn["username"] == "1000600:https://idp.example.org#a:b"  # expiry first, then the identity
    assert len(base64.b64decode(turn["credential"], validate=True)) == 20  # HMAC-SHA1
    assert servers.for_identity("someone else")[1]["credential"] != turn["credential"]
    assert servers.public == [STUN]
    assert SECRET not in repr(servers)
    assert IceServers([STUN], [], None, ttl=600).for_identity("x") == [STUN]  # no secret: the static list


async def test_handed_out_with_a_credential_never_to_anyone(tmp_path, caplog):
    """Token responses, `joined` and WHIP's Link headers carry credentials; /api/config does
    not (it would make the TURN server an open relay); no log line holds one."""
    caplog.set_level(logging.DEBUG)
    running, runner = await start_server(str(tmp_path / "data"), ice_servers=[STUN], turn_urls=URLS,
                                         turn_secret=SECRET, turn_ttl=600)
    handed_out: list[str] = []
    pc = RTCPeerConnection(NO_ICE_SERVERS)
    client = None
    try:
        await running.create_room("amb", "pw-123456")
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{running.url}/api/config") as r:
                assert await r.json() == {"ice_servers": [STUN]}
            async with session.post(f"{running.url}/api/rooms/amb/token",
                                    json={"password": "pw-123456", "name": "Medic"}) as r:
                body = await r.json()
        assert body["ice_servers"][0] == STUN and body["ice_servers"][1]["urls"] == URLS
        handed_out.append(body["ice_servers"][1]["credential"])

        client = await Client.join(running.url, body["token"])
        assert client.info["ice_servers"][1]["username"].endswith(":" + body["identity"])
        handed_out.append(client.info["ice_servers"][1]["credential"])

        pc.addTransceiver(PatternTrack(), direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{running.url}/whip/amb", data=pc.localDescription.sdp, headers={
                    "Authorization": f"Bearer {body['token']}", "Content-Type": "application/sdp"}) as r:
                assert r.status == 201
                links = [link for link in r.headers.getall("Link") if 'rel="ice-server"' in link]
        assert links[0] == "<stun:stun.example.org>; rel=\"ice-server\""
        assert [link.split(">", 1)[0][1:] for link in links[1:]] == URLS
        handed_out.append(links[1].split('credential="', 1)[1].split('"', 1)[0])
        assert all(handed_out)
    finally:
        if client:
            await client.close()
        await pc.close()
        await runner.cleanup()
    logged = "\n".join(JsonFormatter().format(record) for record in caplog.records)
    for secret in (SECRET, *handed_out):
        assert secret not in logged and secret not in caplog.text


def test_log_guard_masks_a_credential_field():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, '{"username": "1:a", "credential": "c2VjcmV0"}',
                               None, None)
    assert "c2VjcmV0" not in JsonFormatter().format(record)
