"""Consent in the browser: the host starts recording from the room page; while it runs
every page shows REC and who started it, a late joiner at once; the indicator goes
when the host stops it."""

from __future__ import annotations

from playwright.async_api import expect

from .conftest import room_url, wait_connected

ROOM, PASSWORD = "recorded-consult", "pw-123456"


async def test_rec_indicator_for_everyone_and_late_joiners(server, people, screenshots):
    await server.create_room(ROOM, PASSWORD)
    host_token = await server.token(ROOM, PASSWORD, "host", "Dr. Host")
    host = await (await people("host")).page(room_url(server, ROOM, host_token))
    await wait_connected(host)
    indicator = host.locator("#rec-indicator")
    await expect(indicator).to_be_hidden()
    # Hosts find the room's recordings from the room page.
    await expect(host.locator("#recordings-link")).to_be_visible()

    record = host.locator("#record-button")
    await expect(record).to_have_text("Record")
    await record.click()
    await expect(indicator).to_be_visible()
    await expect(record).to_have_text("Stop recording")
    await expect(indicator).to_contain_text("REC")
    await expect(indicator).to_contain_text("started by Dr. Host")

    # People who join later see it at once: a participant, a seat's clinical screen,
    # a trainee.
    late = await people("late")
    pages = [
        await late.page(room_url(server, ROOM, await server.token(ROOM, PASSWORD, "participant", "Dr. Late"))),
        await late.page(room_url(server, ROOM, await server.token(ROOM, PASSWORD, "participant", "Dr. Seat"), screen=3)),
        await late.page(room_url(server, ROOM, await server.token(ROOM, PASSWORD, "viewer", "Trainee"), page="viewer.html")),
    ]
    for page in pages:
        await expect(page.locator("#rec-indicator")).to_contain_text("started by Dr. Host", timeout=20000)
        await expect(page.locator("#rec-indicator")).to_have_attribute(
            "aria-label", "This consult is being recorded. Recording started by Dr. Host.")
        await expect(page.locator("#recordings-link")).to_be_hidden()  # not hosts
        await expect(page.locator("#record-button")).to_be_hidden()
    await pages[0].screenshot(path=str(screenshots / "recording-late-joiner.png"))

    await record.click()
    await expect(record).to_have_text("Record")
    for page in [host, *pages]:
        await expect(page.locator("#rec-indicator")).to_be_hidden()
