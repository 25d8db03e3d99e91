"""Recently forwarded packets by sequence number, to answer NACKs."""

from __future__ import annotations

from .rtp_packet import RtpPacket


class RetransmissionBuffer:
    """A ring indexed by sequence number; old entries are simply overwritten."""

    def __init__(self, size: int = 1024) -> None:
        assert size & (size - 1) == 0, "size must be a power of two"
        self._mask = size - 1
        self._slots: list[RtpPacket | None] = [None] * size

    def store(self, packet: RtpPacket) -> None:
        self._slots[packet.seq & self._mask] = packet

    def get(self, seq: int) -> RtpPacket | None:
        packet = self._slots[seq & self._mask]
        return packet if packet is not None and packet.seq == seq else None
