"""A restart on the same data directory keeps rooms, their passwords, their shared objects
and the tokens and links already handed out."""

from __future__ import annotations

import stat

import aiohttp

from signaling.server import SECRET_FILE
from tests.clinical_peers import PASSWORD, bundled, close, join
from tests.server import start_server
from tests.tmpfs import Filler, small_disk  # noqa: F401 (fixture)


async def get(url: str, token: str | None = None) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as session:
        async with session.get(url, headers=headers) as r:
            return r.status, await r.read()


async def test_room_password_share_and_tokens_survive_a_restart(tmp_path):
    data_dir = str(tmp_path / "data")
    before, runner = await start_server(data_dir, secret=None)  # the embedded defaults
    try:
        await before.create_room("kept", PASSWORD, max_participants=9)
        sender = await join(before, "kept", "Dr A")
        try:
            dicom = bundled("CT_small.dcm")
            receipt = await sender.send_dicom(dicom, "ct.dcm")
        finally:
            await close(sender)
        token = await before.token("kept", PASSWORD, "viewer", "Trainee")
    finally:
        await runner.cleanup()
    key_file = tmp_path / "data" / SECRET_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text()

    after, runner = await start_server(data_dir, secret=None)
    try:
        base = f"{after.url}/api/rooms/kept"
        status, body = await get(base, token)  # a token from before the restart still works
        assert status == 200
        assert await get(f"{base}/objects/{receipt['sha256']}", token) == (200, dicom)
        assert await get(after.url + receipt["url"]) == (200, dicom)  # so does a signed link
        assert await after.token("kept", PASSWORD)  # and the password
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{base}/token", json={"password": "wrong-password"}) as r:
                assert r.status == 401
        room = await after.core.store.get("kept")
        assert room.settings.max_participants == 9
        assert key_file.read_text() == key  # the key was kept, not replaced
    finally:
        await runner.cleanup()


async def test_memory_store_still_forgets_on_restart(tmp_path):
    data_dir = str(tmp_path / "data")
    before, runner = await start_server(data_dir, room_store="memory")
    try:
        await before.create_room("gone", PASSWORD)
    finally:
        await runner.cleanup()
    after, runner = await start_server(data_dir, room_store="memory")
    try:
        assert await after.core.store.get("gone") is None
    finally:
        await runner.cleanup()


async def test_a_full_disk_refuses_a_new_room_cleanly_and_keeps_the_others(small_disk):
    running, runner = await start_server(str(small_disk / "data"))
    try:
        await running.create_room("kept", PASSWORD)
        filler = Filler(small_disk)
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {running.admin_key}"}) as http:
            for n in range(20):  # until the room store itself runs out of pages
                async with http.post(f"{running.url}/api/rooms",
                                     json={"name": f"new-{n}", "password": PASSWORD}) as r:
                    status, body = r.status, await r.json()
                if status != 201:
                    break
            assert status == 503 and body["code"] == "storage-unavailable"
            refused = f"new-{n}"
            async with http.get(f"{running.url}/api/rooms/kept") as r:
                assert r.status == 200
            filler.remove()
            async with http.post(f"{running.url}/api/rooms", json={"name": refused, "password": PASSWORD}) as r:
                assert r.status == 201  # nothing half-written stood in the way
        assert [room.name for room in await running.core.store.list()] == [
            "kept", *sorted(f"new-{i}" for i in range(n + 1))]
    finally:
        await runner.cleanup()
