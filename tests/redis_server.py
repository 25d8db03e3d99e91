"""A throwaway real Redis server for tests: ``from tests.redis_server import redis_url``."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator

import pytest

from tests.processes import serving
from tests.server import free_port

REDIS_SERVER = "/usr/bin/redis-server"
_STARTUP_TIMEOUT = 10.0


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def redis_binary() -> str:
    binary = REDIS_SERVER if shutil.which(REDIS_SERVER) else shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed: run scripts/bootstrap.sh")
    return binary


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = redis_binary()
    workdir = tmp_path_factory.mktemp("redis")
    port = free_port()
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(workdir)]
    with serving("redis-server", args, workdir / "redis.log", lambda: _answers_ping(port), _STARTUP_TIMEOUT):
        yield f"redis://127.0.0.1:{port}/0"
