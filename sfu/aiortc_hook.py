"""The one place that touches aiortc's and aioice's private names.

aiortc decodes every received track and re-encodes every sent one, and has no API
for forwarding encoded packets. We keep aiortc for what it does well (SDP, ICE,
DTLS, SRTP keys, SCTP) and take over the media path on the DTLS transport:

* incoming SRTP is decrypted by aiortc, then handed to us as raw RTP/RTCP bytes
  instead of aiortc's router, jitter buffer and decoder;
* outgoing RTP/RTCP is protected with the transport's SRTP session and written
  straight to the nominated ICE pair's socket, skipping three coroutine layers
  (media in C, through `MediaTransport.wire`; RTX and RTCP from Python);
* with a media port (sfu/media_port.py), each connection's aioice agent lives on the
  port's shared sockets instead of binding its own (`SharedIce`), its consent checks
  run from one timer (sfu/consent.py), and one DTLS certificate serves every
  connection (`SharedCertificate`);
* without one, a media port range (sfu/port_range.py) makes each connection's aioice
  agent bind its sockets in the range instead of on any port (`bind_in_range`).

aiortc, aioice and pylibsrtp are pinned exactly; tests/test_aiortc_hook.py fails
loudly if an upgrade moves any name used here.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Any, cast

import aioice.candidate
import aioice.ice
import aioice.stun
import aioice.turn
from pylibsrtp._binding import ffi as _ffi
from pylibsrtp._binding import lib as _srtp_lib
import aiortc.rtcpeerconnection
import aiortc.rtcrtpreceiver
from aiortc import (MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCRtpSender,
                    RTCRtpTransceiver)
from aiortc.rtcdtlstransport import RTCCertificate, RTCDtlsTransport
from aiortc.rtcdtlstransport import State as DtlsState

from .fanout import Wire
from .ice_tcp import passive_priority
from .media_port import MediaPort, PeerRoute, TcpRoute
from .port_range import PortRange, PortRangeExhausted
from .port_receive import ReceiveEntry
from .rtp_packet import RtpPacket

log = logging.getLogger("telemed.sfu.aiortc_hook")

_srtp_protect = _srtp_lib.srtp_protect
_srtp_protect_rtcp = _srtp_lib.srtp_protect_rtcp
_srtp_unprotect = _srtp_lib.srtp_unprotect
_srtp_unprotect_rtcp = _srtp_lib.srtp_unprotect_rtcp
_MAX_RTP = 1500 - 40 - 8 - 16   # one IPv6 UDP datagram in a 1500 MTU, after a 16-byte tag
_MAX_RTCP = _MAX_RTP - 4         # SRTCP adds its index

RtpHandler = Callable[[bytes], None]
RtcpHandler = Callable[[bytes], None]
PacketHandler = Callable[[RtpPacket, int], bool]  # sfu/port_receive.py MediaOwner.on_packet

# Private methods this module replaces or calls, checked by the upgrade test (which
# also checks the private instance attributes on live objects).
REQUIRED_METHODS: dict[type, tuple[str, ...]] = {
    RTCCertificate: ("_create_ssl_context",),
    RTCDtlsTransport: ("_handle_rtp_data", "_handle_rtcp_data", "_send_rtp"),
    aioice.ice.Connection: ("data_received", "query_consent", "get_component_candidates",
                            "build_request", "check_incoming", "check_complete", "check_state"),
    aioice.ice.StunProtocol: ("request",),
    RTCRtpSender: ("_send_rtcp", "_run_rtcp", "_send_keyframe"),
}


# aiortc offers only ECDSA suites, which is all its own certificates need. When the peer
# is the DTLS server (it answered or offered `setup:actpass`) and its certificate is RSA,
# as GStreamer's and many encoders' are, the handshake fails with "no shared cipher"
# unless we offer ECDHE-RSA suites too (the fix proposed upstream: aiortc #1392, #1421).
DTLS_CIPHER_SUITES = (
    b"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    b"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    b"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    b"ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES256-SHA"
)


def offer_rsa_cipher_suites() -> None:
    """Make every DTLS context aiortc creates offer ECDHE-RSA suites as well (idempotent)."""
    create = RTCCertificate._create_ssl_context
    if getattr(create, "_telemed_ciphers", False):
        return

    def create_ssl_context(self: RTCCertificate, srtp_profiles: list) -> Any:
        context = create(self, srtp_profiles)
        context.set_cipher_list(DTLS_CIPHER_SUITES)
        return context
    create_ssl_context._telemed_ciphers = True  # type: ignore[attr-defined]
    RTCCertificate._create_ssl_context = create_ssl_context  # type: ignore[method-assign]


offer_rsa_cipher_suites()


class LazyBitrateEstimator:
    """aiortc's RemoteBitrateEstimator, built on its first packet instead of with the
    receiver. aiortc gives every video receiver one, and building it allocates a
    thousand rate buckets: on a server, whose receivers never see a packet (media is
    taken off the transport first), that was about a fifth of the CPU of a burst of
    joins, counting the garbage collections it set off. A receiver that does get media (a
    client's) builds the real one then and behaves as before."""

    def __init__(self) -> None:
        self._estimator: Any = None

    def add(self, *args: Any, **kwargs: Any) -> Any:
        if self._estimator is None:
            self._estimator = _REMOTE_BITRATE_ESTIMATOR()
        return self._estimator.add(*args, **kwargs)


_REMOTE_BITRATE_ESTIMATOR = aiortc.rtcrtpreceiver.RemoteBitrateEstimator
aiortc.rtcrtpreceiver.RemoteBitrateEstimator = LazyBitrateEstimator  # type: ignore[misc]


class SharedCertificate(RTCCertificate):
    """One DTLS certificate for every server-side connection, as Janus and mediasoup keep
    one per process. aiortc makes a certificate per connection, and recomputes its three
    fingerprints and a new OpenSSL context on every use (about 3 ms of a join); here
    they are computed once. It is renewed daily (aiortc's certificates last 30 days)."""

    RENEW_AFTER = 24 * 3600.0
    _current: "SharedCertificate | None" = None

    def __init__(self, key: Any, cert: Any) -> None:
        super().__init__(key, cert)
        self.created = time.monotonic()
        self._fingerprints: list | None = None
        self._contexts: dict[tuple, Any] = {}

    @classmethod
    def current(cls) -> "SharedCertificate":
        certificate = cls._current
        if certificate is None or time.monotonic() - certificate.created > cls.RENEW_AFTER:
            certificate = cls._current = cls.generateCertificate()
        return certificate

    def getFingerprints(self) -> list:
        if self._fingerprints is None:
            self._fingerprints = super().getFingerprints()
        return list(self._fingerprints)

    def _create_ssl_context(self, srtp_profiles: list) -> Any:
        # An SSL_CTX serves any number of connections; nothing in it is per peer.
        key = tuple(p.openssl_profile for p in srtp_profiles)
        context = self._contexts.get(key)
        if context is None:
            context = self._contexts[key] = super()._create_ssl_context(srtp_profiles)
        return context


class _SharedCertificateMaker:
    """Stands in for aiortc's RTCCertificate while `shared_certificate_peer_connection`
    builds a connection: its one call hands out the SharedCertificate."""

    @staticmethod
    def generateCertificate() -> SharedCertificate:
        return SharedCertificate.current()


def shared_certificate_peer_connection(configuration: RTCConfiguration) -> RTCPeerConnection:
    """A new RTCPeerConnection on the SharedCertificate from the start. Replacing its
    certificate afterwards still costs aiortc's own, made and signed in the constructor:
    1-2 ms of every join, on the event loop."""
    module = aiortc.rtcpeerconnection
    module.RTCCertificate = _SharedCertificateMaker  # type: ignore[misc,assignment]
    try:
        return RTCPeerConnection(configuration)
    finally:
        module.RTCCertificate = RTCCertificate  # type: ignore[misc]


def pin_host_addresses(addresses: list[str]) -> None:
    """Make aioice offer exactly these host addresses.

    aioice never offers loopback addresses; tests and single-host deployments pin
    127.0.0.1 (or a fixed interface address) here. An empty list restores discovery.
    """
    original = getattr(aioice.ice, "_telemed_original_get_host_addresses", None)
    if original is None:
        original = aioice.ice.get_host_addresses
        aioice.ice._telemed_original_get_host_addresses = original  # type: ignore[attr-defined]
    if not addresses:
        aioice.ice.get_host_addresses = original
        return
    pinned = list(addresses)

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in pinned if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    aioice.ice.get_host_addresses = get_host_addresses


def consent_timing() -> tuple[float, float]:
    """aioice's consent interval and expiry, read when used (tests shorten them)."""
    return aioice.ice.CONSENT_INTERVAL, aioice.ice.CONSENT_INTERVAL * aioice.ice.CONSENT_FAILURES


class SharedIce:
    """An aioice connection that lives on the shared media port (sfu/media_port.py)
    instead of sockets of its own, and whose consent checks the port runs.

    Attached after setRemoteDescription and before createAnswer: the answer then carries
    the ufrag the port knows the connection by, and gathering returns the port's
    candidates instead of binding new sockets.
    """

    def __init__(self, ice: aioice.ice.Connection, port: MediaPort) -> None:
        self._ice = ice
        self._port = port
        self.media_source: MediaTransport | None = None
        ice._local_username = port.new_ufrag()
        self._routes: list[PeerRoute] = port.attach(ice.local_username, lambda: aioice.ice.StunProtocol(ice))
        for route in self._routes:
            protocol = cast(aioice.ice.StunProtocol, route.peer)
            protocol.connection_made(route)  # type: ignore[arg-type]  # a PeerRoute is its transport
            host, number = route.get_extra_info("sockname")[:2]
            if isinstance(route, TcpRoute):  # RFC 6544: we only accept, never connect
                protocol.local_candidate = aioice.candidate.Candidate(
                    foundation=aioice.candidate.candidate_foundation("host", "tcp", host),
                    component=1, transport="tcp", priority=passive_priority(),
                    host=host, port=number, type="host", tcptype="passive")
            else:
                protocol.local_candidate = _udp_host_candidate(host, number, component=1)
            ice._protocols.append(protocol)
            route.on_close = self._closed
        ice.get_component_candidates = self._candidates  # type: ignore[method-assign]
        ice.query_consent = self._no_consent_task  # type: ignore[method-assign]
        ice.check_incoming = self._check_incoming  # type: ignore[method-assign]
        ice._telemed_shared = self  # type: ignore[attr-defined]
        port.consent.timing = consent_timing
        port.consent.watch(self)

    @classmethod
    def attach(cls, pc: Any, port: MediaPort) -> None:
        """Put every ICE transport of `pc` not yet gathered on the port (idempotent)."""
        for ice in _unhooked_ice(pc):
            cls(ice, port)

    async def _candidates(self, component: int, addresses: list[str], timeout: int = 5) -> list:
        return [cast(aioice.ice.StunProtocol, route.peer).local_candidate for route in self._routes if component == 1]

    def _check_incoming(self, message: aioice.stun.Message, addr: tuple, protocol: Any) -> None:
        """An authenticated check from the peer (already answered). One that nominates
        its pair completes ICE at once, as on an ICE-lite server (RFC 8445 section 2.5):
        DTLS starts now instead of after our own check of the pair has come back, a round
        trip through two busy event loops later. The peer's check proves its direction,
        our answer to it the other."""
        ice = self._ice
        type(ice).check_incoming(ice, message, addr, protocol)
        if ice.ice_controlling or "USE-CANDIDATE" not in message.attributes or 1 in ice._nominated:
            return
        pair = next((p for p in ice._check_list if p.protocol is protocol and p.remote_nominated
                     and p.remote_addr == (addr[0], addr[1])), None)
        if pair is None:
            return
        check = pair.task  # our own check of the pair, no longer needed
        pair.nominated = True
        ice.check_state(pair, aioice.ice.CandidatePair.State.SUCCEEDED)
        ice.check_complete(pair)
        if check is not None:
            check.cancel()

    async def _no_consent_task(self) -> None:
        return None  # the port's ConsentFreshness checks every connection from one timer

    def _closed(self) -> None:
        self._port.consent.unwatch(self)

    # --- sfu.consent.ConsentSubject ---
    @property
    def media_received(self) -> int:
        return self.media_source.media_received if self.media_source is not None else 0

    @property
    def selected(self) -> bool:
        return 1 in self._ice._nominated

    def consent_request(self) -> tuple[bytes, bytes, Callable[[], None]] | None:
        pair = self._ice._nominated.get(1)
        if pair is None or self._ice.remote_password is None:
            return None
        request = self._ice.build_request(pair, nominate=False)
        request.add_message_integrity(self._ice.remote_password.encode("utf8"))
        data = bytes(request)
        route, addr = cast(PeerRoute, pair.protocol.transport), pair.remote_addr
        return request.transaction_id, data, lambda: route.send_unlearned(data, addr)

    def consent_answer_valid(self, data: bytes, addr: tuple) -> bool:
        pair = self._ice._nominated.get(1)
        if pair is None or (addr[0], addr[1]) != pair.remote_addr or self._ice.remote_password is None:
            return False
        try:
            message = aioice.stun.parse_message(data)
        except ValueError:
            return False
        return (message.message_class == aioice.stun.Class.RESPONSE
                and message.check_message_integrity(self._ice.remote_password.encode("utf8")))

    def consent_expired(self) -> None:
        asyncio.ensure_future(self._ice.close())


def _unhooked_ice(pc: Any) -> list[aioice.ice.Connection]:
    """The aioice agents of `pc` that have not gathered yet and whose gathering neither
    SharedIce nor bind_in_range has taken over (with BUNDLE, m-lines share one)."""
    transports = [t.receiver.transport for t in pc.getTransceivers()]
    if pc.sctp is not None:
        transports.append(pc.sctp.transport)
    agents: dict[int, aioice.ice.Connection] = {}
    for dtls in transports:
        if dtls is None or dtls.transport.iceGatherer.state != "new":
            continue
        ice = dtls.transport.iceGatherer._connection
        if "get_component_candidates" not in vars(ice):  # both hooks replace it per instance
            agents[id(ice)] = ice
    return list(agents.values())


def _udp_host_candidate(host: str, port: int, component: int) -> aioice.candidate.Candidate:
    return aioice.candidate.Candidate(
        foundation=aioice.candidate.candidate_foundation("host", "udp", host),
        component=component, transport="udp", priority=aioice.candidate.candidate_priority(component, "host"),
        host=host, port=port, type="host")


def bind_in_range(pc: Any, ports: PortRange) -> None:
    """Make every ICE transport of `pc` not yet gathered bind its UDP sockets on ports of
    `ports` (idempotent). aioice binds port 0 and has no setting for a range, so each
    agent's gathering is replaced, for this connection only: another server in the same
    process keeps its own range, or none. Called where SharedIce.attach would be.

    Gathering then fails with PortRangeExhausted when an address has no free port left.
    Only host candidates are gathered: the server's connections are given no STUN or
    TURN server (clients are)."""
    for ice in _unhooked_ice(pc):
        async def candidates(component: int, addresses: list[str], timeout: int = 5,
                             ice: aioice.ice.Connection = ice) -> list[aioice.candidate.Candidate]:
            return await _ranged_host_candidates(ice, ports, component, addresses)
        ice.get_component_candidates = candidates  # type: ignore[method-assign]


async def _ranged_host_candidates(ice: aioice.ice.Connection, ports: PortRange, component: int,
                                  addresses: list[str]) -> list[aioice.candidate.Candidate]:
    """What aioice's get_component_candidates does for host candidates, on ports of `ports`."""
    loop = asyncio.get_running_loop()
    protocols: list[aioice.ice.StunProtocol] = []
    try:
        for address in addresses:
            try:
                sock = ports.bind(address)
            except PortRangeExhausted:
                raise
            except OSError as exc:  # as aioice does: an address we cannot bind is left out
                log.info("cannot bind a media socket on %s: %s", address, exc)
                continue
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, aioice.turn.UDP_SOCKET_BUFFER_SIZE)
                _, protocol = await loop.create_datagram_endpoint(lambda: aioice.ice.StunProtocol(ice), sock=sock)
            except BaseException:
                sock.close()
                raise
            host, port = protocol.transport.get_extra_info("sockname")[:2]
            protocol.local_candidate = _udp_host_candidate(host, port, component)
            protocols.append(protocol)
    except BaseException:
        for protocol in protocols:  # ice.close() never sees them: they are not its yet
            protocol.transport.close()
        raise
    ice._protocols += protocols
    return [protocol.local_candidate for protocol in protocols]


def host_addresses() -> list[str]:
    """The addresses aioice would offer as host candidates (pinned or discovered)."""
    return aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True)


class MediaTransport:
    """Raw RTP/RTCP access to a peer connection's (bundled) DTLS transport.

    `wire` is the C view (sfu/fanout.py) that the fan-out step sends media through.
    The Python sends here (RTX, RTCP) write into the session's own C buffer, protect
    in place and send on the nominated pair's socket. On the shared media port, media
    from the nominated pair is received by the port's C step (sfu/port_receive.py)
    through an entry this transport keeps while DTLS is up.
    """

    def __init__(self, dtls: RTCDtlsTransport) -> None:
        self._dtls = dtls
        self._nominated: dict = dtls.transport._connection._nominated
        self._pair = None
        self._session = None   # the pylibsrtp Session behind `wire`, kept alive for C
        self._socket: socket.socket | None = None  # our duplicate of the pair's own socket
        self._len = _ffi.new("int *")
        self.wire = Wire()
        self._media_received = 0  # authenticated SRTP/SRTCP packets the Python path took
        self._entry: ReceiveEntry | None = None  # the shared port's receive step's, while up
        self._rx_session: Any = None
        self._audio_level_id = 0
        # The handlers intercept() installs (sfu/port_receive.py MediaOwner)
        self.on_rtp: RtpHandler | None = None
        self.on_rtcp: RtcpHandler | None = None
        self.on_packet: PacketHandler | None = None
        # (libsrtp buffer, session, its C buffer, length cell, sendto, address) or None
        self._send: tuple | None = None
        # Called whenever media becomes able to flow (DTLS up, or a pair again after none).
        self.ready_listeners: list[Callable[[], None]] = []
        dtls.on("statechange", self.refresh)

    def refresh(self) -> bool:
        """Follow DTLS state and the nominated pair; True if media can flow now.

        Called on every DTLS state change and once a second, so a pair that moves
        is picked up within a second.
        """
        was_ready = self._send is not None
        if self._follow() and not was_ready:
            for listener in list(self.ready_listeners):
                listener()
        return self._send is not None

    def _follow(self) -> bool:
        pair = self._nominated.get(1)
        srtp = self._dtls._tx_srtp
        if pair is None or srtp is None or self._dtls._state is not DtlsState.CONNECTED:
            self._disconnect()
        elif pair is not self._pair or srtp is not self._session:
            self._disconnect()
            transport = pair.protocol.transport
            stream = False
            if isinstance(transport, PeerRoute):
                endpoint = transport.media_endpoint(pair.remote_addr)
                if endpoint is None:  # an ICE-TCP link that is gone
                    return False
                (fd, stream), sendto = endpoint, transport.send_unlearned
            else:
                fd, sendto = transport.get_extra_info("socket").fileno(), transport.sendto
            if stream or not isinstance(transport, PeerRoute):
                # a descriptor that may close before we disconnect: C gets its own duplicate
                self._socket = socket.socket(fileno=os.dup(fd))
                fd = self._socket.fileno()
            host, port = pair.remote_addr[:2]
            if self.wire.connect(srtp, fd, host, port, stream):
                self._pair, self._session = pair, srtp
                self._send = (srtp._buffer, srtp._srtp[0], srtp._cdata, self._len,
                              sendto, pair.remote_addr)
                if isinstance(transport, PeerRoute):
                    self._receive_on_port(transport, pair)
            else:
                self._disconnect()
        return self._send is not None

    def _receive_on_port(self, route: PeerRoute, pair: Any) -> None:
        """Let the port's receive step decrypt this pair's media (sfu/port_receive.py)."""
        rx = self._dtls._rx_srtp
        if self.on_packet is None or rx is None or isinstance(route, TcpRoute):
            return
        self._entry = route.socket.receiving.add(self, rx, pair.remote_addr, self._audio_level_id)
        self._rx_session = rx  # kept alive for C while the entry is in the table

    @property
    def media_received(self) -> int:
        """Authenticated SRTP/SRTCP packets from the peer."""
        return self._media_received + (self._entry.media if self._entry is not None else 0)

    @property
    def audio_level_id(self) -> int:
        """The audio-level extension's id on this transport (in a BUNDLE it names the
        same extension on every m-line), for the port's receive step to read."""
        return self._audio_level_id

    @audio_level_id.setter
    def audio_level_id(self, value: int) -> None:
        self._audio_level_id = value
        if self._entry is not None:
            self._entry.c.audio_level_id = value

    def _disconnect(self) -> None:
        self.wire.disconnect()  # first: C must never see a freed session or socket
        entry, self._entry = self._entry, None
        if entry is not None:
            entry.table.remove(entry)
            self._media_received += entry.media
            self._rx_session = None
        self._pair = self._session = self._send = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    @property
    def ready(self) -> bool:
        """DTLS done and a pair nominated: what we send now will arrive."""
        return self.refresh()

    @classmethod
    def of(cls, transceiver: RTCRtpTransceiver) -> "MediaTransport":
        return cls(transceiver.receiver.transport)

    def intercept(self, on_rtp: RtpHandler, on_rtcp: RtcpHandler,
                  on_packet: PacketHandler | None = None) -> None:
        """Route incoming media to our handlers instead of aiortc's receivers.

        SRTP is taken off the ICE connection as it arrives and decrypted here, so it
        skips aioice's queue and aiortc's receive task; DTLS and SCTP still go that
        way. Before DTLS is done nothing can be decrypted and aiortc drops it anyway.
        With `on_packet`, media on the shared port skips even that: the port's receive
        step decrypts it and reads the RTP header (then `on_rtp` gets only the packets
        whose SSRC `on_packet` does not know yet).
        """
        self.on_rtp, self.on_rtcp, self.on_packet = on_rtp, on_rtcp, on_packet
        dtls = self._dtls
        ice = dtls.transport._connection
        queue = ice.data_received
        length = _ffi.new("int *")
        # The receiving session's C handles, looked up again only when DTLS replaces it:
        # per packet, each lookup (and `_srtp[0]`, a new cdata) is measurable.
        session: Any = None
        buffer: Any = None
        handle: Any = None
        cdata: Any = None

        def receive(data: bytes) -> bool:
            """Decrypt one SRTP/SRTCP datagram (first byte 128-191) and hand it on;
            False if it is not ours to take (no keys yet, or too large)."""
            nonlocal session, buffer, handle, cdata
            srtp = dtls._rx_srtp
            n = len(data)
            if srtp is None or n > 1500:
                return False
            if srtp is not session:
                session, buffer, handle, cdata = srtp, srtp._buffer, srtp._srtp[0], srtp._cdata
            rtcp = 192 <= data[1] <= 223 if n > 1 else False
            buffer[0:n] = data
            length[0] = n
            if (_srtp_unprotect_rtcp if rtcp else _srtp_unprotect)(handle, cdata, length) != 0:
                return True  # forged, replayed or garbled: aiortc would drop it too
            clear = buffer[0:length[0]]
            self._media_received += 1
            if rtcp:
                on_rtcp(clear)
            else:
                on_rtp(clear)
            return True

        def data_received(data: bytes, component: int) -> None:
            if not (data and 127 < data[0] < 192 and receive(data)):
                queue(data, component)

        ice.data_received = data_received
        # aioice tries to parse every datagram as STUN first; RTP and RTCP cannot be
        # STUN (RFC 7983: their first byte is 128-191), so they skip that attempt.
        for protocol in ice._protocols:
            def datagram_received(data: bytes, addr: tuple, stun=protocol.datagram_received) -> None:
                if data and 127 < data[0] < 192:
                    if not receive(data):
                        queue(data, 1)
                else:
                    stun(data, addr)
            protocol.datagram_received = datagram_received
        shared = getattr(ice, "_telemed_shared", None)
        if shared is not None:
            shared.media_source = self
        else:
            for protocol in ice._protocols:
                protocol.request = self._consent_by_media(protocol.request)
        self._ice = ice

    def _consent_by_media(self, request: Callable) -> Callable:
        """Let authenticated media stand in for consent (RFC 7675) from a peer that never
        answers consent checks at all, as FFmpeg's WHIP muxer does after set-up.

        A peer that has answered a consent check once is held to the RFC from then on.
        For one that never has, a missed check on the nominated pair counts as answered
        while SRTP under the keys of this DTLS session keeps arriving: only that peer
        can produce it. When the media stops, consent expires as usual (~30 s)."""
        answered = False
        seen = 0

        async def consent_request(message: Any, addr: tuple, integrity_key: bytes | None = None,
                                  retransmissions: int | None = None) -> Any:
            nonlocal answered, seen
            if retransmissions != 0:  # a connectivity check; aioice sends consent checks once
                return await request(message, addr, integrity_key, retransmissions)
            try:
                response = await request(message, addr, integrity_key, retransmissions)
            except aioice.stun.TransactionError:
                fresh, seen = self.media_received != seen, self.media_received
                if answered or not fresh:
                    raise
                return None  # aioice's consent loop ignores the value
            answered = True
            return response
        return consent_request

    def release(self) -> None:
        """Hand the transport back to aiortc, dropping our handlers (and what they hold)."""
        ice = getattr(self, "_ice", None)
        if ice is not None:
            ice.__dict__.pop("data_received", None)
            for protocol in ice._protocols:
                protocol.__dict__.pop("datagram_received", None)
                protocol.__dict__.pop("request", None)
            shared = getattr(ice, "_telemed_shared", None)
            if shared is not None and shared.media_source is self:
                shared.media_source = None
            self._ice = None
        self._dtls.remove_listener("statechange", self.refresh)
        self._disconnect()

    def send_rtp(self, packet: bytes) -> bool:
        """Protect and send one RTP packet now; False if the transport is not up."""
        return self._send_whole(packet, _srtp_protect, _MAX_RTP)

    def send_rtcp(self, packet: bytes) -> bool:
        return self._send_whole(packet, _srtp_protect_rtcp, _MAX_RTCP)

    def _send_whole(self, packet: bytes, protect: Callable, limit: int) -> bool:
        n = len(packet)
        if not self.refresh() or n < 12 or n > limit:
            return False
        buffer, session, cdata, length, sendto, addr = self._send
        buffer[0:n] = packet
        length[0] = n
        if protect(session, cdata, length) != 0:
            return False
        sendto(buffer[0:length[0]], addr)
        return True


def silence_sender(sender: RTCRtpSender) -> None:
    """Stop aiortc's own RTCP for a sender we feed by hand.

    Its sender reports would carry zero counters and the wrong timestamps (it never
    sees our packets), and its BYE on close would end the remote track early; the
    consumer sends translated reports instead. Its RTCP loop is replaced by one that
    parks until stop(), because a timer per subscribed track adds up across a room.
    """

    async def no_rtcp(packets: list[Any]) -> None:
        return None

    async def parked_rtcp_loop() -> None:
        # stop() waits for these two events around cancelling the task
        getattr(sender, "_RTCRtpSender__rtcp_started").set()
        try:
            await asyncio.get_running_loop().create_future()
        except asyncio.CancelledError:
            pass
        getattr(sender, "_RTCRtpSender__rtcp_exited").set()

    sender._send_rtcp = no_rtcp  # type: ignore[method-assign]
    sender._run_rtcp = parked_rtcp_loop  # type: ignore[method-assign]


def on_keyframe_request(sender: RTCRtpSender, callback: Callable[[], None]) -> None:
    """Call `callback` on every PLI or FIR the remote sends about this sender's stream
    (aiortc's own reaction, a keyframe from its encoder, still happens). For a sender fed
    pre-encoded packets, which aiortc cannot make a keyframe of (benchmarks, tests)."""
    force_keyframe = sender._send_keyframe

    def send_keyframe() -> None:
        force_keyframe()
        callback()

    sender._send_keyframe = send_keyframe  # type: ignore[method-assign]


def sender_ssrcs(sender: RTCRtpSender) -> tuple[int, int]:
    """(media SSRC, RTX SSRC) aiortc announced in the SDP for this sender."""
    return sender._ssrc, sender._rtx_ssrc


def negotiated_codecs(transceiver: RTCRtpTransceiver) -> list[Any]:
    """The RTCRtpCodecParameters agreed for this m-line, preferred first."""
    return list(transceiver._codecs)


def answer_offered_h264_profiles(transceiver: RTCRtpTransceiver, offered: dict[int, dict]) -> None:
    """Answer each H264 payload type with the profile-level-id offered for it (before
    createAnswer).

    aiortc answers with its own Constrained Baseline level 3.1, which caps a conforming
    1080p encoder at 720p and misstates a High stream; we forward without decoding, so
    whatever profile and level the peer offered suits us (sfu/h264_profile.py)."""
    for codec in transceiver._codecs:
        level = offered.get(codec.payloadType, {}).get("profile-level-id")
        if codec.mimeType.lower() == "video/h264" and level:
            codec.parameters["profile-level-id"] = level


def negotiated_extensions(transceiver: RTCRtpTransceiver) -> dict[str, int]:
    """Header-extension URI -> id agreed for this m-line."""
    return {ext.uri: ext.id for ext in transceiver._headerExtensions}


class IdleTrack(MediaStreamTrack):
    """A sender track that never yields a frame.

    aiortc's sender loop awaits track.recv(); this parks it for free, so no encoder
    ever starts while we write packets to the transport ourselves.
    """

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self._never: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    async def recv(self) -> Any:
        return await asyncio.shield(self._never)


def tap(dtls: RTCDtlsTransport, on_sent: Callable[[bytes], bool | list[bytes] | None] | None = None,
        on_received: Callable[[bytes], bool] | None = None,
        on_received_rtcp: Callable[[bytes], None] | None = None) -> None:
    """Observe a transport's clear RTP/RTCP without taking it over (tests, benchmarks).

    `on_received` returning False drops the packet before aiortc sees it, `on_sent`
    returning False before it is sent: that is how tests put loss on one leg of the path
    without touching the other peers. `on_sent` returning a list sends those packets
    (clear RTP/RTCP) instead, in order: how tests inject what a browser would send.
    """
    if on_received is not None:
        receive = dtls._handle_rtp_data

        async def handle_rtp(data: bytes, arrival_time_ms: int) -> None:
            if on_received(data) is not False:
                await receive(data, arrival_time_ms)

        dtls._handle_rtp_data = handle_rtp  # type: ignore[method-assign]
    if on_received_rtcp is not None:
        receive_rtcp = dtls._handle_rtcp_data

        async def handle_rtcp(data: bytes) -> None:
            on_received_rtcp(data)
            await receive_rtcp(data)

        dtls._handle_rtcp_data = handle_rtcp  # type: ignore[method-assign]
    if on_sent is not None:
        send = dtls._send_rtp

        async def send_rtp(data: bytes) -> None:
            result = on_sent(data)
            for packet in result if isinstance(result, list) else [] if result is False else [data]:
                await send(packet)

        dtls._send_rtp = send_rtp  # type: ignore[method-assign]
