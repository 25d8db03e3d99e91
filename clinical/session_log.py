"""The session log: every accepted clinical message, stamped and in order, for fan-out and replay.

Entry::

    {"seq": 17, "t": 5123.402117, "wall": "2024-05-01T10:00:00.123+00:00",
     "kind": "lab", "sender": "participant-id", "body": {...},
     "receipt": {"ref": "lab-42", "ack": "MSH|..."}}

``receipt`` (optional) is what a retry of the sender's request is answered from: the
request's ``ref``, and for an HL7 message the ACK it was given.

``seq`` orders entries and continues across reopening. ``t`` is the server's
monotonic clock in seconds, the time base for replay sync; ``wall`` is for display.
One writer (the event loop) per file.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from clinical.errors import ClinicalError
from clinical.jsonl import JsonlFile
from vault import KeyRing

_KIND = re.compile(r"[a-z][a-z0-9.-]{0,63}")


class SessionLog:
    def __init__(
        self,
        path: str | os.PathLike[str],
        fsync_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        ring: KeyRing | None = None,
    ) -> None:
        """With ``ring``, entries are encrypted at rest (each line sealed on its own)."""
        self._file = JsonlFile(path, fsync_interval, ring)
        self._clock = clock
        last = _parse_last(self._file.last_line)
        self.last_seq: int = last["seq"]
        # After a reboot the monotonic clock restarts near zero; shift it so that t
        # never runs backwards within one log (the downtime itself is not recorded).
        self._offset = max(0.0, last["t"] - clock())

    @property
    def path(self) -> str:
        return str(self._file.path)

    @property
    def repaired(self) -> int:
        """Bytes of a torn last entry cut off on opening (0: the log was intact)."""
        return self._file.repaired

    def append(self, kind: str, sender: str, body: dict[str, Any], durable: bool = True,
               receipt: dict[str, Any] | None = None) -> dict[str, Any]:
        """Stamp and write one entry; with ``durable`` it is synced to disk before this
        returns (what is acknowledged must be), otherwise within ``fsync_interval``.
        StorageUnavailable if the disk refuses: then nothing was written."""
        if not isinstance(kind, str) or not _KIND.fullmatch(kind):
            raise ClinicalError("log-record", f"kind {kind!r} must match {_KIND.pattern}")
        if not isinstance(sender, str) or not 0 < len(sender) <= 256:
            raise ClinicalError("log-record", "sender must be a non-empty string")
        if not isinstance(body, dict):
            raise ClinicalError("log-record", "body must be a JSON object")
        entry = {
            "seq": self.last_seq + 1,
            "t": round(self._clock() + self._offset, 6),
            "wall": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "kind": kind,
            "sender": sender,
            "body": body,
        }
        if receipt is not None:
            entry["receipt"] = receipt
        self._file.append(entry, durable)  # raises before seq advances: nothing written
        self.last_seq = entry["seq"]
        return entry

    def read(self) -> Iterator[dict[str, Any]]:
        """All entries, oldest first, for replay or rebuilding state."""
        return self._file.read()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> SessionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _parse_last(line: bytes | None) -> dict[str, Any]:
    if line is None:
        return {"seq": 0, "t": 0.0}
    try:
        last = json.loads(line)
        if type(last["seq"]) is int and isinstance(last["t"], (int, float)):
            return last
    except (ValueError, KeyError, TypeError):
        pass
    raise ClinicalError("log-corrupt", "the last session log entry is unreadable")
