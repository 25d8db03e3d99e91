"""What a live stream sent, kept for video on demand: the init segment and every
complete segment appended to one encrypted vault stream (each segment sealed as its own
record), and an encrypted manifest of where each one is. A disk that fails stops the
archive, never the live stream."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from recorder import manifest_file
from vault import EncryptedWriter, KeyRing, VaultError

from .hls_window import Segment

log = logging.getLogger("telemed.vod")

MEDIA = "media.enc"
SAVE_EVERY = 10  # segments between manifest saves: a crash loses at most these from the index


def stream_dir(root: Path, room: str, stream: str) -> Path:
    return root / room / stream


class VodArchive:
    def __init__(self, root: Path, ring: KeyRing, room: str, stream: str, started_at: float) -> None:
        self.dir = stream_dir(root, room, stream)
        self._ring = ring
        self._key, self._wrapped = ring.new_data_key()
        self._out: EncryptedWriter | None = None
        self.failed = False
        self.manifest: dict = {"stream": stream, "room": room, "started_at": started_at, "ended_at": None,
                               "codecs": "", "init": None, "segments": [], "chapters": [],
                               "trim": {"start": 0.0, "end": None}, "clinical": []}

    def _write(self, data: bytes) -> tuple[int, int]:
        if self._out is None:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._out = EncryptedWriter(self.dir / MEDIA, self._key, self._wrapped, fsync_interval=None)
        offset = self._out.tell()
        self._out.write(data)
        self._out.flush()  # one sealed record per segment: a crash keeps every whole one
        return offset, len(data)

    def init(self, data: bytes, codecs: str) -> None:
        self._guard(lambda: self.manifest.update(init=self._write(data), codecs=codecs))

    def segment(self, segment: Segment) -> None:
        if self.manifest["init"] is None:
            return

        def append() -> None:
            offset, length = self._write(segment.data)
            self.manifest["segments"].append({"msn": segment.msn, "offset": offset, "length": length,
                                              "duration": round(segment.duration, 5),
                                              "wall_start": segment.wall_start})
            if len(self.manifest["segments"]) % SAVE_EVERY == 0:
                self._save()
        self._guard(append)

    def clinical(self, kind: str, seq: int, wall: float) -> None:
        """A clinical notice while live: kept as a mark on the timeline (kind and sequence
        number only; its content stays in the session log)."""
        self.manifest["clinical"].append({"wall": wall, "kind": str(kind)[:32], "seq": int(seq)})

    def finish(self) -> None:
        """The stream stopped: close the media and save the final manifest."""
        def close() -> None:
            self.manifest["ended_at"] = time.time()
            if self._out is not None:
                self._out.close()
                self._out = None
                self._save()
        self._guard(close)

    def _save(self) -> None:
        manifest_file.save(self.dir, self.manifest, self._key, self._wrapped)

    def _guard(self, action) -> None:
        if self.failed:
            return
        try:
            action()
        except (OSError, VaultError):
            log.exception("VOD archive of %s failed; the live stream goes on", self.dir)
            self.failed = True
