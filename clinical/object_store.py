"""Content-addressed storage for shared objects (DICOM files): the key is the SHA-256 of the bytes.

Layout ``<root>/<first two hex digits>/<64 hex digits>``. Every object is encrypted at rest
(a vault stream under its own data key). Writes go to a temporary file in the same
directory, are synced, then renamed into place, so a reader never sees a partial object
and identical uploads are stored once.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from pathlib import Path

from clinical.errors import ClinicalError
from vault import EncryptedReader, EncryptedWriter, KeyRing, VaultError

_KEY = re.compile(r"[0-9a-f]{64}")


class ObjectStore:
    def __init__(self, root: str | os.PathLike[str], ring: KeyRing) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._ring = ring

    def put(self, data: bytes) -> str:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise ClinicalError("object-data", f"expected bytes, got {type(data).__name__}")
        key = hashlib.sha256(data).hexdigest()
        target = self._location(key)
        if target.exists():
            return key
        target.parent.mkdir(exist_ok=True)
        write_encrypted(target, bytes(data), self._ring)
        return key

    def get(self, key: str) -> bytes:
        """The object's bytes, checked against its key (a corrupt file is an error, not data)."""
        location = self._location(key)
        if not location.is_file():
            raise ClinicalError("object-not-found", f"no object {key}")
        try:
            with EncryptedReader(location, self._ring) as reader:
                data = reader.readall()
                whole = reader.complete
        except VaultError as exc:
            raise ClinicalError("object-corrupt", f"stored object {key} cannot be read: {exc}") from None
        if not whole or hashlib.sha256(data).hexdigest() != key:
            raise ClinicalError("object-corrupt", f"stored object {key} does not match its hash")
        return data

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and bool(_KEY.fullmatch(key)) and self._location(key).is_file()

    def _location(self, key: str) -> Path:
        # The key is the only user-supplied part of the path: exactly 64 lowercase hex
        # digits, so "..", separators and absolute paths cannot get through.
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            raise ClinicalError("object-key", "object key must be 64 lowercase hex digits")
        return self.root / key[:2] / key


def write_encrypted(target: Path, data: bytes, ring: KeyRing) -> None:
    """Replace ``target`` atomically with ``data`` encrypted under a fresh data key, synced."""
    tmp = target.parent / f".tmp-{secrets.token_hex(8)}"
    try:
        with EncryptedWriter(tmp, *ring.new_data_key(), fsync_interval=0) as writer:
            writer.write(data)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
