"""Python face of the shared port's receive step (port_receive.c).

A shared socket (sfu/media_port.py) is read here, a burst at a time: one C call reads
up to 32 datagrams and decrypts the SRTP among them whose source address has an entry,
reading each RTP header. Python then only hands each packet to its connection. What C
did not take (STUN, DTLS, SRTP from an address with no entry yet, or that does not
authenticate under the entry's keys) reaches the Python demultiplexer as it came, so
that path stays the one that decides, and C is only a short cut for the media of
connections that are up.

An entry is a connection's nominated ICE pair plus its receiving SRTP session; its owner
(sfu/aiortc_hook.py MediaTransport) adds it when DTLS is up and removes it before that
session can be freed: C holds raw pointers.
"""

from __future__ import annotations

import errno
import itertools
import logging
import socket
import struct
import sys
from collections.abc import Callable
from typing import Protocol

from pylibsrtp import Session

from ._fanout import ffi, lib
from .fanout import libsrtp, srtp_t
from .rtp_packet import RtpPacket

log = logging.getLogger("telemed.sfu.port_receive")

BATCH: int = lib.RX_BATCH
_RTP: int = lib.RX_RTP
_FIELDS: int = lib.RX_FIELDS
# A readable socket is read this many bursts at most before other callbacks get their
# turn (the event loop calls back while more is waiting).
_ROUNDS = 8
_UNPACK_PORT = struct.Struct("!H").unpack_from
# Owner numbers are never reused: a record read before its entry went cannot reach
# another connection's entry (as a reused id() could).
_owner_numbers = itertools.count(1)


class MediaOwner(Protocol):
    """What an entry hands its connection's media to (MediaTransport's handlers)."""

    def on_packet(self, packet: RtpPacket, size: int) -> bool:
        """A decrypted RTP packet, its header read; False if its SSRC is not routed yet
        (then on_rtp gets the whole packet, to learn the route)."""

    def on_rtp(self, data: bytes) -> None: ...

    def on_rtcp(self, data: bytes) -> None: ...


class ReceiveEntry:
    """One connection's remote address and receiving session, as C looks them up."""

    def __init__(self, table: "ReceiveTable", owner: MediaOwner, session: Session, host: str,
                 port: int, audio_level_id: int) -> None:
        self.table = table
        self.owner = owner
        self.number = next(_owner_numbers)
        self.c = ffi.new("struct rx_entry *", {
            "session": srtp_t(session), "unprotect": _UNPROTECT,
            "unprotect_rtcp": _UNPROTECT_RTCP, "owner": self.number,
            "audio_level_id": audio_level_id})
        self.valid = lib.rx_set_address(self.c, host.encode(), port) == 0

    @property
    def media(self) -> int:
        """Datagrams that authenticated under this entry so far."""
        return self.c.media


class ReceiveTable:
    """The entries of one shared socket, and the buffers one read fills."""

    def __init__(self) -> None:
        self.c = ffi.new("struct rx_table *")
        self._batch = ffi.new("struct rx_batch *")
        self._records = ffi.cast("int64_t *", self._batch.records)
        self._data = ffi.buffer(self._batch.data)
        self._clear = ffi.buffer(self._batch.clear)
        self._addrs = ffi.buffer(self._batch.addrs)
        self._owners: dict[int, ReceiveEntry] = {}
        self.cut = 0  # datagrams longer than the buffer: dropped

    def add(self, owner: MediaOwner, session: Session, addr: tuple, audio_level_id: int) -> ReceiveEntry | None:
        """An entry for `owner`'s media from `addr`, decrypted under `session` (kept
        alive by the caller while the entry is here); None if the address is not one, or
        the table is full (the Python path then carries this connection's media, as it
        does any other's)."""
        entry = ReceiveEntry(self, owner, session, addr[0], addr[1], audio_level_id)
        if not entry.valid or lib.rx_add(self.c, entry.c) != 0:
            return None
        self._owners[entry.number] = entry
        return entry

    def remove(self, entry: ReceiveEntry) -> None:
        lib.rx_remove(self.c, entry.c)  # first: C must never see a freed session
        self._owners.pop(entry.number, None)

    def __len__(self) -> int:
        return self.c.count

    def read(self, fd: int, on_raw: Callable[[bytes, tuple], None]) -> None:
        """Read `fd` until nothing is waiting (or a few bursts), handing every datagram
        on: media to its entry's owner, the rest to `on_raw` (the demultiplexer)."""
        owners, clear = self._owners, self._clear
        for _ in range(_ROUNDS):
            n = lib.rx_receive(fd, self.c, self._batch)
            if n < 0:
                if -n not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR):
                    # an ICMP error from one gone peer (ECONNREFUSED, say): read on
                    log.debug("media port read: %s", errno.errorcode.get(-n, -n))
                    continue
                return
            records = ffi.unpack(self._records, n * _FIELDS)
            for i in range(0, n * _FIELDS, _FIELDS):
                kind, number, offset, size, pt, marker, seq, ts, ssrc, start, end, level = records[i:i + _FIELDS]
                try:
                    entry = owners.get(number)
                    if kind == _RTP and entry is not None:  # the common case, inline
                        packet = RtpPacket(pt, marker, seq, ts, ssrc, clear[offset + start:offset + end],
                                           None if level < 0 else level)
                        if not entry.owner.on_packet(packet, size):
                            entry.owner.on_rtp(clear[offset:offset + size])
                    elif kind != _RTP:
                        self._other(kind, entry, offset, size, on_raw)
                except Exception:  # one datagram's handler failing must not lose the burst
                    log.exception("media port: handling a datagram failed")
            if n < BATCH:
                return

    def _other(self, kind: int, entry: ReceiveEntry | None, offset: int, size: int,
               on_raw: Callable[[bytes, tuple], None]) -> None:
        if kind == lib.RX_RAW:
            on_raw(self._data[offset:offset + size], self._address(offset // lib.RX_MTU))
        elif kind == lib.RX_CUT:
            self.cut += 1
        elif entry is not None:  # RTCP, or RTP whose header does not parse: the connection counts that
            clear = self._clear[offset:offset + size]
            (entry.owner.on_rtcp if kind == lib.RX_RTCP else entry.owner.on_rtp)(clear)

    def _address(self, index: int) -> tuple:
        raw = self._addrs[index * lib.RX_ADDR:(index + 1) * lib.RX_ADDR]
        port = _UNPACK_PORT(raw, 2)[0]
        if int.from_bytes(raw[0:2], sys.byteorder) == socket.AF_INET:  # sa_family
            return socket.inet_ntop(socket.AF_INET, raw[4:8]), port
        return socket.inet_ntop(socket.AF_INET6, raw[8:24]), port


_UNPROTECT = libsrtp("srtp_unprotect")
_UNPROTECT_RTCP = libsrtp("srtp_unprotect_rtcp")
