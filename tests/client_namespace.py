"""A client network namespace joined to the test's own by a veth pair.

The server under test listens on the host end; a client (Chromium through
`tests.browser.conftest.chromium_in`, a device, an encoder) runs inside with `command()`. Tests that need a firewall load nftables rules
with `nft()`, a narrow link shapes the host end with `rate()`. Everything is created on
entry and deleted on exit, whatever happened; only processes started inside the
namespace are ended.
"""

from __future__ import annotations

import itertools
import os
import subprocess
from contextlib import ExitStack

from tests import network_guard

_instances = itertools.count()


def run(*argv: str, stdin: str | None = None) -> str:
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=20)
    if done.returncode:
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.strip()}")
    return done.stdout


class ClientNamespace:
    def __init__(self, tag: str) -> None:
        pid, n = os.getpid(), next(_instances)
        self.name = f"tm{tag}-{pid}-{n}"
        self._host_veth, self._client_veth = f"tm{pid % 10**6}x{n}h"[:15], f"tm{pid % 10**6}x{n}c"[:15]
        # A /30 of its own per process and instance (the guard's NAMESPACE_BLOCK, a /14, has
        # 16384 of them), so that parallel runs on one host do not clash.
        k = (pid * 4 + n) % 16384
        block = network_guard.NAMESPACE_BLOCK.network_address.packed
        prefix = f"{block[0]}.{block[1] + k // 4096}.{(k // 16) % 256}"
        self.host_ip, self.client_ip = f"{prefix}.{(k % 16) * 4 + 1}", f"{prefix}.{(k % 16) * 4 + 2}"
        self.subnet = f"{prefix}.{(k % 16) * 4}/30"
        self._shaped = False
        self._created = False
        self._allowance = ExitStack()  # the network guard lets this process reach the namespace

    def __enter__(self) -> "ClientNamespace":
        self._delete()  # what a crashed run of a process that had our pid left behind
        run("ip", "netns", "add", self.name)
        self._created = True
        try:
            # IPv4 only: an IPv6 link-local address finishing duplicate detection a second
            # after the link comes up is a "network change" to Chromium, which then aborts
            # the page's requests (net::ERR_NETWORK_CHANGED) if it has just started.
            run(*self.command(["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
                               "net.ipv6.conf.default.disable_ipv6=1"]))
            run("ip", "link", "add", self._host_veth, "type", "veth", "peer", "name", self._client_veth,
                "netns", self.name)
            run("sysctl", "-qw", f"net.ipv6.conf.{self._host_veth}.disable_ipv6=1")
            run("ip", "addr", "add", f"{self.host_ip}/30", "dev", self._host_veth)
            run("ip", "link", "set", self._host_veth, "up")
            run("ip", "-n", self.name, "addr", "add", f"{self.client_ip}/30", "dev", self._client_veth)
            run("ip", "-n", self.name, "link", "set", self._client_veth, "up")
            run("ip", "-n", self.name, "link", "set", "lo", "up")
            self._allowance.enter_context(network_guard.allowed_network(self.subnet))  # both veth ends
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def command(self, argv: list[str]) -> list[str]:
        """`argv` run inside the namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def nft(self, script: str) -> str:
        """Run an nftables script inside the namespace (its firewall)."""
        return run(*self.command(["nft", "-f", "-"]), stdin=script)

    def rate(self, kbit: int) -> None:
        """Shape what the host sends into the namespace: a token bucket at `kbit` kbit/s
        with a 50 ms queue, as a cellular link's scheduler drops what does not fit."""
        run("tc", "qdisc", "change" if self._shaped else "add", "dev", self._host_veth, "root", "tbf",
            "rate", f"{kbit}kbit", "burst", "32kbit", "latency", "50ms")
        self._shaped = True

    def close(self) -> None:
        if not self._created:
            return
        self._allowance.close()
        pids = subprocess.run(["ip", "netns", "pids", self.name], capture_output=True, text=True, timeout=10)
        for pid in pids.stdout.split():  # only ever ours: the namespace is this test's
            try:
                os.kill(int(pid), 9)
            except (ProcessLookupError, ValueError):
                pass
        self._delete()
        self._created = False

    def _delete(self) -> None:
        # The veth pair first: the kernel frees a deleted namespace (and the pair in it)
        # later, and the next test would find the names and addresses still taken.
        subprocess.run(["ip", "link", "del", self._host_veth], capture_output=True, timeout=20)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=20)
