"""Two doctors whose pages come from different nodes of a cluster meet on the node hosting
the room: the page follows the `moved` reply by itself (docs/multinode.md)."""

from __future__ import annotations

import asyncio

from telemed_client import create_room, fetch_token

from tests.cluster import set_lease
from tests.server import ADMIN_KEY

from .conftest import remote_videos_playing, wait_connected, wait_for

ROOM = "regional-consult"
PASSWORD = "s3cret-regional"


async def test_pages_from_two_nodes_meet_on_the_hosting_node(cluster, people):
    n1, n2, n3 = cluster.nodes
    await create_room(n1.url, ROOM, PASSWORD, ADMIN_KEY)
    pages = []
    for node, name in ((n2, "Dr. Amina Okafor"), (n3, "Dr. Li Wei")):
        token = (await fetch_token(node.url, ROOM, PASSWORD, name=name))["token"]
        person = await people(name)
        pages.append(await person.page(f"{node.url}/room.html?room={ROOM}&quality=sd#token={token}"))
        await wait_connected(pages[-1])
    for page in pages:
        await remote_videos_playing(page, 1)
    # The second page was moved to the first's node; its own origin never hosted the room.
    hosts = [await page.evaluate("window.telemed.session.sig.ws.url") for page in pages]
    assert hosts[0] == hosts[1] == n2.url.replace("http", "ws", 1) + "/ws"

    # n3 gets the room's lease (as if n2's heartbeat had lapsed): n2 sends both pages on,
    # and they meet again there by themselves.
    await asyncio.to_thread(set_lease, cluster.redis.url, ROOM, "n3")
    moved = n3.url.replace("http", "ws", 1) + "/ws"
    for page in pages:
        await wait_for(page, "(url) => window.telemed.session.sig && window.telemed.session.sig.ws.url === url "
                             "&& window.telemed.session.status === 'connected'", timeout=60, arg=moved)
    for page in pages:
        await remote_videos_playing(page, 1)
