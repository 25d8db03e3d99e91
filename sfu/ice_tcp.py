"""ICE-TCP, passive (RFC 6544), on the media port's TCP side, for networks that block UDP.

Every accepted connection carries RFC 4571 frames: a 2-byte length, then one STUN,
DTLS or SRTP packet. Its first frame must be a binding request naming one of our
connections by ufrag; it is then that connection's link, and the remote (address,
port) of the TCP connection stands in for a UDP source address, so aioice sees an
ordinary peer-reflexive candidate. Until the connection has authenticated a request
on the link (answered it with a binding success) only STUN passes.

Media from the C fan-out step reaches the link through a SOCK_SEQPACKET socketpair:
C writes whole protected packets without knowing about TCP, and we frame them onto
the stream. A link whose send buffer is full drops packets as a full UDP socket would,
and NACK recovers them.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import TYPE_CHECKING

from .stun_peek import BINDING_REQUEST, BINDING_SUCCESS, is_stun, local_ufrag

if TYPE_CHECKING:
    from .media_port import PortPeer, PortSocket

log = logging.getLogger("telemed.sfu.ice_tcp")
UNAUTHENTICATED_SECONDS = 10.0  # a link that never completes a check is closed
MAX_UNAUTHENTICATED = 256       # links (per listening address) yet to complete a check; more are refused
WRITE_LIMIT = 256 * 1024        # bytes queued on a link before its packets are dropped
_MEDIA_BUFFER = 1024 * 1024


def passive_priority(component: int = 1) -> int:
    """A host TCP candidate's priority (RFC 6544 section 4.2): below every UDP host
    candidate, so that a browser prefers UDP where it can."""
    local_preference = (4 << 13) | 8191  # passive: direction preference 4 of 7
    return (126 << 24) + (local_preference << 8) + (256 - component)


class TcpLink(asyncio.Protocol):
    """One accepted ICE-TCP connection."""

    def __init__(self, port_socket: "PortSocket") -> None:
        self._socket = port_socket
        self.transport: asyncio.Transport | None = None
        self.addr: tuple = ()
        self.peer: PortPeer | None = None
        self.authenticated = False
        self.dropped = 0
        self._buffer = bytearray()
        self._media: tuple[socket.socket, socket.socket] | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.addr = tuple(transport.get_extra_info("peername")[:2])
        if self._socket.unauthenticated_links >= MAX_UNAUTHENTICATED:
            self._socket.port.counters.garbage += 1
            transport.close()
            return
        self._socket.unauthenticated_links += 1
        self._timer = asyncio.get_running_loop().call_later(UNAUTHENTICATED_SECONDS, self._expire)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _expire(self) -> None:
        if not self.authenticated:
            self.close()

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        while len(buffer) >= 2:
            size = int.from_bytes(buffer[0:2], "big")
            if len(buffer) < 2 + size:
                break
            frame = bytes(buffer[2:2 + size])
            del buffer[:2 + size]
            self._frame(frame)
            if self.transport is None:
                return

    def _frame(self, frame: bytes) -> None:
        counters = self._socket.port.counters
        stun = is_stun(frame)
        if self.peer is None:
            if not stun or frame[0:2] != BINDING_REQUEST:
                counters.garbage += 1
                self.close()
                return
            ufrag = local_ufrag(frame)
            peer = self._socket.tcp_by_ufrag.get(ufrag) if ufrag else None
            if peer is None:
                counters.unknown_ufrag += 1
                self.close()
                return
            self.peer = peer
            old = self._socket.links.get(self.addr)
            if old is not None and old is not self:
                old.close()
            self._socket.links[self.addr] = self
        elif not stun and not self.authenticated:
            counters.unknown_address += 1
            return
        elif stun and frame[0:2] != BINDING_REQUEST:
            handler = self._socket.port.responses.get(frame[8:20])
            if handler is not None:  # an answer to a shared consent check (sfu/consent.py)
                handler(frame, self.addr)
                return
        self.peer.datagram_received(frame, self.addr)

    def write_frame(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if transport.get_write_buffer_size() > WRITE_LIMIT:
            self.dropped += 1
            return
        transport.write(len(data).to_bytes(2, "big") + data)

    def sent(self, data: bytes) -> None:
        """What the connection sends on this link: a binding success authenticates it."""
        if data[0:2] == BINDING_SUCCESS and not self.authenticated:
            self.authenticated = True
            self._socket.unauthenticated_links -= 1
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        self.write_frame(data)

    def media_fd(self) -> int:
        """The descriptor C writes protected packets to (one packet per message)."""
        if self._media is None:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            for sock in (ours, theirs):
                sock.setblocking(False)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _MEDIA_BUFFER)
            self._media = (ours, theirs)
            asyncio.get_running_loop().add_reader(ours.fileno(), self._drain)
        return self._media[1].fileno()

    def _drain(self) -> None:
        if self._media is None:
            return
        ours = self._media[0]
        while True:
            try:
                packet = ours.recv(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if not packet:
                return
            self.write_frame(packet)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self._timer is not None:  # still unauthenticated: it counted
            self._timer.cancel()
            self._timer = None
            self._socket.unauthenticated_links -= 1
        if self._socket.links.get(self.addr) is self:
            del self._socket.links[self.addr]
        if self._media is not None:
            asyncio.get_running_loop().remove_reader(self._media[0].fileno())
            for sock in self._media:
                sock.close()  # a wire still pointing here holds its own duplicate
            self._media = None
        self.peer = None
