"""Live teaching from the room page: a host goes live and ends it with one button; every
page of the room shows LIVE and how many trainees are watching."""

from __future__ import annotations

import pytest_asyncio
from playwright.async_api import expect

from telemed_client import Client
from tests.media import ColourTrack
from tests.server import start_server

from .conftest import room_url, wait_connected

ROOM, PASSWORD = "or-live", "pw-123456"


@pytest_asyncio.fixture
async def server(tmp_path):
    running, runner = await start_server(str(tmp_path / "data"), live_size="640x360",
                                         live_x264_preset="ultrafast", live_video_kbps=800)
    yield running
    await runner.cleanup()


async def test_host_goes_live_and_everyone_sees_who_watches(server, people):
    await server.create_room(ROOM, PASSWORD)
    camera = await Client.join(server.url, await server.token(ROOM, PASSWORD, name="OR camera"))
    try:
        await camera.publish(ColourTrack((0, 160, 0)), "camera", label="field")
        host = await (await people("host")).page(
            room_url(server, ROOM, await server.token(ROOM, PASSWORD, "host", "Prof")))
        doctor = await (await people("doctor")).page(
            room_url(server, ROOM, await server.token(ROOM, PASSWORD, "participant", "Dr. Guest")))
        for page in (host, doctor):
            await wait_connected(page)
            await expect(page.locator("#live-indicator")).to_be_hidden()
        await expect(doctor.locator("#live-button")).to_be_hidden()  # hosts only
        button = host.locator("#live-button")
        await expect(button).to_have_text("Go live")
        await button.click()
        for page in (host, doctor):
            await expect(page.locator("#live-indicator")).to_have_text("LIVE · 0 watching", timeout=30000)
        await expect(button).to_have_text("End live")

        trainee = await (await people("trainee")).page(
            f"{server.url}/watch.html?room={ROOM}#token={await server.token(ROOM, PASSWORD, 'viewer', 'Trainee')}")
        await expect(trainee.locator("#live-state")).to_have_text("Live", timeout=30000)
        for page in (host, doctor):
            await expect(page.locator("#live-indicator")).to_have_text("LIVE · 1 watching", timeout=30000)

        await button.click()
        for page in (host, doctor):
            await expect(page.locator("#live-indicator")).to_be_hidden(timeout=20000)
        await expect(button).to_have_text("Go live")
    finally:
        await camera.close()
