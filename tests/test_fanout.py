"""The C fan-out step: real SRTP sessions, real UDP sockets on loopback."""

from __future__ import annotations

import os
import socket

from pylibsrtp import Policy, Session

from sfu import aiortc_hook as hook
from sfu.fanout import Fanout, Target, Wire
from sfu.rtp_packet import RtpPacket, parse_rtp

KEY = os.urandom(28)
GCM = Policy.SRTP_PROFILE_AEAD_AES_128_GCM


class Subscriber:
    """A loopback socket and the SRTP pair that protects towards it."""

    def __init__(self, sender: socket.socket) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(2)
        self.tx = Session(Policy(key=KEY, ssrc_type=Policy.SSRC_ANY_OUTBOUND, srtp_profile=GCM))
        self.rx = Session(Policy(key=KEY, ssrc_type=Policy.SSRC_ANY_INBOUND, srtp_profile=GCM))
        self.wire = Wire()
        host, port = self.sock.getsockname()
        session = hook._ffi.cast("uintptr_t", self.tx._srtp[0])
        assert self.wire.connect(hook._PROTECT_ADDRESS, int(session), sender.fileno(), host, port)

    def receive(self) -> bytes:
        return self.rx.unprotect(self.sock.recv(2048))

    def close(self) -> None:
        self.sock.close()


def test_fanout_rewrites_each_header_and_keeps_the_payload():
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    subs = [Subscriber(sender) for _ in range(3)]
    try:
        fanout = Fanout()
        members = []
        for i, sub in enumerate(subs):
            member = type("Member", (), {})()
            member.target = Target(sub.wire, ssrc=1000 + i, payload_type=96 + i,
                                   audio_level_id=1 if i == 2 else 0)
            member.target.seq.reset((10 + 0xFFFF - i) & 0xFFFF)  # wraps at 16 bits
            member.target.seq.sync(10)
            member.target.c.ts_offset = 0xFFFFFFF0   # and at 32 bits
            fanout.add(member)
            members.append(member)
        payload = os.urandom(1100)
        packet = RtpPacket(111, 1, 10, 100, 42, payload, audio_level=37)
        assert fanout.send(packet) == 3
        for i, sub in enumerate(subs):
            got = parse_rtp(sub.receive(), audio_level_id=1)
            assert (got.ssrc, got.payload_type, got.marker) == (1000 + i, 96 + i, 1)
            assert got.seq == (10 + 0xFFFF - i) & 0xFFFF
            assert got.timestamp == (100 + 0xFFFFFFF0) & 0xFFFFFFFF
            assert got.payload == payload
            assert got.audio_level == (37 if i == 2 else None)
            assert members[i].target.c.packets == 1 and members[i].target.c.octets == 1100

        fanout.remove(members[0])
        subs[1].wire.disconnect()  # a connection that went down loses packets, nothing else
        assert fanout.send(RtpPacket(111, 0, 11, 200, 42, b"x" * 10)) == 1
        assert parse_rtp(subs[2].receive()).seq == (11 + 0xFFFF - 2) & 0xFFFF
        assert members[1].target.c.packets == 1 and members[1].target.c.failures == 0
    finally:
        for sub in subs:
            sub.close()
        sender.close()


def test_fanout_refuses_what_does_not_fit_a_datagram():
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sub = Subscriber(sender)
    try:
        target = Target(sub.wire, ssrc=1, payload_type=96, audio_level_id=0)
        assert not target.send(RtpPacket(96, 0, 1, 1, 1, bytes(1500)))
        assert target.send(RtpPacket(96, 0, 1, 1, 1, bytes(1200)))
        assert not target.send(RtpPacket(96, 0, 1, 1, 1, bytes(1200)))  # same index: libsrtp refuses
        assert target.c.failures == 1
        assert not Wire().connect(hook._PROTECT_ADDRESS, 1, sender.fileno(), "not-an-ip", 1)
    finally:
        sub.close()
        sender.close()


def test_fanout_closes_up_behind_a_dropped_packet():
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    subs = [Subscriber(sender) for _ in range(2)]
    try:
        fanout = Fanout()
        for i, sub in enumerate(subs):
            member = type("Member", (), {})()
            member.target = Target(sub.wire, ssrc=7 + i, payload_type=96, audio_level_id=0)
            member.target.seq.reset(500 * (i + 1))
            member.target.seq.sync(100)
            fanout.add(member)
        fanout.send(RtpPacket(96, 0, 100, 9000, 42, b"a"))
        fanout.drop(101)  # a padding-only probe
        fanout.drop(102)
        fanout.send(RtpPacket(96, 0, 103, 9000, 42, b"b"))
        for i, sub in enumerate(subs):
            assert [parse_rtp(sub.receive()).seq for _ in range(2)] == [500 * (i + 1), 500 * (i + 1) + 1]
            assert sub.wire  # kept alive with its target
        assert [m.target.seq.original(501) for m in fanout._members][0] == 103
        assert fanout._members[0].target.c.max_timestamp == 9000
    finally:
        sub.close()
        sender.close()
