"""Encrypted lines for append-only logs. Each line is sealed on its own, so a log keeps its
line-by-line durability and torn-tail repair while nothing in it reads without the key.

The first line is the header, ``TMSEAL1 <wrapped data key> <file id>`` (both base64, fixed
length, so that key rotation rewrites the wrapped key in place). Every other line is the
base64 of ``nonce (12 random bytes) || AES-256-GCM ciphertext+tag``, with the file id as
associated data, so that a line cannot be moved into another log. Random nonces keep a
file safe far beyond the number of lines a log gets (the bound is about 2**32).
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import VaultError
from .keyring import WRAPPED_BYTES, KeyRing

MAGIC = b"TMSEAL1"
FILE_ID_BYTES = 8
NONCE_BYTES = 12
WRAPPED_AT = len(MAGIC) + 1  # where the wrapped key's base64 starts in the header line


def is_header(line: bytes) -> bool:
    return line.startswith(MAGIC + b" ")


class SealedLines:
    def __init__(self, data_key: bytes, wrapped: bytes, file_id: bytes) -> None:
        self._aead = AESGCM(data_key)
        self.wrapped = wrapped
        self.file_id = file_id

    @classmethod
    def create(cls, ring: KeyRing) -> SealedLines:
        data_key, wrapped = ring.new_data_key()
        return cls(data_key, wrapped, os.urandom(FILE_ID_BYTES))

    @classmethod
    def from_header(cls, line: bytes, ring: KeyRing) -> SealedLines:
        wrapped, file_id = parse_header(line)
        return cls(ring.unwrap(wrapped), wrapped, file_id)

    def header(self) -> bytes:
        return b" ".join((MAGIC, base64.b64encode(self.wrapped), base64.b64encode(self.file_id)))

    def seal(self, plaintext: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return base64.b64encode(nonce + self._aead.encrypt(nonce, plaintext, MAGIC + self.file_id))

    def open(self, line: bytes) -> bytes:
        try:
            raw = base64.b64decode(line.rstrip(b"\n"), validate=True)
            return self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], MAGIC + self.file_id)
        except (binascii.Error, ValueError, InvalidTag):
            raise VaultError("tampered", "a sealed log line does not verify") from None


def parse_header(line: bytes) -> tuple[bytes, bytes]:
    """(wrapped key, file id) of a header line."""
    parts = line.rstrip(b"\n").split(b" ")
    try:
        if len(parts) != 3 or parts[0] != MAGIC:
            raise ValueError
        wrapped, file_id = (base64.b64decode(p, validate=True) for p in parts[1:])
    except (binascii.Error, ValueError):
        raise VaultError("format", "not a sealed log header") from None
    if len(wrapped) != WRAPPED_BYTES or len(file_id) != FILE_ID_BYTES:
        raise VaultError("format", "a sealed log header has the wrong size")
    return wrapped, file_id


def rewrap_header(path: str | os.PathLike[str], ring: KeyRing) -> bool:
    """Re-wrap a sealed log's data key under ``ring``'s current master key, in place;
    False if it already was."""
    fd = os.open(path, os.O_RDWR)
    try:
        wrapped, _ = parse_header(os.pread(fd, 128, 0).split(b"\n")[0])
        new = ring.rewrap(wrapped)
        if new == wrapped:
            return False
        os.pwrite(fd, base64.b64encode(new), WRAPPED_AT)
        os.fsync(fd)
        return True
    finally:
        os.close(fd)
