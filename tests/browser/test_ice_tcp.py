"""ICE-TCP (RFC 6544): Chromium in a network namespace where UDP to the server is
dropped still joins, over the media port's TCP side, and sees and sends video."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import pytest_asyncio
from aiohttp import web

from signaling.app import create_app
from signaling.config import Settings
from signaling.connection_limits import edge_runner
from tests import network_guard
from tests.server import ADMIN_KEY, RunningServer, free_media_port, free_port
from tests.test_media_port import until

from .conftest import CHROMIUM, CHROMIUM_ARGS, Person, playwright_api, remote_videos_playing, room_url, wait_connected

if os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("ip"):
    pytest.skip("needs root, ip and nft to build the UDP-less network namespace", allow_module_level=True)


def run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, text=True, timeout=20)


class UdpBlockedNamespace:
    """A namespace joined to ours by a veth pair; inside it, UDP to and from our side of
    the pair is dropped, as a hospital firewall that allows only TCP does."""

    def __init__(self) -> None:
        pid = os.getpid()
        subnet = 20 + pid % 200
        self.name = f"tmtcp-{pid}"
        self.host_ip, self.client_ip = f"10.97.{subnet}.1", f"10.97.{subnet}.2"
        self._host_veth, self._client_veth = f"tmt{pid}h"[:15], f"tmt{pid}c"[:15]

    def __enter__(self) -> "UdpBlockedNamespace":
        run("ip", "netns", "add", self.name)
        try:
            run("ip", "link", "add", self._host_veth, "type", "veth", "peer", "name", self._client_veth,
                "netns", self.name)
            run("ip", "addr", "add", f"{self.host_ip}/24", "dev", self._host_veth)
            run("ip", "link", "set", self._host_veth, "up")
            run("ip", "-n", self.name, "addr", "add", f"{self.client_ip}/24", "dev", self._client_veth)
            run("ip", "-n", self.name, "link", "set", self._client_veth, "up")
            run("ip", "-n", self.name, "link", "set", "lo", "up")
            rules = (f"table inet firewall {{\n"
                     f"  chain out {{ type filter hook output priority 0; ip daddr {self.host_ip} meta l4proto udp drop; }}\n"
                     f"  chain in {{ type filter hook input priority 0; ip saddr {self.host_ip} meta l4proto udp drop; }}\n"
                     f"}}\n")
            subprocess.run(["ip", "netns", "exec", self.name, "nft", "-f", "-"], input=rules, check=True,
                           capture_output=True, text=True, timeout=20)
        except BaseException:
            self.close()
            raise
        # The guard admits loopback and this machine's addresses; these two are ours now.
        self._guarded = {network_guard.ipaddress.ip_address(a) for a in (self.host_ip, self.client_ip)}
        network_guard.OWN_ADDRESSES.update(self._guarded)
        return self

    def __exit__(self, *exc: object) -> None:
        network_guard.OWN_ADDRESSES.difference_update(getattr(self, "_guarded", set()))
        self.close()

    def close(self) -> None:
        pids = subprocess.run(["ip", "netns", "pids", self.name], capture_output=True, text=True, timeout=10)
        for pid in pids.stdout.split():  # only what this test started runs in its namespace
            try:
                os.kill(int(pid), 9)
            except (ProcessLookupError, ValueError):
                pass
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=20)
        subprocess.run(["ip", "link", "del", self._host_veth], capture_output=True, timeout=20)


@pytest_asyncio.fixture
async def udp_blocked(tmp_path):
    with UdpBlockedNamespace() as namespace:
        port = free_port()
        settings = Settings(host=namespace.host_ip, port=port, ice_hosts=[namespace.host_ip],
                            media_port=free_media_port(), data_dir=str(tmp_path / "data"),
                            admin_key=ADMIN_KEY, secret="s" * 48)
        app = create_app(settings)
        runner = edge_runner(app, settings)
        await runner.setup()
        await web.TCPSite(runner, namespace.host_ip, port).start()
        server = RunningServer(f"http://{namespace.host_ip}:{port}", ADMIN_KEY, app)
        wrapper = tmp_path / "chromium-in-namespace"
        wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {namespace.name} {CHROMIUM} "$@"\n')
        wrapper.chmod(0o755)
        try:
            async with playwright_api.async_playwright() as p:
                browser = await p.chromium.launch(executable_path=str(wrapper), args=[
                    *CHROMIUM_ARGS, f"--unsafely-treat-insecure-origin-as-secure={server.url}"])
                try:
                    yield server, browser, namespace
                finally:
                    await browser.close()
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
