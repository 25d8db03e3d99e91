"""Replay in Chromium: a recording's tracks play in step, the layout follows the
recorded one, and the lab marker jumps to the moment the lab was shared and shows it."""

from __future__ import annotations

from playwright.async_api import expect

from telemed_client.ecg_sources import synthetic
from tests.clinical_peers import PASSWORD, close, join, potassium
from tests.recording_files import Shelf

from .conftest import wait_for
from .test_clinical import ECG_PIXELS

ROOM = "replay-browser"

CANVAS_READY = "(document.querySelector('.ecg-stream canvas')?.width > 0)"
STATS = "window.telemedReplay && window.telemedReplay.clock ? window.telemedReplay.stats() : null"


async def test_replay_plays_in_sync_and_jumps_to_the_lab(server, people, screenshots, tmp_path):
    await server.create_room(ROOM, PASSWORD)
    shelf = Shelf(tmp_path / "recordings", server.core.keyring)
    server.core.recordings = shelf
    sharer = await join(server, ROOM, "Ambulance 7", role="device")
    try:
        await sharer.stream_ecg(synthetic(3, 500, 2))  # logged as seq 1 (announce) and 2 (end)
        notice = await sharer.send_fhir(potassium(6.4))
    finally:
        await close(sharer)
    manifest = shelf.add(ROOM, seconds=6, session_log={"from_seq": 1, "to_seq": notice["seq"]})
    video = next(t["id"] for t in manifest["tracks"] if t["kind"] == "video")
    manifest["events"] = [
        {"t": 0.0, "type": "layout", "layout": {"preset": "grid", "main_track": None, "pip_tracks": []}},
        {"t": 1.0, "type": "clinical", "kind": "ecg-announce", "seq": 1, "body": {}},
        {"t": 2.0, "type": "layout", "layout": {"preset": "speaker", "main_track": video, "pip_tracks": []}},
        {"t": 3.0, "type": "clinical", "kind": "ecg-end", "seq": 2, "body": {}},
        {"t": 4.0, "type": "clinical", "kind": "lab", "seq": notice["seq"], "body": {"results": notice["results"]}},
    ]
    host = await server.token(ROOM, PASSWORD, "host", "Dr. Host")
    # The room's recordings, for its host; one opens.
    page = await (await people("host")).page(f"{server.url}/replay.html?room={ROOM}#token={host}")
    item = page.locator(f'.recording-item[data-id="{manifest["id"]}"]')
    await expect(item).to_contain_text("started by Dr. A")
    await item.click()
    await page.wait_for_url(f"**recording={manifest['id']}")

    await wait_for(page, STATS)
    # Before the lab was shared, the panel has none.
    await expect(page.locator("#clinical-panel .lab-table")).to_be_hidden()
    await expect(page.locator(".marker-lab")).to_have_count(1)
    await expect(page.locator(".marker-layout")).to_have_count(1)
    await expect(page.locator(".marker-ecg")).to_have_count(1)

    await page.click('[data-role="play"]')
    # It plays: time advances on the one clock, the video decodes frames, and the
    # audio follows the same timeline.
    await wait_for(page, "window.telemedReplay.clock.time > 1.5")
    stats = {s["kind"]: s for s in await page.evaluate("window.telemedReplay.stats()")}
    assert stats["video"]["framesDecoded"] > 5 and stats["video"]["videoWidth"] == 320
    assert stats["video"]["placed"] and not stats["video"]["hidden"]
    assert await page.evaluate("window.telemedReplay.clock.maxDrift()") < 0.5
    # The recorded layout change at 2 s puts the camera on the main stage.
    await wait_for(page, "document.querySelector('#stage').dataset.layout === 'speaker'")
    await page.click('[data-role="play"]')  # pause

    # The ECG marker: the stream's strip, empty at its announce; a moment later the
    # trace recorded up to then is drawn.
    await page.locator(".marker-ecg").click()
    strip = page.locator("#clinical-panel .ecg-stream")
    await expect(strip).to_have_count(1)
    await expect(strip.locator("h3")).to_have_text("Ambulance 7")
    await wait_for(page, f"{CANVAS_READY} && true")
    blank = await page.evaluate(ECG_PIXELS)
    await page.locator("#replay-seek").fill("2.5")  # a fresh strip: wait for its canvas too
    await wait_for(page, f"{CANVAS_READY} && ({ECG_PIXELS})() !== {blank}")
    await page.locator(".marker-lab").click()
    await wait_for(page, "Math.abs(window.telemedReplay.clock.time - 4.0) < 0.1")
    row = page.locator('#clinical-panel .lab-table tr[data-loinc="2823-3"]')
    await expect(row).to_be_visible()
    await expect(row).to_contain_text("6.4")
    await page.screenshot(path=str(screenshots / "replay-lab.png"))

    # Back to the start: the panel shows the state of that moment again.
    await page.locator("#replay-seek").fill("0")
    await expect(page.locator("#clinical-panel .lab-table")).to_be_hidden()
