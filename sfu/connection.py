"""One peer's RTCPeerConnection, negotiated by aiortc, with media forwarded by us.

The peer always offers and we answer, so there is never glare. Each offer says
which of its m-lines publish (sendonly) and which subscribe (recvonly) to which
producer; every renegotiation restates the whole picture.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from aiortc import RTCConfiguration, RTCIceServer, RTCRtpReceiver, RTCSessionDescription
from aiortc.rtcconfiguration import RTCBundlePolicy
from aiortc.rtcrtpparameters import RTCRtpCodecCapability
from aiortc.sdp import MediaDescription, SessionDescription, candidate_from_sdp

from . import aiortc_hook as hook
from . import rtcp
from .codec import FORWARDABLE, Codec
from .bandwidth_allocator import allocate
from .consumer import Handover, RtpConsumer
from .downlink_estimator import LOSSY, DownlinkEstimator
from .h264_profile import shown_to_aiortc
from .media_port import MediaPort
from .port_range import PortRange, PortRangeExhausted
from .producer import Producer
from .rtp_packet import (ABS_SEND_TIME_URI, AUDIO_LEVEL_URI, MID_URI, RtpPacket, extension_value, parse_rtp,
                         unpack_ssrc, unwrap_rtx)
from .simulcast_consumer import SimulcastConsumer
from .simulcast_sdp import SimulcastOffer, answer_simulcast, offered_rid_extensions, parse_simulcast
from .traffic import Traffic
from .upkeep import Upkeep
from .uplink_estimator import UplinkEstimator

log = logging.getLogger("telemed.sfu.connection")

MAX_SDP_BYTES = 128 * 1024


class NegotiationError(ValueError):
    """The offer cannot be accepted; the message is safe to show the peer."""

    code = "bad-sdp"  # what the signalling error says


class NoMediaPort(NegotiationError):
    """Every port of the media port range is taken: the connection cannot be set up now.
    It is unusable (aiortc gathers once); the next offer needs a new one."""

    code = "media-ports-exhausted"


@dataclass(frozen=True)
class OfferedMedia:
    mid: str
    kind: str
    direction: str  # from the offerer's point of view

    @property
    def sends(self) -> bool:
        return self.direction in ("sendonly", "sendrecv")

    @property
    def receives(self) -> bool:
        return self.direction in ("recvonly", "sendrecv")


@dataclass
class Negotiation:
    answer: str
    added: list[Producer] = field(default_factory=list)
    adopted: list[Producer] = field(default_factory=list)  # kept from an earlier connection
    removed: list[Producer] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)  # mid -> reason


def parse_offer(sdp: str) -> tuple[SessionDescription, list[OfferedMedia]]:
    """Parse and sanity-check an SDP offer; NegotiationError on anything bad."""
    if not isinstance(sdp, str) or not sdp.strip():
        raise NegotiationError("SDP offer is empty")
    if len(sdp) > MAX_SDP_BYTES:
        raise NegotiationError("SDP offer is too large")
    try:
        description = SessionDescription.parse(sdp)
    except Exception as exc:  # aiortc raises many types on garbage
        raise NegotiationError(f"invalid SDP: {type(exc).__name__}") from None
    media = []
    for m in description.media:
        if m.kind not in ("audio", "video", "application"):
            raise NegotiationError(f"unsupported media kind {m.kind!r}")
        if m.kind != "application":
            if not m.rtp.muxId:
                raise NegotiationError("every media section needs a mid")
            media.append(OfferedMedia(m.rtp.muxId, m.kind, m.direction or "sendrecv"))
    if not description.media:
        raise NegotiationError("SDP offer has no media sections")
    return description, media


def _forwardable_preferences(kind: str, codec: Codec | None = None) -> list[RTCRtpCodecCapability]:
    """Our codec preferences: only what we can forward (for a subscriber, the producer's
    codec in any H264 profile variant: the subscriber's offer decides), and RTX."""
    capabilities = RTCRtpReceiver.getCapabilities(kind).codecs
    chosen = [c for c in capabilities if c.mimeType.lower() in FORWARDABLE
              and (codec is None or c.mimeType.lower() == codec.mime_type.lower())]
    rtx = [c for c in capabilities if c.mimeType.lower().endswith("/rtx")]
    return chosen + rtx


def _offered_parameters(section: MediaDescription | None) -> dict[int, dict]:
    """The fmtp parameters the remote offered, by payload type."""
    if section is None:
        return {}
    return {c.payloadType: dict(c.parameters) for c in section.rtp.codecs}


def _adoptable(producer: Producer, codec: Codec, rids: list[str] | None) -> bool:
    """Whether a resumed publisher's old track can go on with this m-line: the same
    codec, and the same simulcast layers (or none)."""
    layers = [layer.rid for layer in producer.layers] if producer.layers else None
    return (not producer.closed and producer.codec.mime_type.lower() == codec.mime_type.lower()
            and layers == (list(rids) if rids is not None else None))


def _describe(codec: Codec) -> str:
    names = ("packetization-mode", "profile-level-id")
    return ", ".join(f"{k}={codec.parameters[k]}" for k in names if k in codec.parameters) or codec.mime_type


class Connection:
    def __init__(self, ice_servers: list[dict] | None = None, announced_ip: str | None = None,
                 label: str = "", media_port: MediaPort | None = None,
                 port_range: PortRange | None = None) -> None:
        servers = [RTCIceServer(**s) for s in ice_servers or []]
        # MAX_BUNDLE: with aiortc's default, an m-line may keep a transport it was handed
        # before BUNDLE was applied, and then never carries media.
        self.pc = hook.shared_certificate_peer_connection(RTCConfiguration(
            iceServers=servers, bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        self.label = label
        self.announced_ip = announced_ip
        self.media_port = media_port  # None: aioice binds a port per connection...
        self.port_range = port_range  # ...in this range, if there is one
        self.producers: dict[str, Producer] = {}        # by mid
        self.consumers: dict[str, RtpConsumer] = {}     # by mid
        self.bad_packets = 0
        self.retired = Traffic()  # of the consumers and producers this connection has closed
        self.closed = False
        self.on_state: Callable[[str], None] | None = None
        self._transports: dict[int, hook.MediaTransport] = {}
        self._routes: dict[int, tuple[Producer, bool]] = {}   # ssrc -> (producer, is_rtx)
        self._consumers_by_ssrc: dict[int, RtpConsumer] = {}
        self._handovers: dict[str, Handover] = {}  # mid -> where its last consumer stopped
        self._clock = object()  # our producers share the publisher's clock
        self._simulcast: dict[str, SimulcastOffer] = {}  # publishing mid -> its layers
        self._priority_tracks: frozenset[str] = frozenset()
        self.uplink = UplinkEstimator()
        self.downlink = DownlinkEstimator()  # what this peer, as a subscriber, can take
        self._mid_ext_id = 0
        self._level_ids: dict[str, int] = {}  # producer id -> audio level ext id
        self._lock = asyncio.Lock()
        self._upkeep = Upkeep.current()
        self._upkeep.add(self)
        self.pc.on("connectionstatechange", self._state_changed)

    def _state_changed(self) -> None:
        if self.on_state is not None:
            self.on_state(self.pc.connectionState)

    async def negotiate(self, offer: str, publish: dict[str, dict],
                        subscribe: dict[str, Producer],
                        adopt: dict[str, Producer] | None = None) -> Negotiation:
        """Apply an offer. `publish` maps sending mids to app metadata; `subscribe`
        maps receiving mids to the producer each should carry; `adopt` maps sending
        mids to detached producers (a resumed publisher's) that go on with them."""
        async with self._lock:
            if self.closed:
                raise NegotiationError("connection is closed")
            description, offered = parse_offer(offer)
            simulcast = parse_simulcast(offer)
            by_mid = {m.mid: m for m in offered}
            sections = {m.rtp.muxId: m for m in description.media}
            try:
                await self.pc.setRemoteDescription(RTCSessionDescription(shown_to_aiortc(offer), "offer"))
            except Exception as exc:
                raise NegotiationError(f"offer rejected: {exc}") from None
            if self.media_port is not None:
                hook.SharedIce.attach(self.pc, self.media_port)
            elif self.port_range is not None:
                hook.bind_in_range(self.pc, self.port_range)
            result = Negotiation(answer="")
            for transceiver in self.pc.getTransceivers():
                media = by_mid.get(transceiver.mid)
                if media is None:
                    continue
                if media.sends and transceiver.mid in publish:
                    transceiver.setCodecPreferences(_forwardable_preferences(media.kind))
                    transceiver.direction = "recvonly"
                    hook.answer_offered_h264_profiles(transceiver, _offered_parameters(sections.get(transceiver.mid)))
                elif media.receives and transceiver.mid in subscribe:
                    producer = subscribe[transceiver.mid]
                    if producer.kind != media.kind:
                        result.rejected[transceiver.mid] = "kind does not match the track"
                        transceiver.direction = "inactive"
                        continue
                    if transceiver.sender.track is None:
                        transceiver.sender.replaceTrack(hook.IdleTrack(media.kind))
                        hook.silence_sender(transceiver.sender)
                    transceiver.setCodecPreferences(_forwardable_preferences(media.kind, producer.codec))
                    hook.answer_offered_h264_profiles(transceiver, _offered_parameters(sections.get(transceiver.mid)))
                    transceiver.direction = "sendonly"
                else:
                    transceiver.direction = "inactive"
            try:
                answer = await self.pc.createAnswer()
                await self.pc.setLocalDescription(answer)
            except PortRangeExhausted as exc:
                log.warning("%s: connection refused: %s", self.label or "peer", exc.strerror)
                raise NoMediaPort("the server has no free media port now; try again shortly") from None
            except Exception as exc:
                raise NegotiationError(f"cannot answer offer: {exc}") from None
            self._simulcast = {mid: layers for mid, layers in simulcast.items()
                               if mid in publish and by_mid[mid].sends and by_mid[mid].kind == "video"}
            self._update_producers(sections, publish, result, adopt or {})
            self._update_consumers(subscribe, sections, result)
            accepted = {mid: self._simulcast[mid] for mid, p in self.producers.items()
                        if p.layers and mid in self._simulcast}
            result.answer = self._announce(answer_simulcast(self.pc.localDescription.sdp, accepted,
                                                            offered_rid_extensions(offer)))
            return result

    def _announce(self, sdp: str) -> str:
        """Rewrite our host candidates to the public address of a 1:1 NAT."""
        if not self.announced_ip:
            return sdp
        lines = []
        for line in sdp.splitlines():
            if line.startswith("a=candidate:") and " typ host" in line:
                parts = line.split(" ")
                parts[4] = self.announced_ip
                line = " ".join(parts)
            elif line.startswith("c=IN IP4 "):
                line = f"c=IN IP4 {self.announced_ip}"
            lines.append(line)
        return "\r\n".join(lines) + "\r\n"

    def _transport_for(self, transceiver) -> hook.MediaTransport:
        dtls = transceiver.receiver.transport
        transport = self._transports.get(id(dtls))
        if transport is None:
            transport = hook.MediaTransport(dtls)
            transport.intercept(self._on_rtp, self._on_rtcp, self._on_packet)
            self._transports[id(dtls)] = transport
        return transport

    def _update_producers(self, sections: dict[str, MediaDescription], publish: dict[str, dict],
                          result: Negotiation, adopt: dict[str, Producer]) -> None:
        active = set()
        for transceiver in self.pc.getTransceivers():
            mid = transceiver.mid
            if transceiver.currentDirection != "recvonly" or mid not in publish:
                continue
            active.add(mid)
            if mid in self.producers:
                self.producers[mid].appdata.update(publish[mid])
                continue
            codecs = hook.negotiated_codecs(transceiver)
            media_codecs = [c for c in codecs if not c.mimeType.lower().endswith("/rtx")]
            if not media_codecs:
                result.rejected[mid] = "no forwardable codec in common (use Opus, VP8 or H264)"
                continue
            chosen = media_codecs[0]
            rtx_pt = next((c.payloadType for c in codecs if c.mimeType.lower().endswith("/rtx")
                           and str(c.parameters.get("apt")) == str(chosen.payloadType)), None)
            transport = self._transport_for(transceiver)
            extensions = hook.negotiated_extensions(transceiver)
            self._mid_ext_id = extensions.get(MID_URI, self._mid_ext_id)
            # What the publisher said it sends (its level, say), not aiortc's own defaults.
            parameters = _offered_parameters(sections.get(mid)).get(chosen.payloadType, chosen.parameters)
            codec = Codec(chosen.mimeType, chosen.clockRate, chosen.channels, dict(parameters))
            receiving = (chosen.payloadType, hook.sender_ssrcs(transceiver.sender)[0], transport.send_rtcp)
            offer = self._simulcast.get(mid)
            producer = adopt.get(mid)
            if producer is not None and _adoptable(producer, codec, offer.rids if offer else None):
                # A resumed publisher's track (and its layers) go on from this connection.
                for layer in producer.layers or [producer]:
                    layer.reattach(chosen.payloadType, rtx_pt, receiving[1], transport.send_rtcp, self._clock)
                producer.appdata.update({**publish[mid], "mid": mid})
                result.adopted.append(producer)
            else:
                producer = Producer(codec, *receiving, rtx_payload_type=rtx_pt,
                                    appdata={**publish[mid], "mid": mid}, clock=self._clock)
                if offer is not None:
                    # One producer per layer; the best one stands for the track.
                    producer.layers = [Producer(codec, *receiving, rtx_payload_type=rtx_pt,
                                                appdata={"mid": mid, "rid": rid}, clock=self._clock)
                                       for rid in offer.rids[:-1]] + [producer]
                    for layer, rid in zip(producer.layers, offer.rids):
                        layer.rid = rid
                result.added.append(producer)
            self._level_ids[producer.id] = extensions.get(AUDIO_LEVEL_URI, 0)
            if codec.kind == "audio":
                transport.audio_level_id = self._level_ids[producer.id]
            section = sections.get(mid)
            if section is not None and section.ssrc and not producer.layers:
                self._bind(producer, section.ssrc[0].ssrc, False)
                for group in section.ssrc_group:
                    if group.semantic == "FID" and len(group.items) == 2:
                        self._bind(producer, int(group.items[1]), True)
            self.producers[mid] = producer
        for mid in [m for m in self.producers if m not in active]:
            producer = self.producers.pop(mid)
            self._unroute(producer)
            producer.close()
            for layer in producer.layers or [producer]:
                self.retired.add_producer(layer)
            result.removed.append(producer)

    def _update_consumers(self, subscribe: dict[str, Producer], sections: dict[str, MediaDescription],
                          result: Negotiation) -> None:
        wanted: dict[str, RtpConsumer] = {}
        added: list[RtpConsumer] = []
        for transceiver in self.pc.getTransceivers():
            mid = transceiver.mid
            producer = subscribe.get(mid)
            if producer is None or transceiver.currentDirection != "sendonly":
                if producer is not None and mid not in result.rejected:
                    result.rejected[mid] = "codec not supported by the subscriber"
                continue
            existing = self.consumers.get(mid)
            if existing is not None and existing.source is producer and not existing.closed:
                wanted[mid] = existing
                continue
            if producer.closed:
                result.rejected[mid] = "track is no longer published"
                continue
            codecs = hook.negotiated_codecs(transceiver)
            offered = _offered_parameters(sections.get(mid))
            media = next((c for c in codecs if producer.codec.decodable_by(
                c.mimeType, offered.get(c.payloadType, c.parameters))), None)
            if media is None:
                result.rejected[mid] = (f"the subscriber cannot decode this track's {producer.codec.name} "
                                        f"({_describe(producer.codec)})")
                continue
            rtx_pt = next((c.payloadType for c in codecs if c.mimeType.lower().endswith("/rtx")
                           and str(c.parameters.get("apt")) == str(media.payloadType)), None)
            ssrc, rtx_ssrc = hook.sender_ssrcs(transceiver.sender)
            extensions = hook.negotiated_extensions(transceiver)
            kind = SimulcastConsumer if producer.layers else RtpConsumer
            consumer = kind(producer, self._transport_for(transceiver), ssrc,
                            media.payloadType, extensions.get(AUDIO_LEVEL_URI, 0),
                            rtx_ssrc if rtx_pt is not None else None, rtx_pt,
                            extensions.get(ABS_SEND_TIME_URI, 0) if producer.kind == "video" else 0)
            handover = existing.handover() if existing is not None else self._handovers.get(mid)
            if handover is not None:
                consumer.resume(handover)
            wanted[mid] = consumer
            added.append(consumer)
        for mid, consumer in self.consumers.items():
            if wanted.get(mid) is not consumer:
                self._handovers[mid] = consumer.handover()
                consumer.close()
                self.retired.add_consumer(consumer)
        for consumer in added:
            consumer.attach()
        self.consumers = wanted
        self._consumers_by_ssrc = {c.ssrc: c for c in wanted.values()}
        self.prioritize(self._priority_tracks)

    def _bind(self, producer: Producer, ssrc: int, is_rtx: bool) -> None:
        self._routes[ssrc] = (producer, is_rtx)
        if is_rtx:
            producer.rtx_ssrc = ssrc
        else:
            producer.ssrc = ssrc

    def _unroute(self, producer: Producer) -> None:
        gone = {producer, *producer.layers}
        for ssrc in [s for s, (p, _) in self._routes.items() if p in gone]:
            del self._routes[ssrc]

    # --- the media path ---
    def _on_rtp(self, data: bytes) -> None:
        """A decrypted RTP packet, whole (the Python receive path, and the first packets
        of an SSRC not routed yet)."""
        if len(data) < 12:
            self.bad_packets += 1
            return
        route = self._routes.get(unpack_ssrc(data)[0])
        if route is None:
            route = self._learn_route(data)
            if route is None:
                return
        try:
            packet = parse_rtp(data, self._level_ids.get(route[0].id, 0))
        except ValueError:
            self.bad_packets += 1
            return
        self._forward(route, packet, len(data))

    def _on_packet(self, packet: RtpPacket, size: int) -> bool:
        """A decrypted RTP packet whose header the port's receive step read; False if
        its SSRC is not routed yet."""
        route = self._routes.get(packet.ssrc)
        if route is None:
            return False
        self._forward(route, packet, size)
        return True

    def _forward(self, route: tuple[Producer, bool], packet: RtpPacket, size: int) -> None:
        producer, is_rtx = route
        try:
            now = time.monotonic()
            if is_rtx:
                if packet.payload_type != producer.rtx_payload_type or len(packet.payload) < 2:
                    return  # RTX padding probes carry no original packet
                original = unwrap_rtx(packet, producer.payload_type, producer.ssrc or 0)
                producer.receive_retransmission(original, now, size)
            else:
                producer.receive(packet, now, size)
        except ValueError:
            self.bad_packets += 1
        except Exception:  # a bug must cost one packet, never the connection
            self.bad_packets += 1
            log.exception("error forwarding RTP on %s", self.label)

    def _learn_route(self, data: bytes) -> tuple[Producer, bool] | None:
        """An SSRC not in the SDP: bind it by its mid extension or payload type."""
        try:
            packet = parse_rtp(data, 0, self._mid_ext_id)
        except ValueError:
            self.bad_packets += 1
            return None
        if packet.mid is not None:
            candidates = [self.producers[packet.mid]] if packet.mid in self.producers else []
            if candidates and candidates[0].layers:
                return self._learn_layer(data, candidates[0], self._simulcast.get(packet.mid))
        else:
            candidates = [p for p in self.producers.values()
                          if packet.payload_type in (p.payload_type, p.rtx_payload_type)]
        for producer in candidates:
            if packet.payload_type == producer.payload_type and producer.ssrc is None:
                self._bind(producer, packet.ssrc, False)
                return producer, False
            if packet.payload_type == producer.rtx_payload_type and producer.rtx_ssrc is None:
                self._bind(producer, packet.ssrc, True)
                return producer, True
        return None

    def _learn_layer(self, data: bytes, track: Producer,
                     offer: SimulcastOffer | None) -> tuple[Producer, bool] | None:
        """A simulcast SSRC names its layer with the rid (media) or repaired-rid (RTX)
        extension, as long as the sender has not seen our receiver reports for it."""
        if offer is None:
            return None
        for ext_id, is_rtx in ((offer.rid_id, False), (offer.repaired_rid_id, True)):
            rid = extension_value(data, ext_id)
            layer = next((p for p in track.layers if rid is not None and p.rid == rid.decode("ascii", "replace")), None)
            if layer is not None and (layer.rtx_ssrc if is_rtx else layer.ssrc) is None:
                self._bind(layer, int.from_bytes(data[8:12], "big"), is_rtx)
                return layer, is_rtx
        return None

    def _on_rtcp(self, data: bytes) -> None:
        try:
            packets = rtcp.parse_rtcp(data)
        except ValueError:
            self.bad_packets += 1
            return
        try:
            for packet in packets:
                self._route_rtcp(packet)
        except Exception:
            self.bad_packets += 1
            log.exception("error handling RTCP on %s", self.label)

    def _route_rtcp(self, packet: object) -> None:
        if isinstance(packet, rtcp.RtcpSrPacket):
            route = self._routes.get(packet.ssrc)
            if route is not None and not route[1]:
                info = packet.sender_info
                route[0].receive_sender_report(info.ntp_timestamp, info.rtp_timestamp)
        if isinstance(packet, (rtcp.RtcpSrPacket, rtcp.RtcpRrPacket)):
            lossy = False
            now = time.monotonic()
            for report in packet.reports:
                consumer = self._consumers_by_ssrc.get(report.ssrc)
                if consumer is not None:
                    consumer.handle_rtcp(packet)
                    lossy = lossy or report.fraction_lost > LOSSY * 256
                    rtt = consumer.round_trip(report, now)
                    if rtt is not None:
                        self.downlink.on_rtt(rtt, now)
            if lossy or self.downlink.queueing(now):  # choose layers now, not at the next tick
                allocate(self.consumers.values(), now, self.downlink)
        elif isinstance(packet, (rtcp.RtcpRtpfbPacket, rtcp.RtcpPsfbPacket)):
            targets = [packet.media_ssrc]
            if isinstance(packet, rtcp.RtcpPsfbPacket) and packet.fmt == rtcp.PSFB_APP:
                remb = rtcp.unpack_remb(packet)
                targets = remb[1] if remb else []
                now = time.monotonic()
                if remb and self.downlink.on_remb(remb[0], now):  # a cut: the link is full
                    allocate(self.consumers.values(), now, self.downlink)
            for ssrc in targets:
                consumer = self._consumers_by_ssrc.get(ssrc)
                if consumer is not None:
                    consumer.handle_rtcp(packet)

    def traffic(self) -> Traffic:
        """Totals since this connection opened: its closed consumers and producers and
        its live ones. They only grow, across renegotiations and after close()."""
        total = Traffic(bad_packets=self.bad_packets)
        total.add(self.retired)
        for consumer in self.consumers.values():
            total.add_consumer(consumer)
        for producer in self._received():
            total.add_producer(producer)
        return total

    def tick(self, now: float) -> None:
        """Once a second (sfu/upkeep.py): follow the ICE pair, producer upkeep, REMB."""
        for transport in list(self._transports.values()):
            transport.refresh()
        for producer in self._received():
            try:
                producer.tick(now)
            except Exception:
                log.exception("producer upkeep failed on %s", self.label)
        try:
            self._send_remb(now)
            allocate(self.consumers.values(), now, self.downlink)
        except Exception:
            log.exception("bandwidth upkeep failed on %s", self.label)

    def _received(self) -> list[Producer]:
        """Every stream we receive: each track's producer, or each of its layers."""
        return [layer for p in list(self.producers.values()) for layer in (p.layers or [p])]

    def _send_remb(self, now: float) -> None:
        """One REMB for all we receive: the uplink estimate, capped by what the
        subscribers of single-layer tracks can take (simulcast has layers for them)."""
        producers = [p for p in self._received() if p.ssrc is not None]
        estimate = self.uplink.update(now, [p.stats for p in producers])
        caps = [p.remb_bitrate for p in producers if p.remb_bitrate and not p.rid]
        bitrates = [b for b in [estimate, *caps] if b]
        if producers and bitrates:
            producers[0].send_remb(min(bitrates), [p.ssrc for p in producers])

    def prioritize(self, track_ids: Iterable[str | None]) -> None:
        """The tracks that get this subscriber's bandwidth first (the room's main camera)."""
        self._priority_tracks = frozenset(t for t in track_ids if t)
        for consumer in self.consumers.values():
            if isinstance(consumer, SimulcastConsumer):
                consumer.priority = 1 if consumer.source.id in self._priority_tracks else 0

    def set_tile_size(self, producer_id: str, width: int, height: int) -> bool:
        """The page shows this track in a tile of width x height device pixels; False
        if we send it no such track. Only simulcast tracks have a layer to choose."""
        consumer = next((c for c in self.consumers.values() if c.source.id == producer_id), None)
        if consumer is None:
            return False
        if isinstance(consumer, SimulcastConsumer):
            consumer.tile = (width, height)
            allocate(self.consumers.values(), time.monotonic(), self.downlink)
        return True

    async def add_ice_candidate(self, candidate: str, sdp_mid: str | None,
                                sdp_mline_index: int | None) -> None:
        """Trickle ICE from the peer; an empty candidate ends the trickle."""
        if not candidate:
            return
        if len(candidate) > 1024:
            raise NegotiationError("ICE candidate is too long")
        try:
            parsed = candidate_from_sdp(candidate.removeprefix("a=").removeprefix("candidate:"))
        except Exception:
            raise NegotiationError("invalid ICE candidate") from None
        parsed.sdpMid = sdp_mid
        parsed.sdpMLineIndex = sdp_mline_index
        try:
            await self.pc.addIceCandidate(parsed)
        except Exception as exc:
            raise NegotiationError(f"ICE candidate rejected: {exc}") from None

    def release_producers(self) -> list[Producer]:
        """Hand over the published producers, detached, for a later connection of the
        same publisher to adopt (a resume); this connection forwards none of them."""
        released = list(self.producers.values())
        for producer in released:
            self._unroute(producer)
            for layer in producer.layers or [producer]:
                layer.detach()
        self.producers.clear()
        return released

    async def close(self) -> list[Producer]:
        """Tear everything down; returns the producers that ended."""
        if self.closed:
            return []
        self.closed = True
        self._upkeep.discard(self)
        for consumer in self.consumers.values():
            consumer.close()
            self.retired.add_consumer(consumer)
        self.consumers.clear()
        self._consumers_by_ssrc.clear()
        ended = list(self.producers.values())
        for producer in self._received():
            self.retired.add_producer(producer)
        for producer in ended:
            producer.close()
        self.producers.clear()
        self._routes.clear()
        for transport in self._transports.values():
            transport.release()
        self._transports.clear()
        try:
            await self.pc.close()
        except Exception:
            log.exception("error closing peer connection %s", self.label)
        return ended
