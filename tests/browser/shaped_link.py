"""A network namespace behind a veth pair whose server-to-client direction is shaped by
`tc tbf`, for tests of what a narrow link does. Only addresses in the namespace this
creates are used; it is removed (and what runs in it stopped) on the way out."""

from __future__ import annotations

import os
import subprocess

from tests import network_guard


def run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, text=True, timeout=20)


class ShapedLink:
    def __init__(self, tag: str) -> None:
        pid = os.getpid()
        subnet = 20 + pid % 200
        self.name = f"tm{tag}-{pid}"
        self.host_ip, self.client_ip = f"10.96.{subnet}.1", f"10.96.{subnet}.2"
        self._host_veth, self._client_veth = f"tm{tag}{pid}h"[:15], f"tm{tag}{pid}c"[:15]
        self._guarded: set = set()

    def __enter__(self) -> "ShapedLink":
        run("ip", "netns", "add", self.name)
        try:
            # No IPv6: its link-local address appears a moment after the link comes up,
            # and Chromium aborts what it is loading when it sees the network change.
            for key in ("all", "default"):
                run("ip", "netns", "exec", self.name, "sysctl", "-qw", f"net.ipv6.conf.{key}.disable_ipv6=1")
            run("ip", "link", "add", self._host_veth, "type", "veth", "peer", "name", self._client_veth,
                "netns", self.name)
            run("sysctl", "-qw", f"net.ipv6.conf.{self._host_veth}.disable_ipv6=1")
            run("ip", "addr", "add", f"{self.host_ip}/24", "dev", self._host_veth)
            run("ip", "link", "set", self._host_veth, "up")
            run("ip", "-n", self.name, "addr", "add", f"{self.client_ip}/24", "dev", self._client_veth)
            run("ip", "-n", self.name, "link", "set", self._client_veth, "up")
            run("ip", "-n", self.name, "link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise
        self._guarded = {network_guard.ipaddress.ip_address(a) for a in (self.host_ip, self.client_ip)}
        network_guard.OWN_ADDRESSES.update(self._guarded)
        return self

    def rate(self, kbit: int) -> None:
        """Shape what the host sends into the namespace: a token bucket at `kbit` kbit/s
        with a 50 ms queue, as a cellular link's scheduler drops what does not fit."""
        verb = "change" if getattr(self, "_shaped", False) else "add"
        run("tc", "qdisc", verb, "dev", self._host_veth, "root", "tbf", "rate", f"{kbit}kbit",
            "burst", "32kbit", "latency", "50ms")
        self._shaped = True

    def __exit__(self, *exc: object) -> None:
        network_guard.OWN_ADDRESSES.difference_update(self._guarded)
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
