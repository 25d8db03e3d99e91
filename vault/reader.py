"""Reading an encrypted stream: an index of chunk records (built from their length fields,
extended by ``refresh()`` while a writer appends), random access by plaintext offset, and
a raw binary file interface, so PyAV or an HTTP Range handler can read it directly. The
bytes come from a local file or any ``ByteSource`` (ranged reads of an archived copy)."""

from __future__ import annotations

import bisect
import io
import os
from collections.abc import Iterator

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from . import stream_format as fmt
from .byte_source import ByteSource, FileSource
from .errors import VaultError
from .keyring import KeyRing


class EncryptedReader(io.RawIOBase):
    """``size`` counts the plaintext of complete chunks; ``complete`` says whether the writer
    closed the stream (a crash leaves it False, with every complete chunk still readable)."""

    def __init__(self, path: str | os.PathLike[str] | ByteSource, ring: KeyRing) -> None:
        super().__init__()
        self._source: ByteSource | None = FileSource(path) if isinstance(path, (str, os.PathLike)) else path
        self.path = self._source.name
        try:
            self.wrapped, self.nonce_prefix = fmt.parse_header(self._source.pread(fmt.HEADER_BYTES, 0))
            self._aead = AESGCM(ring.unwrap(self.wrapped))
        except BaseException:
            self.close()
            raise
        self._starts: list[int] = []      # plaintext offset of each chunk
        self._records: list[tuple[int, int, int]] = []  # (file offset of sealed bytes, length, flags)
        self.sealed_end = fmt.HEADER_BYTES  # file offset after the last complete record
        self.size = 0
        self.complete = False
        self._pos = 0
        self._cached: tuple[int, bytes] | None = None
        self.refresh()

    def refresh(self) -> None:
        """Index the chunks appended since the last look."""
        assert self._source is not None
        end = self._source.size()
        while not self.complete and self.sealed_end + fmt.RECORD.size <= end:
            length, flags = fmt.RECORD.unpack(self._source.pread(fmt.RECORD.size, self.sealed_end))
            if length < fmt.TAG_BYTES or flags & ~fmt.FINAL:
                raise VaultError("tampered", f"{self.path}: bad record at byte {self.sealed_end}")
            body = self.sealed_end + fmt.RECORD.size
            if body + length > end:
                break  # torn last record: written by a crashed or still-running writer
            self._starts.append(self.size)
            self._records.append((body, length, flags))
            self.size += length - fmt.TAG_BYTES
            self.sealed_end = body + length
            self.complete = bool(flags & fmt.FINAL)
        if self.complete and self.sealed_end != end:
            raise VaultError("tampered", f"{self.path}: data after the final chunk")

    @property
    def chunk_count(self) -> int:
        return len(self._records)

    def chunk(self, index: int) -> bytes:
        """The plaintext of chunk ``index``, authenticated."""
        if self._cached is not None and self._cached[0] == index:
            return self._cached[1]
        offset, length, flags = self._records[index]
        assert self._source is not None
        sealed = self._source.pread(length, offset)
        try:
            plain = self._aead.decrypt(fmt.nonce(self.nonce_prefix, index), sealed,
                                       fmt.associated_data(self.nonce_prefix, index, flags))
        except InvalidTag:
            raise VaultError("tampered", f"{self.path}: chunk {index} fails authentication") from None
        self._cached = (index, plain)
        return plain

    def __iter__(self) -> Iterator[bytes]:  # type: ignore[override]
        for index in range(len(self._records)):
            yield self.chunk(index)

    def read_at(self, offset: int, length: int) -> bytes:
        """Up to ``length`` plaintext bytes from ``offset`` (fewer at the end)."""
        if offset < 0 or length < 0:
            raise ValueError("negative offset or length")
        out = bytearray()
        index = bisect.bisect_right(self._starts, offset) - 1
        while length > len(out) and 0 <= index < len(self._records) and offset < self.size:
            plain = self.chunk(index)
            start = offset - self._starts[index]
            piece = plain[start:start + length - len(out)]
            out += piece
            offset += len(piece)
            index += 1
        return bytes(out)

    # io.RawIOBase: a readable, seekable binary file of the plaintext
    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read_at(self._pos, len(buffer))
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise ValueError("seek before the start")
        self._pos = base + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        source = getattr(self, "_source", None)
        if source is not None:
            source.close()
            self._source = None
            self._cached = None
        super().close()
