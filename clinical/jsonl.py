"""Append-only JSON Lines that survive a crash mid-write (for the session and audit logs).

Each record is one ``write`` of one line on an O_APPEND descriptor. A crash can leave
only an unterminated last line; opening the file cuts it off, and readers skip it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from clinical.errors import ClinicalError

MAX_RECORD = 1024 * 1024
_BLOCK = 64 * 1024


class JsonlFile:
    """``fsync_interval`` 0 syncs every record; otherwise at most that many seconds are at
    risk on power loss (a process crash loses nothing: every record is written at once)."""

    def __init__(self, path: str | os.PathLike[str], fsync_interval: float = 0.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fsync_interval = fsync_interval
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        self.last_line = self._recover()
        self._synced_at = time.monotonic()

    def append(self, record: dict[str, Any]) -> bytes:
        """Write one record; returns the exact line written (without the newline)."""
        try:
            line = json.dumps(
                record, ensure_ascii=False, allow_nan=False, separators=(",", ":")
            ).encode()
        except (TypeError, ValueError) as exc:
            raise ClinicalError("log-record", f"record is not plain JSON: {exc}") from None
        if len(line) > MAX_RECORD:
            raise ClinicalError("log-record", f"record of {len(line)} bytes exceeds {MAX_RECORD}")
        data = memoryview(line + b"\n")
        while data:
            data = data[os.write(self._fd, data) :]
        now = time.monotonic()
        if now - self._synced_at >= self.fsync_interval:
            os.fsync(self._fd)
            self._synced_at = now
        self.last_line = line
        return line

    def read(self) -> Iterator[dict[str, Any]]:
        """Every complete record, oldest first (a record being appended may not appear yet)."""
        with open(self.path, "rb") as f:
            for raw in f:
                if not raw.endswith(b"\n"):
                    return  # torn tail of a concurrent or crashed write
                try:
                    yield json.loads(raw)
                except ValueError:
                    raise ClinicalError(
                        "log-corrupt", f"{self.path.name}: unreadable record"
                    ) from None

    def close(self) -> None:
        if self._fd >= 0:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1

    def _recover(self) -> bytes | None:
        """Cut an unterminated tail and return the last complete line, if any."""
        size = os.fstat(self._fd).st_size
        end = size
        tail = b""
        while end > 0:
            start = max(0, end - _BLOCK)
            tail = os.pread(self._fd, end - start, start) + tail
            end = start
            if tail.count(b"\n") >= 2 or (end == 0 and b"\n" in tail):
                break
        complete = tail[: tail.rfind(b"\n") + 1]
        if len(complete) < len(tail):
            os.ftruncate(self._fd, size - (len(tail) - len(complete)))
        lines = complete.rstrip(b"\n").rsplit(b"\n", 1)
        return lines[-1] if complete else None
