"""Firefox ESR (what many hospitals run) in a consult with Chromium: each publishes its
fake camera and microphone through the real web client, and each plays the other's."""

from __future__ import annotations

import asyncio

from .conftest import TABLET_LANDSCAPE, remote_videos_playing, room_url, wait_connected
from .test_simulcast import SMALL, until

ROOM = "firefox-1"
PASSWORD = "firefox-consult"

# What a page receives of the others' microphones (works in both browsers' evaluate).
AUDIO_RECEIVED = "window.telemed.session.receiveStats().then((r) => [...r.values()].filter((s) => s.kind === 'audio'))"

# The lobby's form, filled in and sent (Firefox goes on to room.html).
JOIN = """(() => {
  document.querySelector('#name').value = 'Dr. Firefox';
  document.querySelector('#password').value = 'firefox-consult';
  document.querySelector('#quality').value = 'sd';
  document.querySelector('#join-btn').click();
})()"""


async def shown_at(page, width: int, timeout: float = 15.0) -> None:
    """Wait until the page plays its one remote video `width` pixels wide."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (shown := (await remote_videos_playing(page, 1))[0]["videoWidth"]) != width:
        assert loop.time() < deadline, f"the remote video stayed {shown} wide, not {width}"
        await asyncio.sleep(0.3)


async def heard(page, timeout: float = 15.0) -> None:
    """Wait until the page plays its one remote microphone at a level above silence. Not
    a single look: on a starved machine a browser's first second of audio may come late,
    and the server sheds late media until the stream is steady again
    (sfu/late_media.py: STEADY_FOR), so the level can read 0 for a moment."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        [audio] = await page.evaluate(AUDIO_RECEIVED)
        if audio["bytesReceived"] > 0 and audio.get("audioLevel", 0) > 0:
            return
        assert loop.time() < deadline, f"no sound heard within {timeout:.0f} s: {audio}"
        await asyncio.sleep(0.3)


async def test_firefox_and_chromium_see_and_hear_each_other(server, firefox, people):
    await server.create_room(ROOM, PASSWORD)
    chromium = await (await people("chromium")).page(
        room_url(server, ROOM, await server.token(ROOM, PASSWORD, "host", "Dr. Chromium")))

    # Firefox comes in through the lobby: its camera preview plays, then it joins.
    tab = await firefox.tab("firefox")
    await tab.goto(f"{server.url}/?room={ROOM}")
    await tab.wait_for("document.querySelector('#preview-video').videoWidth > 0")
    await tab.evaluate(JOIN)
    await tab.wait_for("window.telemed && window.telemed.session.status === 'connected'", timeout=30)
    await wait_connected(chromium)

    # Each plays the other's camera: decoded frame counts rising.
    [from_firefox] = await remote_videos_playing(chromium, 1)
    assert from_firefox["name"].startswith("Dr. Firefox") and from_firefox["videoWidth"] > 0
    [from_chromium] = await remote_videos_playing(tab, 1)
    assert from_chromium["name"].startswith("Dr. Chromium") and from_chromium["videoWidth"] > 0

    # Each hears the other's microphone (the fake ones make tones).
    for page in (chromium, tab):
        await heard(page)

    # Firefox sends its camera as the client's three simulcast layers, smallest first
    # (Firefox keeps the order of sendEncodings, as Chromium does).
    camera = server.core.live.rooms[ROOM].router.producers[await tab.evaluate("window.telemed.session.ownTrackId('camera')")]
    assert camera.codec.mime_type == "video/VP8"  # Debian's Firefox has no H.264 (OpenH264 is a download)
    assert [layer.rid for layer in camera.layers] == ["q", "h", "f"]
    await until(lambda: all(layer.frame_size for layer in camera.layers), timeout=10, what="keyframes of all three layers")
    assert [layer.frame_size for layer in camera.layers] == [(160, 90), (320, 180), (640, 360)]

    # Chromium's window shrinks, then grows: the server moves it between Firefox's
    # layers, each move starting on a keyframe of the new layer.
    for viewport, width in ((SMALL, 320), (TABLET_LANDSCAPE, 640)):
        await chromium.set_viewport_size(viewport)
        await shown_at(chromium, width)

    # Firefox's stats carry no level for its own microphone; the page measures it
    # itself (clients/web/js/mic-level.js). With Chromium muted, Firefox speaks loudest.
    await chromium.click("#ctl-mic")
    await tab.wait_for("document.querySelector('#stage .tile.self.speaking') !== null", timeout=10)
