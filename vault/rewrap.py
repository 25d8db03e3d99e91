"""Master key rotation for one file: its data key is re-wrapped in place (the header's
wrapped key has a fixed size and is outside the chunks' associated data); no chunk changes."""

from __future__ import annotations

import os

from . import stream_format as fmt
from .keyring import KeyRing


def rewrap_file(path: str | os.PathLike[str], ring: KeyRing) -> bool:
    """Re-wrap under ``ring``'s current master key; False if it already was."""
    fd = os.open(path, os.O_RDWR)
    try:
        wrapped, _ = fmt.parse_header(os.pread(fd, fmt.HEADER_BYTES, 0))
        new = ring.rewrap(wrapped)
        if new == wrapped:
            return False
        os.pwrite(fd, new, fmt.WRAPPED_AT)
        os.fsync(fd)
        return True
    finally:
        os.close(fd)
