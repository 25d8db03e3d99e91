"""A look at a STUN message's header and USERNAME without parsing it whole: the media
port's demultiplexer does this for every packet that is not media."""

from __future__ import annotations

STUN_COOKIE = b"\x21\x12\xa4\x42"
BINDING_REQUEST = b"\x00\x01"
BINDING_SUCCESS = b"\x01\x01"
_USERNAME = 0x0006


def is_stun(data: bytes) -> bool:
    """RFC 7983: the first byte is 0-3; STUN since RFC 5389 carries the magic cookie."""
    return len(data) >= 20 and data[0] < 2 and data[4:8] == STUN_COOKIE


def stun_username(data: bytes) -> str | None:
    """The USERNAME attribute of a STUN message, found by walking its attributes."""
    end = min(len(data), 20 + int.from_bytes(data[2:4], "big"))
    offset = 20
    while offset + 4 <= end:
        kind = int.from_bytes(data[offset:offset + 2], "big")
        length = int.from_bytes(data[offset + 2:offset + 4], "big")
        if offset + 4 + length > end:
            return None
        if kind == _USERNAME:
            try:
                return data[offset + 4:offset + 4 + length].decode()
            except UnicodeDecodeError:
                return None
        offset += 4 + ((length + 3) & ~3)
    return None


def local_ufrag(data: bytes) -> str | None:
    """Our half of a binding request's USERNAME ("ours:theirs")."""
    username = stun_username(data)
    return username.partition(":")[0] if username else None
