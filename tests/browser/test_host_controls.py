"""Host controls in the room page: the waiting room, remove, mute, lock."""

from __future__ import annotations

import asyncio

from playwright.async_api import expect

from .conftest import room_url, wait_connected, wait_for

PASSWORD = "host-controls-pass"
# How many of the page's camera and microphone tracks are still live.
LIVE_TRACKS = "window.telemed.session ? [...window.telemed.session.local.values()].filter((e) => e.track.readyState === 'live').length : -1"


async def test_host_admits_a_waiting_guest(server, people, screenshots):
    await server.create_room("wait-1", PASSWORD, waiting_room=True)
    host = await people("host")
    host_page = await host.page(room_url(server, "wait-1", await server.token("wait-1", PASSWORD, "host", "Dr. Host")))
    await wait_connected(host_page)

    guest = await people("guest")
    guest_page = await guest.page(room_url(server, "wait-1", await server.token("wait-1", PASSWORD, "participant", "Pat Guest")))
    await expect(guest_page.locator("#waiting-screen")).to_contain_text("Waiting for the host to admit you")
    await expect(guest_page.locator("#net-status")).to_have_text("Waiting")

    # the host is told, with a count on the Host button, and admits from the panel
    await expect(host_page.locator("#ctl-host .count")).to_have_text("1")
    await host_page.click("#ctl-host")
    row = host_page.locator("#waiting-list li", has_text="Pat Guest")
    await expect(row).to_be_visible()
    await host_page.screenshot(path=screenshots / "host-waiting-room.png")
    await row.locator(".admit-btn").click()

    await wait_connected(guest_page)
    await expect(guest_page.locator("#waiting-screen")).to_have_count(0)
    await expect(host_page.locator("#participant-list li", has_text="Pat Guest")).to_be_visible()
    await expect(host_page.locator("#waiting-section")).to_be_hidden()
    await expect(host_page.locator("#ctl-host .count")).to_have_count(0)


async def test_host_denies_a_guest_whose_camera_is_released(server, people):
    await server.create_room("wait-2", PASSWORD, waiting_room=True)
    host = await people("host")
    host_page = await host.page(room_url(server, "wait-2", await server.token("wait-2", PASSWORD, "host", "Dr. Host")))
    await wait_connected(host_page)
    guest = await people("guest")
    guest_page = await guest.page(room_url(server, "wait-2", await server.token("wait-2", PASSWORD, "participant", "Unexpected")))
    await expect(guest_page.locator("#waiting-screen")).to_be_visible()
    await host_page.click("#ctl-host")
    await host_page.locator("#waiting-list li", has_text="Unexpected").locator(".deny-btn").click()
    await expect(guest_page.locator("#ended")).to_contain_text("You were not let in")
    await expect(guest_page.locator("#ended")).to_contain_text("did not let you in")
    assert await wait_for(guest_page, f"({LIVE_TRACKS}) === 0") == True


async def test_host_removes_and_mutes_a_participant(server, people):
    await server.create_room("remove-ui", PASSWORD)
    host = await people("host")
    host_page = await host.page(room_url(server, "remove-ui", await server.token("remove-ui", PASSWORD, "host", "Dr. Host")))
    member = await people("member")
    member_page = await member.page(room_url(server, "remove-ui", await server.token("remove-ui", PASSWORD, "participant", "Noisy Member")))
    for page in (host_page, member_page):
        await wait_connected(page)
    await host_page.click("#ctl-host")
    row = host_page.locator("#participant-list li", has_text="Noisy Member")

    # mute: the member's own button turns to Unmute, and only the member can undo it
    await row.locator(".mute-btn").click()
    await expect(member_page.locator("#ctl-mic")).to_have_attribute("aria-pressed", "true")
    await expect(row).to_contain_text("muted")
    await expect(row.locator(".mute-btn")).to_be_disabled()
    await member_page.click("#ctl-mic")
    await expect(row.locator(".mute-btn")).to_be_enabled()

    # remove takes two clicks
    await row.locator(".remove-btn").click()
    await expect(row.locator(".remove-btn")).to_contain_text("Remove Noisy Member?")
    await row.locator(".remove-btn").click()
    await expect(member_page.locator("#ended")).to_contain_text("You were removed from the consult")
    assert await wait_for(member_page, f"({LIVE_TRACKS}) === 0") == True
    await expect(host_page.locator("#participant-list li", has_text="Noisy Member")).to_have_count(0)


async def test_lock_is_shown_to_everyone_and_refuses_newcomers(server, people):
    await server.create_room("lock-ui", PASSWORD)
    host = await people("host")
    host_page = await host.page(room_url(server, "lock-ui", await server.token("lock-ui", PASSWORD, "host", "Dr. Host")))
    member = await people("member")
    member_page = await member.page(room_url(server, "lock-ui", await server.token("lock-ui", PASSWORD, "participant", "Member")))
    for page in (host_page, member_page):
        await wait_connected(page)
    await host_page.click("#ctl-host")
    await host_page.click("#lock-toggle")
    await expect(host_page.locator("#lock-toggle")).to_have_attribute("aria-pressed", "true")
    await expect(member_page.locator("#lock-chip")).to_be_visible()

    late = await people("late")
    late_page = await late.page(room_url(server, "lock-ui", await server.token("lock-ui", PASSWORD, "participant", "Late")))
    await expect(late_page.locator("#banner")).to_contain_text("locked")
    assert await wait_for(late_page, f"({LIVE_TRACKS}) === 0") == True

    await host_page.click("#lock-toggle")
    await expect(member_page.locator("#lock-chip")).to_be_hidden()


async def test_host_ends_the_consult_for_everyone(server, people):
    await server.create_room("end-ui", PASSWORD)
    host = await people("host")
    host_page = await host.page(room_url(server, "end-ui", await server.token("end-ui", PASSWORD, "host", "Dr. Host")))
    member = await people("member")
    member_page = await member.page(room_url(server, "end-ui", await server.token("end-ui", PASSWORD, "participant", "Member")))
    for page in (host_page, member_page):
        await wait_connected(page)
    await host_page.click("#ctl-host")
    await host_page.click("#end-all")
    await expect(host_page.locator("#end-all")).to_contain_text("Click again")
    await host_page.click("#end-all")
    for page in (host_page, member_page):
        await expect(page.locator("#ended")).to_contain_text("The consult has ended")
        assert await wait_for(page, f"({LIVE_TRACKS}) === 0") == True
    deadline = asyncio.get_running_loop().time() + 10
    while "end-ui" in server.core.live.rooms:  # the last peer's media may still be closing
        assert asyncio.get_running_loop().time() < deadline, "the live room did not close"
        await asyncio.sleep(0.05)
