"""Join and leave many times: afterwards no peers, consumers, tasks or sockets remain."""

from __future__ import annotations

import asyncio
import gc
import os
import weakref

from telemed_client import Client
from tests.media import PatternTrack
from tests.server import start_server
from tests.test_forwarding import frames


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0.1)
    gc.collect()


async def test_join_leave_churn_leaks_nothing(tmp_path):
    # A peer that vanishes keeps its seat for the resume grace period (docs/resume.md):
    # a short one here, so that the vanished are gone by the time we look.
    server, runner = await start_server(str(tmp_path), resume_grace=0.5)
    try:
        await churn(server)
    finally:
        await runner.cleanup()


async def churn(server) -> None:
    await server.create_room("churn", "pw-123456")
    anchor = await Client.join(server.url, await server.token("churn", "pw-123456", name="Anchor"))
    video = await anchor.publish(PatternTrack())
    await settle()
    tasks_before, fds_before = len(asyncio.all_tasks()), open_fds()
    connections = []
    for cycle in range(12):
        client = await Client.join(server.url, await server.token("churn", "pw-123456", name=f"Guest {cycle}"),
                                   auto_resume=False)
        if cycle % 2:
            await client.publish(PatternTrack())
        track = await client.subscribe(video)
        await frames(track, 2)
        peer = server.core.live.rooms["churn"].peers[client.peer_id]
        connections.append(weakref.ref(peer.connection))
        if cycle % 3 == 0:
            await client._ws.close()  # vanish without 'leave'
            await client.pc.close()
            await client._session.close()
        else:
            await client.close()
    await settle()
    room = server.core.live.rooms["churn"]
    assert list(room.peers) == [anchor.peer_id]
    assert [p.id for p in room.router.producers.values()] == [video]
    assert room.router.get(video).consumers == []
    alive = [i for i, ref in enumerate(connections) if ref() is not None]
    assert not alive, f"closed Connections still referenced: {alive}"
    assert len(asyncio.all_tasks()) <= tasks_before + 2
    assert open_fds() <= fds_before + 4
    await anchor.close()
    await settle()
    assert server.core.live.rooms == {}
    metrics = server.core.metrics.render()
    assert "telemed_peers 0" in metrics and "telemed_consumers 0" in metrics
