"""Simulcast under a shrinking link: a Chromium trainee behind a veth whose downlink
(tc tbf) goes 3 Mbit/s -> 400 kbit/s -> 3 Mbit/s gets a lower layer within seconds of
the drop and the full one back after it, and keeps decoding throughout."""

from __future__ import annotations

import os
import shutil
import time

import pytest
import pytest_asyncio

from tests.client_namespace import ClientNamespace
from tests.server import start_server

from .conftest import Person, chromium_in, remote_videos_playing, room_url, wait_connected
from .test_simulcast import camera_consumer, peer_id, until

if os.geteuid() != 0 or not shutil.which("tc") or not shutil.which("ip"):
    pytest.skip("needs root, ip and tc to build the shaped network namespace", allow_module_level=True)

ROOM = "simulcast-1"  # camera_consumer() looks here
PASSWORD = "simulcast-pw"


@pytest_asyncio.fixture
async def shaped(tmp_path):
    with ClientNamespace("sc") as link:
        link.rate(3000)
        server, runner = await start_server(str(tmp_path / "data"), host=link.host_ip, ice_hosts=[link.host_ip])
        try:
            async with chromium_in(link, server.url, tmp_path) as browser:
                yield server, browser, link
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
