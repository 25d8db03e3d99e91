"""A real server on 127.0.0.1 for integration and browser tests, ICE pinned to loopback."""

from __future__ import annotations

import itertools
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import pytest_asyncio
from aiohttp import web

from signaling.app import SERVER_KEY, create_app
from signaling.config import Settings
from signaling.connection_limits import edge_runner
from signaling.server import Server
from telemed_client import create_room, fetch_token

ADMIN_KEY = "test-admin-key"


def _port_pool() -> Iterator[int]:
    """Port numbers for test servers: below the kernel's ephemeral range, which every
    bind to port 0 and every outgoing connection draws from (a port probed free there
    could be taken by the other worker's clients before our server binds it), and split
    between the xdist workers, so that neither hands out the other's."""
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        ephemeral = int(f.read().split()[0])
    first, end = 10000, min(20000, ephemeral)  # tests/test_media_port_range.py takes 20000 up
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    share = (end - first) // max(workers, worker + 1)
    return itertools.cycle(range(first + worker * share, first + (worker + 1) * share))


_pool = _port_pool()


def _bindable(port: int, kinds: tuple[int, ...]) -> bool:
    try:
        for kind in kinds:
            with socket.socket(socket.AF_INET, kind) as s:
                s.bind(("127.0.0.1", port))
    except OSError:
        return False
    return True


def free_port() -> int:
    """A TCP port that no test of this run has been given, free now."""
    return next(p for p in _pool if _bindable(p, (socket.SOCK_STREAM,)))


def free_media_port() -> int:
    """A port free for both UDP and TCP (the media port uses both), so that test servers
    running at once never meet on the default 40000."""
    return next(p for p in _pool if _bindable(p, (socket.SOCK_DGRAM, socket.SOCK_STREAM)))


@dataclass
class RunningServer:
    url: str
    admin_key: str
    app: web.Application

    @property
    def core(self) -> Server:
        return self.app[SERVER_KEY]

    async def create_room(self, name: str, password: str, passwords: dict | None = None,
                          **settings: object) -> dict:
        """``password`` is the host's; tests ask it for lower roles, or set ``passwords``."""
        return await create_room(self.url, name, password, self.admin_key, settings, passwords)

    async def token(self, room: str, password: str, role: str = "participant", name: str = "X") -> str:
        return (await fetch_token(self.url, room, password, role, name))["token"]

    async def mint(self, room: str, role: str, name: str = "X", identity: str | None = None) -> str:
        """A token minted with the admin key, which (like an API key) may name the identity."""
        return (await fetch_token(self.url, room, role=role, name=name, identity=identity,
                                  api_key=self.admin_key))["token"]


async def start_server(data_dir: str, also_on: str | None = None,
                       **overrides: object) -> tuple[RunningServer, web.AppRunner]:
    """A real server in this process; `also_on`: another address its HTTP listens on too
    (the host end of a test's veth, for clients in a namespace)."""
    port = free_port()
    settings = Settings(**{"host": "127.0.0.1", "port": port, "ice_hosts": ["127.0.0.1"],
                           "media_port": free_media_port(), "data_dir": data_dir, "admin_key": ADMIN_KEY, "secret": "s" * 48,
                           **overrides})
    app = create_app(settings)
    runner = edge_runner(app, settings)
    await runner.setup()
    await web.TCPSite(runner, settings.host, port).start()
    if also_on:
        await web.TCPSite(runner, also_on, port).start()
    return RunningServer(f"http://{settings.host}:{port}", ADMIN_KEY, app), runner


@pytest_asyncio.fixture
async def server(tmp_path):
    running, runner = await start_server(str(tmp_path / "data"))
    yield running
    await runner.cleanup()
