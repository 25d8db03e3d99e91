"""Content-addressed storage for shared objects (DICOM files): the key is the SHA-256 of the bytes.

Layout ``<root>/<first two hex digits>/<64 hex digits>``. Writes go to a temporary
file in the same directory, are synced, then renamed into place, so a reader never
sees a partial object and identical uploads are stored once.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

from clinical.errors import ClinicalError
from clinical.storage import storing

_KEY = re.compile(r"[0-9a-f]{64}")


class ObjectStore:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        with storing("objects"):
            self.root.mkdir(parents=True, exist_ok=True)

    def put(self, data: bytes) -> str:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise ClinicalError("object-data", f"expected bytes, got {type(data).__name__}")
        key = hashlib.sha256(data).hexdigest()
        target = self._location(key)
        if target.exists():
            return key
        with storing("the object"):
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, target)
            except BaseException:
                os.unlink(tmp)  # a full disk keeps no partial object
                raise
            _fsync_dir(target.parent)
        return key

    def get(self, key: str) -> bytes:
        """The object's bytes, checked against its key (a corrupt file is an error, not data)."""
        data = self.path(key).read_bytes()
        if hashlib.sha256(data).hexdigest() != key:
            raise ClinicalError("object-corrupt", f"stored object {key} does not match its hash")
        return data

    def path(self, key: str) -> Path:
        """Where an existing object lives, e.g. to stream it as an HTTP download."""
        location = self._location(key)
        if not location.is_file():
            raise ClinicalError("object-not-found", f"no object {key}")
        return location

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and bool(_KEY.fullmatch(key)) and self._location(key).is_file()

    def _location(self, key: str) -> Path:
        # The key is the only user-supplied part of the path: exactly 64 lowercase hex
        # digits, so "..", separators and absolute paths cannot get through.
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            raise ClinicalError("object-key", "object key must be 64 lowercase hex digits")
        return self.root / key[:2] / key


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
