"""One outgoing copy of a producer's stream.

Each consumer owns its output SSRC, sequence offset and timestamp offset, so a
subscriber sees one continuous stream no matter when it joined. In-process sinks
(recorder, HLS packager) subclass Consumer and override `write`.
"""

from __future__ import annotations

import random
import time
from typing import TYPE_CHECKING, Any

from . import rtcp
from .fanout import Target
from .rtp_packet import RtpPacket

if TYPE_CHECKING:
    from .aiortc_hook import MediaTransport
    from .producer import Producer


class Consumer:
    def __init__(self, producer: Producer) -> None:
        self.producer = producer
        self.kind = producer.kind
        self.closed = False
        self.started = False
        self.seq_offset = 0
        self.ts_offset = random.getrandbits(32)
        self._next_seq = random.getrandbits(15)
        self._continue_ts: tuple[int, float] | None = None  # (output ts, wall time) after a source change
        self.packets_sent = 0
        self.octets_sent = 0
        self.remb_bitrate: int | None = None

    def attach(self) -> None:
        """Start receiving; video waits for the keyframe this asks for."""
        self.producer.add_consumer(self)

    def can_start(self, packet: RtpPacket) -> bool:
        """Video must start on a keyframe, or the receiver decodes garbage until the next."""
        return self.kind != "video" or packet.keyframe

    def send(self, packet: RtpPacket) -> None:
        if not self.started:
            if not self.can_start(packet):
                return
            self.start(packet)
        self.write(packet, (packet.seq + self.seq_offset) & 0xFFFF,
                   (packet.timestamp + self.ts_offset) & 0xFFFFFFFF)

    def start(self, packet: RtpPacket) -> None:
        """The first packet this consumer passes on: its numbering begins here."""
        self.started = True
        self.seq_offset = (self._next_seq - packet.seq) & 0xFFFF
        if self._continue_ts is not None:
            # After a source change, timestamps go on by the wall time that passed.
            timestamp, at = self._continue_ts
            self._continue_ts = None
            elapsed = max(1, int((time.monotonic() - at) * self.producer.codec.clock_rate))
            self.ts_offset = (timestamp + elapsed - packet.timestamp) & 0xFFFFFFFF

    def source_changed(self) -> None:
        """The producer's upstream changed (its publisher resumed on a new connection):
        continue our sequence numbers and timestamps from the next packet it passes on."""
        last = self.producer.last_packet
        if not self.started or last is None:
            return
        self._next_seq = (self.producer.stats.extended_max + self.seq_offset + 1) & 0xFFFF
        self._continue_ts = ((last[0] + self.ts_offset) & 0xFFFFFFFF, last[1])
        self.started = False
        self.producer.demote(self)

    def write(self, packet: RtpPacket, seq: int, timestamp: int) -> None:
        raise NotImplementedError

    def on_sender_report(self, ntp: int, rtp_timestamp: int) -> None:
        """The publisher's clock mapping, translated into our timestamp space."""

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.producer.remove_consumer(self)


class _InTarget:
    """An RtpConsumer attribute that lives in its fan-out target's C struct."""

    def __init__(self, field: str) -> None:
        self.field = field

    def __get__(self, consumer: "RtpConsumer | None", owner: type | None = None) -> Any:
        return self if consumer is None else getattr(consumer.target.c, self.field)

    def __set__(self, consumer: "RtpConsumer", value: int) -> None:
        setattr(consumer.target.c, self.field, value)


class RtpConsumer(Consumer):
    """Forwards to a remote subscriber over its peer connection.

    Once started it is a member of its producer's Fanout, whose C step sends every
    packet; this class handles the start, feedback and retransmissions.
    """

    def __init__(self, producer: Producer, transport: MediaTransport, ssrc: int,
                 payload_type: int, audio_level_id: int = 0,
                 rtx_ssrc: int | None = None, rtx_payload_type: int | None = None) -> None:
        self.target = Target(transport.wire, ssrc, payload_type, audio_level_id)
        super().__init__(producer)
        self.transport = transport
        self.ssrc = ssrc
        self.payload_type = payload_type
        self.audio_level_id = audio_level_id
        self.rtx_ssrc = rtx_ssrc
        self.rtx_payload_type = rtx_payload_type
        self._rtx_seq = random.getrandbits(15)
        self._keyframe_lost = False
        self.nacks_received = 0
        self.retransmitted = 0
        self.plis_received = 0
        self.fraction_lost = 0
        self.packets_lost = 0

    def handover(self) -> tuple[int, int]:
        """(next sequence number, next RTX sequence number) for whoever takes this
        m-line (same SSRC) next: the receiver's SRTP replay check drops a restart."""
        if self.started:
            return (self.producer.stats.extended_max + self.seq_offset + 1) & 0xFFFF, self._rtx_seq
        return self._next_seq, self._rtx_seq

    def resume(self, handover: tuple[int, int]) -> None:
        self._next_seq, self._rtx_seq = handover

    def can_start(self, packet: RtpPacket) -> bool:
        # A new subscriber's DTLS often finishes after the keyframe we asked for went by.
        if not self.transport.ready:
            self._keyframe_lost = True
            return False
        if self._keyframe_lost:
            self._keyframe_lost = False
            self.producer.request_keyframe()
        return super().can_start(packet)

    # Kept in the C target, where the fan-out step reads and counts them.
    seq_offset = _InTarget("seq_offset")
    ts_offset = _InTarget("ts_offset")
    packets_sent = _InTarget("packets")
    octets_sent = _InTarget("octets")

    def start(self, packet: RtpPacket) -> None:
        super().start(packet)
        self.producer.promote(self)

    def write(self, packet: RtpPacket, seq: int, timestamp: int) -> None:
        self.target.send(packet)  # numbers it from the target's offsets: the same seq and timestamp

    def on_sender_report(self, ntp: int, rtp_timestamp: int) -> None:
        if self.started:
            self.transport.send_rtcp(rtcp.sender_report(
                self.ssrc, ntp, rtp_timestamp + self.ts_offset, self.packets_sent, self.octets_sent))

    def handle_rtcp(self, packet: object) -> None:
        """Feedback from the subscriber about this stream."""
        if isinstance(packet, rtcp.RtcpRtpfbPacket) and packet.fmt == rtcp.RTPFB_NACK:
            self.nacks_received += len(packet.lost)
            for seq in packet.lost:
                self.retransmit(seq)
        elif isinstance(packet, rtcp.RtcpPsfbPacket) and packet.fmt in (rtcp.PSFB_PLI, rtcp.PSFB_FIR):
            self.plis_received += 1
            self.producer.request_keyframe()
        elif isinstance(packet, rtcp.RtcpPsfbPacket) and packet.fmt == rtcp.PSFB_APP:
            remb = rtcp.unpack_remb(packet)
            if remb is not None:
                self.remb_bitrate = remb[0]
        elif isinstance(packet, (rtcp.RtcpRrPacket, rtcp.RtcpSrPacket)):
            for report in packet.reports:
                if report.ssrc == self.ssrc:
                    self.fraction_lost = report.fraction_lost
                    self.packets_lost = report.packets_lost

    def retransmit(self, seq: int) -> None:
        original = self.producer.buffer.get((seq - self.seq_offset) & 0xFFFF)
        if original is None or not self.started:
            return
        timestamp = (original.timestamp + self.ts_offset) & 0xFFFFFFFF
        if self.rtx_payload_type is not None and self.rtx_ssrc is not None:
            data = original.serialize_rtx(self.rtx_payload_type, self._rtx_seq, timestamp,
                                          self.rtx_ssrc, seq)
            self._rtx_seq = (self._rtx_seq + 1) & 0xFFFF
        else:
            data = original.serialize(self.payload_type, seq, timestamp, self.ssrc,
                                      self.audio_level_id)
        if self.transport.send_rtp(data):
            self.retransmitted += 1
