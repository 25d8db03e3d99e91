"""Invite links in the pages: the host makes one (link and QR code), a guest opens it
straight into the room; dead links explain themselves and release the camera."""

from __future__ import annotations

import dataclasses
import time

import aiohttp
from playwright.async_api import expect

from .conftest import room_url, wait_connected, wait_for
from .test_csp import RECORD_VIOLATIONS, VIOLATIONS

PASSWORD = "invite-links-pass"
# Every camera and microphone track the page ever got, to check that none stays live.
RECORD_TRACKS = """
window.__tracks = [];
const gum = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
navigator.mediaDevices.getUserMedia = async (c) => {
  const stream = await gum(c);
  window.__tracks.push(...stream.getTracks());
  return stream;
};
"""
LIVE = "window.__tracks.filter((t) => t.readyState === 'live').length"


async def make_invite(server, room: str, **body) -> dict:
    host = await server.token(room, PASSWORD, "host", "Dr. Host")
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{server.url}/api/rooms/{room}/invites", json=body,
                                headers={"Authorization": f"Bearer {host}"}) as r:
            assert r.status == 201
            return await r.json()


async def stored_invite(server, room: str):
    incarnation = (await server.core.room(room)).incarnation
    return (await server.core.credentials.list_invites(room, incarnation))[0]


async def test_host_makes_an_invite_and_the_guest_opens_it_into_the_room(server, people, screenshots):
    await server.create_room("inv-1", PASSWORD)
    host = await people("host", init_script=RECORD_VIOLATIONS)
    host_page = await host.page(room_url(server, "inv-1", await server.token("inv-1", PASSWORD, "host", "Dr. Host")))
    await wait_connected(host_page)
    await host_page.click("#ctl-host")
    await host_page.select_option("#invite-role", "participant")
    await host_page.fill("#invite-uses", "1")
    await host_page.fill("#invite-label", "Mr. Patient")
    await host_page.click("#invite-create")
    link = host_page.locator("#invite-link")
    await expect(host_page.locator("#invite-qr svg.qr")).to_be_visible()
    url = await link.input_value()
    assert url.startswith(f"{server.url}/?invite=")
    row = host_page.locator("#invite-list li", has_text="Mr. Patient")
    await expect(row).to_contain_text("0/1 used")
    await expect(host_page.locator("#invite-list li[data-state='used up']")).to_have_count(0)
    await host_page.screenshot(path=screenshots / "host-invite-link.png")

    guest = await people("guest", init_script=RECORD_VIOLATIONS)
    guest_page = await guest.page(url)
    await expect(guest_page.locator("#invite-note")).to_contain_text("inv-1")
    await expect(guest_page.locator("#password")).to_be_hidden()
    await guest_page.fill("#name", "Mr. Patient")
    await guest_page.click("#join-btn")
    await guest_page.wait_for_url("**/room.html?room=inv-1")
    await wait_connected(guest_page)
    await expect(host_page.locator("#participant-list li", has_text="Mr. Patient")).to_be_visible()

    # its one use is spent; the host withdraws a second one
    await expect(row).to_contain_text("used up")
    await host_page.fill("#invite-label", "Second")
    await host_page.click("#invite-create")
    await expect(host_page.locator("#invite-list li[data-state='active']")).to_have_count(1)
    await host_page.locator("#invite-list li[data-state='active'] .revoke-btn").click()
    await expect(host_page.locator("#invite-list li[data-state='withdrawn']")).to_contain_text("Second")
    # the panel, the QR code and the invite lobby live within the server's Content-Security-Policy
    for page in (host_page, guest_page):
        assert await page.evaluate(VIOLATIONS) == []


async def test_an_expired_invite_says_so_and_releases_the_camera(server, people, screenshots):
    await server.create_room("inv-2", PASSWORD)
    made = await make_invite(server, "inv-2", role="participant")
    stored = await stored_invite(server, "inv-2")
    # the server's record says expired, though the link itself does not know yet
    await server.core.credentials.add_invite(dataclasses.replace(stored, expires_at=time.time() - 1))
    guest = await people("guest", init_script=RECORD_TRACKS)
    page = await guest.page(f"{server.url}{made['link']}")
    await wait_for(page, f"{LIVE} > 0")  # the preview is on
    await page.fill("#name", "Late Guest")
    await page.click("#join-btn")
    alert = page.locator("#form-alert")
    await expect(alert).to_have_text("This invitation has expired — ask the host for a new one.")
    assert await page.evaluate(LIVE) == 0, "the camera and microphone must be released at once"
    await expect(page.locator("#join-btn")).to_be_disabled()
    await page.screenshot(path=screenshots / "lobby-invite-expired.png")
    assert "token" not in (await alert.inner_text()).lower()


async def test_a_link_past_its_own_expiry_never_starts_the_camera(server, people):
    await server.create_room("inv-3", PASSWORD)
    await make_invite(server, "inv-3", role="participant")
    stored = await stored_invite(server, "inv-3")
    late = server.core.invites.encode(dataclasses.replace(stored, expires_at=time.time() - 60))
    guest = await people("guest", init_script=RECORD_TRACKS)
    page = await guest.page(f"{server.url}/?invite={late}")
    await expect(page.locator("#form-alert")).to_have_text("This invitation has expired — ask the host for a new one.")
    assert await page.evaluate("window.__tracks.length") == 0


async def test_a_withdrawn_or_mangled_link_explains_itself(server, people):
    await server.create_room("inv-4", PASSWORD)
    made = await make_invite(server, "inv-4", role="participant")
    host = await server.token("inv-4", PASSWORD, "host", "Dr. Host")
    async with aiohttp.ClientSession() as session:
        async with session.delete(f"{server.url}/api/rooms/inv-4/invites/{made['invite']['id']}",
                                  headers={"Authorization": f"Bearer {host}"}) as r:
            assert r.status == 204
    guest = await people("guest", init_script=RECORD_TRACKS)
    page = await guest.page(f"{server.url}{made['link']}")
    await wait_for(page, f"{LIVE} > 0")
    await page.fill("#name", "Guest")
    await page.press("#name", "Enter")
    await expect(page.locator("#form-alert")).to_contain_text("withdrawn by the host — ask the host for a new one")
    assert await page.evaluate(LIVE) == 0

    mangled = await guest.page(f"{server.url}/?invite=not-a-real-code")
    await expect(mangled.locator("#form-alert")).to_contain_text("This invitation link is not valid")


async def test_a_trainee_invite_opens_the_viewer_without_asking_for_the_camera(server, people):
    await server.create_room("inv-5", PASSWORD)
    made = await make_invite(server, "inv-5", role="viewer", max_uses=10)
    trainee = await people("trainee", init_script=RECORD_TRACKS)
    page = await trainee.page(f"{server.url}{made['link']}")
    await expect(page.locator("#viewer-note")).to_be_visible()
    await page.fill("#name", "Trainee")
    await page.click("#join-btn")
    await page.wait_for_url("**/viewer.html?room=inv-5")
    await wait_connected(page)
    assert await page.evaluate("window.__tracks.length") == 0
