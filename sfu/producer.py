"""One incoming track: receives its packets and fans them out to consumers."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from . import rtcp
from .codec import Codec
from .fanout import MAX_PAYLOAD, Fanout
from .h264_sps import h264_keyframe_size
from .keyframe import DETECTORS, vp8_keyframe_size
from .keyframe_request_manager import KeyFrameRequestManager
from .late_media import LateMedia, episode_log
from .nack_generator import NackGenerator, seq_delta
from .receive_stats import ReceiveStats
from .retransmission_buffer import RetransmissionBuffer
from .rtp_packet import RtpPacket

if TYPE_CHECKING:
    from .consumer import Consumer

log = logging.getLogger("telemed.sfu")

# The picture size a keyframe's first packet announces, by codec.
SIZE_READERS = {"video/vp8": vp8_keyframe_size, "video/h264": h264_keyframe_size}

# Upstream RTCP goes through this: it takes serialized RTCP bytes.
RtcpSink = Callable[[bytes], object]

# A viewer whose media comes up this soon after a keyframe went by starts on that one,
# from the retransmission buffer, instead of asking the publisher for another: it sees
# a picture a round trip sooner, and a burst of joins costs the encoder (and an
# ambulance's uplink) fewer keyframes. Longer would start viewers further behind live.
RECENT_KEYFRAME = 0.3  # seconds
MAX_CATCH_UP = 256     # packets sent at once to such a viewer, at most


class Producer:
    def __init__(self, codec: Codec, payload_type: int, rtcp_ssrc: int,
                 send_rtcp: RtcpSink, rtx_payload_type: int | None = None,
                 appdata: dict | None = None, clock: object | None = None) -> None:
        self.id = uuid.uuid4().hex[:12]
        self.codec = codec
        self.kind = codec.kind
        self._video = codec.kind == "video"
        self.payload_type = payload_type
        self.rtx_payload_type = rtx_payload_type
        self.ssrc: int | None = None
        self.rtx_ssrc: int | None = None
        self.appdata = appdata or {}
        self.consumers: list[Consumer] = []
        # Started remote consumers are sent to from C; `_waiting` gets each packet in
        # Python: consumers not started yet, and in-process ones (recorder, HLS).
        self.fanout = Fanout()
        self._waiting: list[Consumer] = []
        self.closed = False
        self._paused = False
        # Producers with the same clock object come from one sender: their sender
        # reports share an NTP clock (sfu/timestamp_mapper.py).
        self.clock = clock
        self.last_arrival = 0.0  # monotonic time of the last packet in
        # Simulcast: the track's producer (its best layer) lists every layer, lowest
        # first, itself included; the other layers are not in the router.
        self.layers: list[Producer] = []
        self.rid = ""
        self.frame_size: tuple[int, int] | None = None  # from the last keyframe
        self.bitrate = 0  # what arrived over the last upkeep interval, bit/s
        self._bytes_at_tick = 0
        self._last_tick = 0.0
        self._frame_size = SIZE_READERS.get(codec.mime_type.lower())
        self._rtcp_ssrc = rtcp_ssrc
        self._send_rtcp = send_rtcp
        self._is_keyframe = DETECTORS.get(codec.mime_type.lower())
        self.buffer = RetransmissionBuffer()
        self.nack = NackGenerator()
        self.keyframes = KeyFrameRequestManager()
        self.stats = ReceiveStats(codec.clock_rate)
        # The latest keyframe's first packet: (seq, timestamp, arrival)
        self._last_keyframe: tuple[int, int, float] | None = None
        self.started_from_buffer = 0  # consumers started on a keyframe already here
        self.late = LateMedia(codec.clock_rate)
        self._shedding = False  # an episode of late media (sfu/late_media.py) under way
        self.late_shed = 0      # media packets not sent to viewers: stale
        self.late_episodes = 0
        self.nacks_sent = 0
        self.oversize = 0  # packets too large to forward
        self._deferred_pli: asyncio.TimerHandle | None = None
        self.last_sr: tuple[int, int, float] | None = None  # (ntp, rtp ts, arrival)
        self.remb_bitrate: int | None = None

    # --- media in ---
    def receive(self, packet: RtpPacket, arrival: float, size: int, retransmission: bool = False) -> None:
        # Padding-only probes and stray payload types carry no media: they are counted
        # and never NACKed, and each consumer's sequence manager closes up behind them.
        payload = packet.payload
        media = packet.payload_type == self.payload_type and len(payload) > 0
        if media and len(payload) > MAX_PAYLOAD:
            self._oversize(len(payload))
            media = False
        stale = media and (self.late.too_late(packet.timestamp, arrival) if retransmission
                           else self.late.stale(packet.timestamp, arrival))
        self.stats.add(packet.seq, packet.timestamp, arrival, size)
        self.last_arrival = arrival
        if self._video:
            nack = self.nack
            if nack.received(packet.seq, arrival):
                self.request_keyframe()
            if nack.pending:
                self._send_nacks(arrival)
            if media:
                if self._is_keyframe is not None and self._is_keyframe(payload):
                    packet.keyframe = True
                    if not stale:
                        self._keyframe_seen(packet, arrival)
                    self.keyframes.keyframe_arrived()
                    if self._frame_size is not None:
                        self.frame_size = self._frame_size(payload) or self.frame_size
                self.buffer.store(packet)
        if self._paused:
            return
        if not media:
            self._drop(packet.seq)
            return
        if stale:
            self._shed(packet, retransmission)
            return
        if self._shedding:
            self._fresh_again(packet)
        if self.fanout.count:
            self.fanout.send(packet)
        for consumer in self._waiting:  # promote() may replace the list meanwhile
            consumer.send(packet)

    def _keyframe_seen(self, packet: RtpPacket, arrival: float) -> None:
        last = self._last_keyframe
        if last is None:
            self._last_keyframe = (packet.seq, packet.timestamp, arrival)
            return
        later = seq_delta(packet.seq, last[0])
        if packet.timestamp == last[1]:
            if later < 0:  # an earlier slice of it (H264 marks each slice's start), come late
                self._last_keyframe = (packet.seq, last[1], last[2])
        elif later > 0:  # a newer keyframe; an old one's retransmission changes nothing
            self._last_keyframe = (packet.seq, packet.timestamp, arrival)

    def start_on_recent_keyframe(self, consumer: Consumer, now: float) -> bool:
        """Start `consumer` on the keyframe that arrived less than RECENT_KEYFRAME ago,
        and catch it up to live, from the buffer; False (nothing sent) if there is none,
        or a packet since then is missing."""
        last = self._last_keyframe
        if self._paused or self._shedding or last is None or now - last[2] > RECENT_KEYFRAME:
            return False
        first = last[0]
        count = seq_delta(self.stats.extended_max & 0xFFFF, first) + 1
        if not 0 < count <= MAX_CATCH_UP:
            return False
        packets = [self.buffer.get((first + i) & 0xFFFF) for i in range(count)]
        if None in packets:  # lost and not back yet, or no media (a padding probe)
            return False
        for packet in packets:
            consumer.send(packet)
        if consumer.started:
            self.started_from_buffer += 1
        return consumer.started

    def _drop(self, seq: int) -> None:
        if self.fanout.count:
            self.fanout.drop(seq)
        for consumer in self._waiting:
            consumer.drop(seq)

    def _shed(self, packet: RtpPacket, retransmission: bool) -> None:
        """Stale media (sfu/late_media.py): not for viewers, who must see now; consumers
        that keep everything (recording) still get it."""
        if not self._shedding and not retransmission:  # one late retransmission is no episode
            self._start_shedding()
        self.late_shed += 1
        if not retransmission and self.fanout.count:  # started audio: numbering closes up
            self.fanout.drop(packet.seq)
        for consumer in self._waiting:
            if not consumer.live:
                consumer.send(packet)
            elif not retransmission:
                consumer.drop(packet.seq)

    def _start_shedding(self) -> None:
        self._shedding = True
        self._last_keyframe = None  # what follows it is shed: no viewer starts on it
        self.late_episodes += 1
        episode_log.episode(self.id, self.kind, self.late.worst)
        if self._video:  # viewers go on from a fresh keyframe, with no hole in numbering or time
            for consumer in list(self.consumers):
                if consumer.live:
                    consumer.restart()

    def _fresh_again(self, packet: RtpPacket) -> None:
        self._shedding = False
        if self._video and not packet.keyframe and any(c.live for c in self._waiting):
            self.request_keyframe()  # for the viewers restarted (a layer nobody watches needs none)

    def _oversize(self, size: int) -> None:
        """A packet that cannot reach subscribers in one datagram: counted, and said once."""
        if not self.oversize:
            log.warning("producer %s sends %d-byte RTP payloads; at most %d are forwarded "
                        "(lower the encoder's packet size / MTU)", self.id, size, MAX_PAYLOAD)
        self.oversize += 1

    def receive_retransmission(self, packet: RtpPacket, arrival: float, size: int) -> None:
        """A packet we NACKed came back (plain or RTX-unwrapped)."""
        if self.buffer.get(packet.seq) is not None:
            return  # duplicate
        self.stats.retransmitted += 1
        self.receive(packet, arrival, size, retransmission=True)

    def receive_sender_report(self, ntp: int, rtp_timestamp: int) -> None:
        self.last_sr = (ntp, rtp_timestamp, time.monotonic())
        for consumer in self.consumers:
            consumer.on_sender_report(ntp, rtp_timestamp)

    @property
    def paused(self) -> bool:
        """Paused: packets still come in (stats, feedback upstream) but go to no consumer."""
        return self._paused

    @paused.setter
    def paused(self, paused: bool) -> None:
        if paused and not self._paused:
            # Consumers start again on resume (video on a keyframe), continuing their
            # numbering and timeline, so the pause leaves no hole downstream.
            for consumer in list(self.consumers):
                consumer.restart()
        self._paused = paused
        if not paused and self._waiting:
            self.request_keyframe()

    # --- feedback up ---
    def request_keyframe(self) -> None:
        if self.kind != "video":
            return
        now = time.monotonic()
        if self.keyframes.request(now):
            self._pli()
        elif self.keyframes.held_back:
            # Throttled: send it the moment the throttle allows, not at the next upkeep
            # tick (a request served by a keyframe already on its way waits for nothing).
            self._defer_pli(now)

    def _defer_pli(self, now: float) -> None:
        if self._deferred_pli is None:
            # A millisecond more: the loop's timers run on its own, coarser clock
            # (uvloop's), and may fire a hair before time.monotonic() says the throttle ends.
            self._deferred_pli = asyncio.get_running_loop().call_later(
                self.keyframes.throttled_for(now) + 0.001, self._send_deferred_pli)

    def _send_deferred_pli(self) -> None:
        self._deferred_pli = None
        if self.closed:
            return
        now = time.monotonic()
        if self.keyframes.send_deferred(now):
            self._pli()
        elif self.keyframes.held_back:  # early after all: again, rather than a second's retry
            self._defer_pli(now)

    def _pli(self) -> None:
        if self.ssrc is not None:
            self._send_rtcp(rtcp.pli(self._rtcp_ssrc, self.ssrc))

    def _send_nacks(self, now: float) -> None:
        lost = self.nack.due(now)
        if lost and self.ssrc is not None:
            self.nacks_sent += len(lost)
            self._send_rtcp(rtcp.nack(self._rtcp_ssrc, self.ssrc, lost))

    def tick(self, now: float) -> None:
        """Periodic upkeep: NACK retries, keyframe retries, RR upstream; the smallest
        subscriber REMB, for the connection's REMB (sfu/connection.py)."""
        if self.ssrc is None:
            return
        if now > self._last_tick:
            self.bitrate = int((self.stats.bytes - self._bytes_at_tick) * 8 / (now - self._last_tick))
        self._bytes_at_tick, self._last_tick = self.stats.bytes, now
        if self.nack.pending:
            self._send_nacks(now)
        if self.keyframes.tick(now):
            self._pli()
        lsr = dlsr = 0
        if self.last_sr is not None:
            lsr = (self.last_sr[0] >> 16) & 0xFFFFFFFF
            dlsr = int((now - self.last_sr[2]) * 65536) & 0xFFFFFFFF
        block = rtcp.report_block(self.ssrc, self.stats.fraction_lost(), self.stats.lost,
                                  self.stats.extended_max, self.stats.jitter, lsr, dlsr)
        self._send_rtcp(rtcp.receiver_report(self._rtcp_ssrc, [block]))
        bitrates = [c.remb_bitrate for c in self.consumers if c.remb_bitrate]
        self.remb_bitrate = min(bitrates) if bitrates else None

    def send_remb(self, bitrate: int, ssrcs: list[int]) -> None:
        """The bandwidth feedback for the publisher's whole connection (it applies REMB
        per connection), sent from this producer's RTCP SSRC."""
        self._send_rtcp(rtcp.remb(self._rtcp_ssrc, bitrate, ssrcs))

    # --- a publisher that resumes on a new connection (docs/resume.md) ---
    @classmethod
    def awaiting(cls, track_id: str, codec: Codec, rids: list[str] | None = None,
                 appdata: dict | None = None) -> Producer:
        """A track whose publisher is expected to resume it, known only by description
        (its seat was carried over from a server that died): detached, with no source,
        until a resumed connection adopts it. Subscribers may attach meanwhile."""
        producer = cls(codec, 0, 0, _nowhere, appdata=appdata)
        producer.id = track_id
        if rids:
            producer.layers = [cls(codec, 0, 0, _nowhere, appdata={"rid": rid}) for rid in rids[:-1]] + [producer]
            for layer, rid in zip(producer.layers, rids):
                layer.rid = rid
        for layer in producer.layers or [producer]:
            layer.detach()
        return producer

    def detach(self) -> None:
        """Its connection is gone, but its publisher may resume: the track and its
        consumers stay; feedback upstream goes nowhere until `reattach`."""
        self._send_rtcp = _nowhere
        self.ssrc = self.rtx_ssrc = None
        if self._deferred_pli is not None:
            self._deferred_pli.cancel()
            self._deferred_pli = None

    def reattach(self, payload_type: int, rtx_payload_type: int | None, rtcp_ssrc: int,
                 send_rtcp: RtcpSink, clock: object | None) -> None:
        """The same track from the publisher's new connection: a new SSRC, numbering and
        clock. Each consumer goes on from where it stopped, on the new source's first
        packet (a keyframe for video): subscribers see one stream with a pause in it."""
        for consumer in list(self.consumers):
            consumer.source_changed()  # reads where the old source stood: before the reset
        self.payload_type = payload_type
        self.rtx_payload_type = rtx_payload_type
        self._rtcp_ssrc = rtcp_ssrc
        self._send_rtcp = send_rtcp
        self.clock = clock
        self.buffer = RetransmissionBuffer()
        self.nack = NackGenerator()
        self.keyframes = KeyFrameRequestManager()
        self.stats = ReceiveStats(self.codec.clock_rate)
        self._last_keyframe = None
        self.late = LateMedia(self.codec.clock_rate)
        self.last_sr = None
        self.request_keyframe()

    # --- lifecycle ---
    def add_consumer(self, consumer: Consumer, keyframe: bool = True) -> None:
        """`keyframe`: ask for one (a consumer switching on a keyframe in hand needs none)."""
        self.consumers.append(consumer)
        self._waiting = self._waiting + [consumer]
        if keyframe:
            self.request_keyframe()

    def promote(self, consumer: Consumer) -> None:
        """A started remote consumer: from now on the C fan-out step sends to it."""
        self.fanout.add(consumer)
        self._waiting = [c for c in self._waiting if c is not consumer]

    def demote(self, consumer: Consumer) -> None:
        """A consumer that restarts: back to Python until it starts again."""
        self.fanout.remove(consumer)
        if consumer not in self._waiting:
            self._waiting = self._waiting + [consumer]

    def remove_consumer(self, consumer: Consumer) -> None:
        if consumer in self.consumers:
            self.consumers.remove(consumer)
        self._waiting = [c for c in self._waiting if c is not consumer]
        self.fanout.remove(consumer)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._deferred_pli is not None:
            self._deferred_pli.cancel()
        for consumer in list(self.consumers):
            consumer.close()
        self.consumers.clear()
        self._waiting = []
        for layer in self.layers:
            layer.close()

    def describe(self) -> dict:
        return {"id": self.id, "kind": self.kind, "codec": self.codec.mime_type, **self.appdata}


def _nowhere(data: bytes) -> None:
    """The RTCP sink of a detached producer."""
