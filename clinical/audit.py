"""Audit trail: who did what to which object, in which room, as an HMAC-keyed chain.

Append-only JSON Lines, synced before ``write`` returns. Every record carries ``prev``,
the previous record's ``mac``, and its own ``mac``: HMAC-SHA256, under a key kept outside
the log, of the record without ``mac`` (canonical JSON). Without the key nobody can
rewrite a record, remove one, or forge a whole new chain; a cut-off tail shows against
the anchored chain heads (``audit_anchor``). Details are scrubbed of anything that looks
like a credential before they reach the disk.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from clinical.actor import Actor
from clinical.errors import ClinicalError
from clinical.jsonl import JsonlFile, encode

REDACTED = "[redacted]"
# Key names that hold credentials: substrings for unambiguous words ("access_token",
# "userPassword", "x-api-key"), whole names for short ones ("pin", not "spinal").
# "token_id" (a jti) names a token without being one.
_SECRET_KEY = re.compile(
    r"passw|passphrase|secret|token(?!_id$)|authorization|cookie|credential|api[-_]?key|private[-_]?key|jwt"
    r"|^(pass|pin|otp|auth)$"
)
# Bearer/Basic headers and JWTs, wherever they appear in a value.
_SECRET_VALUE = re.compile(r"\b(bearer|basic)\s+\S+|eyJ[\w-]+\.[\w-]+\.[\w-]*", re.IGNORECASE)
GENESIS = "0" * 64
MIN_KEY_BYTES = 32
_MAX_FIELD = 256


@dataclass(frozen=True)
class AuditEvent:
    """A checked event waiting for its place in the chain."""

    action: str
    actor: dict[str, str]
    room: str
    object_id: str
    details: dict[str, Any]


def key_id(key: bytes) -> str:
    """Names a key without revealing it: which key a record was made with."""
    return hashlib.sha256(b"telemed-audit-key-id\0" + key).hexdigest()[:16]


def record_mac(key: bytes, entry: Mapping[str, Any]) -> str:
    body = {k: v for k, v in entry.items() if k != "mac"}
    canonical = json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":"), sort_keys=True)
    return hmac.new(key, canonical.encode(), hashlib.sha256).hexdigest()


class AuditLog:
    def __init__(self, path: str | os.PathLike[str], key: bytes,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not isinstance(key, bytes) or len(key) < MIN_KEY_BYTES:
            raise ValueError(f"the audit key must be at least {MIN_KEY_BYTES} bytes")
        self._key, self.kid = key, key_id(key)
        self._file = JsonlFile(path, fsync_interval=0.0)
        self._clock = clock
        self.path = self._file.path
        self.repaired = self._file.repaired
        last = self._file.last_line
        self.seq, self.head = 0, GENESIS
        if last is not None:
            entry = _parse(last, "the last audit record")
            if "mac" not in entry:
                self._file.close()
                raise ClinicalError("audit-unkeyed", f"{self.path.name} was written without an audit key")
            if not hmac.compare_digest(str(entry["mac"]), record_mac(key, entry)):
                self._file.close()
                raise ClinicalError("audit-key-mismatch", f"the last record of {self.path.name} does not "
                                    f"verify under this audit key (key id {self.kid}, the log's is "
                                    f"{entry.get('kid')}): restore the key it was written with")
            self.seq, self.head = entry["seq"], entry["mac"]

    @staticmethod
    def event(action: str, actor: Actor, room: str = "", object_id: str = "", **details: Any) -> AuditEvent:
        """Check one event (ClinicalError ``audit-record`` if malformed), before it is queued."""
        if not isinstance(action, str) or not 0 < len(action) <= 64:
            raise ClinicalError("audit-record", "action must be a short non-empty string")
        if not isinstance(actor, Actor) or not actor.identity:
            raise ClinicalError("audit-record", "actor must be an Actor with an identity")
        for name, value in (("room", room), ("object_id", object_id)):
            if not isinstance(value, str) or len(value) > _MAX_FIELD:
                raise ClinicalError("audit-record", f"{name} must be a string of at most {_MAX_FIELD}")
        # The actor's fields are fixed and hold no secret ("credential" names the kind used).
        who = {k: scrub(v) for k, v in actor.to_dict().items()}
        event = AuditEvent(action, who, room, object_id, scrub(details))
        encode(event.details)  # plain JSON, or refused now rather than in a batch
        return event

    def write(self, events: Sequence[AuditEvent]) -> list[dict[str, Any]]:
        """Chain and write ``events`` with one write and one sync: all are on disk when this
        returns, or none (StorageUnavailable)."""
        seq, prev = self.seq, self.head
        entries, lines = [], []
        for event in events:
            seq += 1
            entry = {
                "seq": seq,
                "wall": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "t": round(self._clock(), 6),
                "action": event.action,
                "actor": event.actor,
                "room": event.room,
                "object": event.object_id,
                "details": event.details,
                "kid": self.kid,
                "prev": prev,
            }
            entry["mac"] = prev = record_mac(self._key, entry)
            entries.append(entry)
            lines.append(encode(entry))
        if lines:
            self._file.append_lines(lines, durable=True)
            self.seq, self.head = seq, prev
        return entries

    def record(self, action: str, actor: Actor, room: str = "", object_id: str = "",
               **details: Any) -> dict[str, Any]:
        return self.write([self.event(action, actor, room, object_id, **details)])[0]

    def close(self) -> None:
        self._file.close()


@dataclass
class ChainCheck:
    records: int
    head: str  # mac of the last record (GENESIS if none)
    torn_tail: bool  # an unterminated last line (a crash; cut off on the next start)


def verify(path: str | os.PathLike[str], key: bytes, anchors: Mapping[int, str] | None = None) -> ChainCheck:
    """Check every record's HMAC and link, and that each anchored head (seq -> mac) is in
    the chain. ClinicalError: ``audit-tampered``, ``audit-unkeyed`` or ``audit-truncated``."""
    anchors = dict(anchors or {})
    prev, count, torn = GENESIS, 0, False
    with open(path, "rb") as f:
        for raw in f:
            if not raw.endswith(b"\n"):
                torn = True
                break
            entry = _parse(raw[:-1], f"record {count + 1}", "audit-tampered")
            if "mac" not in entry:
                raise ClinicalError("audit-unkeyed", f"record {count + 1} carries no HMAC: written before audit "
                                    "keys, this log cannot prove it was not rewritten")
            if not hmac.compare_digest(str(entry["mac"]), record_mac(key, entry)):
                raise ClinicalError("audit-tampered", f"record {count + 1} was altered or made with another "
                                    f"key (its key id {entry.get('kid')}, this key's {key_id(key)})")
            if entry.get("prev") != prev or entry.get("seq") != count + 1:
                raise ClinicalError("audit-tampered", f"chain broken at record {count + 1}: a record "
                                    "before it was removed or reordered")
            prev, count = entry["mac"], count + 1
            expected = anchors.pop(count, None)
            if expected is not None and expected != prev:
                raise ClinicalError("audit-tampered", f"record {count} differs from its anchored head")
    if anchors:
        raise ClinicalError("audit-truncated", f"the log ends at record {count}, but record {max(anchors)} "
                            "was anchored: its tail was cut off")
    return ChainCheck(count, prev, torn)


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


def _parse(line: bytes, what: str, code: str = "log-corrupt") -> dict[str, Any]:
    try:
        entry = json.loads(line)
    except ValueError:
        raise ClinicalError(code, f"{what} is not JSON") from None
    if not isinstance(entry, dict) or type(entry.get("seq")) is not int:
        raise ClinicalError(code, f"{what} is not an audit record")
    return entry
