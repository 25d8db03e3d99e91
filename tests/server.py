"""A real server on 127.0.0.1 for integration and browser tests, ICE pinned to loopback."""

from __future__ import annotations

import socket
from dataclasses import dataclass

import pytest_asyncio
from aiohttp import web

from signaling.app import SERVER_KEY, create_app
from signaling.config import Settings
from signaling.connection_limits import edge_runner
from signaling.server import Server
from telemed_client import create_room, fetch_token

ADMIN_KEY = "test-admin-key"


# Every port handed out in this process: the kernel may hand a closed probe's port out
# again at once, and a server given the same number for HTTP and media cannot start.
_handed_out: set[int] = set()


def free_port() -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def free_media_port() -> int:
    """A port free for both UDP and TCP (the media port uses both), so that test servers
    running at once, other engineers' included, never meet on the default 40000."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, socket.socket() as tcp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            try:
                tcp.bind(("127.0.0.1", port))
            except OSError:
                continue
        if port not in _handed_out:
            _handed_out.add(port)
            return port


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
