"""A bounded range of UDP ports for per-connection media sockets (`--media-port 0` with
`--media-port-range LOW-HIGH`), for firewalls that cannot take the one-port mode but
can open a range, as Janus's `rtp_port_range` and mediasoup's `rtcMinPort`/`rtcMaxPort`.

The kernel is the registry: a port is in use exactly while a socket holds it. So a
connection's ports come back when its sockets close, two servers sharing a range (tests
run several in one process) or another program holding one of its ports never get the
same port, and nothing here is state to keep in step. The sockets are bound without
SO_REUSEADDR, which would let two UDP sockets share a port.
"""

from __future__ import annotations

import errno
import random
import socket
from dataclasses import dataclass, field


class PortRangeExhausted(OSError):
    """Every port of the range is taken on an address."""


@dataclass
class PortRange:
    """Ports `low` to `high`, both included (checked as the media_port_range setting)."""

    low: int
    high: int
    exhausted: int = field(default=0, compare=False)  # binds refused for want of a free port (/metrics)

    def __str__(self) -> str:
        return f"{self.low}-{self.high}"

    def __len__(self) -> int:
        return self.high - self.low + 1

    def __contains__(self, port: object) -> bool:
        return isinstance(port, int) and self.low <= port <= self.high

    def bind(self, host: str) -> socket.socket:
        """A non-blocking UDP socket bound to `host` on a free port of the range.

        The walk starts at a random port and goes round the range, so that connections
        opened at once spread out instead of all trying the lowest ports first; a port
        someone holds is skipped. PortRangeExhausted if none is free; any other OSError
        (an address this machine does not have) as it comes."""
        family, _, _, _, address = socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM,
                                                      flags=socket.AI_NUMERICHOST)[0]
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            start = random.randrange(len(self))
            for step in range(len(self)):
                port = self.low + (start + step) % len(self)
                try:
                    sock.bind((address[0], port, *address[2:]))
                except OSError as exc:
                    if exc.errno not in (errno.EADDRINUSE, errno.EACCES):
                        raise
                    continue  # a failed bind leaves the socket unbound: try the next port
                sock.setblocking(False)
                return sock
        except BaseException:
            sock.close()
            raise
        sock.close()
        self.exhausted += 1
        raise PortRangeExhausted(errno.EADDRINUSE, f"no free UDP port in the media port range {self} on {host}")
