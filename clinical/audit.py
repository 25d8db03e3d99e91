"""Audit trail: who did what to which clinical object, in which room.

Append-only JSON Lines, synced on every record. Each record carries ``prev``, the
SHA-256 of the previous line, so an edit or deletion in the middle shows up in
``verify``. Details are scrubbed of anything that looks like a credential before
they reach the disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from clinical.errors import ClinicalError
from clinical.jsonl import JsonlFile

REDACTED = "[redacted]"
# Key names that hold credentials: substrings for unambiguous words ("access_token",
# "userPassword", "x-api-key"), whole names for short ones ("pin", not "spinal").
_SECRET_KEY = re.compile(
    r"passw|passphrase|secret|token|authorization|cookie|credential|api[-_]?key|private[-_]?key|jwt"
    r"|^(pass|pin|otp|auth)$"
)
# Bearer/Basic headers and JWTs, wherever they appear in a value.
_SECRET_VALUE = re.compile(r"\b(bearer|basic)\s+\S+|eyJ[\w-]+\.[\w-]+\.[\w-]*", re.IGNORECASE)
_GENESIS = "0" * 64


class AuditLog:
    def __init__(
        self, path: str | os.PathLike[str], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._file = JsonlFile(path, fsync_interval=0.0)
        self._clock = clock
        last = self._file.last_line
        self._prev = hashlib.sha256(last).hexdigest() if last else _GENESIS
        try:
            self._seq = json.loads(last)["seq"] if last else 0
        except (ValueError, KeyError, TypeError):
            raise ClinicalError("log-corrupt", "the last audit record is unreadable") from None

    def record(
        self, actor: str, action: str, object_id: str, room: str, **details: Any
    ) -> dict[str, Any]:
        for name, value in (
            ("actor", actor),
            ("action", action),
            ("object_id", object_id),
            ("room", room),
        ):
            if not isinstance(value, str) or not 0 < len(value) <= 256:
                raise ClinicalError("audit-record", f"{name} must be a non-empty string")
        entry = {
            "seq": self._seq + 1,
            "wall": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "t": round(self._clock(), 6),
            "actor": actor,
            "action": action,
            "object": object_id,
            "room": room,
            "details": scrub(details),
            "prev": self._prev,
        }
        line = self._file.append(entry)
        self._seq, self._prev = entry["seq"], hashlib.sha256(line).hexdigest()
        return entry

    def close(self) -> None:
        self._file.close()


def scrub(value: Any) -> Any:
    """A copy of ``value`` with credential-like keys and values replaced by REDACTED."""
    if isinstance(value, dict):
        return {
            str(k): REDACTED if _SECRET_KEY.search(str(k).lower()) else scrub(v)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [scrub(v) for v in value]
    if isinstance(value, str):
        return _SECRET_VALUE.sub(REDACTED, value)
    return value


def verify(path: str | os.PathLike[str]) -> int:
    """Check the hash chain of an audit file; returns the number of records."""
    prev, count = _GENESIS, 0
    with open(path, "rb") as f:
        for raw in f:
            if not raw.endswith(b"\n"):
                break
            line = raw[:-1]
            try:
                entry = json.loads(line)
            except ValueError:
                raise ClinicalError("audit-tampered", f"record {count + 1} is not JSON") from None
            if entry.get("prev") != prev or entry.get("seq") != count + 1:
                raise ClinicalError("audit-tampered", f"chain broken at record {count + 1}")
            prev, count = hashlib.sha256(line).hexdigest(), count + 1
    return count
