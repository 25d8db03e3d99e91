"""Python face of the C fan-out step (fanout.c): who gets a producer's packets.

A consumer joins its producer's Fanout once it has started (its first packet went
out through the slow path, on a keyframe). From then on one C call per incoming
packet numbers (each member's sequence manager), rewrites, protects and sends it to
every member. Python keeps every decision; C only moves bytes.
"""

from __future__ import annotations

from typing import Any, Protocol

from pylibsrtp import Session
from pylibsrtp._binding import ffi as _srtp_ffi
from pylibsrtp._binding import lib as _srtp_lib

from ._fanout import ffi, lib
from .seq_manager import SeqManager


def libsrtp(name: str) -> Any:
    """A function of pylibsrtp's own libsrtp (the copy its sessions live in), for C to call."""
    return ffi.cast("void *", int(_srtp_ffi.cast("uintptr_t", _srtp_ffi.addressof(_srtp_lib, name))))


def srtp_t(session: Session) -> Any:
    """A pylibsrtp session's srtp_t, for C to use; the caller keeps `session` alive while
    C may."""
    return ffi.cast("void *", int(_srtp_ffi.cast("uintptr_t", session._srtp[0])))


_PROTECT = libsrtp("srtp_protect")


class Wire:
    """Where, and under which SRTP session, one connection's packets go.

    The owner (MediaTransport) must keep the session and the socket alive while
    they are set here: C holds only raw pointers and the descriptor.
    """

    def __init__(self) -> None:
        self.c = ffi.new("struct fanout_wire *")

    def connect(self, session: Session, fd: int, host: str, port: int, stream: bool = False) -> bool:
        """Send under `session` on `fd` to `host`:`port`. `stream`: `fd` is connected and
        takes packets without an address (an ICE-TCP link's socketpair, sfu/ice_tcp.py)."""
        if lib.fanout_set_address(self.c, host.encode(), port) != 0:
            self.disconnect()
            return False
        if stream:
            self.c.addrlen = 0  # sendto() without an address: the connected peer
        self.c.protect = _PROTECT
        self.c.fd = fd
        self.c.session = srtp_t(session)
        return True

    def disconnect(self) -> None:
        self.c.session = ffi.NULL


class Target:
    """One consumer's header rewrite, sequence manager and counters, as C sees them."""

    def __init__(self, wire: Wire, ssrc: int, payload_type: int, audio_level_id: int,
                 abs_send_time_id: int = 0) -> None:
        self.wire = wire  # the C struct points into it
        self.c = ffi.new("struct fanout_target *", {
            "wire": wire.c, "ssrc": ssrc, "payload_type": payload_type,
            "audio_level_id": audio_level_id, "abs_send_time_id": abs_send_time_id,
            "tid_target": ALL_TEMPORAL_LAYERS, "tid_current": ALL_TEMPORAL_LAYERS,
            "max_tid": ALL_TEMPORAL_LAYERS})
        self.seq = SeqManager(ffi.addressof(self.c, "seq"), self.c)
        self._one = ffi.new("struct fanout_target *[1]", [self.c])

    def rewritten(self, packet: Any) -> Any:
        """A copy of `packet` whose VP8 descriptor reads as this target sends it."""
        payload = bytearray(packet.payload)
        lib.fanout_vp8_rewrite(ffi.from_buffer("uint8_t[]", payload), len(payload), self.c)
        return type(packet)(packet.payload_type, packet.marker, packet.seq, packet.timestamp,
                            packet.ssrc, bytes(payload), packet.audio_level)

    def send(self, packet: Any) -> bool:
        """This target alone (the slow path, before it joins a Fanout)."""
        return _send(self._one, 1, packet) == 1


class Member(Protocol):
    target: Target


class Fanout:
    """The started remote consumers of one producer."""

    def __init__(self) -> None:
        self._members: list[Member] = []  # they own the Targets the array points to
        self._array = ffi.new("struct fanout_target *[]", 0)
        self.count = 0

    def add(self, member: Member) -> None:
        if member not in self._members:
            self._members.append(member)
            self._rebuild()

    def remove(self, member: Member) -> None:
        if member in self._members:
            self._members.remove(member)
            self._rebuild()

    def _rebuild(self) -> None:
        self._array = ffi.new("struct fanout_target *[]", [m.target.c for m in self._members])
        self.count = len(self._members)

    def send(self, packet: Any) -> int:
        """`packet` (an RtpPacket, in the producer's numbering) to every member."""
        return _send(self._array, self.count, packet)

    def drop(self, seq: int) -> None:
        """The producer will not forward input `seq`: every member closes up behind it."""
        lib.fanout_drop(self._array, self.count, seq)


MAX_PAYLOAD: int = lib.FANOUT_MAX_PAYLOAD
ALL_TEMPORAL_LAYERS = 255  # a target's tid_target / tid_current: drop none


def _send(targets: Any, count: int, packet: Any) -> int:
    level = packet.audio_level
    payload = packet.payload
    return lib.fanout_send(targets, count, packet.marker, packet.seq, packet.timestamp,
                           -1 if level is None else level, payload, len(payload))
