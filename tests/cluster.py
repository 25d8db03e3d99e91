"""Three real server processes sharing one real Redis (on loopback) and one data
directory, as docs/multinode.md deploys them: ``cluster`` fixture."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from cluster import NodeInfo
from sfu import pin_host_addresses
from tests.processes import serving
from tests.redis_server import _STARTUP_TIMEOUT, _answers_ping, redis_binary
from tests.server import ADMIN_KEY, free_media_port, free_port

ROOT = Path(__file__).resolve().parents[1]
NODE_TTL = 6.0  # the default: shorter would count a node starved by a busy test machine as dead
_NODE_STARTUP = 30.0


class RedisProcess:
    """A Redis that the test may stop and start again on the same port; it keeps its data
    in an append-only file, as a production Redis holding the room store must."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.workdir)]
        with (self.workdir / "redis.log").open("ab") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        wait_until(lambda: _answers_ping(self.port), _STARTUP_TIMEOUT, "redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@dataclass
class Node:
    id: str
    url: str
    proc: subprocess.Popen


@dataclass
class Cluster:
    redis: RedisProcess
    data_dir: Path
    nodes: list[Node] = field(default_factory=list)
    stack: ExitStack = field(default_factory=ExitStack)

    def start_node(self, node_id: str, **settings: str) -> Node:
        """A node; ``settings`` as TELEMED_* environment variables."""
        port = free_port()
        env = {**os.environ, "TELEMED_ADMIN_KEY": ADMIN_KEY, "TELEMED_LOG_LEVEL": "warning",
               **{f"TELEMED_{name.upper()}": value for name, value in settings.items()}}
        args = [sys.executable, "-m", "signaling", "serve", "--host", "127.0.0.1", "--port", str(port),
                "--ice-hosts", "127.0.0.1", "--data-dir", str(self.data_dir),
                "--room-store", self.redis.url, "--node-id", node_id, "--node-ttl", str(NODE_TTL),
                "--media-port", str(free_media_port())]  # each node its own, as on its own machine
        url = f"http://127.0.0.1:{port}"
        proc = self.stack.enter_context(serving(
            f"node {node_id}", args, self.data_dir.parent / f"{node_id}.log", lambda: _healthy(url),
            _NODE_STARTUP, cwd=ROOT, env=env))
        node = Node(node_id, url, proc)
        self.nodes.append(node)
        return node


    def replace(self, dead: Node) -> Node:
        """A node of the same id, where ``dead`` (killed) was: for the tests that follow."""
        dead.proc.wait()
        fresh = self.start_node(dead.id)
        self.nodes.remove(fresh)
        self.nodes[self.nodes.index(dead)] = fresh
        return fresh


def redis_keys(url: str, pattern: str) -> list[str]:
    client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=2)
    try:
        return sorted(client.scan_iter(pattern))
    finally:
        client.close()


def set_lease(url: str, room: str, node_id: str) -> None:
    """Give ``room``'s lease to ``node_id`` for a minute, as if it had been placed there."""
    client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=2)
    try:
        client.set(f"telemed:lease:{room}", node_id, px=60_000)
    finally:
        client.close()


def restore_heartbeat(url: str, node_id: str, node_url: str) -> None:
    """A heartbeat for ``node_id`` that lives a minute, as if it had just beaten."""
    client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=2)
    try:
        client.set(f"telemed:node:{node_id}", NodeInfo(node_id, node_url).to_json(), px=60_000)
        client.sadd("telemed:nodes", node_id)
    finally:
        client.close()


def forget_node(url: str, node_id: str) -> None:
    client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=2)
    try:
        client.delete(f"telemed:node:{node_id}")
        client.srem("telemed:nodes", node_id)
    finally:
        client.close()


def wait_until(condition, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(message)
        time.sleep(0.05)


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    """Redis and three nodes n1, n2, n3 sharing one data directory, for the whole module
    (starting them is most of what a test costs). A test that kills a node puts a new one
    in its place (``replace``); one that adds a node takes it out again (``nodes.remove``);
    rooms are named per test."""
    tmp_path = tmp_path_factory.mktemp("cluster")
    # The nodes run in their own processes: this one's clients must offer loopback too, as an
    # in-process server would have pinned it (aioice skips loopback; offline, it is all there is).
    pin_host_addresses(["127.0.0.1"])
    (tmp_path / "redis").mkdir()
    server = RedisProcess(tmp_path / "redis")
    server.start()
    (tmp_path / "data").mkdir()
    running = Cluster(server, tmp_path / "data")
    try:
        with running.stack:
            for node_id in ("n1", "n2", "n3"):
                running.start_node(node_id)
            yield running
    finally:
        server.stop()
