"""A lossy, jittery link in user space, where the kernel has no `tc netem`.

Runs in a middle network namespace and copies Ethernet frames between two interfaces
(raw AF_PACKET sockets), as a cable would; IPv4 frames may be dropped (``loss``) and
are held for a random ``delay`` ± ``jitter`` seconds each, so they also reorder, as
netem's are. ARP passes untouched. Frames sent by a veth may still lack their TCP/UDP
checksum (the kernel leaves it to "hardware"), so it is filled in here. Commands on stdin change the impairment at run time:

    set LOSS DELAY JITTER      e.g. "set 0.2 0.2 0.2": 20% loss, 0..400 ms one way
    off

    python -m benchmarks.impairment IF_A IF_B
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import sys

ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800


class Impairment:
    def __init__(self) -> None:
        self.loss = self.delay = self.jitter = 0.0
        self.rng = random.Random()

    def hold(self, frame: bytes) -> float | None:
        """Seconds to hold ``frame`` before it goes on; None drops it."""
        if int.from_bytes(frame[12:14], "big") != ETH_P_IP:
            return 0.0
        if self.loss and self.rng.random() < self.loss:
            return None
        return max(0.0, self.delay + self.rng.uniform(-self.jitter, self.jitter))


def with_checksum(frame: bytes) -> bytes:
    """An IPv4 TCP or UDP frame with its transport checksum computed."""
    if len(frame) < 34 or int.from_bytes(frame[12:14], "big") != ETH_P_IP:
        return frame
    header = (frame[14] & 0x0F) * 4
    protocol = frame[23]
    total = int.from_bytes(frame[16:18], "big")
    if protocol not in (6, 17) or frame[20:22] not in (b"\x00\x00", b"\x40\x00"):
        return frame  # neither TCP nor UDP, or a fragment
    start, end = 14 + header, 14 + total
    segment = bytearray(frame[start:end])
    at = 16 if protocol == 6 else 6
    if len(segment) < at + 2:
        return frame
    segment[at:at + 2] = b"\x00\x00"
    pseudo = frame[26:34] + struct.pack("!BBH", 0, protocol, len(segment))
    data = pseudo + segment + (b"\x00" if len(segment) % 2 else b"")
    total_sum = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total_sum >> 16:
        total_sum = (total_sum & 0xFFFF) + (total_sum >> 16)
    checksum = ~total_sum & 0xFFFF
    if protocol == 17 and checksum == 0:
        checksum = 0xFFFF
    segment[at:at + 2] = checksum.to_bytes(2, "big")
    return frame[:start] + bytes(segment) + frame[end:]


def _open(interface: str) -> socket.socket:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.bind((interface, 0))
    sock.setblocking(False)
    return sock


def _send(sock: socket.socket, frame: bytes) -> None:
    try:
        sock.send(frame)
    except OSError:
        pass  # a full queue or an oversize frame is lost, as on a wire


async def bridge(a: str, b: str) -> None:
    loop = asyncio.get_running_loop()
    impairment = Impairment()
    ends = {a: _open(a), b: _open(b)}

    def forward(source: str, target: str) -> None:
        sock = ends[source]
        while True:
            try:
                frame, address = sock.recvfrom(65535)
            except BlockingIOError:
                return
            if address[2] == socket.PACKET_OUTGOING:
                continue  # what we sent ourselves
            hold = impairment.hold(frame)
            if hold is None:
                continue
            frame = with_checksum(frame)
            if hold == 0:
                _send(ends[target], frame)
            else:
                loop.call_later(hold, _send, ends[target], frame)

    loop.add_reader(ends[a].fileno(), forward, a, b)
    loop.add_reader(ends[b].fileno(), forward, b, a)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print("bridging", flush=True)
    while line := await reader.readline():
        words = line.decode().split()
        if words[:1] == ["set"] and len(words) == 4:
            impairment.loss, impairment.delay, impairment.jitter = (float(w) for w in words[1:])
        elif words[:1] == ["off"]:
            impairment.loss = impairment.delay = impairment.jitter = 0.0
        print("ok", flush=True)


if __name__ == "__main__":
    asyncio.run(bridge(sys.argv[1], sys.argv[2]))
