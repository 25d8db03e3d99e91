"""A network blip: the page says it is reconnecting, then recovers on its own."""

from __future__ import annotations

import asyncio
import time

import jwt
from playwright.async_api import expect

from tests.server import start_server

from .conftest import remote_videos_playing, room_url, wait_connected, wait_for

PASSWORD = "blip-pass"

LOG_SIGNALING = """
window.__sent = [];
const send = WebSocket.prototype.send;
WebSocket.prototype.send = function (data) { try { window.__sent.push(JSON.parse(data)); } catch {} return send.call(this, data); };
"""


async def test_dropped_connection_shows_reconnecting_then_recovers(server, people, screenshots):
    room = "blip-1"
    await server.create_room(room, PASSWORD)
    hospital = await (await people("hospital")).page(room_url(server, room, await server.token(room, PASSWORD, "host", "Dr. Stroke Team")))
    ambulance = await people("ambulance", init_script=LOG_SIGNALING)
    tablet = await ambulance.page(room_url(server, room, await server.token(room, PASSWORD, "participant", "Ambulance 12")))
    await wait_connected(hospital)
    await wait_connected(tablet)
    await remote_videos_playing(tablet, 1)
    await remote_videos_playing(hospital, 1)
    old_peer = await tablet.evaluate("window.telemed.session.me.peer_id")
    old_secret = await tablet.evaluate("window.telemed.session.resumeSecret")

    # The ambulance drives into a dead zone: the network goes and the socket drops.
    await ambulance.context.set_offline(True)
    await tablet.evaluate("window.telemed.session.sig.ws.close()")
    banner = tablet.locator("#banner")
    await expect(banner).to_be_visible()
    await expect(banner).to_contain_text("Reconnecting")
    await expect(tablet.locator("#net-status")).to_have_text("Reconnecting")
    await tablet.screenshot(path=screenshots / "reconnecting.png")
    await asyncio.sleep(3)
    await expect(banner).to_be_visible()  # still out of coverage: still saying so

    await ambulance.context.set_offline(False)
    await expect(banner).to_be_hidden(timeout=30000)
    await wait_connected(tablet)
    await remote_videos_playing(tablet, 1)
    await remote_videos_playing(hospital, 1)
    await expect(hospital.locator('.tile[data-kind="person"]')).to_have_count(2)

    joins = [m for m in await tablet.evaluate("window.__sent") if m.get("type") == "join"]
    assert joins[-1].get("resume") == old_peer, joins
    assert old_secret and joins[-1].get("resume_secret") == old_secret, joins


async def test_media_failure_tries_ice_restart_then_rejoins(server, people):
    room = "blip-2"
    await server.create_room(room, PASSWORD)
    hospital = await (await people("hospital")).page(room_url(server, room, await server.token(room, PASSWORD, "host", "Dr. Stroke Team")))
    ambulance = await people("ambulance", init_script=LOG_SIGNALING)
    tablet = await ambulance.page(room_url(server, room, await server.token(room, PASSWORD, "participant", "Ambulance 7")))
    await wait_connected(hospital)
    await wait_connected(tablet)
    await remote_videos_playing(tablet, 1)

    # As if ICE had failed while signaling stayed up.
    await tablet.evaluate("window.telemed.session._recover('ice')")
    await expect(tablet.locator("#banner")).to_be_hidden(timeout=30000)
    await wait_connected(tablet)
    await remote_videos_playing(tablet, 1)
    await remote_videos_playing(hospital, 1)

    sent = await tablet.evaluate("window.__sent")
    restart = next(i for i, m in enumerate(sent) if m.get("type") == "offer" and "ice-ufrag" in m["sdp"]
                   and i > 0 and _ufrag(m["sdp"]) != _ufrag(next(x for x in sent if x.get("type") == "offer")["sdp"]))
    assert restart, "an ICE restart offer was sent first"


def _ufrag(sdp: str) -> str:
    return next(line.split(":", 1)[1] for line in sdp.splitlines() if line.startswith("a=ice-ufrag:"))


async def test_a_rejoin_after_the_join_token_expired_still_works(tmp_path, people):
    # Tokens live 10 s here (10 min by default): the page renews its token over the
    # session, stores it for the seat's other screens, and rejoins with it.
    running, runner = await start_server(str(tmp_path), token_ttl=10)
    try:
        room = "long-consult"
        await running.create_room(room, PASSWORD)
        join_token = await running.token(room, PASSWORD, "participant", "Dr. Night Shift")
        page = await (await people("doctor")).page(room_url(running, room, join_token))
        await wait_connected(page)
        stored = "JSON.parse(localStorage.getItem('telemed.seat.long-consult')).token"
        await wait_for(page, f"{stored} !== {join_token!r}", timeout=15)
        await asyncio.sleep(max(0.0, token_claims(join_token)["exp"] + 6 - time.time()))  # past leeway

        await page.evaluate("window.telemed.session.sig.ws.close()")
        await wait_for(page, "window.telemed.session.status === 'reconnecting'", timeout=10)
        await wait_connected(page)
        assert await page.evaluate("window.telemed.session.token") != join_token
    finally:
        await runner.cleanup()


def token_claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})
