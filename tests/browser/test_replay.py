"""Replay in Chromium of a real recording (an aiortc publisher's camera and
microphone; a layout change, a live ECG, an image and a lab shared while it ran): the tracks
play in step, the layout follows the recorded one, the ECG strip is redrawn, the
image and lab markers jump to the moments they were shared and show them."""

from __future__ import annotations

from playwright.async_api import TimeoutError as PlaywrightTimeout
from playwright.async_api import expect

from telemed_client import Client
from telemed_client.ecg_sources import synthetic
from tests.clinical_peers import PASSWORD, bundled, close, join
from tests.test_recording_media import ROOM, record, share_lab

from .conftest import IMAGE_SHOWN, wait_for
from .test_clinical import ECG_PIXELS

STATS = "window.telemedReplay && window.telemedReplay.clock ? window.telemedReplay.stats() : null"
CLOCK = "(() => { const c = window.telemedReplay.clock; return {time: c.time, duration: c.duration, playing: c.playing, master: !!c.master}; })()"


async def plays(page, expression: str, timeout: float = 20.0):
    """`wait_for` that, if the media never get there, says where each element stood."""
    try:
        return await wait_for(page, expression, timeout=timeout)
    except PlaywrightTimeout as exc:
        state = {"clock": await page.evaluate(CLOCK), "media": await page.evaluate(STATS)}
        raise AssertionError(f"replay never reached {expression!r}: {state}") from exc
CANVAS_READY = "(document.querySelector('.ecg-stream canvas')?.width > 0)"


async def test_replay_of_a_real_recording(server, people, screenshots):
    await server.create_room(ROOM, PASSWORD)
    host_token = await server.token(ROOM, PASSWORD, "host", "Dr. Host")
    host = await Client.join(server.url, host_token)
    device = await join(server, ROOM, "Ambulance 7", role="device")

    async def during() -> None:
        video = next(t["id"] for t in host.tracks.values() if t["kind"] == "video")
        await host.set_layout({"preset": "speaker", "main_track": video, "pip_tracks": []})
        await device.stream_ecg(synthetic(3, 500, 2))  # announced, 2 s of frames, ended
        await share_lab(server, dicom=bundled("CT_small.dcm"))

    try:
        manifest = await record(server, host_token, seconds_of_video=2, during=during)
    finally:
        await close(device)
        await host.close()
    events = manifest["events"]
    lab_t = next(e["t"] for e in events if e["type"] == "clinical" and e["kind"] == "lab")
    ecg_t = next(e["t"] for e in events if e["type"] == "clinical" and e["kind"] == "ecg-announce")
    camera = next(t for t in manifest["tracks"] if t["kind"] == "video")
    assert camera["start"] < lab_t < camera["end"]
    layout_t = next(e["t"] for e in events if e["type"] == "layout" and e["layout"]["preset"] == "speaker")

    # The room's recordings, for its host; one opens.
    page = await (await people("host")).page(f"{server.url}/replay.html?room={ROOM}#token={host_token}")
    item = page.locator(f'.recording-item[data-id="{manifest["id"]}"]')
    await expect(item).to_contain_text("started by Dr. Host")
    await item.click()
    await page.wait_for_url(f"**recording={manifest['id']}")
    await wait_for(page, STATS)
    await expect(page.locator(".marker-lab")).to_have_count(1)
    await expect(page.locator(".marker-ecg")).to_have_count(1)
    await expect(page.locator(".marker-layout")).to_have_count(1)
    await expect(page.locator(".marker-dicom")).to_have_count(1)
    await expect(page.locator("#clinical-panel .lab-table")).to_be_hidden()  # not shared yet at 0:00
    await expect(page.locator("#stage")).to_have_attribute("data-layout", "grid")

    # It plays: the one clock advances, the video decodes frames, the audio follows.
    await page.click('[data-role="play"]')
    await plays(page, f"window.telemedReplay.clock.time > {layout_t + 0.3}", timeout=30)
    # Paused from script at once: a slow machine must not play on past the end meanwhile.
    drift = await page.evaluate("(() => { const c = window.telemedReplay.clock; const d = c.maxDrift(); c.pause(); return d; })()")
    assert drift < 0.5
    stats = {s["kind"]: s for s in await page.evaluate("window.telemedReplay.stats()")}
    assert stats["video"]["framesDecoded"] > 5 and stats["video"]["videoWidth"] == 320
    assert stats["video"]["placed"] and not stats["video"]["hidden"]
    # The layout changed while recording: the camera takes the main stage.
    await expect(page.locator("#stage")).to_have_attribute("data-layout", "speaker")

    # The audio track plays on the same clock where it has sound.
    audio = next(t for t in manifest["tracks"] if t["kind"] == "audio")
    await page.locator("#replay-seek").fill(str(round(audio["start"] + 0.1, 1)))
    await page.click('[data-role="play"]')
    await plays(page, "window.telemedReplay.stats().find(s => s.kind === 'audio').currentTime > 0.2")
    await page.evaluate("window.telemedReplay.clock.pause()")

    # The ECG marker: the strip appears; a moment later the recorded trace is drawn.
    await page.locator(".marker-ecg").click()
    strip = page.locator("#clinical-panel .ecg-stream")
    await expect(strip).to_have_count(1)
    await expect(strip.locator("h3")).to_have_text("Ambulance 7")
    await wait_for(page, f"{CANVAS_READY} && true")
    blank = await page.evaluate(ECG_PIXELS)
    await page.locator("#replay-seek").fill(str(ecg_t + 1.5))
    await wait_for(page, f"{CANVAS_READY} && ({ECG_PIXELS})() !== {blank}")

    # The image marker: the image shared then opens in the viewer, through the
    # room's own signed preview links.
    await page.locator(".marker-dicom").click()
    await expect(page.locator(".dicom-item")).to_have_count(1)
    await wait_for(page, IMAGE_SHOWN, arg="frame=0")
    await expect(page.locator(".dicom-viewer figcaption")).to_contain_text("ct.dcm")

    # The lab marker: the clock lands there and the lab shows.
    await page.locator(".marker-lab").click()
    await wait_for(page, f"Math.abs(window.telemedReplay.clock.time - {lab_t}) < 0.1")
    row = page.locator('#clinical-panel .lab-table tr[data-loinc="2823-3"]')
    await expect(row).to_be_in_viewport()
    await expect(row).to_contain_text("6.4")
    # Seeking decodes there too: the video stands at the lab's moment.
    video = await wait_for(page, "window.telemedReplay.stats().find(s => s.kind === 'video' && s.placed && s.readyState >= 2"
                                 f" && Math.abs(s.currentTime - ({lab_t} - {camera['start']})) < 0.1)")
    assert video["videoWidth"] == 320
    await page.screenshot(path=str(screenshots / "replay-lab.png"))

    # Speed: the tracks play at 2x.
    # (From the start, and read as what stays true once it reaches the end.)
    await page.select_option('[data-role="speed"]', "2")
    await page.locator("#replay-seek").fill("0")
    await page.click('[data-role="play"]')
    await wait_for(page, "window.telemedReplay.clock.time > 0.5"
                         " && window.telemedReplay.stats().some(s => s.kind === 'video' && s.playbackRate >= 1.8)")
    await page.evaluate("window.telemedReplay.clock.pause()")  # whether or not it reached the end

    # A link that stops working (expired, here forged) is renewed with the page's token.
    await page.evaluate("""() => {
      const video = document.querySelector('#stage video');
      video.src = video.src.replace('sig=', 'sig=0');
    }""")
    await wait_for(page, "() => { const v = document.querySelector('#stage video');"
                         " return !v.src.includes('sig=0') && v.readyState >= 2; }")

    # Back to the start: the panel shows the state of that moment again.
    await page.locator("#replay-seek").fill("0")
    await expect(page.locator("#clinical-panel .lab-table")).to_be_hidden()


async def test_replay_of_an_h264_recording(server, people):
    """H264 is recorded in Matroska; Chromium plays and seeks it from the same page."""
    await server.create_room(ROOM, PASSWORD)
    host_token = await server.token(ROOM, PASSWORD, "host", "Dr. Host")
    manifest = await record(server, host_token, seconds_of_video=1, codec="video/H264")
    camera = next(t for t in manifest["tracks"] if t["kind"] == "video")
    assert camera["container"] == "matroska"
    page = await (await people("host")).page(
        f"{server.url}/replay.html?room={ROOM}&recording={manifest['id']}#token={host_token}")
    await wait_for(page, STATS)
    await page.click('[data-role="play"]')
    await plays(page, "() => window.telemedReplay.stats().some(s => s.kind === 'video' && s.framesDecoded > 5"
                         " && s.videoWidth === 320 && s.currentTime > 0.5)")
    await page.evaluate("window.telemedReplay.clock.pause()")
    middle = round((camera["start"] + camera["end"]) / 2, 1)
    await page.locator("#replay-seek").fill(str(middle))
    await wait_for(page, "() => window.telemedReplay.stats().some(s => s.kind === 'video' && s.readyState >= 2"
                         f" && Math.abs(s.currentTime - ({middle} - {camera['start']})) < 0.1)")
