"""Simulcast under a shrinking link: a Chromium trainee behind a veth whose downlink
(tc tbf) goes 3 Mbit/s -> 400 kbit/s -> 3 Mbit/s gets a lower layer within seconds of
the drop and the full one back after it, and keeps decoding throughout."""

from __future__ import annotations

import os
import shutil
import time

import pytest
import pytest_asyncio
from aiohttp import web

from signaling.app import create_app
from signaling.config import Settings
from signaling.connection_limits import edge_runner
from tests.server import ADMIN_KEY, RunningServer, free_media_port, free_port

from .conftest import CHROMIUM, CHROMIUM_ARGS, Person, playwright_api, remote_videos_playing, room_url, wait_connected
from .shaped_link import ShapedLink
from .test_simulcast import camera_consumer, peer_id, until

if os.geteuid() != 0 or not shutil.which("tc") or not shutil.which("ip"):
    pytest.skip("needs root, ip and tc to build the shaped network namespace", allow_module_level=True)

ROOM = "simulcast-1"  # camera_consumer() looks here
PASSWORD = "simulcast-pw"


@pytest_asyncio.fixture
async def shaped(tmp_path):
    with ShapedLink("sc") as link:
        link.rate(3000)
        port = free_port()
        settings = Settings(host=link.host_ip, port=port, ice_hosts=[link.host_ip],
                            media_port=free_media_port(), data_dir=str(tmp_path / "data"),
                            admin_key=ADMIN_KEY, secret="s" * 48)
        app = create_app(settings)
        runner = edge_runner(app, settings)
        await runner.setup()
        await web.TCPSite(runner, link.host_ip, port).start()
        server = RunningServer(f"http://{link.host_ip}:{port}", ADMIN_KEY, app)
        wrapper = tmp_path / "chromium-in-namespace"
        wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {link.name} {CHROMIUM} "$@"\n')
        wrapper.chmod(0o755)
        try:
            async with playwright_api.async_playwright() as p:
                browser = await p.chromium.launch(executable_path=str(wrapper), args=[
                    *CHROMIUM_ARGS, f"--unsafely-treat-insecure-origin-as-secure={server.url}"])
                try:
                    yield server, browser, link
                finally:
                    await browser.close()
        finally:
            await runner.cleanup()


async def camera_width(page) -> int:
    return (await remote_videos_playing(page, 1, source="camera", timeout=60))[0]["videoWidth"]


async def test_layers_follow_the_link_down_and_back_up(shaped):
    server, browser, link = shaped
    await server.create_room(ROOM, PASSWORD)
    people = []
    try:
        surgeon = Person(await browser.new_context(), "surgeon")
        trainee = Person(await browser.new_context(viewport={"width": 1440, "height": 900}), "trainee")
        people += [surgeon, trainee]
        host_url = room_url(server, ROOM, await server.token(ROOM, PASSWORD, "host", "Dr. Surgeon"))
        publisher = await surgeon.page(host_url.replace("quality=sd", "quality=hd"))
        await wait_connected(publisher, timeout=45)
        viewer = await trainee.page(room_url(server, ROOM, await server.token(ROOM, PASSWORD, "viewer", "Trainee"),
                                             page="viewer.html"))
        await wait_connected(viewer, timeout=45)
        viewer_id = await peer_id(viewer)
        consumer = await until(lambda: (c := camera_consumer(server, viewer_id)) and c.layer == 2 and c,
                               what="the full layer at 3 Mbit/s")
        assert await camera_width(viewer) == 1280

        link.rate(400)
        dropped = time.monotonic()
        await until(lambda: consumer.layer < 2, what="a lower layer at 400 kbit/s")
        down_after = time.monotonic() - dropped
        assert await camera_width(viewer) < 1280  # and it still plays

        link.rate(3000)
        restored = time.monotonic()
        await until(lambda: consumer.layer == 2, timeout=90, what="the full layer back at 3 Mbit/s")
        up_after = time.monotonic() - restored
        assert await camera_width(viewer) == 1280
        print(f"layer switch: down {down_after:.1f} s after the drop, up {up_after:.1f} s after the restore")
        assert not [e for p in people for e in p.errors]
    finally:
        for person in people:
            await person.context.close()
