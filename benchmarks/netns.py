"""Two network namespaces joined by a veth pair: servers on one side, clients on the other.

Janus offers no loopback candidates, and aioice skips loopback too, so both SFUs
listen on a veth address. All benchmark traffic stays inside namespaces this
module created; they are deleted on exit, whatever happened.
"""

from __future__ import annotations

import os
import subprocess

SERVER_IP = "10.99.0.1"
CLIENT_IP = "10.99.0.2"
PREFIX = 24


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=20)


class NetnsPair:
    def __init__(self, tag: str | None = None) -> None:
        tag = tag or str(os.getpid())
        self.server = f"tmbench-srv-{tag}"
        self.client = f"tmbench-cli-{tag}"
        # Interface names are limited to 15 characters.
        self._veth_srv = f"tbs{tag}"[:15]
        self._veth_cli = f"tbc{tag}"[:15]
        self._created: list[str] = []

    def __enter__(self) -> "NetnsPair":
        try:
            for ns in (self.server, self.client):
                _ip("netns", "add", ns)
                self._created.append(ns)
                _ip("-n", ns, "link", "set", "lo", "up")
            _ip("link", "add", self._veth_srv, "netns", self.server, "type", "veth",
                "peer", "name", self._veth_cli, "netns", self.client)
            _ip("-n", self.server, "addr", "add", f"{SERVER_IP}/{PREFIX}", "dev", self._veth_srv)
            _ip("-n", self.client, "addr", "add", f"{CLIENT_IP}/{PREFIX}", "dev", self._veth_cli)
            _ip("-n", self.server, "link", "set", self._veth_srv, "up")
            _ip("-n", self.client, "link", "set", self._veth_cli, "up")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
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
