"""Does this RTP payload start a keyframe? Needed so a new subscriber starts cleanly."""

from __future__ import annotations


def _vp8_header(payload: bytes) -> int | None:
    """Where the VP8 header starts, in the first packet of a frame (RFC 7741)."""
    n = len(payload)
    if n < 1:
        return None
    first = payload[0]
    if not (first & 0x10) or (first & 0x07):  # S bit set, partition index 0
        return None
    pos = 1
    if first & 0x80:  # X: extension byte follows
        if n < 2:
            return None
        ext = payload[1]
        pos = 2
        if ext & 0x80:  # I: picture id, 7 or 15 bits
            if n <= pos:
                return None
            pos += 2 if payload[pos] & 0x80 else 1
        if ext & 0x40:  # L: TL0PICIDX
            pos += 1
        if ext & 0x30:  # T or K: TID/KEYIDX byte
            pos += 1
    return pos if pos < n else None


def vp8_keyframe(payload: bytes) -> bool:
    # The VP8 header's P bit is 0 on keyframes.
    pos = _vp8_header(payload)
    return pos is not None and not (payload[pos] & 0x01)


def vp8_keyframe_size(payload: bytes) -> tuple[int, int] | None:
    """(width, height) from a keyframe's first packet: what a simulcast layer carries."""
    pos = _vp8_header(payload)
    if pos is None or payload[pos] & 0x01 or len(payload) < pos + 10 \
            or payload[pos + 3:pos + 6] != b"\x9d\x01\x2a":
        return None
    width = int.from_bytes(payload[pos + 6:pos + 8], "little") & 0x3FFF
    height = int.from_bytes(payload[pos + 8:pos + 10], "little") & 0x3FFF
    return width, height


def h264_keyframe(payload: bytes) -> bool:
    # RFC 6184: a keyframe starts with SPS/IDR, alone, in a STAP-A, or in an FU-A start.
    if not payload:
        return False
    nal = payload[0] & 0x1F
    if nal in (5, 7):
        return True
    if nal == 24:  # STAP-A: 16-bit size + NAL unit, repeated
        pos = 1
        while pos + 2 < len(payload):
            size = (payload[pos] << 8) | payload[pos + 1]
            if payload[pos + 2] & 0x1F in (5, 7):
                return True
            pos += 2 + size
        return False
    if nal == 28 and len(payload) >= 2:  # FU-A
        return bool(payload[1] & 0x80) and (payload[1] & 0x1F) in (5, 7)
    return False


DETECTORS = {"video/vp8": vp8_keyframe, "video/h264": h264_keyframe}
