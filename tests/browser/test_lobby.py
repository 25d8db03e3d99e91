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
