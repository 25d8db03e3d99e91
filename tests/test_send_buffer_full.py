"""The shared media socket with a full send buffer: what it sends is refused and
counted, never raised, and it sends again once the buffer drains.

A loopback send never waits (the datagram is delivered at once), so the buffer can
only fill behind a queue: here a veth pair into a namespace of the test's own, shaped
by a token bucket (tests/client_namespace.py) so that sent datagrams wait in it, each
holding its share of a deliberately small send buffer.
"""

from __future__ import annotations

import fcntl
import os
import socket
import struct
import termios

from pylibsrtp import Policy, Session

from sfu.fanout import Fanout, Target, Wire
from sfu.media_port import MediaPort
from sfu.rtp_packet import RtpPacket
from tests.client_namespace import ClientNamespace
from tests.polling import until

KEY = os.urandom(28)
GCM = Policy.SRTP_PROFILE_AEAD_AES_128_GCM
DISCARD = 9  # nothing listens there: what arrives is dropped in the namespace


def queued_bytes(sock: socket.socket) -> int:
    """Send buffer a socket's datagrams still hold (SIOCOUTQ)."""
    return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0]


class Member:
    """A subscriber the fan-out step sends to, over the shared socket."""

    def __init__(self, fd: int, host: str, port: int, ssrc: int) -> None:
        self.session = Session(Policy(key=KEY, ssrc_type=Policy.SSRC_ANY_OUTBOUND, srtp_profile=GCM))
        self.wire = Wire()
        assert self.wire.connect(self.session, fd, host, port)
        self.target = Target(self.wire, ssrc=ssrc, payload_type=96, audio_level_id=0)
        self.target.seq.reset(0)
        self.target.seq.sync(0)


async def test_a_full_send_buffer_is_counted_and_the_socket_goes_on():
    with ClientNamespace("sndbuf") as ns:
        port = await MediaPort.open([ns.host_ip], 0, tcp=False)
        try:
            shared = port.sockets[0]
            shared.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)  # the least the kernel allows
            ns.rate(64)  # 8 KB/s: a few datagrams wait in the queue, each holding send buffer
            destination = (ns.client_ip, DISCARD)

            # The Python path (STUN, DTLS, RTCP): refused sends are counted, none raises.
            for _ in range(50):
                shared.sendto(b"\x80" * 1200, destination)
            assert port.counters.send_buffer_full > 0

            # The C fan-out step on the same socket: each refused copy is its target's
            # failure, and the step goes on to the next target.
            fanout = Fanout()
            members = [Member(shared.fd, ns.client_ip, DISCARD + i, 1000 + i) for i in range(3)]
            for member in members:
                fanout.add(member)
            payload = b"\x10" + bytes(1100)
            sent = sum(fanout.send(RtpPacket(96, 0, seq, seq * 3000, 42, payload)) for seq in range(1, 21))
            failures = sum(m.target.c.failures for m in members)
            assert failures > 0 and sent + failures == 20 * len(members)

            # Once the queue has drained, the socket sends again, from C and Python.
            await until(lambda: queued_bytes(shared.sock) == 0, timeout=10, what="the queue to drain")
            before = port.counters.send_buffer_full
            packets = [m.target.c.packets for m in members]
            assert fanout.send(RtpPacket(96, 0, 100, 300000, 42, payload[:100])) == len(members)
            assert [m.target.c.packets for m in members] == [p + 1 for p in packets]
            shared.sendto(b"\x80" * 100, destination)
            assert port.counters.send_buffer_full == before
        finally:
            port.close()
