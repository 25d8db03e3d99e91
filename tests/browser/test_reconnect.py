"""A network blip: the page says it is reconnecting, then resumes its seat on its own
(docs/resume.md): the same peer id and track ids; the others see a reconnecting mark on
its tile, never a leave."""

from __future__ import annotations

import asyncio
import time

import jwt
from playwright.async_api import expect

from tests.clinical_peers import multiframe_ct
from tests.server import start_server

from .conftest import remote_videos_playing, room_url, wait_connected, wait_for

PASSWORD = "blip-pass"

# Peer ids the page heard leave.
WATCH_LEAVES = """
window.__left = [];
window.telemed.session.addEventListener('participant', (e) => { if (!e.detail.joined) window.__left.push(e.detail.participant.peer_id); });
"""

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
    old_camera = await tablet.evaluate("window.telemed.session.ownTrackId('camera')")
    await hospital.evaluate(WATCH_LEAVES)

    # The ambulance drives into a dead zone: the network goes and the socket drops.
    await ambulance.context.set_offline(True)
    await tablet.evaluate("window.telemed.session.sig.ws.close()")
    banner = tablet.locator("#banner")
    await expect(banner).to_be_visible()
    await expect(banner).to_contain_text("Reconnecting")
    await expect(tablet.locator("#net-status")).to_have_text("Reconnecting")
    await tablet.screenshot(path=screenshots / "reconnecting.png")
    # The hospital sees the ambulance still there, marked as reconnecting.
    mark = hospital.locator(f'.tile[data-peer="{old_peer}"] .reconnecting-badge')
    await expect(mark).to_be_visible(timeout=15000)
    await hospital.screenshot(path=screenshots / "peer-reconnecting.png")
    await asyncio.sleep(3)
    await expect(banner).to_be_visible()  # still out of coverage: still saying so

    await ambulance.context.set_offline(False)
    await expect(banner).to_be_hidden(timeout=30000)
    await wait_connected(tablet)
    await remote_videos_playing(tablet, 1)
    await remote_videos_playing(hospital, 1)
    await expect(hospital.locator('.tile[data-kind="person"]')).to_have_count(2)
    await expect(mark).to_be_hidden()

    joins = [m for m in await tablet.evaluate("window.__sent") if m.get("type") == "join"]
    assert joins[-1].get("resume") == old_peer, joins
    assert old_secret and joins[-1].get("resume_secret") == old_secret, joins
    # The same seat: peer id and camera track id kept; the hospital saw nobody leave.
    assert await tablet.evaluate("window.telemed.session.me.peer_id") == old_peer
    assert await tablet.evaluate("window.telemed.session.ownTrackId('camera')") == old_camera
    assert await hospital.evaluate("window.__left") == []


async def test_media_failure_resumes_the_seat_on_a_new_connection(server, people):
    room = "blip-2"
    await server.create_room(room, PASSWORD)
    hospital = await (await people("hospital")).page(room_url(server, room, await server.token(room, PASSWORD, "host", "Dr. Stroke Team")))
    ambulance = await people("ambulance", init_script=LOG_SIGNALING)
    tablet = await ambulance.page(room_url(server, room, await server.token(room, PASSWORD, "participant", "Ambulance 7")))
    await wait_connected(hospital)
    await wait_connected(tablet)
    await remote_videos_playing(tablet, 1)
    await remote_videos_playing(hospital, 1)
    old_peer = await tablet.evaluate("window.telemed.session.me.peer_id")
    old_camera = await tablet.evaluate("window.telemed.session.ownTrackId('camera')")
    await hospital.evaluate(WATCH_LEAVES)

    # As if ICE had failed while signaling stayed up: the server cannot restart ICE
    # (aiortc), so the page resumes on a new connection at once.
    await tablet.evaluate("window.telemed.session._recover('ice')")
    await expect(tablet.locator("#banner")).to_be_hidden(timeout=30000)
    await wait_connected(tablet)
    await remote_videos_playing(tablet, 1)
    await remote_videos_playing(hospital, 1)

    sent = await tablet.evaluate("window.__sent")
    joins = [m for m in sent if m.get("type") == "join"]
    assert len(joins) == 2 and joins[-1].get("resume") == old_peer, joins
    offers = [m for m in sent if m.get("type") == "offer"]
    assert any(old_camera in [i.get("track_id") for i in o["publish"].values()] for o in offers), offers
    assert await tablet.evaluate("window.telemed.session.me.peer_id") == old_peer
    assert await tablet.evaluate("window.telemed.session.ownTrackId('camera')") == old_camera
    assert await hospital.evaluate("window.__left") == []


# The page's own network hole: while set, its pings never leave (a socket on a network
# that is gone keeps "open" for a while).
SWALLOW_PINGS = """
window.__swallow = false;
const sendFrame = WebSocket.prototype.send;
WebSocket.prototype.send = function (data) {
  if (window.__swallow && String(data).includes('"ping"')) return;
  return sendFrame.call(this, data);
};
"""


async def test_online_resumes_only_when_the_old_path_is_hurt(server, people):
    """Chromium says "online" whenever any interface comes up (a VPN, a container's
    bridge: another test's veth in a parallel run made all pages of a test resume at
    once). A path that still answers is kept; one that does not is resumed at once."""
    room = "blip-online"
    await server.create_room(room, PASSWORD)
    ambulance = await people("ambulance", init_script=LOG_SIGNALING + SWALLOW_PINGS)
    tablet = await ambulance.page(room_url(server, room, await server.token(room, PASSWORD, "participant", "Ambulance 3")))
    await wait_connected(tablet)
    await tablet.evaluate("window.__statuses = []; window.telemed.session.addEventListener('status', (e) => window.__statuses.push(e.detail.status))")

    await tablet.evaluate("window.dispatchEvent(new Event('online'))")
    await wait_for(tablet, "window.__sent.some((m) => m.type === 'ping')")
    await asyncio.sleep(2)  # longer than the probe's deadline
    assert await tablet.evaluate("window.__statuses") == []
    assert [m for m in await tablet.evaluate("window.__sent") if m.get("type") == "join"][1:] == []

    await tablet.evaluate("window.__swallow = true; window.dispatchEvent(new Event('online'))")
    await wait_for(tablet, "window.__statuses.includes('reconnecting')", timeout=5)
    await tablet.evaluate("window.__swallow = false")
    await wait_connected(tablet)
    joins = [m for m in await tablet.evaluate("window.__sent") if m.get("type") == "join"]
    assert len(joins) == 2 and joins[-1].get("resume"), joins


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


# Cut the connection after the 20th DICOM chunk has gone out.
CUT_MID_UPLOAD = """
const send = RTCDataChannel.prototype.send;
let chunks = 0;
window.__announces = 0;
RTCDataChannel.prototype.send = function (data) {
  if (this.label === 'bulk' && ++chunks === 20) setTimeout(() => window.telemed.session.sig.ws.close());
  if (this.label === 'control' && String(data).includes('"dicom-announce"')) window.__announces++;
  return send.call(this, data);
};
"""


async def test_an_upload_cut_by_a_dropped_connection_is_shared_once_after_the_resume(server, people, tmp_path):
    room = "blip-3"
    await server.create_room(room, PASSWORD)
    hospital = await (await people("hospital")).page(room_url(server, room, await server.token(room, PASSWORD, "host", "Dr. Stroke Team")))
    tablet = await (await people("ambulance", init_script=CUT_MID_UPLOAD)).page(
        room_url(server, room, await server.token(room, PASSWORD, "participant", "Ambulance 3")))
    await wait_connected(hospital)
    await wait_connected(tablet)
    old_peer = await tablet.evaluate("window.telemed.session.me.peer_id")
    series = tmp_path / "ct-series.dcm"
    series.write_bytes(multiframe_ct(frames=8, size=512))  # 4 MiB: 64 chunks

    await tablet.click("#ctl-clinical")
    await tablet.set_input_files("#clinical-panel input[type=file]", series)

    await wait_for(tablet, "window.telemed.session.status === 'reconnecting'", timeout=20)
    await expect(tablet.locator(".upload.done")).to_have_count(1, timeout=60000)
    await expect(tablet.locator(".upload.error")).to_have_count(0)
    await expect(hospital.locator("#ctl-clinical .count")).to_have_text("1", timeout=20000)
    assert await tablet.evaluate("window.telemed.session.me.peer_id") == old_peer
    assert await tablet.evaluate("window.__announces") == 2  # cut mid-way, then sent again whole
    log = [e for e in server.core.live.rooms[room].clinical.log.read() if e["kind"] == "dicom"]
    assert len(log) == 1 and log[0]["body"]["name"] == "ct-series.dcm"
