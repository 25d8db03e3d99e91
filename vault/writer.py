"""The append-only encrypted writer: plaintext is buffered into chunks, each sealed with
AES-256-GCM as it fills or on ``flush()``; every sealed chunk is on disk in one record, so a
crash leaves all complete chunks verifiable (docs: stream_format)."""

from __future__ import annotations

import os
import time

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from . import stream_format as fmt
from .errors import VaultError
from .keyring import KeyRing
from .reader import EncryptedReader


class EncryptedWriter:
    """``fsync_interval``: ``None`` never syncs (the OS writes back; a process crash still
    loses only the unsealed buffer), ``0`` syncs every sealed chunk, ``n`` at most every
    ``n`` seconds on a seal; ``close()`` syncs unless ``None``.

    A failed write (disk full, read-only) cuts the file back to its last complete record and
    re-raises; the writer is then unusable, and what it sealed before stays readable."""

    def __init__(self, path: str | os.PathLike[str], data_key: bytes, wrapped: bytes, *,
                 chunk_size: int = 64 * 1024, fsync_interval: float | None = 1.0) -> None:
        self._setup(path, data_key, chunk_size, fsync_interval, os.urandom(fmt.NONCE_PREFIX_BYTES))
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            self._append(fmt.header(wrapped, self._prefix))
            self._sync(force=fsync_interval is not None)
        except BaseException:
            self._abandon()
            raise

    @classmethod
    def resume(cls, path: str | os.PathLike[str], ring: KeyRing, *, chunk_size: int = 64 * 1024,
               fsync_interval: float | None = 1.0) -> EncryptedWriter:
        """Go on with a stream a crash left open: its torn last record is cut off and the
        numbering continues after its last complete chunk (which must verify). Closing the
        writer at once marks the stream whole."""
        with EncryptedReader(path, ring) as reader:
            if reader.complete:
                raise VaultError("closed", f"{path} was closed")
            if reader.chunk_count:
                reader.chunk(reader.chunk_count - 1)
            writer = cls.__new__(cls)
            writer._setup(path, ring.unwrap(reader.wrapped), chunk_size, fsync_interval, reader.nonce_prefix)
            writer._index, writer._sealed_bytes, writer._end = reader.chunk_count, reader.size, reader.sealed_end
        writer._fd = os.open(writer.path, os.O_WRONLY)
        os.ftruncate(writer._fd, writer._end)
        os.lseek(writer._fd, writer._end, os.SEEK_SET)
        return writer

    def _setup(self, path: str | os.PathLike[str], data_key: bytes, chunk_size: int,
               fsync_interval: float | None, prefix: bytes) -> None:
        if not 0 < chunk_size < 2**31:
            raise ValueError("chunk_size out of range")
        self.path = os.fspath(path)
        self.chunk_size = chunk_size
        self.fsync_interval = fsync_interval
        self._aead = AESGCM(data_key)
        self._prefix = prefix
        self._buffer = bytearray()
        self._index = 0
        self._sealed_bytes = 0
        self._fd: int | None = None
        self._end = 0
        self._synced_at = time.monotonic()

    @property
    def closed(self) -> bool:
        return self._fd is None

    def tell(self) -> int:
        """Plaintext bytes written so far (sealed or buffered)."""
        return self._sealed_bytes + len(self._buffer)

    def write(self, data: bytes) -> int:
        self._check_open()
        self._buffer += data
        while len(self._buffer) >= self.chunk_size:
            self._seal(bytes(self._buffer[: self.chunk_size]), 0)
            del self._buffer[: self.chunk_size]
        return len(data)

    def flush(self) -> None:
        """Seal what is buffered now (a chunk may be shorter than ``chunk_size``)."""
        self._check_open()
        if self._buffer:
            self._seal(bytes(self._buffer), 0)
            self._buffer.clear()

    def sync(self) -> None:
        """fsync now, whatever the policy (a caller may do it off its event loop; it must
        not close the writer meanwhile)."""
        fd = self._fd
        if fd is not None:
            os.fsync(fd)

    def close(self) -> None:
        """Seal the rest as the final chunk (so readers know the stream is whole) and close."""
        if self._fd is None:
            return
        self._seal(bytes(self._buffer), fmt.FINAL)
        self._buffer.clear()
        self._sync(force=self.fsync_interval is not None)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> EncryptedWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._fd is None:
            raise VaultError("closed", f"{self.path} is closed for writing")

    def _seal(self, plaintext: bytes, flags: int) -> None:
        if self._index >= fmt.MAX_CHUNKS:
            raise VaultError("format", "too many chunks for one stream")
        sealed = self._aead.encrypt(fmt.nonce(self._prefix, self._index), plaintext,
                                    fmt.associated_data(self._prefix, self._index, flags))
        self._append(fmt.RECORD.pack(len(sealed), flags) + sealed)
        self._index += 1
        self._sealed_bytes += len(plaintext)
        self._sync()

    def _append(self, record: bytes) -> None:
        assert self._fd is not None
        view = memoryview(record)
        try:
            while view:
                view = view[os.write(self._fd, view):]
        except OSError:
            self._abandon()
            raise
        self._end += len(record)

    def _sync(self, force: bool = False) -> None:
        if self._fd is None or self.fsync_interval is None:
            return
        now = time.monotonic()
        if force or now - self._synced_at >= self.fsync_interval:
            try:
                os.fsync(self._fd)
            except OSError:
                self._abandon()
                raise
            self._synced_at = now

    def _abandon(self) -> None:
        """Drop a half-written record, so the file ends on a record boundary, and stop."""
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, self._end)
        except OSError:
            pass  # the reader ignores a torn last record anyway
        os.close(self._fd)
        self._fd = None
