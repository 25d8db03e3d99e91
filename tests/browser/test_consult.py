"""Three people in one password room: everyone sees and hears the others."""

from __future__ import annotations

from playwright.async_api import expect

from .conftest import TABLET_PORTRAIT, remote_videos_playing, room_url, wait_connected

ROOM = "consult-1"
PASSWORD = "s3cret-consult"


async def test_three_participants_see_two_remote_videos_each(server, people, screenshots):
    await server.create_room(ROOM, PASSWORD)

    host = await people("host")
    page_a = await host.page(room_url(server, ROOM, await server.token(ROOM, PASSWORD, "host", "Dr. Amina Okafor")))

    # The second doctor comes in through the lobby, as a person would.
    doctor = await people("doctor")
    page_b = await doctor.page(f"{server.url}/?room={ROOM}")
    await expect(page_b.locator("#preview-video")).to_be_visible()
    await page_b.fill("#name", "Dr. Li Wei")
    await page_b.fill("#password", PASSWORD)
    await page_b.select_option("#quality", "sd")
    await page_b.click("#join-btn")
    await page_b.wait_for_url(f"**/room.html?room={ROOM}")

    # The third is an ambulance tablet held upright.
    tablet = await people("tablet", viewport=TABLET_PORTRAIT)
    page_c = await tablet.page(room_url(server, ROOM, await server.token(ROOM, PASSWORD, "participant", "Paramedic Sam Patel")))

    pages = [page_a, page_b, page_c]
    for page in pages:
        await wait_connected(page)
    for page in pages:
        playing = await remote_videos_playing(page, 2)
        assert all(s["videoWidth"] > 0 for s in playing)

    # Active speaker from audio levels: the fake microphones beep, so someone speaks.
    await expect(page_a.locator(".tile.speaking")).to_have_count(1, timeout=15000)

    # Name labels, and the host marked as host.
    await expect(page_b.locator(".tile .label", has_text="Dr. Amina Okafor")).to_contain_text("Host")
    await expect(page_a.locator(".tile .label", has_text="Paramedic Sam Patel")).to_be_visible()
    await expect(page_a.locator("#people-count")).to_contain_text("3 in consult")

    # Mute is shown to the others.
    await page_b.click("#ctl-mic")
    await expect(page_b.locator("#ctl-mic")).to_have_attribute("aria-pressed", "true")
    await expect(page_a.locator(".tile", has_text="Dr. Li Wei").locator(".muted-badge")).to_be_visible()
    await page_b.click("#ctl-mic")
    await expect(page_a.locator(".tile", has_text="Dr. Li Wei").locator(".muted-badge")).to_be_hidden()

    # Chat over the control data channel.
    await page_a.click("#ctl-chat")
    await page_a.fill("#chat-input", "NIHSS 14, CT shows no bleed. Starting thrombolysis?")
    await page_a.press("#chat-input", "Enter")
    await expect(page_c.locator("#ctl-chat .count")).to_have_text("1")
    await page_c.click("#ctl-chat")
    await expect(page_c.locator("#chat-log")).to_contain_text("NIHSS 14")
    await expect(page_c.locator("#chat-log")).to_contain_text("Dr. Amina Okafor")
    await page_c.click("#chat-close")

    # The tablet switches to its other camera; the others keep seeing it.
    await expect(page_c.locator("#ctl-switch")).to_be_enabled()
    for expected in ("fake_device_1", "fake_device_2"):  # device 1 is a depth camera: skip past it
        await page_c.click("#ctl-switch")
        await page_c.wait_for_function(f"() => window.telemed.camera.label === {expected!r}")
    await remote_videos_playing(page_a, 2)

    await page_a.screenshot(path=screenshots / "consult-room.png")
    await page_c.screenshot(path=screenshots / "consult-room-tablet-portrait.png")


async def test_subscribing_in_the_first_offer(server, people):
    room = "first-offer"
    await server.create_room(room, PASSWORD)
    first = await (await people("first")).page(room_url(server, room, await server.token(room, PASSWORD, "participant", "First")))
    await wait_connected(first)
    late = await people("late", init_script="window.telemedConfig = {subscribeInFirstOffer: true};")
    page = await late.page(room_url(server, room, await server.token(room, PASSWORD, "participant", "Late")))
    await wait_connected(page)
    await remote_videos_playing(page, 1, timeout=8)
