"""Layout lives on the server: the host sets it, everyone follows, late joiners get it."""

from __future__ import annotations

from playwright.async_api import expect

from .conftest import remote_videos_playing, room_url, wait_connected

ROOM = "layout-1"
PASSWORD = "layout-pass"


async def test_host_switches_layout_pins_a_track_and_others_follow(server, people, screenshots):
    await server.create_room(ROOM, PASSWORD)
    host = await (await people("host")).page(room_url(server, ROOM, await server.token(ROOM, PASSWORD, "host", "Dr. Host Mensah")))
    b = await (await people("b")).page(room_url(server, ROOM, await server.token(ROOM, PASSWORD, "participant", "Dr. Bea Novak")))
    c = await (await people("c")).page(room_url(server, ROOM, await server.token(ROOM, PASSWORD, "participant", "Dr. Carl Ito")))
    for page in (host, b, c):
        await wait_connected(page)
    await remote_videos_playing(host, 2)

    # Only the host gets the picker; a participant asking the server directly is refused.
    await expect(b.locator("#layout-picker")).to_have_count(0)
    refused = await b.evaluate("""() => window.telemed.session.sig.request(
        {type: 'set-layout', layout: {preset: 'surgery'}}, 'layout', 5000).then(() => 'accepted', (e) => e.code)""")
    assert refused == "forbidden"

    await host.click('#layout-picker button[data-preset="speaker"]')
    for page in (host, b, c):
        await expect(page.locator("#stage")).to_have_attribute("data-layout", "speaker")
    await expect(host.locator('#layout-picker button[data-preset="speaker"]')).to_have_attribute("aria-checked", "true")
    await expect(c.locator("#layout-chip")).to_contain_text("Speaker")

    # The host pins Dr. Bea Novak's camera to the main position.
    bea = await b.evaluate("window.telemed.session.ownTrackId('camera')")
    await host.locator(f'.tile[data-track-id="{bea}"] .pin-btn').click()
    await expect(c.locator(f'#stage-main > .tile[data-track-id="{bea}"]')).to_be_visible()
    await expect(host.locator(f'#stage-main > .tile[data-track-id="{bea}"] .pin-btn')).to_have_attribute("aria-pressed", "true")
    await expect(c.locator("#layout-chip")).to_contain_text("pinned")

    # A late joiner gets the current layout in `joined`.
    d = await (await people("d")).page(room_url(server, ROOM, await server.token(ROOM, PASSWORD, "participant", "Dr. Dana Ruiz")))
    await wait_connected(d)
    await expect(d.locator("#stage")).to_have_attribute("data-layout", "speaker")
    await expect(d.locator(f'#stage-main > .tile[data-track-id="{bea}"]')).to_be_visible()

    # Surgery: the pinned camera large, others as picture-in-picture.
    await host.click('#layout-picker button[data-preset="surgery"]')
    for page in (b, c, d):
        await expect(page.locator("#stage")).to_have_attribute("data-layout", "surgery")
    await expect(c.locator(f'#stage-main > .tile[data-track-id="{bea}"]')).to_be_visible()
    await expect(c.locator("#stage-main .pips .tile").first).to_be_visible()
    assert await c.locator("#stage-main .pips .tile").count() <= 3
    await c.screenshot(path=screenshots / "layout-surgery.png")

    await host.click('#layout-picker button[data-preset="grid"]')
    for page in (b, c, d):
        await expect(page.locator("#stage")).to_have_attribute("data-layout", "grid")
    await host.screenshot(path=screenshots / "layout-grid-host.png")
