"""ICE-TCP (RFC 6544): Chromium in a network namespace where UDP to the server is
dropped still joins, over the media port's TCP side, and sees and sends video."""

from __future__ import annotations

import os
import shutil

import pytest
import pytest_asyncio

from tests.client_namespace import ClientNamespace
from tests.server import start_server
from tests.test_media_port import until

from .conftest import Person, chromium_in, remote_videos_playing, room_url, wait_connected

if os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("ip"):
    pytest.skip("needs root, ip and nft to build the UDP-less network namespace", allow_module_level=True)


@pytest_asyncio.fixture
async def udp_blocked(tmp_path):
    """Chromium in a namespace where UDP to and from the server's side is dropped, as a
    hospital firewall that allows only TCP does; the server listens on that side."""
    with ClientNamespace("tcp") as namespace:
        namespace.nft(f"""table inet firewall {{
          chain out {{ type filter hook output priority 0; ip daddr {namespace.host_ip} meta l4proto udp drop; }}
          chain in {{ type filter hook input priority 0; ip saddr {namespace.host_ip} meta l4proto udp drop; }}
        }}""")
        server, runner = await start_server(str(tmp_path / "data"), host=namespace.host_ip,
                                            ice_hosts=[namespace.host_ip])
        try:
            async with chromium_in(namespace, server.url, tmp_path) as browser:
                yield server, browser, namespace
        finally:
            await runner.cleanup()


async def test_tcp_only_browsers_connect_and_get_media(udp_blocked):
    server, browser, namespace = udp_blocked
    media_port = server.core.media_port
    await server.create_room("tcp-only", "pw-123456")
    people = []
    try:
        pages = []
        for name in ("Dr. Ward 3", "Dr. Ward 7"):
            person = Person(await browser.new_context(), name)
            people.append(person)
            pages.append(await person.page(room_url(server, "tcp-only", await server.mint("tcp-only", "participant", name))))
        for page in pages:
            await wait_connected(page, timeout=45)
        for page in pages:
            await remote_videos_playing(page, 1, timeout=45)
        live = server.core.live.rooms["tcp-only"]
        for peer in live.peers.values():
            pair = peer.connection.pc.sctp.transport.transport._connection._nominated[1]
            assert pair.protocol.local_candidate.transport == "tcp"
            assert pair.local_addr[1] == media_port.port
        assert len(media_port.sockets[0].links) >= 2
        # Nothing from the namespace reached the UDP side.
        assert not [a for a in media_port.sockets[0].by_address if a[0] == namespace.client_ip]
        assert not [e for p in people for e in p.errors]
        # Leaving frees the links and every demultiplexing entry.
        for person in people:
            await person.context.close()
        people = []
        await until(lambda: media_port.entries() == 0, timeout=30, what="the links to go")
    finally:
        for person in people:
            await person.context.close()
