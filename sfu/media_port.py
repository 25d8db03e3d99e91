"""One UDP port for every peer's ICE, DTLS and SRTP (as mediasoup's WebRtcServer does).

A firewall then opens one port, and every subscriber's packets leave through the same
socket, which is what lets the fan-out step batch its sends. There is one socket per
host address, all bound to the same port number.

Demultiplexing: a STUN binding request goes to the connection that owns the local
ICE username fragment it names (USERNAME is "ours:theirs"); the connection is then
bound to the request's source address once it has authenticated the request (it
answers with a binding success). Everything else (DTLS, SRTP, STUN responses) goes by
source address; responses to our own checks also by transaction id, since they may
arrive before the address is bound. What matches nothing is dropped and counted.

The per-connection side is anything with aioice's `StunProtocol` shape
(`datagram_received`, `connection_lost`); sfu/aiortc_hook.py attaches aioice to it.

The socket is read by the receive step (sfu/port_receive.py, in C): the SRTP of a
connection that is up is decrypted there, by its nominated pair's address, and goes
straight to the connection; everything else comes to `PortSocket.datagram_received`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from .consent import ConsentFreshness
from .ice_tcp import TcpLink
from .port_receive import ReceiveTable
from .stun_peek import BINDING_REQUEST, BINDING_SUCCESS, is_stun, local_ufrag

log = logging.getLogger("telemed.sfu.media_port")

DEFAULT_PORT = 40000
_MAX_PENDING = 4096  # our own checks awaiting an answer, over all connections
_RECEIVE_BUFFER = 4 * 1024 * 1024  # every peer's media lands in this one socket
# Linux's SO_RCVBUFFORCE/SO_SNDBUFFORCE (asm-generic/socket.h; Python does not name them):
# with CAP_NET_ADMIN they pass net.core.rmem_max/wmem_max, which cap SO_RCVBUF (default
# 208 KiB: a fifth of a second of a busy room's media, should the event loop stall).
_FORCE = {socket.SO_RCVBUF: 33, socket.SO_SNDBUF: 32}


def _set_buffer(sock: socket.socket, option: int, size: int) -> None:
    """Ask for a `size`-byte buffer, past the system cap if we may; say so if we got less."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, _FORCE[option], size)
    except OSError:  # no CAP_NET_ADMIN: SO_RCVBUF, capped by net.core.rmem_max
        sock.setsockopt(socket.SOL_SOCKET, option, size)
    granted = sock.getsockopt(socket.SOL_SOCKET, option) // 2  # Linux reports it doubled
    if granted < size:
        name, sysctl = ("receive", "rmem_max") if option == socket.SO_RCVBUF else ("send", "wmem_max")
        log.warning("media port %s buffer is %d KiB, not the %d KiB asked: raise net.core.%s "
                    "(docs/firewall.md), or media is dropped whenever the server falls behind",
                    name, granted // 1024, size // 1024, sysctl)


class PortPeer(Protocol):
    """One connection's end of the port (aioice's StunProtocol fits)."""

    def datagram_received(self, data: bytes, addr: tuple) -> None: ...

    def connection_lost(self, exc: Exception | None) -> None: ...


# A STUN response that a port-wide user (shared consent checks) claims by transaction id:
# called with (message bytes, source address); the owner pops it.
ResponseHandler = Callable[[bytes, tuple], None]


@dataclass
class PortCounters:
    """Datagrams dropped by the demultiplexer, by reason (exported as metrics)."""
    garbage: int = 0           # neither STUN nor DTLS/RTP/RTCP, or truncated STUN
    unknown_ufrag: int = 0     # a binding request naming no connection of ours
    unknown_address: int = 0   # DTLS/SRTP or a STUN response from an address bound to no one
    send_buffer_full: int = 0  # not sent: the socket's send buffer was full


class PortSocket:
    """The shared socket on one host address, and its demultiplexing tables."""

    def __init__(self, port: "MediaPort", sock: socket.socket) -> None:
        self.port = port
        self.sock = sock
        self.fd = sock.fileno()
        self.receiving = ReceiveTable()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.by_ufrag: dict[str, PortPeer] = {}
        self.by_address: dict[tuple, PortPeer] = {}
        self.pending: dict[bytes, PortPeer] = {}   # transaction id of our check -> who sent it
        self.host = ""
        # ICE-TCP (sfu/ice_tcp.py) on the same port number, if enabled
        self.tcp_server: asyncio.Server | None = None
        self.tcp_by_ufrag: dict[str, PortPeer] = {}
        self.links: dict[tuple, TcpLink] = {}
        self.unauthenticated_links = 0

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.fd, self.receiving.read, self.fd, self.datagram_received)

    def sendto(self, data: bytes, addr: tuple) -> None:
        try:
            self.sock.sendto(data, addr)
        except BlockingIOError:  # a full send buffer: lost, as on the wire (DTLS, STUN retry)
            self.port.counters.send_buffer_full += 1
        except OSError as exc:  # ICMP unreachable from one gone peer must not disturb anyone
            log.debug("media port %s: %s", self.host, exc)

    def extra_info(self, name: str, default: Any = None) -> Any:
        """What asyncio's DatagramTransport.get_extra_info tells (aioice asks for these)."""
        if name == "socket":
            return self.sock
        if name == "sockname":
            return self.sock.getsockname()
        return default

    def close(self) -> None:
        if self.fd < 0:
            return
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self.fd)
        self.sock.close()
        self.fd = -1

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        if len(addr) != 2:  # IPv6: (host, port, flowinfo, scope id)
            addr = (addr[0], addr[1])
        first = data[0] if data else 0xFF
        if 127 < first < 192 or 19 < first < 64:
            # RTP/RTCP (128-191) or DTLS (20-63), RFC 7983: the source address decides
            peer = self.by_address.get(addr)
            if peer is None:
                self.port.counters.unknown_address += 1
                return
            peer.datagram_received(data, addr)
            return
        if not is_stun(data):
            self.port.counters.garbage += 1
            return
        if data[0:2] == BINDING_REQUEST:
            ufrag = local_ufrag(data)
            peer = self.by_ufrag.get(ufrag) if ufrag else None
            if peer is None:
                self.port.counters.unknown_ufrag += 1
                return
            peer.datagram_received(data, addr)
            return
        transaction = data[8:20]
        handler = self.port.responses.get(transaction)
        if handler is not None:
            handler(data, addr)
            return
        peer = self.pending.pop(transaction, None) or self.by_address.get(addr)
        if peer is None:
            self.port.counters.unknown_address += 1
            return
        peer.datagram_received(data, addr)

    def sent(self, data: bytes, addr: tuple, peer: PortPeer) -> None:
        """Learn from what a connection sends: its binding success binds the address it
        authenticated; its own checks are remembered so their answers find it."""
        kind = data[0:2]
        if kind == BINDING_SUCCESS:
            self.by_address[(addr[0], addr[1])] = peer  # the latest authenticated owner
        elif kind == BINDING_REQUEST and len(data) >= 20:
            if len(self.pending) >= _MAX_PENDING:
                self.pending.clear()  # unanswered checks of the past; retries re-add theirs
            self.pending[data[8:20]] = peer

    def forget(self, peer: PortPeer) -> int:
        """Drop every entry of `peer`; returns how many there were."""
        removed = 0
        tables: tuple[dict[Any, PortPeer], ...] = (self.by_ufrag, self.by_address, self.pending, self.tcp_by_ufrag)
        for table in tables:
            for key in [k for k, v in table.items() if v is peer]:
                del table[key]
                removed += 1
        for link in [link for link in self.links.values() if link.peer is peer]:
            link.close()  # it leaves `links` once closed
            removed += 1
        return removed


class PeerRoute:
    """What one connection sees as its socket on one host address (asyncio's
    DatagramTransport face, the part aioice uses)."""

    shared = True  # sfu/aiortc_hook.py sends media on the shared socket itself

    def __init__(self, port_socket: PortSocket, peer: PortPeer) -> None:
        self.socket = port_socket
        self.peer = peer
        self.on_close: Callable[[], None] | None = None
        self._closed = False

    def sendto(self, data: bytes, addr: tuple | None = None) -> None:
        if self._closed or addr is None:
            return
        self.socket.sent(data, addr, self.peer)
        self.socket.sendto(data, addr)

    def send_unlearned(self, data: bytes, addr: tuple) -> None:
        """Media and consent checks: nothing for the demultiplexer to learn."""
        if not self._closed:
            self.socket.sendto(data, addr)

    def media_endpoint(self, addr: tuple) -> tuple[int, bool] | None:
        """(descriptor, stream) the C fan-out step sends `addr`'s media on. A stream's
        descriptor takes packets without an address, and may close before the wire
        disconnects (the caller keeps its own duplicate)."""
        return self.socket.fd, False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.socket.extra_info(name, default)

    def is_closing(self) -> bool:
        return self._closed

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.socket.forget(self.peer)
        if self.on_close is not None:
            self.on_close()
        asyncio.get_running_loop().call_soon(self.peer.connection_lost, None)

    def abort(self) -> None:
        self.close()


class TcpRoute(PeerRoute):
    """A connection's ICE-TCP side: it reaches each remote through that remote's link."""

    def sendto(self, data: bytes, addr: tuple | None = None) -> None:
        link = self._link(addr)
        if link is not None:
            link.sent(data)

    def send_unlearned(self, data: bytes, addr: tuple) -> None:
        link = self._link(addr)
        if link is not None:
            link.write_frame(data)

    def media_endpoint(self, addr: tuple) -> tuple[int, bool] | None:
        link = self._link(addr)
        return (link.media_fd(), True) if link is not None and link.authenticated else None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "sockname" and self.socket.tcp_server is not None:
            return self.socket.tcp_server.sockets[0].getsockname()
        return default

    def _link(self, addr: tuple | None) -> TcpLink | None:
        if self._closed or addr is None:
            return None
        link = self.socket.links.get((addr[0], addr[1]))
        return link if link is not None and link.peer is self.peer else None


class MediaPort:
    """The shared sockets of one server, one per host address, on one port number."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sockets: list[PortSocket] = []
        self.counters = PortCounters()
        self.responses: dict[bytes, ResponseHandler] = {}
        self.consent = ConsentFreshness(self.responses)

    @classmethod
    async def open(cls, hosts: list[str], port: int = DEFAULT_PORT, tcp: bool = True) -> "MediaPort":
        """Bind UDP `port` on every host address, and TCP `port` too for ICE-TCP if
        `tcp`; OSError if any is taken."""
        media_port = cls(port)
        loop = asyncio.get_running_loop()
        try:
            for host in hosts:
                family = socket.AF_INET6 if ":" in host else socket.AF_INET
                sock = socket.socket(family, socket.SOCK_DGRAM)
                try:
                    for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                        _set_buffer(sock, option, _RECEIVE_BUFFER)
                    sock.bind((host, port))
                    sock.setblocking(False)
                except OSError:
                    sock.close()
                    raise
                endpoint = PortSocket(media_port, sock)
                endpoint.host = host
                media_port.sockets.append(endpoint)
                endpoint.start()
                if tcp:
                    endpoint.tcp_server = await loop.create_server(
                        functools.partial(TcpLink, endpoint), host, port, reuse_address=True)
        except OSError:
            media_port.close()
            raise
        return media_port

    def receive_buffer_drops(self) -> int:
        """Datagrams the kernel dropped because a shared socket's receive buffer was full
        (the event loop fell behind): the `drops` column of /proc/net/udp for our sockets."""
        inodes = {str(os.fstat(s.fd).st_ino) for s in self.sockets if s.fd >= 0}
        drops = 0
        for table in ("/proc/self/net/udp", "/proc/self/net/udp6"):
            try:
                with open(table) as f:
                    rows = [line.split() for line in f.readlines()[1:]]
            except OSError:
                continue
            drops += sum(int(row[-1]) for row in rows if len(row) > 12 and row[9] in inodes)
        return drops

    def oversize_drops(self) -> int:
        """Datagrams longer than the receive step's buffer (sfu/port_receive.py), dropped."""
        return sum(s.receiving.cut for s in self.sockets)

    def new_ufrag(self) -> str:
        """A local ICE username fragment no connection on this port uses (RFC 8445: at
        least 24 bits of randomness; ours has 60, so guessing one is hopeless)."""
        while True:
            ufrag = secrets.token_urlsafe(8)[:10].replace("-", "a").replace("_", "b")
            if all(ufrag not in s.by_ufrag for s in self.sockets):
                return ufrag

    def attach(self, ufrag: str, peer_for: Callable[[], PortPeer]) -> list[PeerRoute]:
        """Register a connection by its local ufrag: one peer end per host address, and
        one more per address for ICE-TCP (a TcpRoute)."""
        routes = []
        for port_socket in self.sockets:
            peer = peer_for()
            port_socket.by_ufrag[ufrag] = peer
            routes.append(PeerRoute(port_socket, peer))
            if port_socket.tcp_server is not None:
                peer = peer_for()
                port_socket.tcp_by_ufrag[ufrag] = peer
                routes.append(TcpRoute(port_socket, peer))
        return routes

    def entries(self) -> int:
        """Demultiplexing entries held (ufrags, addresses, pending checks, the receive
        step's): churn tests and metrics watch that this returns to zero."""
        return sum(len(s.by_ufrag) + len(s.by_address) + len(s.pending) + len(s.tcp_by_ufrag)
                   + len(s.links) + len(s.receiving) for s in self.sockets)

    def close(self) -> None:
        for port_socket in self.sockets:
            port_socket.close()
            if port_socket.tcp_server is not None:
                port_socket.tcp_server.close()
            for link in list(port_socket.links.values()):
                link.close()
        self.sockets.clear()
