"""The trainee page plays the composited program over LL-HLS with hls.js (served by
the server, from npm at set-up) to the live edge, beside the read-only clinical panel."""

from __future__ import annotations

import re

import aiohttp
import pytest_asyncio
from playwright.async_api import expect

from telemed_client import Client
from telemed_client.clinical import CHANNELS, Clinical
from tests.clinical_peers import close, potassium
from tests.media import ColourTrack, ToneTrack
from tests.server import start_server

from .test_csp import RECORD_VIOLATIONS, VIOLATIONS

ROOM = "or-teaching"
PASSWORD = "teach-pass"
STATE = """() => { const v = document.querySelector('#program');
  return {time: v.currentTime, ready: v.readyState, paused: v.paused, error: v.error && v.error.message,
          frames: v.getVideoPlaybackQuality().totalVideoFrames, note: document.querySelector('#note').textContent,
          buffered: v.buffered.length ? [v.buffered.start(0), v.buffered.end(v.buffered.length - 1)] : null}; }"""


@pytest_asyncio.fixture
async def server(tmp_path):
    running, runner = await start_server(str(tmp_path / "data"), live_size="640x360",
                                         live_x264_preset="ultrafast", live_video_kbps=800)
    yield running
    await runner.cleanup()


async def test_watch_page_plays_to_the_live_edge(server, people, screenshots):
    await server.create_room(ROOM, PASSWORD)
    camera = await Client.join(server.url, await server.token(ROOM, PASSWORD, name="OR camera"))
    try:
        await camera.publish(ColourTrack((0, 160, 0)), "camera", label="field")
        await camera.publish(ToneTrack(), "microphone")
        token = await server.token(ROOM, PASSWORD, role="viewer", name="Trainee")
        trainee = await people("trainee", init_script=RECORD_VIOLATIONS)
        page = await trainee.page(f"{server.url}/watch.html?room={ROOM}#token={token}")
        await expect(page.locator("#live-state")).to_have_text("Not live", timeout=20000)
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{server.url}/api/rooms/{ROOM}/live",
                                    headers={"Authorization": f"Bearer {server.admin_key}"}) as r:
                assert r.status == 200
        await expect(page.locator("#live-state")).to_have_text("Live", timeout=20000)
        # Playing: decoded frames and a clock that keeps moving, close to the live edge.
        try:
            await page.wait_for_function(
                "() => { const v = document.querySelector('#program');"
                " return v.currentTime > 2 && v.getVideoPlaybackQuality().totalVideoFrames > 30; }",
                timeout=60000)
        finally:
            print(await page.evaluate(STATE))
        start = await page.evaluate("document.querySelector('#program').currentTime")
        await page.wait_for_function(f"() => document.querySelector('#program').currentTime > {start} + 1",
                                     timeout=30000)
        edge = await page.evaluate("""() => {
            const hls = window.telemed.hls;
            const v = document.querySelector('#program');
            return {latency: hls.latency, end: v.seekable.length ? v.seekable.end(0) : 0, now: v.currentTime,
                    lowLatency: hls.lowLatencyMode, levels: hls.levels.length,
                    parts: hls.levels[Math.max(0, hls.currentLevel)].details?.partList?.length || 0};
        }""")
        assert edge["lowLatency"] and edge["parts"] > 0 and edge["levels"] == 2  # the ABR ladder
        assert edge["end"] - edge["now"] < 10  # playing at the live end, not from the start
        # hls.js speeds up until it sits near the live edge (part hold-back, 1 s).
        await page.wait_for_function("() => window.telemed.hls.latency < 3", timeout=60000)
        await expect(page.locator("#latency")).to_have_attribute("data-seconds", re.compile(r"\d+\.\d+"))
        await expect(page.locator("#clinical-panel h1")).to_contain_text(ROOM)
        # A lab shared in the room reaches the trainee's panel with the picture, not before it:
        # the panel hears the room as late as the video is behind.
        lab = await Clinical.open(await Client.join(
            server.url, await server.token(ROOM, PASSWORD, name="Lab"), channels=CHANNELS))
        try:
            await lab.send_fhir(potassium(6.4))
            await expect(page.locator(".lab-table tbody tr", has_text="Potassium")).to_be_visible(timeout=20000)
            assert await page.evaluate("window.telemed.clinicalSession.lastDelay") > 0.3
        finally:
            await close(lab)
        await page.screenshot(path=str(screenshots / "watch.png"))
        print("watch page latency:", await page.locator("#latency").text_content(), edge)

        # Stopped: the lesson is kept; the page lists it and plays it as VOD (seekable).
        async with aiohttp.ClientSession() as session:
            async with session.delete(f"{server.url}/api/rooms/{ROOM}/live",
                                      headers={"Authorization": f"Bearer {server.admin_key}"}) as r:
                assert r.status == 200
        await expect(page.locator("#live-state")).to_have_text("Not live", timeout=20000)
        await page.locator("[data-play]").first.click(timeout=20000)
        await page.wait_for_function(
            "() => { const v = document.querySelector('#program');"
            " return Number.isFinite(v.duration) && v.duration > 2 && v.currentTime > 0.5; }", timeout=30000)
        await page.evaluate("document.querySelector('#program').currentTime = 0.2")  # seekable
        # A host adds a chapter at the current time; it is listed and kept.
        host = await (await people("host")).page(
            f"{server.url}/watch.html?room={ROOM}#token={await server.token(ROOM, PASSWORD, role='host')}")
        await host.locator("[data-play]").first.click(timeout=20000)
        await host.locator(".vod-chapter-form input").fill("Incision")
        await host.locator(".vod-chapter-form button").click()
        await expect(host.locator(".vod-chapters")).to_contain_text("Incision", timeout=10000)
        await page.screenshot(path=str(screenshots / "watch-vod.png"))
        assert await page.evaluate(VIOLATIONS) == []  # hls.js and the page under the strict CSP
    finally:
        await camera.close()
