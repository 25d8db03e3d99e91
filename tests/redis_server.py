"""A throwaway real Redis server for tests: ``from tests.redis_server import redis_url``."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

REDIS_SERVER = "/usr/bin/redis-server"
_STARTUP_TIMEOUT = 10.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = REDIS_SERVER if shutil.which(REDIS_SERVER) else shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed: run scripts/bootstrap.sh")
    workdir = tmp_path_factory.mktemp("redis")
    log = workdir / "redis.log"  # a file, not a pipe: an unread pipe would block redis
    port = _free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(workdir), "--logfile", str(log)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + _STARTUP_TIMEOUT
        while not _answers_ping(port):
            if proc.poll() is not None:
                output = log.read_text(errors="replace") if log.exists() else ""
                pytest.fail(f"redis-server exited with {proc.returncode}:\n{output[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"redis-server did not answer PING within {_STARTUP_TIMEOUT} s")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
