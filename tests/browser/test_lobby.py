"""The lobby: a wrong password is a clear message on the page."""

from __future__ import annotations

from playwright.async_api import expect

ROOM = "lobby-1"


async def test_wrong_password_shows_a_clear_error(server, people, screenshots):
    await server.create_room(ROOM, "right-password")
    person = await people("doctor")
    page = await person.page(f"{server.url}/?room={ROOM}")
    await expect(page.locator("#room")).to_have_value(ROOM)
    await page.fill("#name", "Dr. Wrong Key")
    await page.fill("#password", "not-the-password")
    await page.click("#join-btn")
    alert = page.locator("#form-alert")
    await expect(alert).to_be_visible()
    await expect(alert).to_contain_text("password is not correct")
    await expect(alert).to_have_attribute("role", "alert")
    assert page.url.startswith(f"{server.url}/?room={ROOM}"), "a wrong password must not leave the lobby"
    await page.screenshot(path=screenshots / "lobby-wrong-password.png")


async def test_missing_fields_are_explained(server, people):
    person = await people("doctor")
    page = await person.page(f"{server.url}/")
    await page.click("#join-btn")
    await expect(page.locator("#form-alert")).to_contain_text("Please enter the room name")


async def test_too_many_wrong_passwords_lock_the_button_with_a_countdown(server, people):
    await server.create_room("lobby-2", "right-password")
    person = await people("guesser")
    page = await person.page(f"{server.url}/?room=lobby-2&role=viewer")
    await page.fill("#name", "Guesser")
    alert = page.locator("#form-alert")
    for attempt in range(6):
        await page.fill("#password", f"guess-{attempt}")
        await page.click("#join-btn")
        await expect(alert).to_be_visible()
        if "Too many" in await alert.inner_text():
            break
    await expect(alert).to_contain_text("Too many wrong attempts")
    await expect(page.locator("#join-btn")).to_be_disabled()
    await expect(page.locator("#join-btn")).to_contain_text("Try again in")


async def test_create_a_room_from_the_lobby_then_join_it(server, people):
    person = await people("organiser")
    page = await person.page(f"{server.url}/?role=viewer")
    await page.fill("#name", "Organiser")
    await page.click("#create-details summary")
    await page.fill("#new-room", "new-room-1")
    await page.fill("#new-password", "fresh-password")
    await page.click("#create-btn")
    await expect(page.locator("#create-alert")).to_contain_text("administrator key")
    await page.fill("#admin-key", server.admin_key)
    await page.click("#create-btn")
    await expect(page.locator("#create-alert")).to_contain_text("is ready")
    await page.click("#create-btn")
    await expect(page.locator("#create-alert")).to_contain_text("already exists")
    # the join form was filled in for the new room's host
    await expect(page.locator("#room")).to_have_value("new-room-1")
    await expect(page.locator('input[name="role"][value="host"]')).to_be_checked()
    await page.click("#join-btn")
    await page.wait_for_url("**/room.html?room=new-room-1")


async def test_enter_in_the_admin_key_field_creates_and_never_joins(server, people):
    await server.create_room("existing-1", "join-password")
    person = await people("organiser")
    page = await person.page(f"{server.url}/?room=existing-1&role=viewer")
    # the join form is filled in and would succeed, were it submitted
    await page.fill("#password", "join-password")
    await page.fill("#name", "Organiser")
    await page.click("#create-details summary")
    await page.fill("#new-room", "made-by-enter")
    await page.fill("#new-password", "fresh-password")
    await page.fill("#admin-key", "wrong-key")
    await page.press("#admin-key", "Enter")
    await expect(page.locator("#create-alert")).to_contain_text("administrator key")
    await page.fill("#admin-key", server.admin_key)
    await page.press("#admin-key", "Enter")
    await expect(page.locator("#create-alert")).to_contain_text("is ready")
    assert await server.core.store.get("made-by-enter") is not None
    await expect(page.locator("#form-alert")).to_be_hidden()
    assert "/room.html" not in page.url and "/viewer.html" not in page.url
