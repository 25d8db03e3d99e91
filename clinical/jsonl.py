"""Append-only JSON Lines that survive a crash or a full disk mid-write (for the session
and audit logs).

Records are written with one ``write`` on an O_APPEND descriptor. A crash can leave only
an unterminated last line: opening the file cuts it off (``repaired`` says how many
bytes), and readers skip it. A write or sync the disk refuses is cut back at once, so a
failed record never stays half-written in front of the next one.

Given a key ring, every record is sealed on its own line (``vault.sealed_lines``): the
same durability, nothing readable without the master key. A plaintext log written
before that is sealed whole, atomically, when first opened with a ring.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from clinical.errors import ClinicalError
from clinical.storage import storing
from vault import KeyRing, VaultError
from vault.sealed_lines import SealedLines, is_header

MAX_RECORD = 1024 * 1024
_BLOCK = 64 * 1024


def encode(record: dict[str, Any]) -> bytes:
    """One record as the line that is written (without its newline)."""
    try:
        line = json.dumps(record, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    except (TypeError, ValueError) as exc:
        raise ClinicalError("log-record", f"record is not plain JSON: {exc}") from None
    if len(line) > MAX_RECORD:
        raise ClinicalError("log-record", f"record of {len(line)} bytes exceeds {MAX_RECORD}")
    return line


def read_jsonl(path: str | os.PathLike[str], ring: KeyRing | None = None) -> Iterator[dict[str, Any]]:
    """Every complete record, oldest first (a record being appended may not appear yet).
    A sealed log needs the ``ring``; a plaintext one reads without."""
    with open(path, "rb") as f:
        seal = None
        for raw in f:
            if not raw.endswith(b"\n"):
                return  # torn tail of a concurrent or crashed write
            if seal is None and is_header(raw):
                seal = _seal_of(raw, ring, path)
                continue
            yield _decode(raw if seal is None else _open_line(seal, raw, path), path)


def _seal_of(header: bytes, ring: KeyRing | None, path: str | os.PathLike[str]) -> SealedLines:
    if ring is None:
        raise ClinicalError("log-sealed", f"{Path(path).name} is encrypted: it needs the master key")
    try:
        return SealedLines.from_header(header, ring)
    except VaultError as exc:
        raise ClinicalError("log-corrupt", f"{Path(path).name}: {exc}") from None


def _open_line(seal: SealedLines, line: bytes, path: str | os.PathLike[str]) -> bytes:
    try:
        return seal.open(line)
    except VaultError as exc:
        raise ClinicalError("log-corrupt", f"{Path(path).name}: {exc}") from None


def _decode(line: bytes, path: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        return json.loads(line)
    except ValueError:
        raise ClinicalError("log-corrupt", f"{Path(path).name}: unreadable record") from None


class JsonlFile:
    """``fsync_interval`` 0 syncs every record; otherwise at most that many seconds are at
    risk on power loss, except for records appended ``durable=True``, which are synced
    before ``append`` returns. A process crash loses nothing written."""

    def __init__(self, path: str | os.PathLike[str], fsync_interval: float = 0.0,
                 ring: KeyRing | None = None) -> None:
        self.path = Path(path)
        self.fsync_interval = fsync_interval
        with storing(f"the log {self.path.name}"):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        self.repaired = 0  # bytes of a torn last line cut off on opening
        last_line = self._recover()
        self._size = os.fstat(self._fd).st_size  # up to the last complete record
        self._synced_at = time.monotonic()
        self._ring = ring
        self._seal: SealedLines | None = None
        if ring is not None:
            last_line = self._open_sealed(ring, last_line)
        self.last_line = last_line  # the last record as encoded (opened, if sealed)

    def append(self, record: dict[str, Any], durable: bool = False) -> bytes:
        """Write one record; returns it as encoded (before sealing, without the newline)."""
        line = encode(record)
        self.append_lines([line], durable)
        return line

    def append_lines(self, lines: Sequence[bytes], durable: bool = False) -> None:
        """Write already encoded records in one go: all of them are on disk, or none.

        StorageUnavailable when the disk refuses; whatever part did reach the file is
        cut off again before that is raised.
        """
        sealed = lines if self._seal is None else [self._seal.seal(line) for line in lines]
        self._write(sealed, durable)
        self.last_line = lines[-1]

    def _write(self, lines: Sequence[bytes], durable: bool) -> None:
        data = memoryview(b"".join(line + b"\n" for line in lines))
        size = len(data)
        with storing(f"the log {self.path.name}"):
            self._cut_back()  # a previous failure whose cut-back failed too
            try:
                while data:
                    data = data[os.write(self._fd, data):]
                now = time.monotonic()
                if durable or now - self._synced_at >= self.fsync_interval:
                    os.fsync(self._fd)
                    self._synced_at = now
            except BaseException:
                self._cut_back()
                raise
        self._size += size

    def read(self) -> Iterator[dict[str, Any]]:
        return read_jsonl(self.path, self._ring)

    def _open_sealed(self, ring: KeyRing, last_line: bytes | None) -> bytes | None:
        """Start sealing: read the header, write one, or seal a plaintext log whole."""
        with open(self.path, "rb") as f:
            first = f.readline()
        if is_header(first):
            self._seal = _seal_of(first, ring, self.path)
            return None if last_line is None or is_header(last_line) else _open_line(self._seal, last_line, self.path)
        seal = SealedLines.create(ring)
        if first:
            self._seal_whole(seal)
        else:
            self._write([seal.header()], durable=True)
        self._seal = seal
        return last_line

    def _seal_whole(self, seal: SealedLines) -> None:
        """A log written before encryption at rest: rewrite it sealed, then swap it in."""
        aside = self.path.with_name(f".tmp-{self.path.name}")
        with storing(f"the log {self.path.name}", "it stays as it was"):
            with open(self.path, "rb") as src, open(aside, "wb") as out:
                out.write(seal.header() + b"\n")
                for line in src:
                    out.write(seal.seal(line.rstrip(b"\n")) + b"\n")
                out.flush()
                os.fsync(out.fileno())
            os.chmod(aside, 0o600)
            os.replace(aside, self.path)
            directory = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
            os.close(self._fd)
            self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND)
            self._size = os.fstat(self._fd).st_size

    def close(self) -> None:
        if self._fd >= 0:
            try:
                os.fsync(self._fd)
            except OSError:
                pass  # nothing unsynced was acknowledged (durable records are synced)
            os.close(self._fd)
            self._fd = -1

    def _cut_back(self) -> None:
        """Truncate to the end of the last complete record (and sync that), if longer."""
        if os.fstat(self._fd).st_size != self._size:
            os.ftruncate(self._fd, self._size)
            os.fsync(self._fd)

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
            self.repaired = len(tail) - len(complete)
            with storing(f"the log {self.path.name}"):
                os.ftruncate(self._fd, size - self.repaired)
                os.fsync(self._fd)
        lines = complete.rstrip(b"\n").rsplit(b"\n", 1)
        return lines[-1] if complete else None


def repair_tree(root: str | os.PathLike[str], skip: Path | None = None,
                prune: frozenset[str] = frozenset({"objects", "keys"})) -> list[tuple[Path, int]]:
    """At start-up: cut the torn last line of every ``*.jsonl`` under ``root`` (not looking
    into the top-level directories in ``prune``, which hold no logs but may hold millions
    of files); returns the files repaired and the bytes cut from each."""
    paths = []
    for directory, subdirs, files in os.walk(root):
        if Path(directory) == Path(root):
            subdirs[:] = [d for d in subdirs if d not in prune]
        paths += [Path(directory) / f for f in files if f.endswith(".jsonl")]
    repaired = []
    for path in sorted(paths):
        if path == skip or not path.is_file():
            continue
        log = JsonlFile(path)
        log.close()
        if log.repaired:
            repaired.append((path, log.repaired))
    return repaired
