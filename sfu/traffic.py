"""What one connection has forwarded, received and refused, in totals that only grow.

A renegotiation closes consumers and producers while the connection stays; their
counts move into ``retired`` as they go, so a connection's totals never drop.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .consumer import RtpConsumer
    from .producer import Producer


@dataclass
class Traffic:
    packets_forwarded: int = 0
    bytes_forwarded: int = 0
    nacks_received: int = 0
    retransmissions: int = 0
    plis_received: int = 0
    send_failures: int = 0
    nacks_sent: int = 0
    plis_sent: int = 0
    keyframes_reused: int = 0
    # RFC 3550 cumulative loss: a late packet takes one back, so this alone may dip.
    packets_lost: int = 0
    rtp_oversize: int = 0
    late_packets_shed: int = 0  # stale media not sent to viewers (sfu/late_media.py)
    late_episodes: int = 0
    bad_packets: int = 0

    def add(self, other: Traffic) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def add_consumer(self, consumer: RtpConsumer) -> None:
        self.packets_forwarded += consumer.packets_sent
        self.bytes_forwarded += consumer.octets_sent
        self.nacks_received += consumer.nacks_received
        self.retransmissions += consumer.retransmitted
        self.plis_received += consumer.plis_received
        self.send_failures += consumer.target.c.failures

    def add_producer(self, producer: Producer) -> None:
        self.nacks_sent += producer.nacks_sent
        self.plis_sent += producer.keyframes.requests_sent
        self.keyframes_reused += producer.started_from_buffer
        self.packets_lost += producer.stats.lost
        self.rtp_oversize += producer.oversize
        self.late_packets_shed += producer.late_shed
        self.late_episodes += producer.late_episodes

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}
