"""Where an encrypted stream's bytes are read from: a local file, or anything else that
answers ranged reads (an object store), so one ``EncryptedReader`` decrypts either."""

from __future__ import annotations

import os
from typing import Protocol


class ByteSource(Protocol):
    name: str

    def pread(self, length: int, offset: int) -> bytes:
        """Up to ``length`` bytes from ``offset`` (fewer at the end)."""

    def size(self) -> int:
        """How many bytes there are now (a local file may still grow)."""

    def close(self) -> None: ...


class FileSource:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.name = os.fspath(path)
        self._fd: int | None = os.open(self.name, os.O_RDONLY)

    def pread(self, length: int, offset: int) -> bytes:
        assert self._fd is not None
        return os.pread(self._fd, length, offset)

    def size(self) -> int:
        assert self._fd is not None
        return os.fstat(self._fd).st_size

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
