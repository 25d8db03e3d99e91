"""The VP8 payload descriptor's picture id and TL0PICIDX (RFC 7741), read where a
simulcast consumer switches layers; the fan-out step (fanout.c) rewrites them."""

from __future__ import annotations


def picture_ids(payload: bytes) -> tuple[int | None, int | None]:
    """(picture id, TL0PICIDX), each None when the descriptor does not carry it."""
    if len(payload) < 3 or not payload[0] & 0x80:
        return None, None
    ext = payload[1]
    pos = 2
    picture_id = None
    if ext & 0x80:
        if payload[2] & 0x80:
            if len(payload) < 5:
                return None, None
            picture_id = ((payload[2] & 0x7F) << 8) | payload[3]
            pos = 4
        else:
            picture_id = payload[2]
            pos = 3
    tl0 = payload[pos] if ext & 0x40 and pos < len(payload) else None
    return picture_id, tl0
