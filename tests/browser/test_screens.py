"""Screen sharing, and one seat driving three screens."""

from __future__ import annotations

from playwright.async_api import expect

from .conftest import remote_videos_playing, room_url, wait_connected

PASSWORD = "screens-pass"


async def test_screen_share_appears_for_the_others(server, people, screenshots):
    room = "share-1"
    await server.create_room(room, PASSWORD)
    radiologist = await (await people("radiologist")).page(room_url(server, room, await server.token(room, PASSWORD, "host", "Dr. Radiology Chen")))
    er = await (await people("er")).page(room_url(server, room, await server.token(room, PASSWORD, "participant", "Dr. Emergency Silva")))
    await wait_connected(radiologist)
    await wait_connected(er)
    await remote_videos_playing(er, 1)

    # Chromium's fake media UI picks the screen (see --auto-select-desktop-capture-source).
    await radiologist.click("#ctl-share")
    await expect(radiologist.locator("#ctl-share")).to_have_attribute("aria-pressed", "true")
    shared = await remote_videos_playing(er, 1, source="screen")
    assert shared[0]["kind"] == "content"
    await expect(er.locator('.tile[data-source="screen"] .source-badge')).to_have_text("Screen")

    # Presentation puts the shared screen large for everyone.
    await radiologist.click('#layout-picker button[data-preset="presentation"]')
    await expect(er.locator('#stage-main > .tile[data-source="screen"]')).to_be_visible()
    await er.screenshot(path=screenshots / "layout-presentation.png")

    await radiologist.click("#ctl-share")
    await expect(er.locator('.tile[data-source="screen"]')).to_have_count(0)


async def test_multi_screen_seat_shares_one_identity(server, people, screenshots):
    room = "seat-1"
    await server.create_room(room, PASSWORD)
    presenter = await (await people("presenter")).page(room_url(server, room, await server.token(room, PASSWORD, "participant", "Dr. Ward Round")))
    await wait_connected(presenter)

    # One seat (one browser profile, three windows): the token is saved by screen 1
    # and reused by screens 2 and 3.
    seat = await people("seat")
    s1 = await seat.page(room_url(server, room, await server.token(room, PASSWORD, "host", "Prof. Seat Holder"), screen=1))
    await wait_connected(s1)
    s2 = await seat.page(f"{server.url}/room.html?room={room}&screen=2&quality=sd")
    s3 = await seat.page(f"{server.url}/room.html?room={room}&screen=3&quality=sd")
    await wait_connected(s2)
    await wait_connected(s3)
    identities = {await p.evaluate("window.telemed.session.me.identity") for p in (s1, s2, s3)}
    assert len(identities) == 1
    assert [await p.evaluate("window.telemed.session.me.screen") for p in (s1, s2, s3)] == [1, 2, 3]

    await presenter.click("#ctl-share")
    # Screen 2: the main content (the shared screen), no people.
    await remote_videos_playing(s2, 1, source="screen")
    await expect(s2.locator('#stage .tile[data-kind="person"]')).to_have_count(0)
    # Screen 1: the remote people only; the seat itself appears once as a small self view.
    await remote_videos_playing(s1, 1, source="camera")
    await expect(s1.locator('#stage .tile[data-kind="content"]')).to_have_count(0)
    await expect(s1.locator("#people-count")).to_contain_text("2 in consult")
    # Screen 3: the clinical data panel.
    await expect(s3.locator("section#clinical-panel")).to_be_visible()
    await expect(s3.locator("#stage")).to_be_hidden()

    # Sound comes from screen 1 only.
    await s1.wait_for_function("() => document.querySelectorAll('#audio-sink audio').length >= 1")
    assert await s2.evaluate("document.querySelectorAll('audio').length") == 0
    assert await s3.evaluate("document.querySelectorAll('audio').length") == 0
    assert await s2.evaluate("[...window.telemed.session.tracks.values()].filter(t => window.telemed.session.remoteTrack(t.id) && t.kind === 'audio').length") == 0

    # The others see one person for the whole seat.
    await expect(presenter.locator("#people-count")).to_contain_text("2 in consult")
    await expect(presenter.locator('.tile[data-kind="person"]')).to_have_count(2)

    for n, page in enumerate((s1, s2, s3), start=1):
        await page.screenshot(path=screenshots / f"seat-screen-{n}.png")

    # Leaving on screen 1 closes the whole seat.
    await s1.click("#ctl-leave")
    await expect(s2.locator("#ended")).to_be_visible()


async def _share_stop_share(server, people, room: str, reuse: bool) -> None:
    await server.create_room(room, PASSWORD)
    viewer_side = await (await people("a")).page(room_url(server, room, await server.token(room, PASSWORD, "host", "Dr. Watching")))
    presenter = await (await people("b")).page(room_url(server, room, await server.token(room, PASSWORD, "participant", "Dr. Sharing")))
    await wait_connected(viewer_side)
    await wait_connected(presenter)
    await viewer_side.evaluate(f"import('/js/session.js').then((m) => {{ m.config.reuseInactiveTransceivers = {str(reuse).lower()}; }})")
    await remote_videos_playing(viewer_side, 1)
    transceivers = []
    for _ in range(2):
        await presenter.click("#ctl-share")
        await remote_videos_playing(viewer_side, 1, source="screen", timeout=8 if reuse else 20)
        transceivers.append(await viewer_side.evaluate("window.telemed.session.pc.getTransceivers().length"))
        await presenter.click("#ctl-share")
        await expect(viewer_side.locator('.tile[data-source="screen"]')).to_have_count(0)
    # Reusing keeps the SDP bounded: the second share rides the first one's m-line.
    assert (transceivers[1] == transceivers[0]) if reuse else (transceivers[1] > transceivers[0])


async def test_second_screen_share_appears_again(server, people):
    await _share_stop_share(server, people, "share-2", reuse=False)


async def test_second_screen_share_on_a_reused_transceiver(server, people):
    await _share_stop_share(server, people, "share-3", reuse=True)
