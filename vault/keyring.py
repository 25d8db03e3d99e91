"""The master key ring: data keys are wrapped (AES key wrap, RFC 3394) by a master key
that lives outside the data; rotating the master key re-wraps only the data keys.

A wrapped key is ``key id (8 bytes) || AESKW(master, data key) (40 bytes)``; the key id
(an HMAC of the master key, not the key) names which master key of the ring unwraps it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
from collections.abc import Iterable
from pathlib import Path

from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from .errors import VaultError
from .key_file import load_or_create

log = logging.getLogger("telemed.vault")

KEY_BYTES = 32
KEY_ID_BYTES = 8
WRAPPED_BYTES = KEY_ID_BYTES + KEY_BYTES + 8


def key_id(master: bytes) -> bytes:
    return hmac.new(master, b"telemed vault key id", hashlib.sha256).digest()[:KEY_ID_BYTES]


def parse_key(text: str) -> bytes:
    """A master key as written in settings or a key file: base64 of 32 random bytes."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a master key is base64 of 32 bytes") from None
    if len(key) != KEY_BYTES:
        raise ValueError(f"a master key is base64 of {KEY_BYTES} bytes, got {len(key)}")
    return key


class KeyRing:
    """``master`` wraps new data keys; ``previous`` master keys still unwrap (for rotation)."""

    def __init__(self, master: bytes, previous: Iterable[bytes] = ()) -> None:
        if len(master) != KEY_BYTES:
            raise ValueError(f"the master key must be {KEY_BYTES} bytes")
        self._master = master
        self.key_id = key_id(master)
        self._keys = {key_id(k): k for k in previous}
        self._keys[self.key_id] = master

    def __repr__(self) -> str:
        return f"KeyRing(key_id={self.key_id.hex()}, keys={len(self._keys)})"

    @classmethod
    def load(cls, key: str | None, key_file: str | os.PathLike[str],
             previous: Iterable[str] = ()) -> KeyRing:
        """The master key from the ``key`` setting if given, else from ``key_file``, which is
        created (0600, in a 0700 directory) on first start and said so in the log, once."""
        old = [parse_key(k) for k in previous]
        if key:
            return cls(parse_key(key), old)
        text, created = load_or_create(Path(key_file), lambda: base64.b64encode(os.urandom(KEY_BYTES)).decode())
        if created:
            log.warning("created a new master key file %s (0600): keep it, and a copy apart from the "
                        "data; without it nothing encrypted under the data directory can be read", key_file)
        return cls(parse_key(text), old)

    def new_data_key(self) -> tuple[bytes, bytes]:
        """A fresh random data key and its wrapped form (store only the wrapped one)."""
        data_key = os.urandom(KEY_BYTES)
        return data_key, self.key_id + aes_key_wrap(self._master, data_key)

    def unwrap(self, wrapped: bytes) -> bytes:
        if len(wrapped) != WRAPPED_BYTES:
            raise VaultError("format", "a wrapped key has the wrong length")
        master = self._keys.get(bytes(wrapped[:KEY_ID_BYTES]))
        if master is None:
            raise VaultError("wrong-key", f"no master key {bytes(wrapped[:KEY_ID_BYTES]).hex()} "
                                          "in the key ring")
        try:
            return aes_key_unwrap(master, bytes(wrapped[KEY_ID_BYTES:]))
        except InvalidUnwrap:
            raise VaultError("wrong-key", "the wrapped key does not unwrap") from None

    def rewrap(self, wrapped: bytes) -> bytes:
        """The same data key, wrapped by the current master key."""
        if bytes(wrapped[:KEY_ID_BYTES]) == self.key_id:
            return bytes(wrapped)
        return self.key_id + aes_key_wrap(self._master, self.unwrap(wrapped))
