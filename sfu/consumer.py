"""One outgoing copy of a producer's stream.

Each consumer owns its output SSRC, a sequence manager and a timestamp offset, so a
subscriber sees one continuous stream no matter when it joined, what the producer
dropped (padding probes, stray payload types) or which source came before on its
m-line. In-process sinks (recorder, HLS packager) subclass Consumer and override
`write`.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from . import rtcp
from .fanout import Target
from .rtp_packet import RtpPacket
from .seq_manager import SeqManager
from .timestamp_mapper import SenderReport, TimelineEnd, continue_offset

if TYPE_CHECKING:
    from .aiortc_hook import MediaTransport
    from .producer import Producer


@dataclass(frozen=True)
class Handover:
    """What the next consumer on an m-line (same SSRC) continues from: the receiver's
    SRTP replay check drops a restarted sequence, and its jitter buffer a jump in time."""
    last_seq: int
    rtx_seq: int
    timeline: TimelineEnd | None  # None: nothing was ever sent


# Sender reports whose send time a consumer keeps, to time the receiver reports echoing them.
REPORTS_REMEMBERED = 8


class Consumer:
    # A viewer who must see now: media that arrives seconds stale is not sent to it
    # (sfu/late_media.py). In-process sinks that keep everything (recording) are not.
    live = False

    def __init__(self, producer: Producer, seq: SeqManager | None = None) -> None:
        self.producer = producer
        self.kind = producer.kind
        self.closed = False
        self.started = False
        self.ts_offset = random.getrandbits(32)
        self.max_timestamp = 0
        self.packets_sent = 0
        self.octets_sent = 0
        self.remb_bitrate: int | None = None
        self.seq = seq if seq is not None else SeqManager()
        self.seq.reset(random.getrandbits(15))
        self.timeline: TimelineEnd | None = None  # where the next start continues from

    @property
    def source(self) -> Producer:
        """The track this consumer carries (a simulcast consumer's producer is a layer of it)."""
        return self.producer

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
        self.forward(packet)

    def forward(self, packet: RtpPacket) -> None:
        seq = self.seq.input(packet.seq)
        if seq is None:
            return  # from before this consumer (re)started
        timestamp = (packet.timestamp + self.ts_offset) & 0xFFFFFFFF
        if seq == self.seq.max_output:
            self.max_timestamp = timestamp
        self.write(packet, seq, timestamp)

    def start(self, packet: RtpPacket) -> None:
        """The first packet this consumer passes on from its current source: its
        numbering and its timeline continue from whatever came before."""
        self.started = True
        self.seq.sync(packet.seq)
        if self.timeline is not None:
            self.ts_offset = continue_offset(self.timeline, packet.timestamp, self.producer,
                                             self.producer.clock, self._sender_report(),
                                             self.producer.last_arrival)
        self.max_timestamp = (packet.timestamp + self.ts_offset) & 0xFFFFFFFF

    def restart(self) -> None:
        """Stop sending until the next packet it can start on (a keyframe for video),
        then continue the same numbering and timeline."""
        if self.started:
            self.timeline = self.timeline_end()
            self.started = False

    def source_changed(self) -> None:
        """The producer's upstream was replaced (its publisher resumed on a new connection,
        docs/resume.md): restart, and continue the timeline by wall time alone, since the
        new source's timestamps and sender reports say nothing about the old ones."""
        self.restart()
        if self.timeline is not None:
            self.timeline = replace(self.timeline, source=None, clock=None)

    def drop(self, seq: int) -> None:
        """The producer dropped input `seq`; the output closes up behind it."""
        if self.started:
            self.seq.drop(seq)

    def timeline_end(self) -> TimelineEnd | None:
        if not self.started:
            return self.timeline
        return TimelineEnd(self.max_timestamp, self.producer.last_arrival,
                           self.producer.codec.clock_rate, self.producer, self.producer.clock,
                           self._sender_report(), self.ts_offset)

    def _sender_report(self) -> SenderReport | None:
        sr = self.producer.last_sr
        return None if sr is None else SenderReport(sr[0], sr[1])

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

    live = True

    def __init__(self, producer: Producer, transport: MediaTransport, ssrc: int,
                 payload_type: int, audio_level_id: int = 0,
                 rtx_ssrc: int | None = None, rtx_payload_type: int | None = None,
                 abs_send_time_id: int = 0) -> None:
        self.target = Target(transport.wire, ssrc, payload_type, audio_level_id, abs_send_time_id)
        super().__init__(producer, self.target.seq)  # the fan-out step steps it
        self.transport = transport
        self.ssrc = ssrc
        self.payload_type = payload_type
        self.audio_level_id = audio_level_id
        self.rtx_ssrc = rtx_ssrc
        self.rtx_payload_type = rtx_payload_type
        self._rtx_seq = random.getrandbits(15)
        self.nacks_received = 0
        self.retransmitted = 0
        self.plis_received = 0
        self.fraction_lost = 0
        self.packets_lost = 0
        self._reports_sent: dict[int, float] = {}  # LSR of our recent sender reports -> when

    @property
    def sending_bitrate(self) -> int:
        """What this consumer sends, bit/s (what its source receives)."""
        return self.producer.bitrate

    def handover(self) -> Handover:
        """For whoever takes this m-line (same SSRC) next."""
        return Handover(self.seq.max_output, self._rtx_seq, self.timeline_end())

    def resume(self, handover: Handover) -> None:
        self.seq.reset(handover.last_seq + 1)
        self._rtx_seq = handover.rtx_seq
        self.timeline = handover.timeline

    def attach(self) -> None:
        """Start receiving. Video asks for its keyframe once the subscriber's DTLS is up,
        not before: a keyframe sent earlier could not be decrypted, and the throttle
        would hold back the request that matters."""
        self.transport.ready_listeners.append(self._transport_ready)
        self.producer.add_consumer(self, keyframe=False)
        if self.transport.ready:
            self._transport_ready()

    def _transport_ready(self) -> None:
        """Video starts on a keyframe that has just gone by, or asks for one."""
        if self.started or self.closed or self.kind != "video":
            return
        if not self.producer.start_on_recent_keyframe(self, time.monotonic()):
            self.producer.request_keyframe()

    def can_start(self, packet: RtpPacket) -> bool:
        return self.transport.ready and super().can_start(packet)

    # Kept in the C target, where the fan-out step reads and counts them.
    ts_offset = _InTarget("ts_offset")
    max_timestamp = _InTarget("max_timestamp")
    packets_sent = _InTarget("packets")
    octets_sent = _InTarget("octets")

    def start(self, packet: RtpPacket) -> None:
        super().start(packet)
        self.producer.promote(self)

    def restart(self) -> None:
        if self.started:
            super().restart()
            self.producer.demote(self)

    def forward(self, packet: RtpPacket) -> None:
        self.target.send(packet)  # C numbers and stamps it as the fan-out step would

    def close(self) -> None:
        if self._transport_ready in self.transport.ready_listeners:
            self.transport.ready_listeners.remove(self._transport_ready)
        super().close()

    def on_sender_report(self, ntp: int, rtp_timestamp: int) -> None:
        if self.started:
            self.transport.send_rtcp(rtcp.sender_report(
                self.ssrc, ntp, rtp_timestamp + self.ts_offset, self.packets_sent, self.octets_sent))
            # The NTP time is the publisher's, so the round trip is timed on our clock.
            if len(self._reports_sent) >= REPORTS_REMEMBERED:
                del self._reports_sent[next(iter(self._reports_sent))]
            self._reports_sent[(ntp >> 16) & 0xFFFFFFFF] = time.monotonic()

    def round_trip(self, report: Any, now: float) -> float | None:
        """The RTT a receiver report block shows (RFC 3550 6.4.1), seconds; None if it
        echoes no sender report of ours."""
        sent = self._reports_sent.get(report.lsr) if report.lsr else None
        return None if sent is None else max(0.0, now - sent - report.dlsr / 65536)

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
        input_seq = self.seq.original(seq) if self.started else None
        original = None if input_seq is None else self.producer.buffer.get(input_seq)
        if original is None:
            return
        timestamp = (original.timestamp + self.ts_offset) & 0xFFFFFFFF
        if self.target.c.vp8:
            original = self.target.rewritten(original)
        if self.rtx_payload_type is not None and self.rtx_ssrc is not None:
            data = original.serialize_rtx(self.rtx_payload_type, self._rtx_seq, timestamp,
                                          self.rtx_ssrc, seq)
            self._rtx_seq = (self._rtx_seq + 1) & 0xFFFF
        else:
            data = original.serialize(self.payload_type, seq, timestamp, self.ssrc,
                                      self.audio_level_id)
        if self.transport.send_rtp(data):
            self.retransmitted += 1
