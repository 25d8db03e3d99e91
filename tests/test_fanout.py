"""The C fan-out step: real SRTP sessions, real UDP sockets on loopback."""

from __future__ import annotations

import os
import socket

from pylibsrtp import Policy, Session

from sfu.fanout import Fanout, Target, Wire
from sfu.rtp_packet import RtpPacket, parse_rtp
from sfu.vp8_descriptor import picture_ids

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
        assert self.wire.connect(self.tx, sender.fileno(), host, port)

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
        assert not Wire().connect(sub.tx, sender.fileno(), "not-an-ip", 1)
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


def vp8_packet(seq: int, picture_id: int, tl0: int, tid: int, sync: bool, start: bool) -> RtpPacket:
    """A VP8 RTP packet (RFC 7741) with a 15-bit picture id, TL0PICIDX and TID/Y."""
    descriptor = bytes([0x90 if start else 0x80, 0xE0, 0x80 | picture_id >> 8, picture_id & 0xFF,
                        tl0, tid << 6 | sync << 5])
    return RtpPacket(96, int(not start), seq, 3000 * picture_id, 42, descriptor + bytes([0x01]) + bytes(30))


def test_temporal_layers_above_the_target_are_left_out_without_holes():
    """L1T3 frames (TIDs 0 2 1 2 ...), two packets each, through the fan-out step to a
    real socket: with the target at TL0 the frames above it leave no hole in the
    sequence numbers or the picture ids; going back up waits for layer-sync frames;
    every packet carries abs-send-time."""
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sub = Subscriber(sender)
    try:
        target = Target(sub.wire, ssrc=5, payload_type=96, audio_level_id=0, abs_send_time_id=3)
        target.c.vp8 = 1
        target.seq.reset(1000)
        target.seq.sync(1)
        # (picture id, TL0PICIDX, TID, layer sync), the picture ids wrapping at 15 bits
        tids = (0, 2, 1, 2) * 4
        syncs = {5, 6, 14}  # frames that need only the base layer
        frames = [((0x7FFD + i) & 0x7FFF, 200 + i // 4, tid, i in syncs) for i, tid in enumerate(tids)]
        seq = 1
        sent: list[RtpPacket] = []

        def send_frame(frame) -> None:
            nonlocal seq
            for start in (True, False):
                packet = vp8_packet(seq, *frame, start=start)
                sent.append(packet)
                target.send(packet)
                seq += 1

        for frame in frames[:4]:
            send_frame(frame)
        target.c.tid_target = 0
        for frame in frames[4:12]:
            send_frame(frame)
        target.c.tid_target = 255
        for frame in frames[12:]:
            send_frame(frame)

        received = []
        for _ in range(2 * 8):
            data = sub.receive()
            assert data[0] & 0x10 and data[12:14] == b"\xbe\xde" and data[16] == 0x32  # id 3, 3 bytes
            packet = parse_rtp(data)
            received.append((packet.seq, *picture_ids(packet.payload)))
        # Frames 0-3; of 4-11 (target TL0) the TL0 frames 4 and 8, even sync frames above
        # it are left out; back up: frame 12 (TL0), 13 (TL2, no sync) left out, 14 (TL1,
        # sync) sent, 15 (TL2, no sync) above the TL1 now sent, left out.
        kept = [0, 1, 2, 3, 4, 8, 12, 14]
        assert [r[0] for r in received] == list(range(1000, 1016))  # no sequence hole
        ids = [r[1] for r in received[::2]]
        assert ids == [(0x7FFD + i) & 0x7FFF for i in range(8)]  # no picture-id hole
        assert [r[2] for r in received[::2]] == [frames[i][1] for i in kept]  # TL0PICIDX as sent
        assert target.c.max_tid == 2 and target.c.temporal_dropped == 2 * 8

        # A retransmission of a frame sent before the drops reads as it was sent.
        assert picture_ids(target.rewritten(sent[2]).payload)[0] == ids[1]
    finally:
        sub.close()
        sender.close()
