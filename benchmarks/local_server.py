"""Our server as its own process on 127.0.0.1, for the benchmarks that measure it from
outside: a free port, a fresh data directory, an admin key, settings as TELEMED_* env."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from .readiness import answers_ok

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class LocalServer:
    url: str
    admin_key: str
    data_dir: str
    process: subprocess.Popen

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_key}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@asynccontextmanager
async def local_server(prefix: str, **settings: object) -> AsyncIterator[LocalServer]:
    """``settings`` are Settings names (``live_size="640x360"``); the server is up (answers
    /healthz) when this yields, and stopped, its data directory gone, after."""
    port, admin = free_port(), "bench-" + secrets.token_hex(8)
    with tempfile.TemporaryDirectory(prefix=f"telemed-{prefix}-") as data_dir:
        env = {**os.environ, "PYTHONPATH": str(REPO), "TELEMED_HOST": "127.0.0.1", "TELEMED_PORT": str(port),
               "TELEMED_ICE_HOSTS": "127.0.0.1", "TELEMED_ADMIN_KEY": admin, "TELEMED_DATA_DIR": data_dir,
               "TELEMED_LOG_LEVEL": "warning",
               # not the default 40000, which another benchmark or test server may hold
               "TELEMED_MEDIA_PORT": str(free_port()),
               **{f"TELEMED_{name.upper()}": str(value) for name, value in settings.items()}}
        process = subprocess.Popen([sys.executable, "-m", "signaling", "serve"], cwd=REPO, env=env)
        try:
            server = LocalServer(f"http://127.0.0.1:{port}", admin, data_dir, process)
            async with aiohttp.ClientSession() as http:
                if not await answers_ok(http, server.url + "/healthz", 30):
                    raise RuntimeError(f"the server did not answer at {server.url}")
            yield server
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
