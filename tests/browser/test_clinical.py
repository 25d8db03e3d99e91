"""Clinical data in the browser: DICOM shared by drop or picker and viewed by the
others, live ECG from the Python device client, lab results, screen 3 and late joiners."""

from __future__ import annotations

import asyncio
import time

from playwright.async_api import expect

from telemed_client.ecg_sources import synthetic
from tests.clinical_peers import PASSWORD, bundled, close, join, multiframe_ct, potassium

from .conftest import IMAGE_SHOWN, room_url, wait_connected, wait_for

# Sum of the ECG canvas's pixels, weighted by position: changes whenever the sweep moves.
ECG_PIXELS = """() => {
  const c = document.querySelector('.ecg-stream canvas');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let sum = 0;
  for (let i = 0; i < d.length; i += 4) sum = (sum + d[i] * (i % 9973)) % 2147483647;
  return sum;
}"""

# Mean brightness of the preview, to tell two frames apart.
IMAGE_MEAN = """() => {
  const img = document.querySelector('.dicom-stage img');
  const c = document.createElement('canvas');
  [c.width, c.height] = [img.naturalWidth, img.naturalHeight];
  const ctx = c.getContext('2d');
  ctx.drawImage(img, 0, 0);
  const d = ctx.getImageData(0, 0, c.width, c.height).data;
  let sum = 0;
  for (let i = 0; i < d.length; i += 4) sum += d[i];
  return sum / (d.length / 4);
}"""


async def test_dicom_series_is_shared_viewed_and_refused(server, people, screenshots, tmp_path):
    room = "clinical-dicom"
    await server.create_room(room, PASSWORD)
    sender = await (await people("sender")).page(room_url(server, room, await server.token(room, PASSWORD, "participant", "Dr. Sender")))
    viewer = await (await people("viewer")).page(room_url(server, room, await server.token(room, PASSWORD, "host", "Dr. Viewer")))
    await wait_connected(sender)
    await wait_connected(viewer)

    ct, series = tmp_path / "ct.dcm", tmp_path / "series-4.dcm"
    ct.write_bytes(bundled("CT_small.dcm"))
    series.write_bytes(multiframe_ct(frames=4, size=128))  # a disc per frame, growing
    await sender.click("#ctl-clinical")
    await sender.set_input_files("#clinical-panel input[type=file]", [ct, series])

    # The viewer hears of both while its panel is closed, then opens the series.
    await expect(viewer.locator("#ctl-clinical .count")).to_have_text("2", timeout=20000)
    await viewer.click("#ctl-clinical")
    await expect(viewer.locator(".dicom-item")).to_have_count(2)
    await viewer.locator(".dicom-item", has_text="series-4.dcm").click()
    first = await wait_for(viewer, IMAGE_SHOWN, arg="frame=0")
    # The first frame shows at once; the other three stream in behind it.
    await expect(viewer.locator(".dicom-stage")).to_have_attribute("data-prefetched", "3")
    assert "wc=" not in first  # the object's own window first
    assert await viewer.evaluate("fetch(document.querySelector('[data-role=download]').href).then(r => r.status)") == 200

    # Window/level from the keyboard on the slider: a new preview with wc and ww.
    await viewer.locator('[data-role="ww"]').press("ArrowRight")
    windowed = await wait_for(viewer, IMAGE_SHOWN, arg="ww=")
    assert "wc=40" in windowed and "frame=0" in windowed
    await expect(viewer.locator(".dicom-overlay")).to_contain_text("L 40")

    # The mouse wheel scrolls frames; the next frame looks different.
    before = await viewer.evaluate(IMAGE_MEAN)
    await viewer.locator(".dicom-stage").hover()
    await viewer.mouse.wheel(0, 120)
    await wait_for(viewer, IMAGE_SHOWN, arg="frame=1")
    assert await viewer.evaluate(IMAGE_MEAN) != before
    await expect(viewer.locator(".dicom-overlay")).to_contain_text("Frame 2 / 4")

    # The server's clock moves past the links' expiry. A frame that already streamed
    # in still shows (the browser has it); the next new preview gets 403, and the
    # viewer renews its links and shows it anyway.
    # Its join token has expired too (exp 1970): the page renews it over the session.
    signer = server.core.clinical.links
    signer._clock = lambda: time.time() + 400
    await viewer.evaluate("window.telemed.session.token = 'x.eyJleHAiOjF9.x'")
    await viewer.locator(".dicom-stage").press("ArrowDown")
    await wait_for(viewer, IMAGE_SHOWN, arg="frame=2")
    old_sig = windowed.split("sig=")[1][:64]
    await viewer.locator('[data-role="wc"]').press("ArrowRight")
    renewed = await wait_for(viewer, """(old) => {
      const img = document.querySelector('.dicom-stage img');
      return img && img.complete && img.naturalWidth > 0 && img.src.includes('frame=2') && !img.src.includes(old) ? img.src : null;
    }""", arg=old_sig)
    assert renewed.split("sig=")[1][:64] != old_sig
    await expect(viewer.locator(".dicom-status")).to_be_hidden()
    assert await viewer.evaluate("window.telemed.session.token") != "x.eyJleHAiOjF9.x"

    # Garbage dropped onto the video (the panel closed) is refused: the panel opens
    # and the sender sees why; nobody else hears of it.
    await sender.click("#ctl-clinical")
    await expect(sender.locator("#clinical-panel")).to_be_hidden()
    files = await sender.evaluate_handle("""() => {
      const dt = new DataTransfer();
      dt.items.add(new File(['this is not a DICOM file '.repeat(400)], 'not-dicom.dcm'));
      return dt;
    }""")
    await sender.dispatch_event("#stage-main", "drop", {"dataTransfer": files})
    await expect(sender.locator("#clinical-panel")).to_be_visible()
    error = sender.locator(".upload.error")
    await expect(error).to_contain_text("Not shared:")
    await expect(error).to_contain_text("not-dicom.dcm")
    await expect(viewer.locator(".upload.error")).to_have_count(0)
    await expect(viewer.locator(".dicom-item")).to_have_count(2)
    await sender.screenshot(path=screenshots / "clinical-dicom-sender.png")
    await viewer.screenshot(path=screenshots / "clinical-dicom-viewer.png")

    # A late joiner on screen 3 gets the list from clinical-state, and its links work.
    late = await (await people("late")).page(room_url(server, room, await server.token(room, PASSWORD, "participant", "Dr. Late"), screen=3))
    await expect(late.locator(".dicom-item")).to_have_count(2, timeout=20000)
    await late.locator(".dicom-item", has_text="ct.dcm").click()
    await wait_for(late, IMAGE_SHOWN, arg="frame=0")

    # Screen 3 shares too. A colour image has no window: the viewer says so and
    # keeps showing the image as it is.
    colour = tmp_path / "colour.dcm"
    colour.write_bytes(bundled("SC_rgb_rle_2frame.dcm"))
    await late.set_input_files("#clinical-panel input[type=file]", colour)
    await late.locator(".dicom-item", has_text="colour.dcm").click()
    await wait_for(late, IMAGE_SHOWN, arg="frame=0")
    await late.locator('[data-role="wc"]').press("ArrowRight")
    await expect(late.locator(".dicom-status")).to_contain_text("monochrome")
    await expect(late.locator('[data-role="wc"]')).to_be_disabled()
    await expect(late.locator(".dicom-overlay")).to_contain_text("Colour: no window/level")
    await late.locator(".dicom-stage").press("ArrowDown")
    assert "wc=" not in await wait_for(late, IMAGE_SHOWN, arg="frame=1")


async def test_ecg_and_labs_from_a_device(server, people, screenshots):
    room = "clinical-ecg"
    await server.create_room(room, PASSWORD)
    doctor = await (await people("doctor")).page(room_url(server, room, await server.token(room, PASSWORD, "host", "Dr. Cardio")))
    await wait_connected(doctor)
    device = await join(server, room, "Ambulance 7", role="device")
    streaming = asyncio.ensure_future(device.stream_ecg(synthetic(12, 500, 10), seconds=60))
    try:
        await device.send_fhir(potassium(6.2))
        await doctor.click("#ctl-clinical")

        # 12 leads: II, V1 and V5 until all are asked for; the sweep visibly moves.
        strip = doctor.locator(".ecg-stream")
        await expect(strip).to_have_count(1, timeout=20000)
        await expect(strip.locator("h3")).to_have_text("Ambulance 7")
        await expect(strip.locator(".ecg-lead")).to_have_text(["II", "V1", "V5"])
        await sweep_moves(doctor)
        await strip.locator('button[data-role="all"]').click()
        await expect(strip.locator(".ecg-lead")).to_have_count(12)
        await expect(strip.locator(".ecg-lead").nth(3)).to_have_text("aVR")
        await sweep_moves(doctor)

        # The high potassium, flagged in words and colour.
        row = doctor.locator(".lab-table tbody tr", has_text="Potassium")
        await expect(row).to_have_class("abnormal")
        await expect(row).to_contain_text("6.2 mmol/L")
        await expect(row).to_contain_text("3.5–5.1")
        await expect(row.locator(".lab-flag strong")).to_have_text("High")
        await expect(row.locator(".lab-flag .lab-computed")).to_have_text("computed")  # placed by the server
        await doctor.screenshot(path=screenshots / "clinical-consult-panel.png")

        # Screen 3 of a seat joins late: labs and the live stream from clinical-state.
        seat = await (await people("seat")).page(room_url(server, room, await server.token(room, PASSWORD, "participant", "Dr. Seat"), screen=3))
        await expect(seat.locator("#clinical-panel .ecg-stream")).to_have_count(1, timeout=20000)
        await expect(seat.locator(".lab-table tr.abnormal")).to_contain_text("Potassium")
        await sweep_moves(seat)
        await seat.screenshot(path=screenshots / "clinical-screen-3.png")

        # A trainee sees the same, read-only.
        trainee = await (await people("trainee")).page(room_url(server, room, await server.token(room, PASSWORD, "viewer", "Trainee"), page="viewer.html"))
        await trainee.click("#ctl-clinical")
        await expect(trainee.locator(".ecg-stream")).to_have_count(1, timeout=20000)
        await expect(trainee.locator(".lab-table tr.abnormal")).to_contain_text("Potassium")
        await expect(trainee.locator(".dropzone")).to_have_count(0)

        # The end of the stream is shown; the last sweep stays.
        streaming.cancel()
        await expect(doctor.locator(".ecg-stream .chip")).to_have_text("Ended", timeout=10000)
    finally:
        streaming.cancel()
        await close(device)


async def sweep_moves(page) -> None:
    first = await wait_for(page, ECG_PIXELS)
    await asyncio.sleep(0.6)
    assert await page.evaluate(ECG_PIXELS) != first
