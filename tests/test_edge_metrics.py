"""/metrics is never open to whoever reaches the consult port: by default it is
refused, with metrics_key it takes that bearer key, with metrics_listen it is served
on its own listener."""

from __future__ import annotations

import aiohttp
import pytest

from tests.server import free_port, start_server


async def get(url: str, key: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with aiohttp.ClientSession() as session:
        async with session.get(url, headers=headers) as r:
            return r.status, await r.text()


async def test_metrics_are_refused_by_default(server):
    status, body = await get(f"{server.url}/metrics")
    assert status == 403 and '"metrics-disabled"' in body
    assert "telemed_rooms" not in body


@pytest.fixture
async def keyed_server(tmp_path):
    running, runner = await start_server(str(tmp_path / "data"), metrics_key="m" * 32)
    yield running
    await runner.cleanup()


async def test_metrics_key(keyed_server):
    url = f"{keyed_server.url}/metrics"
    assert (await get(url))[0] == 401
    assert (await get(url, "wrong"))[0] == 401
    assert (await get(url, "\u00e9" * 32))[0] == 401  # not ASCII: refused, not a 500
    assert (await get(url, keyed_server.admin_key))[0] == 401  # the admin key is another key
    status, body = await get(url, "m" * 32)
    assert status == 200 and "telemed_rooms 0" in body
    assert "m" * 32 not in repr(keyed_server.core.settings)


async def test_metrics_on_a_separate_listener(tmp_path):
    port = free_port()
    running, runner = await start_server(str(tmp_path / "data"), metrics_listen=f"127.0.0.1:{port}")
    try:
        await running.create_room("counted", "pw-123456")
        status, body = await get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200 and "telemed_peers 0" in body
        assert (await get(f"{running.url}/metrics"))[0] == 403  # not on the public port
        assert (await get(f"http://127.0.0.1:{port}/api/config"))[0] == 404  # nothing else there
    finally:
        await runner.cleanup()
    with pytest.raises(aiohttp.ClientConnectionError):  # stopped with the server
        await get(f"http://127.0.0.1:{port}/metrics")
