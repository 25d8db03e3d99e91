"""One probe per RFC 9725 status and header that third-party WHIP/WHEP clients rely on."""

from __future__ import annotations

import aiohttp
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection

from tests.media import PatternTrack
from tests.server import start_server


@pytest.fixture
async def whip_server(tmp_path):
    running, runner = await start_server(str(tmp_path / "data"), whip_origins=["https://player.example"],
                                         ice_servers=[{"urls": "stun:stun.hospital.example:3478"},
                                                      {"urls": ["turn:turn.hospital.example"],
                                                       "username": "u", "credential": 'p"w'}])
    await running.create_room("or-9", "pw-123456")
    yield running
    await runner.cleanup()


async def start_session(server, session: aiohttp.ClientSession) -> tuple[RTCPeerConnection, str, dict]:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver(PatternTrack(), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    headers = {"Authorization": f"Bearer {await server.token('or-9', 'pw-123456', role='device')}"}
    async with session.post(f"{server.url}/whip/or-9", data=pc.localDescription.sdp,
                            headers={**headers, "Content-Type": "application/sdp"}) as r:
        assert r.status == 201
        return pc, r.headers["Location"], {**headers, "links": r.headers.getall("Link")}


async def test_created_session_headers_and_methods(whip_server):
    server = whip_server
    async with aiohttp.ClientSession() as session:
        pc, location, headers = await start_session(server, session)
        links = headers.pop("links")
        try:
            assert '<stun:stun.hospital.example:3478>; rel="ice-server"' in links
            assert ('<turn:turn.hospital.example>; rel="ice-server"; username="u"; '
                    'credential="p\\"w"; credential-type="password"') in links
            for method, url in (("GET", "/whip/or-9"), ("HEAD", "/whip/or-9"), ("GET", location),
                                ("HEAD", location), ("POST", location)):
                async with session.request(method, f"{server.url}{url}", headers=headers) as r:
                    assert r.status == 405 and "Allow" in r.headers, (method, url)
            fragment = "a=mid:0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\r\n"
            trickle = {**headers, "Content-Type": "application/trickle-ice-sdpfrag"}
            async with session.patch(f"{server.url}{location}", data=fragment,
                                     headers={**trickle, "If-Match": '"stale"'}) as r:
                assert r.status == 412
            etag = f'"{location.rsplit("/", 1)[1]}"'
            async with session.patch(f"{server.url}{location}", data=fragment,
                                     headers={**trickle, "If-Match": etag}) as r:
                assert r.status == 204
            restart = "a=ice-ufrag:newufrag\r\na=ice-pwd:newpasswordnewpassword1\r\n"
            async with session.patch(f"{server.url}{location}", data=restart,
                                     headers={**trickle, "If-Match": "*"}) as r:
                assert r.status == 405 and (await r.json())["code"] == "ice-restart-unsupported"
            for _ in range(2):  # the second DELETE, after the session ended, is no error
                async with session.delete(f"{server.url}{location}", headers=headers) as r:
                    assert r.status == 200
            other = {"Authorization": f"Bearer {await server.token('or-9', 'pw-123456', role='device')}"}
            async with session.delete(f"{server.url}{location}", headers=other) as r:
                assert r.status == 403  # remembered, but still only for its owner
        finally:
            await pc.close()


async def test_cors_for_allowed_origins_only(whip_server):
    server = whip_server
    preflight = {"Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization, content-type"}
    async with aiohttp.ClientSession() as session:
        async with session.options(f"{server.url}/whip/or-9",
                                   headers={**preflight, "Origin": "https://player.example"}) as r:
            assert r.status == 204
            assert r.headers["Access-Control-Allow-Origin"] == "https://player.example"
            assert "POST" in r.headers["Access-Control-Allow-Methods"]
            assert "authorization" in r.headers["Access-Control-Allow-Headers"].lower()
            assert {"Location", "ETag", "Link"} <= {h.strip() for h in
                                                   r.headers["Access-Control-Expose-Headers"].split(",")}
        async with session.options(f"{server.url}/whep/or-9",
                                   headers={**preflight, "Origin": "https://evil.example"}) as r:
            assert r.status == 403 and "Access-Control-Allow-Origin" not in r.headers
        async with session.post(f"{server.url}/whep/or-9", data="v=0", headers={
                "Origin": "https://player.example", "Content-Type": "application/sdp"}) as r:
            assert r.status == 401  # CORS headers on errors too, so the page can read them
            assert r.headers["Access-Control-Allow-Origin"] == "https://player.example"


async def test_an_offer_must_bundle_its_media(whip_server):
    # webrtcbin's default (bundle-policy=none) offers a transport per m-line. Our answer
    # bundles them on one, which such a client cannot use: refused, never a dead 201.
    server = whip_server
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver(PatternTrack(), direction="sendonly")
    pc.addTransceiver("audio", direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    offer = pc.localDescription.sdp
    await pc.close()
    headers = {"Authorization": f"Bearer {await server.token('or-9', 'pw-123456', role='device')}",
               "Content-Type": "application/sdp"}
    async with aiohttp.ClientSession() as session:
        unbundled = "".join(line for line in offer.splitlines(keepends=True) if not line.startswith("a=group:"))
        async with session.post(f"{server.url}/whip/or-9", data=unbundled, headers=headers) as r:
            body = await r.json()
            assert r.status == 400 and body["code"] == "bundle-required", body
            assert "m-lines 0, 1" in body["error"] and "bundle-policy=max-bundle" in body["error"]
        assert not server.core.live.rooms.get("or-9") or not server.core.live.rooms["or-9"].peers
