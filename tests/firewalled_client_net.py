"""A client network namespace behind a firewall, for the TURN tests.

The test's own namespace (server under test, coturn) and a new client namespace are
joined by a veth pair. An nftables table in the client namespace drops UDP (and, if
asked, TCP) from it, except what `block` lets through, so the client reaches the SFU's
media only through TURN. Everything is created here and deleted on exit, whatever
happened; only processes started inside the namespace are ended.
"""

from __future__ import annotations

import os
import subprocess
from contextlib import ExitStack

from tests import network_guard

_TABLE = "telemed_test"


def _run(*argv: str, stdin: str | None = None) -> str:
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=20)
    if done.returncode:
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.strip()}")
    return done.stdout


class FirewalledClientNet:
    def __init__(self) -> None:
        pid = os.getpid()
        self.namespace = f"tmturn-{pid}"
        self._host_veth, self._client_veth = f"tth{pid}"[:15], f"ttc{pid}"[:15]
        # A /30 of its own per test process (10.200.0.0/14 has 16384 of them), so that
        # parallel runs on one host do not clash.
        n = pid % 16384
        prefix = f"10.{200 + n // 4096}.{(n // 16) % 256}"
        self.host_ip, self.client_ip = f"{prefix}.{(n % 16) * 4 + 1}", f"{prefix}.{(n % 16) * 4 + 2}"
        self.subnet = f"{prefix}.{(n % 16) * 4}/30"
        self._created = False
        self._allowance = ExitStack()  # the network guard lets this process reach the namespace

    def __enter__(self) -> "FirewalledClientNet":
        self._delete()  # what a crashed run of a process that had our pid left behind
        _run("ip", "netns", "add", self.namespace)
        self._created = True
        try:
            # IPv4 only: an IPv6 link-local address finishing duplicate detection a second
            # after the link comes up is a "network change" to Chromium, which then aborts
            # the page's requests (net::ERR_NETWORK_CHANGED) if it has just started.
            _run("ip", "netns", "exec", self.namespace, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
                 "net.ipv6.conf.default.disable_ipv6=1")
            _run("ip", "link", "add", self._host_veth, "type", "veth", "peer", "name", self._client_veth,
                 "netns", self.namespace)
            _run("ip", "addr", "add", f"{self.host_ip}/30", "dev", self._host_veth)
            _run("ip", "link", "set", self._host_veth, "up")
            _run("ip", "-n", self.namespace, "addr", "add", f"{self.client_ip}/30", "dev", self._client_veth)
            _run("ip", "-n", self.namespace, "link", "set", self._client_veth, "up")
            _run("ip", "-n", self.namespace, "link", "set", "lo", "up")
            self.block()
            self._allowance.enter_context(network_guard.allowed_network(self.subnet))  # both veth ends
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def block(self, udp_ports: tuple[int, ...] = (), tcp_ports: tuple[int, ...] | None = None) -> None:
        """Drop every UDP datagram the client namespace sends out, except to `udp_ports`;
        with `tcp_ports`, also every TCP segment except to those (HTTP and TURN, so that
        neither the SFU's media port over UDP nor its ICE-TCP is reachable directly)."""
        allow_udp = f"udp dport {{ {', '.join(map(str, udp_ports))} }} accept" if udp_ports else ""
        tcp = ""
        if tcp_ports is not None:
            tcp = f"tcp dport {{ {', '.join(map(str, tcp_ports))} }} accept\n            meta l4proto tcp drop"
        rules = f"""
        table inet {_TABLE} {{
          chain out {{
            type filter hook output priority 0; policy accept;
            oif lo accept
            {allow_udp}
            meta l4proto udp counter drop
            {tcp}
          }}
        }}"""
        self._nft(f"table inet {_TABLE} {{}}\ndelete table inet {_TABLE}\n{rules}")

    def dropped_udp(self) -> int:
        """UDP datagrams the firewall dropped so far."""
        listing = _run("ip", "netns", "exec", self.namespace, "nft", "list", "chain", "inet", _TABLE, "out")
        line = next(line for line in listing.splitlines() if "udp counter" in line and "drop" in line)
        words = line.split()
        return int(words[words.index("packets") + 1])

    def _nft(self, script: str) -> None:
        _run("ip", "netns", "exec", self.namespace, "nft", "-f", "-", stdin=script)

    def command(self, argv: list[str]) -> list[str]:
        """`argv` run inside the client namespace."""
        return ["ip", "netns", "exec", self.namespace, *argv]

    def close(self) -> None:
        if not self._created:
            return
        self._allowance.close()
        pids = subprocess.run(["ip", "netns", "pids", self.namespace], capture_output=True, text=True, timeout=10)
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
        subprocess.run(["ip", "netns", "del", self.namespace], capture_output=True, timeout=20)
