"""Master key rotation: a file's data key is re-wrapped in place (the header's wrapped key
has a fixed size and is outside the chunks' associated data); no chunk changes."""

from __future__ import annotations

import os
from pathlib import Path

from . import sealed_lines
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


def rewrap_tree(root: str | os.PathLike[str], ring: KeyRing) -> tuple[int, int]:
    """Re-wrap every vault file and sealed log under ``root``; returns (re-wrapped, seen)."""
    changed = seen = 0
    for path in sorted(Path(root).rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        with open(path, "rb") as f:
            start = f.read(len(fmt.MAGIC))
        if start == fmt.MAGIC:
            changed += rewrap_file(path, ring)
        elif sealed_lines.is_header(start):  # both magics are 8 bytes
            changed += sealed_lines.rewrap_header(path, ring)
        else:
            continue
        seen += 1
    return changed, seen
