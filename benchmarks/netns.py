"""Two network namespaces joined by a veth pair: servers on one side, clients on the other.

Janus offers no loopback candidates, and aioice skips loopback too, so both SFUs
listen on a veth address. All benchmark traffic stays inside namespaces this
module created; they are deleted on exit, whatever happened.

The resume tests and benchmark also move the client to a new address (a new cell),
impair the link, and run the server in-process: `entered(ns)` puts the calling thread
(only it) into a namespace for a while. With ``impairable``, the link runs through a
third namespace where benchmarks/impairment.py copies frames (this kernel has no
`tc netem`), and `impair()` sets its loss and jitter.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

SERVER_IP = "10.99.0.1"
CLIENT_IP = "10.99.0.2"
NETWORK = "10.99.0.0/24"
PREFIX = 24


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=20)


class NetnsPair:
    def __init__(self, tag: str | None = None, impairable: bool = False) -> None:
        tag = tag or str(os.getpid())
        self.server = f"tmbench-srv-{tag}"
        self.client = f"tmbench-cli-{tag}"
        self.middle = f"tmbench-mid-{tag}" if impairable else None
        # Interface names are limited to 15 characters.
        self._veth_srv = f"tbs{tag}"[:15]
        self._veth_cli = f"tbc{tag}"[:15]
        self._created: list[str] = []
        self._bridge: subprocess.Popen | None = None

    def __enter__(self) -> "NetnsPair":
        try:
            for ns in (self.server, self.client, self.middle):
                if ns is None:
                    continue
                _ip("netns", "add", ns)
                self._created.append(ns)
                _ip("-n", ns, "link", "set", "lo", "up")
            if self.middle is None:
                _ip("link", "add", self._veth_srv, "netns", self.server, "type", "veth",
                    "peer", "name", self._veth_cli, "netns", self.client)
            else:
                self._link_through_middle()
            _ip("-n", self.server, "addr", "add", f"{SERVER_IP}/{PREFIX}", "dev", self._veth_srv)
            _ip("-n", self.client, "addr", "add", f"{CLIENT_IP}/{PREFIX}", "dev", self._veth_cli)
            _ip("-n", self.server, "link", "set", self._veth_srv, "up")
            _ip("-n", self.client, "link", "set", self._veth_cli, "up")
        except BaseException:
            self.close()
            raise
        return self

    def _link_through_middle(self) -> None:
        ends = []
        for ns, veth in ((self.server, self._veth_srv), (self.client, self._veth_cli)):
            end = "m" + veth[1:]
            _ip("link", "add", veth, "netns", ns, "type", "veth", "peer", "name", end, "netns", self.middle)
            # Frames no larger than the MTU: the bridge copies frames, it cannot segment.
            _ip("-n", ns, "link", "set", veth, "gso_max_segs", "1", "gso_max_size", "1500")
            _ip("-n", self.middle, "link", "set", end, "promisc", "on", "up")
            ends.append(end)
        self._bridge = subprocess.Popen(
            ["ip", "netns", "exec", self.middle, sys.executable, "-m", "benchmarks.impairment", *ends],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        if self._bridge.stdout.readline().strip() != "bridging":
            raise RuntimeError("the impairment bridge did not start")

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._bridge is not None:
            self._bridge.kill()
            self._bridge.wait(10)
            self._bridge = None
        for ns in reversed(self._created):
            # Anything still running in our own namespace was started by us.
            pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, timeout=10)
            for pid in pids.stdout.split():
                try:
                    os.kill(int(pid), 9)
                except (ProcessLookupError, ValueError):
                    pass
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20)
        self._created.clear()

    def server_cmd(self, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.server, *argv]

    def client_cmd(self, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.client, *argv]

    @property
    def server_veth(self) -> str:
        return self._veth_srv

    def move_client(self, address: str) -> None:
        """The client's network changes: its address goes and a new one comes (as
        when a vehicle changes cells); connections bound to the old one are dead."""
        _ip("-n", self.client, "addr", "flush", "dev", self._veth_cli)
        _ip("-n", self.client, "addr", "add", f"{address}/{PREFIX}", "dev", self._veth_cli)

    def impair(self, loss: float = 0.0, delay: float = 0.0, jitter: float = 0.0) -> None:
        """Each way: drop ``loss`` of the packets, hold each for ``delay`` ± ``jitter``
        seconds (impairable pairs only); no arguments: a clean link again."""
        if self._bridge is None:
            raise RuntimeError("make the NetnsPair with impairable=True")
        self._bridge.stdin.write(f"set {loss} {delay} {jitter}\n")
        self._bridge.stdin.flush()
        if self._bridge.stdout.readline().strip() != "ok":
            raise RuntimeError("the impairment bridge did not take the setting")

    @contextmanager
    def entered(self, ns: str) -> Iterator[None]:
        """Run the calling thread inside ``ns`` (its new sockets live there), then back."""
        with open("/proc/thread-self/ns/net") as home, open(f"/run/netns/{ns}") as target:
            os.setns(target.fileno(), os.CLONE_NEWNET)
            try:
                yield
            finally:
                os.setns(home.fileno(), os.CLONE_NEWNET)
