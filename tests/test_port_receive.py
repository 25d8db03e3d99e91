"""The shared port's receive step (sfu/port_receive.c, .py) on its own: a real UDP
socket, real libsrtp sessions, every kind of datagram in one burst."""

from __future__ import annotations

import os
import random
import socket
import struct

import pytest
from pylibsrtp import Policy, Session

from sfu._fanout import ffi, lib
from sfu.port_receive import ReceiveTable
from sfu.rtp_packet import RtpPacket, parse_rtp

KEY = bytes(range(30))  # AES-128 key and salt


def sessions() -> tuple[Session, Session]:
    """(sender's, receiver's) under one key, as DTLS would set them up."""
    tx = Session(Policy(key=KEY, ssrc_type=Policy.SSRC_ANY_OUTBOUND))
    rx = Session(Policy(key=KEY, ssrc_type=Policy.SSRC_ANY_INBOUND))
    return tx, rx


def rtp(seq: int, payload: bytes, level: int | None = None, padding: bytes = b"") -> bytes:
    first = 0x80 | (0x20 if padding else 0) | (0x10 if level is not None else 0)
    header = struct.pack("!BBHII", first, 0x80 | 111, seq, 48000 + seq, 0x1234ABCD)
    if level is not None:
        header += struct.pack("!HHBBxx", 0xBEDE, 1, 0x10, level)  # id 1, one byte
    return header + payload + padding


class Owner:
    def __init__(self, routed: bool = True) -> None:
        self.routed = routed
        self.packets: list[tuple[RtpPacket, int]] = []
        self.rtp: list[bytes] = []
        self.rtcp: list[bytes] = []

    def on_packet(self, packet: RtpPacket, size: int) -> bool:
        if self.routed:
            self.packets.append((packet, size))
        return self.routed

    def on_rtp(self, data: bytes) -> None:
        self.rtp.append(data)

    def on_rtcp(self, data: bytes) -> None:
        self.rtcp.append(data)


@pytest.fixture
def port():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    senders = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
    for sender in senders:
        sender.bind(("127.0.0.1", 0))
    yield sock, senders
    for s in (sock, *senders):
        s.close()


def read_all(table: ReceiveTable, sock: socket.socket) -> list[tuple[bytes, tuple]]:
    """One read of what is waiting (loopback delivers at once); what went to the
    demultiplexer."""
    raw: list[tuple[bytes, tuple]] = []
    table.read(sock.fileno(), lambda data, addr: raw.append((data, addr)))
    return raw


def test_a_burst_of_every_kind_is_sorted_and_decrypted(port):
    sock, (peer, stranger) = port
    tx, rx = sessions()
    table = ReceiveTable()
    owner = Owner()
    entry = table.add(owner, rx, peer.getsockname(), audio_level_id=1)
    assert entry is not None and len(table) == 1
    address = sock.getsockname()
    sr = struct.pack("!BBHI", 0x80, 200, 6, 0x1234ABCD) + bytes(20)  # an empty sender report
    sent = [
        tx.protect(rtp(1, b"first", level=42)),
        tx.protect_rtcp(sr),
        bytes([0x80, 0x6F]) + os.urandom(38),                         # SRTP-looking, forged
        tx.protect(rtp(2, b"padded", padding=b"\x00\x00\x00")),       # decrypts; padding length 0
        b"\x00\x01\x00\x00" + os.urandom(16),                         # STUN-looking
        b"\x80" * 3000,                                               # longer than the buffer
    ]
    for datagram in sent:
        peer.sendto(datagram, address)
    elsewhere = tx.protect(rtp(3, b"from elsewhere"))
    stranger.sendto(elsewhere, address)
    raw = read_all(table, sock)

    [(packet, size)] = owner.packets
    assert (packet.payload_type, packet.marker, packet.seq, packet.timestamp, packet.ssrc) == (111, 1, 1, 48001, 0x1234ABCD)
    assert packet.payload == b"first" and packet.audio_level == 42 and size == len(rtp(1, b"first", level=42))
    assert owner.rtcp == [sr]
    # RTP that decrypted but whose header does not parse goes to the connection, which
    # counts it (its own parse raises)
    [bad] = owner.rtp
    with pytest.raises(ValueError, match="padding"):
        parse_rtp(bad)
    # the forged packet, the STUN-looking one and the stranger's go to the demultiplexer
    # as they came, with their source
    assert [(data, addr) for data, addr in raw] == [
        (sent[2], peer.getsockname()), (sent[4], peer.getsockname()),
        (elsewhere, stranger.getsockname())]
    assert table.cut == 1
    assert entry.media == 3  # what authenticated: the RTP, the RTCP, the unparsable RTP


def test_an_unrouted_ssrc_gets_the_whole_packet(port):
    sock, (peer, _) = port
    tx, rx = sessions()
    table = ReceiveTable()
    owner = Owner(routed=False)
    table.add(owner, rx, peer.getsockname(), audio_level_id=0)
    peer.sendto(tx.protect(rtp(7, b"new ssrc")), sock.getsockname())
    read_all(table, sock)
    assert owner.rtp == [rtp(7, b"new ssrc")]


def test_a_removed_entry_gets_nothing_more(port):
    sock, (peer, _) = port
    tx, rx = sessions()
    table = ReceiveTable()
    owner = Owner()
    entry = table.add(owner, rx, peer.getsockname(), 0)
    table.remove(entry)
    assert len(table) == 0
    packet = tx.protect(rtp(1, b"x"))
    peer.sendto(packet, sock.getsockname())
    assert read_all(table, sock) == [(packet, peer.getsockname())]
    assert owner.packets == [] and entry.media == 0


def addr_of(entry) -> bytes:
    return bytes(ffi.buffer(entry.c.addr))[:entry.c.addrlen]


def test_the_table_finds_what_it_holds_through_any_removals():
    """Open addressing with backward-shift removal: thousands of entries (collisions
    certain), removed in random order, every survivor still found, nothing else."""
    rng = random.Random(7)
    _, rx = sessions()
    table = ReceiveTable()
    hosts = [f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}" for _ in range(3000)]
    entries = []
    for n, host in enumerate(hosts):
        entry = table.add(Owner(), rx, (host, 1024 + n), 0)
        assert entry is not None
        entries.append(entry)
    entries.append(table.add(Owner(), rx, ("::1", 5000), 0))  # IPv6 too
    rng.shuffle(entries)
    gone = entries[:2000]
    for entry in gone:
        table.remove(entry)
    assert len(table) == len(entries) - len(gone)
    for entry in entries[2000:]:
        assert lib.rx_find(table.c, addr_of(entry), entry.c.addrlen) == entry.c
    for entry in gone:
        assert lib.rx_find(table.c, addr_of(entry), entry.c.addrlen) == ffi.NULL


def test_a_later_connection_from_the_same_address_owns_it():
    _, rx = sessions()
    table = ReceiveTable()
    first = table.add(Owner(), rx, ("127.0.0.1", 4000), 0)
    second = table.add(Owner(), rx, ("127.0.0.1", 4000), 0)
    assert len(table) == 1
    table.remove(first)  # no longer there: a no-op
    assert lib.rx_find(table.c, addr_of(second), second.c.addrlen) == second.c
    assert table.add(Owner(), rx, ("not an address", 1), 0) is None
