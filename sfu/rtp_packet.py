"""A lean RTP packet view for the forwarding path.

aiortc's RtpPacket parses every header extension into objects and re-serializes
them; per forwarded packet that is too slow. We parse the fixed header once per
incoming packet and keep the payload; the fan-out step (fanout.c) writes each
subscriber's header. Python serializes only retransmissions.
"""

from __future__ import annotations

import struct

AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
ABS_SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"

_HEADER = struct.Struct("!BBHII")
_pack_header = _HEADER.pack_into


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


def parse_rtp(data: bytes, audio_level_id: int = 0, mid_id: int = 0) -> RtpPacket:
    """Parse an RTP packet; raise ValueError on anything malformed."""
    n = len(data)
    if n < 12:
        raise ValueError("RTP packet shorter than its fixed header")
    b0, b1, seq, timestamp, ssrc = _HEADER.unpack_from(data, 0)
    if b0 >> 6 != 2:
        raise ValueError("RTP version is not 2")
    pos = 12 + (b0 & 0x0F) * 4
    audio_level = None
    mid = None
    if b0 & 0x10:
        if n < pos + 4:
            raise ValueError("RTP extension header truncated")
        profile, length = struct.unpack_from("!HH", data, pos)
        ext_end = pos + 4 + length * 4
        if ext_end > n:
            raise ValueError("RTP extension block truncated")
        if profile == 0xBEDE and (audio_level_id or mid_id):
            audio_level, mid = _one_byte_extensions(data, pos + 4, ext_end, audio_level_id, mid_id)
        pos = ext_end
    end = n
    if b0 & 0x20:
        pad = data[-1]
        if pad == 0 or pos + pad > n:
            raise ValueError("RTP padding length is invalid")
        end -= pad
    if pos > end:
        raise ValueError("RTP header longer than the packet")
    packet = RtpPacket(b1 & 0x7F, b1 >> 7, seq, timestamp, ssrc, data[pos:end], audio_level, mid)
    return packet


def _one_byte_extensions(data: bytes, pos: int, end: int, level_id: int,
                         mid_id: int) -> tuple[int | None, str | None]:
    audio_level = None
    mid = None
    while pos < end:
        byte = data[pos]
        if byte == 0:  # padding between elements
            pos += 1
            continue
        ext_id, length = byte >> 4, (byte & 0x0F) + 1
        if ext_id == 15:
            break
        value = data[pos + 1:pos + 1 + length]
        if ext_id == level_id and length >= 1:
            audio_level = value[0]
        elif ext_id == mid_id:
            mid = value.decode("ascii", "replace")
        pos += 1 + length
    return audio_level, mid


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
