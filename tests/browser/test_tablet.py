"""The consult page on the ambulance's tablet: a touch screen in portrait and in
landscape, with the patient's ECG and the video sharing the screen, large controls,
and the picture quality written on each video tile."""

from __future__ import annotations

import asyncio
import re

from playwright.async_api import expect

from telemed_client.ecg_sources import synthetic
from tests.clinical_peers import PASSWORD, close, join
from tests.media import PatternTrack

from .conftest import TABLET_LANDSCAPE, TABLET_PORTRAIT, remote_videos_playing, room_url, wait_connected

MIN_TARGET_PX = 60  # about 1 cm on a 10" tablet: a finger in a moving vehicle
QUALITY = re.compile(r"^\d+×\d+ · [\d.]+ (kbit|Mbit)/s$")

# Boxes of what must share the screen: every visible video tile, the ECG strip, the
# clinical panel, and the call controls.
GEOMETRY = """() => {
  const box = (el) => { const r = el.getBoundingClientRect(); return {x: r.left, y: r.top, r: r.right, b: r.bottom, w: r.width, h: r.height}; };
  const visible = (el) => { const r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0; };
  const ecg = document.querySelector('#clinical-panel .ecg-stream');
  return {
    tiles: [...document.querySelectorAll('#stage .tile')].filter(visible).map((el) => ({...box(el), self: el.classList.contains('self')})),
    ecg: ecg && visible(ecg) ? box(ecg) : null,
    panel: box(document.querySelector('#clinical-panel')),
    controls: [...document.querySelectorAll('#controls button, .topbar button')].filter(visible).map((el) => ({...box(el), id: el.id || el.textContent.trim()})),
    view: {w: innerWidth, h: innerHeight},
  };
}"""


def overlaps(a: dict, b: dict) -> bool:
    return a["x"] < b["r"] - 0.5 and b["x"] < a["r"] - 0.5 and a["y"] < b["b"] - 0.5 and b["y"] < a["b"] - 0.5


def inside(a: dict, view: dict) -> bool:
    return a["x"] >= -0.5 and a["y"] >= -0.5 and a["r"] <= view["w"] + 0.5 and a["b"] <= view["h"] + 0.5


def layout_problems(g: dict, portrait: bool) -> list[str]:
    problems = []
    remote = [t for t in g["tiles"] if not t["self"]]
    if not remote or g["ecg"] is None:
        return [f"missing: remote tiles {remote}, ECG {g['ecg']}"]
    for tile in g["tiles"]:
        if overlaps(tile, g["panel"]):
            problems.append(f"a tile {tile} overlaps the clinical panel {g['panel']}")
        if not inside(tile, g["view"]):
            problems.append(f"a tile {tile} is off screen")
    if not inside(g["ecg"], g["view"]) or not inside(g["ecg"], {"w": g["panel"]["r"], "h": g["panel"]["b"]}):
        problems.append(f"the ECG strip {g['ecg']} is cut off (panel {g['panel']}, screen {g['view']})")
    for tile in remote:
        if tile["w"] < 240:
            problems.append(f"the remote video is too small to use: {tile}")
        beside = g["ecg"]["y"] >= tile["b"] - 0.5 if portrait else g["ecg"]["x"] >= tile["r"] - 0.5
        if not beside:
            problems.append(f"the ECG {g['ecg']} is not {'below' if portrait else 'right of'} the video {tile}")
    return problems


async def settled_geometry(page, portrait: bool) -> dict:
    """The layout once it has settled after a rotation (renders run on animation frames)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while True:
        geometry = await page.evaluate(GEOMETRY)
        problems = layout_problems(geometry, portrait)
        if not problems or loop.time() > deadline:
            assert not problems, problems
            return geometry
        await asyncio.sleep(0.25)


async def test_tablet_in_the_ambulance_portrait_and_landscape(server, people, screenshots):
    room = "mobile-stroke-unit"
    await server.create_room(room, PASSWORD)
    tablet = await (await people("tablet", viewport=TABLET_PORTRAIT, has_touch=True)).page(
        room_url(server, room, await server.token(room, PASSWORD, "host", "Paramedic")))
    await wait_connected(tablet)
    # The patient monitor in the vehicle: live ECG, and a camera on the patient.
    monitor = await join(server, room, "Patient monitor", role="device")
    await monitor.client.publish(PatternTrack(640, 360), "camera")
    streaming = asyncio.ensure_future(monitor.stream_ecg(synthetic(12, 500, 10), seconds=120))
    try:
        await remote_videos_playing(tablet, 1)
        await tablet.click("#ctl-clinical")
        await expect(tablet.locator("#clinical-panel .ecg-stream")).to_have_count(1, timeout=20000)

        for viewport, portrait, name in ((TABLET_PORTRAIT, True, "portrait"), (TABLET_LANDSCAPE, False, "landscape")):
            await tablet.set_viewport_size(viewport)
            geometry = await settled_geometry(tablet, portrait)
            calls = [c for c in geometry["controls"] if c["id"].startswith("ctl-")]
            assert len(calls) >= 5 and all(c["w"] >= MIN_TARGET_PX and c["h"] >= MIN_TARGET_PX for c in calls), \
                f"{name}: call controls too small for a finger: {calls}"
            assert all(c["w"] >= 44 and c["h"] >= 44 for c in geometry["controls"]), geometry["controls"]
            assert all(inside(c, geometry["view"]) for c in calls), calls

            # The remote camera's and our own camera's quality, from getStats.
            remote = tablet.locator("#stage .tile:not(.self) > .quality")
            await expect(remote).to_have_text(QUALITY, timeout=10000)
            assert (await remote.text_content()).startswith("640×360")
            await expect(tablet.locator("#stage .tile.self > .quality")).to_have_text(QUALITY, timeout=10000)
            await tablet.screenshot(path=screenshots / f"tablet-{name}.png")

        # Nothing needs a hover on a touch screen: the tap targets are shown.
        assert await tablet.evaluate("matchMedia('(pointer: coarse)').matches")
    finally:
        streaming.cancel()
        await close(monitor)


async def test_quality_text(server, people):
    """The label's arithmetic: bytes over milliseconds, in kbit/s or Mbit/s."""
    page = await (await people("logic")).page(f"{server.url}/index.html")
    result = await page.evaluate("""async () => {
      const q = await import('/js/tile-quality.js');
      // A received camera, a received microphone, and our own camera sent as two layers.
      const report = new Map([
        ['a', {type: 'inbound-rtp', kind: 'video', trackIdentifier: 'remote-cam', bytesReceived: 1000, timestamp: 5000, frameWidth: 640, frameHeight: 360}],
        ['b', {type: 'inbound-rtp', kind: 'audio', trackIdentifier: 'remote-mic', bytesReceived: 99999, timestamp: 5000}],
        ['m', {type: 'media-source', kind: 'video', trackIdentifier: 'my-cam'}],
        ['q', {type: 'outbound-rtp', kind: 'video', mediaSourceId: 'm', bytesSent: 100, timestamp: 1000, frameWidth: 320, frameHeight: 180}],
        ['f', {type: 'outbound-rtp', kind: 'video', mediaSourceId: 'm', bytesSent: 900, timestamp: 1000, frameWidth: 1280, frameHeight: 720}],
      ]);
      const samples = q.videoSamples(report);
      return [
        [...samples.keys()].sort(),
        q.describeQuality(null, samples.get('remote-cam')),
        q.describeQuality({bytes: 1000, timestamp: 5000}, {bytes: 61000, timestamp: 6000, width: 640, height: 360}),
        q.describeQuality({bytes: 0, timestamp: 0}, {bytes: 312500, timestamp: 1000, width: 1280, height: 720}),
        samples.get('my-cam'),
        q.describeQuality(null, {bytes: 0, timestamp: 0, width: 0, height: 0}),
      ];
    }""")
    assert result == [["my-cam", "remote-cam"], "640×360", "640×360 · 480 kbit/s", "1280×720 · 2.5 Mbit/s",
                      {"bytes": 1000, "timestamp": 1000, "width": 1280, "height": 720}, ""]
