"""A lean RTP packet view for the forwarding path.

aiortc's RtpPacket parses every header extension into objects and re-serializes
them; per forwarded packet that is too slow. We parse the fixed header once per
incoming packet and keep the payload; the fan-out step (fanout.c) writes each
subscriber's header. Python serializes only retransmissions.
"""

from __future__ import annotations

import struct

from ._fanout import ffi, lib

AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
ABS_SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"

_HEADER = struct.Struct("!BBHII")
_pack_header = _HEADER.pack_into
# (ssrc,) of a whole RTP packet, unchecked: the demultiplexer's key, before any parsing
unpack_ssrc = struct.Struct("!8xI").unpack_from


class RtpPacket:
    __slots__ = (
        "payload_type", "marker", "seq", "timestamp", "ssrc", "payload",
        "audio_level", "mid", "keyframe",
    )

    def __init__(
        self, payload_type: int, marker: int, seq: int, timestamp: int, ssrc: int,
        payload: bytes, audio_level: int | None = None, mid: str | None = None,
    ) -> None:
        self.payload_type = payload_type
        self.marker = marker
        self.seq = seq
        self.timestamp = timestamp
        self.ssrc = ssrc
        self.payload = payload
        self.audio_level = audio_level
        self.mid = mid
        self.keyframe = False

    def serialize(self, payload_type: int, seq: int, timestamp: int, ssrc: int,
                  audio_level_id: int = 0) -> bytes:
        """The packet as one subscriber gets it; the audio level is its only extension."""
        second = (self.marker << 7) | payload_type
        if audio_level_id and self.audio_level is not None:
            return (_HEADER.pack(0x90, second, seq, timestamp, ssrc)
                    + struct.pack("!HHBBxx", 0xBEDE, 1, audio_level_id << 4, self.audio_level)
                    + self.payload)
        return _HEADER.pack(0x80, second, seq, timestamp, ssrc) + self.payload

    def serialize_rtx(self, payload_type: int, rtx_seq: int, timestamp: int, ssrc: int,
                      original_seq: int) -> bytes:
        """RFC 4588 retransmission: the original sequence number leads the payload."""
        buf = bytearray(14) + self.payload
        _pack_header(buf, 0, 0x80, (self.marker << 7) | payload_type, rtx_seq, timestamp, ssrc)
        struct.pack_into("!H", buf, 12, original_seq)
        return bytes(buf)


_FAULTS = {
    lib.RTP_SHORT: "RTP packet shorter than its fixed header",
    lib.RTP_VERSION: "RTP version is not 2",
    lib.RTP_EXTENSION_HEADER: "RTP extension header truncated",
    lib.RTP_EXTENSION_BLOCK: "RTP extension block truncated",
    lib.RTP_PADDING: "RTP padding length is invalid",
    lib.RTP_HEADER_LONGER: "RTP header longer than the packet",
}


def parse_rtp(data: bytes, audio_level_id: int = 0, mid_id: int = 0) -> RtpPacket:
    """Parse an RTP packet; raise ValueError on anything malformed. The C reader is the
    one the shared port's receive step uses (sfu/port_receive.c)."""
    out = ffi.new("int64_t[]", lib.RTP_PARSED)
    fault = lib.rtp_parse(data, len(data), audio_level_id, mid_id, out)
    if fault:
        raise ValueError(_FAULTS[fault])
    pt, marker, seq, timestamp, ssrc, start, end, level, mid_start, mid_end = ffi.unpack(out, lib.RTP_PARSED)
    mid = data[mid_start:mid_end].decode("ascii", "replace") if mid_end else None
    return RtpPacket(pt, marker, seq, timestamp, ssrc, data[start:end], None if level < 0 else level, mid)


def extension_value(data: bytes, ext_id: int) -> bytes | None:
    """One one-byte header extension's value (RFC 8285), for the rare packet that needs
    more than parse_rtp reads (an SSRC's first packets name their simulcast layer)."""
    if not ext_id or len(data) < 16 or not data[0] & 0x10:
        return None
    pos = 12 + (data[0] & 0x0F) * 4
    if len(data) < pos + 4 or data[pos:pos + 2] != b"\xbe\xde":
        return None
    end = min(len(data), pos + 4 + 4 * int.from_bytes(data[pos + 2:pos + 4], "big"))
    pos += 4
    while pos < end:
        byte = data[pos]
        if byte == 0:
            pos += 1
            continue
        found, length = byte >> 4, (byte & 0x0F) + 1
        if found == 15:
            return None
        if found == ext_id:
            return data[pos + 1:pos + 1 + length]
        pos += 1 + length
    return None


def unwrap_rtx(packet: RtpPacket, payload_type: int, ssrc: int) -> RtpPacket:
    """Recover the original packet carried in an RFC 4588 retransmission."""
    if len(packet.payload) < 2:
        raise ValueError("RTX packet without original sequence number")
    original_seq = (packet.payload[0] << 8) | packet.payload[1]
    return RtpPacket(payload_type, packet.marker, original_seq, packet.timestamp, ssrc,
                     packet.payload[2:], packet.audio_level, packet.mid)


def is_rtcp(data: bytes) -> bool:
    return len(data) >= 2 and 192 <= data[1] <= 223
