"""The encrypted stream's layout on disk.

Header (64 bytes): magic ``TMVAULT`` + version byte, wrapped data key (48 bytes, starting
with the master key id), nonce prefix (8 random bytes, unique per file).
Then records: ``u32 ciphertext length | u8 flags | ciphertext+tag``. Chunk *i* is AES-256-GCM
under nonce ``prefix || u32 i`` with associated data ``magic+version | prefix | u64 i | flags``,
so chunks cannot be reordered, moved between files or re-flagged; the final chunk carries
``FINAL``, so a file cut at a chunk boundary reads as "not closed" rather than complete. The
wrapped key is not in the associated data: rotation rewrites it in place.
"""

from __future__ import annotations

import struct

from .errors import VaultError
from .keyring import WRAPPED_BYTES

MAGIC = b"TMVAULT\x01"
NONCE_PREFIX_BYTES = 8
HEADER_BYTES = len(MAGIC) + WRAPPED_BYTES + NONCE_PREFIX_BYTES
WRAPPED_AT = len(MAGIC)
RECORD = struct.Struct(">IB")
TAG_BYTES = 16
FINAL = 0x01
MAX_CHUNKS = 2**32


def header(wrapped: bytes, prefix: bytes) -> bytes:
    return MAGIC + wrapped + prefix


def parse_header(data: bytes) -> tuple[bytes, bytes]:
    """(wrapped key, nonce prefix)."""
    if len(data) < HEADER_BYTES or data[: len(MAGIC)] != MAGIC:
        raise VaultError("format", "not an encrypted vault file (or an unknown version)")
    return data[WRAPPED_AT:WRAPPED_AT + WRAPPED_BYTES], data[WRAPPED_AT + WRAPPED_BYTES:HEADER_BYTES]


def nonce(prefix: bytes, index: int) -> bytes:
    return prefix + index.to_bytes(4, "big")


def associated_data(prefix: bytes, index: int, flags: int) -> bytes:
    return MAGIC + prefix + index.to_bytes(8, "big") + bytes([flags])
