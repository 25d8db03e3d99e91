"""Simulcast end to end: a Chromium surgeon publishes the camera as three layers; two
Chromium trainees watch in windows of different sizes and each gets the layer its tile
needs; when the small window grows, its stream switches up without a decoder hiccup."""

from __future__ import annotations

import functools

from sfu.simulcast_consumer import SimulcastConsumer
from tests import polling

from .conftest import remote_videos_playing, room_url, wait_connected

ROOM = "simulcast-1"
PASSWORD = "simulcast-pw"
SMALL = {"width": 320, "height": 420}
LARGE = {"width": 1440, "height": 900}
# Layer switches wait for hysteresis and keyframes: slow on a loaded host.
until = functools.partial(polling.until, timeout=60, every=0.2)


def camera_consumer(server, peer_id: str) -> SimulcastConsumer | None:
    peer = server.core.live.rooms[ROOM].peers.get(peer_id)
    if peer is None or peer.connection is None:
        return None
    return next((c for c in peer.connection.consumers.values() if isinstance(c, SimulcastConsumer)), None)


async def peer_id(page) -> str:
    return await page.evaluate("window.telemed.session.me.peer_id")


async def width_of_camera(page) -> int:
    stats = await remote_videos_playing(page, 1, source="camera", timeout=60)
    return stats[0]["videoWidth"]


async def test_two_viewers_get_the_layers_their_tiles_need(server, people):
    await server.create_room(ROOM, PASSWORD)
    host_url = room_url(server, ROOM, await server.token(ROOM, PASSWORD, "host", "Dr. Surgeon"))
    surgeon = await (await people("surgeon")).page(host_url.replace("quality=sd", "quality=hd"))
    await wait_connected(surgeon)
    live = server.core.live.rooms[ROOM]
    camera = await until(lambda: next((p for p in live.router.producers.values()
                                       if p.kind == "video" and p.layers), None), what="a simulcast camera")
    assert [layer.rid for layer in camera.layers] == ["q", "h", "f"]
    await until(lambda: all(layer.frame_size for layer in camera.layers), what="keyframes of all three layers")
    assert [layer.frame_size for layer in camera.layers] == [(320, 180), (640, 360), (1280, 720)]

    async def viewer(name: str, viewport: dict):
        token = await server.token(ROOM, PASSWORD, "viewer", name)
        page = await (await people(name, viewport=viewport)).page(room_url(server, ROOM, token, page="viewer.html"))
        await wait_connected(page)
        return page

    small = await viewer("Trainee on a phone", SMALL)
    large = await viewer("Trainee at a desk", LARGE)
    small_id, large_id = await peer_id(small), await peer_id(large)
    await until(lambda: (c := camera_consumer(server, small_id)) and c.tile and c.layer == 0,
                what="the small tile on the low layer")
    await until(lambda: (c := camera_consumer(server, large_id)) and c.tile and c.layer == 2,
                what="the large tile on the full layer")
    assert await width_of_camera(small) == 320
    assert await width_of_camera(large) == 1280

    # The desk falls a little short of the full layer: the fan-out step leaves out the
    # frames above VP8 temporal layer 0 (a quarter of the frame rate, the same size),
    # closing up sequence numbers and picture ids; back up, it takes them again from a
    # layer-sync frame. The decoder never asks for a keyframe.
    desk = camera_consumer(server, large_id)
    assert desk.temporal_layers == 3  # Chromium's VP8 simulcast is L1T3
    await until(lambda: server.core.live.rooms[ROOM].peers[large_id].connection.downlink.remb,
                what="the viewer's REMB (its estimate from our abs-send-time)")
    desk_plis, dropped = desk.plis_received, desk.target.c.temporal_dropped
    desk.want(2, 0)
    await until(lambda: desk.target.c.temporal_dropped > dropped + 20, what="frames above TL0 left out")
    assert desk.layer == 2 and desk.target.c.tid_current == 0
    desk.want(2, None)
    await until(lambda: desk.target.c.tid_current == 2, what="all temporal layers again")
    assert await width_of_camera(large) == 1280  # decoded frames keep coming
    assert desk.plis_received == desk_plis

    # The phone turns into a big screen: up to the full layer, on its keyframe.
    consumer = camera_consumer(server, small_id)
    plis = consumer.plis_received
    await small.set_viewport_size(LARGE)
    await until(lambda: consumer.layer == 2, what="the switch up")
    await until(lambda: consumer.switches >= 1)
    assert await width_of_camera(small) == 1280
    assert consumer.plis_received == plis  # the decoder never had to ask for a fresh start
    await small.set_viewport_size(SMALL)
    await until(lambda: consumer.layer == 0, what="the switch down")
    assert await width_of_camera(small) == 320
    assert consumer.plis_received == plis


AUDIO_ONLY = """
if (navigator.mediaDevices) {
  const original = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = (constraints) => original({ audio: !!(constraints && constraints.audio) });
}
"""

CAMERA_LATER = """async () => {
  const canvas = document.createElement('canvas');
  canvas.width = 1280; canvas.height = 720;
  const ctx = canvas.getContext('2d');
  setInterval(() => { ctx.fillStyle = `hsl(${Date.now() / 10 % 360}, 60%, 50%)`; ctx.fillRect(0, 0, 1280, 720); }, 40);
  const track = canvas.captureStream(25).getVideoTracks()[0];
  try {
    await window.telemed.session.publish('camera', track, 'later');
    return {published: true};
  } catch (err) {
    return {published: false, message: err.message};
  }
}"""


async def test_a_camera_turned_on_after_joining_is_sent_as_layers(server, people):
    """The first offer had audio only: the camera's simulcast m-line comes in a later one."""
    await server.create_room(ROOM, PASSWORD)
    person = await people("paramedic", init_script=AUDIO_ONLY)
    page = await person.page(room_url(server, ROOM, await server.token(ROOM, PASSWORD, "participant", "Paramedic")))
    await wait_connected(page)
    assert await page.evaluate(CAMERA_LATER) == {"published": True}
    live = server.core.live.rooms[ROOM]
    camera = await until(lambda: next((p for p in live.router.producers.values()
                                       if p.kind == "video" and p.layers), None), what="a simulcast camera")
    await until(lambda: all(layer.stats.received for layer in camera.layers), what="packets on every layer")


async def test_h264_layers_follow_the_tile(server, people):
    """Chromium publishes the camera as H264 simulcast (rid q/h/f); each layer's size
    comes from its SPS, so a small tile gets the small layer, which plays. (Switching
    layers is the same for both codecs but for VP8's descriptor rewrite: the VP8 test.)"""
    await server.create_room(ROOM, PASSWORD)
    host_url = room_url(server, ROOM, await server.token(ROOM, PASSWORD, "host", "Dr. Surgeon"))
    surgeon = await (await people("surgeon", init_script="window.telemedConfig = {videoCodec: 'h264'};")).page(
        host_url.replace("quality=sd", "quality=hd"))
    await wait_connected(surgeon)
    live = server.core.live.rooms[ROOM]
    camera = await until(lambda: next((p for p in live.router.producers.values()
                                       if p.kind == "video" and p.layers), None), what="a simulcast camera")
    assert camera.codec.mime_type.lower() == "video/h264"
    await until(lambda: all(layer.frame_size for layer in camera.layers), what="IDRs of all three layers")
    assert [layer.frame_size for layer in camera.layers] == [(320, 180), (640, 360), (1280, 720)]

    token = await server.token(ROOM, PASSWORD, "viewer", "Trainee on a phone")
    phone = await (await people("phone", viewport=SMALL)).page(room_url(server, ROOM, token, page="viewer.html"))
    await wait_connected(phone)
    phone_id = await peer_id(phone)
    await until(lambda: (c := camera_consumer(server, phone_id)) and c.tile and c.layer == 0,
                what="the small tile on the low layer")
    assert await width_of_camera(phone) == 320
