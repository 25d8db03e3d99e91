"""Firefox ESR (what many hospitals run) in a consult with Chromium: each publishes its
fake camera and microphone through the real web client, and each plays the other's."""

from __future__ import annotations

from .conftest import remote_videos_playing, room_url, wait_connected
from .test_simulcast import until

ROOM = "firefox-1"
PASSWORD = "firefox-consult"

# What a page receives of the others' microphones (works in both browsers' evaluate).
AUDIO_RECEIVED = "window.telemed.session.receiveStats().then((r) => [...r.values()].filter((s) => s.kind === 'audio'))"


async def test_firefox_and_chromium_see_and_hear_each_other(server, firefox, people):
    await server.create_room(ROOM, PASSWORD)
    tab = await firefox.tab("firefox")
    await tab.goto(room_url(server, ROOM, await server.token(ROOM, PASSWORD, "host", "Dr. Firefox")))
    chromium = await (await people("chromium")).page(
        room_url(server, ROOM, await server.token(ROOM, PASSWORD, "participant", "Dr. Chromium")))
    await tab.wait_for("window.telemed && window.telemed.session.status === 'connected'", timeout=30)
    await wait_connected(chromium)

    # Each plays the other's camera: decoded frame counts rising.
    [from_firefox] = await remote_videos_playing(chromium, 1)
    assert from_firefox["name"].startswith("Dr. Firefox") and from_firefox["videoWidth"] > 0
    [from_chromium] = await remote_videos_playing(tab, 1)
    assert from_chromium["name"].startswith("Dr. Chromium") and from_chromium["videoWidth"] > 0

    # Each hears the other's microphone (the fake ones make tones).
    for page in (chromium, tab):
        [audio] = await page.evaluate(AUDIO_RECEIVED)
        assert audio["bytesReceived"] > 0 and audio["audioLevel"] > 0, audio

    # Firefox sends its camera as the client's three simulcast layers, smallest first
    # (Firefox keeps the order of sendEncodings, as Chromium does).
    camera = server.core.live.rooms[ROOM].router.producers[await tab.evaluate("window.telemed.session.ownTrackId('camera')")]
    assert camera.codec.mime_type == "video/VP8"  # Debian's Firefox has no H.264 without OpenH264
    assert [layer.rid for layer in camera.layers] == ["q", "h", "f"]
    await until(lambda: all(layer.frame_size for layer in camera.layers), timeout=10, what="keyframes of all three layers")
    assert [layer.frame_size for layer in camera.layers] == [(160, 90), (320, 180), (640, 360)]
