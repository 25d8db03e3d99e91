"""The page's `tile-size` message: checked, answered with an error when wrong, harmless when right."""

from __future__ import annotations

import asyncio

import pytest

from telemed_client import Client, ClientError
from tests.test_forwarding import join_publishing


async def test_tile_size_is_checked_and_a_good_one_changes_nothing_for_single_layer_video(server):
    await server.create_room("tiles", "pw-123456")
    publisher, tracks = await join_publishing(server, "tiles", "Camera")
    viewer = await Client.join(server.url, await server.token("tiles", "pw-123456", name="Viewer"))
    try:
        await viewer.subscribe(tracks["video"])
        for message, code in [({"type": "tile-size", "width": 10, "height": 10}, "bad-request"),
                              ({"type": "tile-size", "track_id": tracks["video"], "width": "640", "height": 360}, "bad-request"),
                              ({"type": "tile-size", "track_id": tracks["video"], "width": 0, "height": 360}, "bad-request"),
                              ({"type": "tile-size", "track_id": tracks["video"], "width": 640.5, "height": 360}, "bad-request"),
                              ({"type": "tile-size", "track_id": tracks["video"], "width": True, "height": 360}, "bad-request"),
                              ({"type": "tile-size", "track_id": tracks["video"], "width": 10**9, "height": 360}, "bad-request"),
                              ({"type": "tile-size", "track_id": tracks["audio"], "width": 640, "height": 360}, "not-subscribed"),
                              ({"type": "tile-size", "track_id": "nope", "width": 640, "height": 360}, "not-subscribed")]:
            with pytest.raises(ClientError) as err:
                await viewer.request(message)
            assert err.value.code == code, message
        # A good one has no answer (an error would come before the pong: one socket, in order).
        ok = asyncio.ensure_future(viewer.request({"type": "tile-size", "track_id": tracks["video"],
                                                   "width": 640, "height": 360}))
        assert (await viewer.request({"type": "ping"}))["type"] == "pong"
        assert not ok.done()
        ok.cancel()
    finally:
        await viewer.close()
        await publisher.close()
