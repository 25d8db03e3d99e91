"""Fails loudly if an aiortc/aioice/pylibsrtp upgrade moves what sfu/aiortc_hook.py uses."""

from __future__ import annotations

import asyncio
from importlib.metadata import version

import aioice.ice
from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc import rtcpeerconnection as aiortc_rtcpeerconnection
from aiortc.rtcdtlstransport import SRTP_PROFILES, RTCCertificate

from sfu import aiortc_hook as hook

PINNED = {"aiortc": "1.16.0", "aioice": "0.13.0", "pylibsrtp": "1.0.0"}


def test_pinned_versions_are_installed():
    installed = {name: version(name) for name in PINNED}
    assert installed == PINNED, (
        f"installed {installed}, hook written for {PINNED}: re-check sfu/aiortc_hook.py, "
        "then update the pins in requirements.txt and here")


def test_receivers_build_their_bitrate_estimator_lazily():
    from aiortc.rate import RemoteBitrateEstimator
    from aiortc.rtcrtpreceiver import RTCRtpReceiver

    assert callable(getattr(RemoteBitrateEstimator, "add", None)), "aiortc's RemoteBitrateEstimator.add is gone"
    import aiortc.rtcrtpreceiver
    assert aiortc.rtcrtpreceiver.RemoteBitrateEstimator is hook.LazyBitrateEstimator, "the hook is not installed"
    estimator = hook.LazyBitrateEstimator()
    assert estimator._estimator is None  # nothing built until a packet comes
    assert estimator.add(arrival_time_ms=0, abs_send_time=0, payload_size=100, ssrc=1) is None
    assert isinstance(estimator._estimator, RemoteBitrateEstimator)
    source = RTCRtpReceiver.__init__.__code__.co_names
    assert "RemoteBitrateEstimator" in source, "aiortc no longer builds the estimator where the hook replaces it"


def test_private_methods_exist():
    for cls, names in hook.REQUIRED_METHODS.items():
        for name in names:
            assert callable(getattr(cls, name, None)), f"{cls.__name__}.{name} is gone: the transport hook needs it"


async def test_instance_names_exist_after_negotiation():
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    transceiver = pc.addTransceiver("video", direction="sendrecv")
    await pc.setLocalDescription(await pc.createOffer())
    dtls = transceiver.sender.transport
    for name in ("_handle_rtp_data", "_handle_rtcp_data", "_send_rtp", "_tx_srtp", "_rx_srtp",
                 "_rtp_header_extensions_map"):
        assert hasattr(dtls, name), f"RTCDtlsTransport.{name} is gone"
    connection = dtls.transport._connection
    assert isinstance(connection._nominated, dict), "aioice Connection._nominated is gone"
    assert isinstance(connection._protocols, list), "aioice Connection._protocols is gone"
    assert all(callable(p.datagram_received) for p in connection._protocols)
    for name in ("_ssrc", "_rtx_ssrc", "_send_rtcp", "_run_rtcp", "_RTCRtpSender__rtcp_started",
                 "_RTCRtpSender__rtcp_exited"):
        assert hasattr(transceiver.sender, name), f"RTCRtpSender.{name} is gone"
    for name in ("_codecs", "_headerExtensions"):
        assert hasattr(transceiver, name), f"RTCRtpTransceiver.{name} is gone"
    assert callable(aioice.ice.get_host_addresses)
    transport = hook.MediaTransport(dtls)
    transport.intercept(lambda data: None, lambda data: None)
    assert "data_received" in connection.__dict__
    transport.release()
    assert "data_received" not in connection.__dict__
    assert transport.send_rtp(b"\x80" + bytes(11)) is False  # not connected: refused, not raised
    await pc.close()


def test_pin_host_addresses_round_trip():
    hook.pin_host_addresses([])
    original = aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False)
    hook.pin_host_addresses(["127.0.0.1", "::1"])
    try:
        assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False) == ["127.0.0.1"]
        assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True) == ["127.0.0.1", "::1"]
    finally:
        hook.pin_host_addresses([])
    assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False) == original


async def test_dtls_with_an_rsa_certificate_on_the_server_side(monkeypatch):
    """GStreamer-like peer: it is the DTLS server (it offers actpass, we answer active) and
    its certificate is RSA. Without ECDHE-RSA suites the handshake fails: no shared cipher."""
    from aiortc.rtcdtlstransport import RTCCertificate, generate_certificate
    from cryptography.hazmat.primitives.asymmetric import rsa

    def rsa_certificate() -> RTCCertificate:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return RTCCertificate(key=key, cert=generate_certificate(key))

    hook.pin_host_addresses(["127.0.0.1"])
    with monkeypatch.context() as patch:
        patch.setattr(RTCCertificate, "generateCertificate", classmethod(lambda cls: rsa_certificate()))
        rsa_peer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    ours = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        connected = asyncio.Event()
        ours.on("connectionstatechange",
                lambda: connected.set() if ours.connectionState in ("connected", "failed") else None)
        rsa_peer.createDataChannel("probe")
        await rsa_peer.setLocalDescription(await rsa_peer.createOffer())
        assert "a=setup:actpass" in rsa_peer.localDescription.sdp
        await ours.setRemoteDescription(rsa_peer.localDescription)
        await ours.setLocalDescription(await ours.createAnswer())
        assert "a=setup:active" in ours.localDescription.sdp  # so we are the DTLS client
        await rsa_peer.setRemoteDescription(ours.localDescription)
        await asyncio.wait_for(connected.wait(), 20)
        assert ours.connectionState == "connected"
    finally:
        hook.pin_host_addresses([])
        await ours.close()
        await rsa_peer.close()


def test_consent_checks_are_told_apart_by_their_single_try():
    """sfu/aiortc_hook.MediaTransport._consent_by_media recognises aioice's consent checks
    by `retransmissions=0`; if aioice stops sending them that way, it must be re-checked."""
    import inspect
    assert "retransmissions=0" in inspect.getsource(aioice.ice.Connection.query_consent)


async def test_shared_ice_names_exist():
    """What SharedIce (the media port) sets and reads on aiortc's and aioice's objects."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("audio", direction="sendrecv")
    await pc.setLocalDescription(await pc.createOffer())
    gatherer = pc.getTransceivers()[0].sender.transport.transport.iceGatherer
    connection = gatherer._connection
    assert isinstance(connection, aioice.ice.Connection), "RTCIceGatherer._connection is gone"
    assert connection._local_username == connection.local_username, "aioice Connection._local_username is gone"
    assert isinstance(connection._nominated, dict) and hasattr(connection, "remote_password")
    assert hasattr(aioice.ice, "CONSENT_INTERVAL") and hasattr(aioice.ice, "CONSENT_FAILURES")
    assert callable(aioice.ice.StunProtocol(connection).datagram_received)
    assert isinstance(pc._RTCPeerConnection__certificates, list), "RTCPeerConnection.__certificates is gone"
    await pc.close()


async def test_shared_certificate_serves_every_connection():
    first, second = (hook.shared_certificate_peer_connection(RTCConfiguration(iceServers=[]))
                     for _ in range(2))
    assert aiortc_rtcpeerconnection.RTCCertificate is RTCCertificate  # restored for everyone else
    for pc in (first, second):
        pc.addTransceiver("audio", direction="sendrecv")
        await pc.setLocalDescription(await pc.createOffer())
    fingerprints = [pc.localDescription.sdp.split("a=fingerprint:sha-256 ")[1].split()[0] for pc in (first, second)]
    assert fingerprints[0] == fingerprints[1]
    certificate = hook.SharedCertificate.current()
    profiles = list(SRTP_PROFILES)
    assert certificate._create_ssl_context(profiles) is certificate._create_ssl_context(profiles)
    for pc in (first, second):
        await pc.close()


def test_port_range_names_exist():
    """What bind_in_range (the media port range) replaces and uses: aioice gathers each
    component through the instance's get_component_candidates, with these arguments."""
    import inspect

    import aioice.turn
    assert isinstance(aioice.turn.UDP_SOCKET_BUFFER_SIZE, int), "aioice.turn.UDP_SOCKET_BUFFER_SIZE is gone"
    assert "self.get_component_candidates(component=component, addresses=addresses)" in \
        inspect.getsource(aioice.ice.Connection.gather_candidates), "aioice gathers another way now"
    assert list(inspect.signature(aioice.ice.Connection.get_component_candidates).parameters) == \
        ["self", "component", "addresses", "timeout"]
