"""Tests may talk to 127.0.0.0/8 (and ::1) only: every other socket destination is refused
before the system call, and the test that tried it fails.

The machine's own interface addresses count as local, those that appear while the suite
runs too: Chromium offers them as ICE host candidates, and the kernel delivers packets
sent to them over loopback. Under
`./telemed test` there are none besides loopback.

A Python audit hook sees `socket.connect`, `socket.sendto`, `socket.sendmsg` and
`socket.getaddrinfo` in this process (the server under test, aiortc peers, clients).
Child processes (Chromium, Redis, Orthanc) are covered by `./telemed test` running the
suite in a network namespace that has only loopback.
"""

from __future__ import annotations

import ipaddress
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

ALLOWED_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}
# Where tests/client_namespace.py puts its veth pairs. Under `./telemed test` (its own
# network namespace, nothing routed beyond it) an address from here is another worker's
# veth: Chromium may offer it as a candidate, and it may be gone by the time a check goes.
NAMESPACE_BLOCK = ipaddress.ip_network("10.200.0.0/14")
_OFFLINE = os.environ.get("TELEMED_OFFLINE") == "1"


def own_addresses() -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The addresses assigned to this machine's interfaces (kernel-local routes)."""
    found: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
    try:
        lines = open("/proc/net/fib_trie").read().splitlines()
        for previous, line in zip(lines, lines[1:]):
            if line.strip() == "/32 host LOCAL":
                found.add(ipaddress.IPv4Address(previous.split()[-1]))
        for line in open("/proc/net/if_inet6").read().splitlines():
            found.add(ipaddress.IPv6Address(int(line.split()[0], 16)))
    except (OSError, ValueError, IndexError):
        pass
    return found


OWN_ADDRESSES = own_addresses()


class OutsideTraffic(PermissionError):
    """Raised inside the offending call, so the caller fails at once instead of timing out."""


_lock = threading.Lock()
_attempts: list[str] = []
# Networks of namespaces a test created (benchmarks/netns.py): theirs to reach meanwhile.
_test_networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []


@contextmanager
def allowed_network(network: str) -> Iterator[None]:
    """Let this process reach ``network`` (inside network namespaces the test made)."""
    net = ipaddress.ip_network(network)
    _test_networks.append(net)
    try:
        yield
    finally:
        _test_networks.remove(net)


def is_local(host: object) -> bool:
    if host is None or host in ("",):
        return True  # getaddrinfo(None, port): a wildcard for bind, no lookup
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    if not isinstance(host, str):
        return False
    if host.lower() in ALLOWED_NAMES:
        return True
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False  # a name that would need DNS
    if address.is_unspecified:
        return True  # bind-style wildcard; the kernel sends nothing to it
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if address.is_loopback or address in OWN_ADDRESSES or any(address in n for n in _test_networks):
        return True
    # An interface that appeared since (a veth another test process just made, the suite
    # running in parallel) is as local as the others while it exists: look again.
    return address in own_addresses() or (_OFFLINE and address in NAMESPACE_BLOCK)


def _audit(event: str, args: tuple) -> None:
    if event in ("socket.connect", "socket.sendto", "socket.sendmsg"):
        address = args[1] if len(args) > 1 else None
        if not isinstance(address, tuple) or not address:
            return  # AF_UNIX paths, netlink, or a connected socket's sendmsg
        host = address[0]
    elif event == "socket.getaddrinfo":
        host = args[0]
    else:
        return
    if not is_local(host):
        with _lock:
            _attempts.append(f"{event} to {host!r}")
        raise OutsideTraffic(f"tests may only reach loopback; refused {event} to {host!r}")


def take_attempts() -> list[str]:
    with _lock:
        taken = list(_attempts)
        _attempts.clear()
    return taken


sys.addaudithook(_audit)


@pytest.fixture(autouse=True)
def no_outside_traffic():
    take_attempts()
    yield
    attempts = take_attempts()
    assert not attempts, f"this test tried to reach outside the machine: {attempts[:5]}"
