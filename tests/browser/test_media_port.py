"""Three Chromium pages and ten aiortc peers in one consult, all on the one media port."""

from __future__ import annotations

from telemed_client import Client
from tests.test_forwarding import frames
from tests.test_media_port import ice_of, server_ice, udp_ports_of_this_process, until

from .conftest import remote_videos_playing, room_url, wait_connected

ROOM = "one-port-consult"


async def test_three_pages_and_ten_aiortc_peers_on_one_udp_port(server, people):
    port = server.core.media_port.port
    await server.create_room(ROOM, "pw-123456")
    before = set(udp_ports_of_this_process())
    assert ("127.0.0.1", port) in before
    pages = []
    for name in ("Dr. A", "Dr. B", "Dr. C"):
        person = await people(name)
        pages.append(await person.page(room_url(server, ROOM, await server.mint(ROOM, "participant", name))))
    for page in pages:
        await wait_connected(page)
    for page in pages:
        await remote_videos_playing(page, 2)
    clients: list[Client] = []
    try:
        for n in range(10):
            client = await Client.join(server.url, await server.mint(ROOM, "participant", f"Trainee {n}"))
            clients.append(client)
            await until(lambda: any(t["kind"] == "audio" for t in client.tracks.values()), what="a page's audio")
            audio = next(t["id"] for t in client.tracks.values() if t["kind"] == "audio")
            await frames(await client.subscribe(audio), 5)
        live = server.core.live.rooms[ROOM]
        assert len(live.peers) == 13
        # All thirteen server-side connections selected a pair on the media port...
        for peer in live.peers.values():
            assert ice_of(peer.connection.pc)._nominated[1].local_addr == ("127.0.0.1", port)
        for client in clients:
            assert ice_of(client.pc)._nominated[1].remote_addr == ("127.0.0.1", port)
        # ...and the server bound no UDP socket for them: the sockets ss finds new in this
        # process are the aiortc clients' own (Chromium's are in its processes).
        client_ports = {p.transport.get_extra_info("sockname")[1] for c in clients for p in ice_of(c.pc)._protocols}
        assert [a for a in set(udp_ports_of_this_process()) - before if a[1] not in client_ports] == []
        assert ("127.0.0.1", port) in udp_ports_of_this_process()
        # The pages still play each other's video with thirteen peers on the port.
        for page in pages:
            await remote_videos_playing(page, 2)
        assert server_ice(server, ROOM, clients[0].peer_id).local_username in server.core.media_port.sockets[0].by_ufrag
    finally:
        for client in clients:
            await client.close()
