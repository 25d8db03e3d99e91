"""Where each day's audit chain head is kept outside the log, so that a cut-off tail
shows: the anchor names a record the log no longer has.

``AnchorFile`` is a small JSON file beside the log, rewritten atomically after every
write to the chain and itself HMAC-signed::

    {"kid": "...", "days": {"2026-11-30": {"seq": 812, "mac": "..."}}, "mac": "..."}

``RedisAnchor`` keeps the same heads in a Redis hash on another machine, out of reach of
whoever can edit the data directory.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import redis

from clinical.audit import key_id, record_mac
from clinical.errors import ClinicalError
from clinical.storage import storing

Heads = dict[str, dict[str, Any]]  # UTC day -> {"seq": int, "mac": str}


def day_heads(entries: Iterable[dict[str, Any]]) -> Heads:
    """The last record of each day among ``entries`` (oldest first)."""
    heads: Heads = {}
    for entry in entries:
        heads[entry["wall"][:10]] = {"seq": entry["seq"], "mac": entry["mac"]}
    return heads


def anchored_seqs(*sources: Heads) -> dict[int, str]:
    """seq -> mac from every anchor source; two sources disagreeing is itself tampering."""
    wanted: dict[int, str] = {}
    for heads in sources:
        for day, head in heads.items():
            seq, mac = head.get("seq"), head.get("mac")
            if type(seq) is not int or not isinstance(mac, str):
                raise ClinicalError("audit-anchor", f"the anchor of {day} is malformed")
            if wanted.setdefault(seq, mac) != mac:
                raise ClinicalError("audit-tampered", f"the anchors disagree about record {seq}")
    return wanted


class AnchorFile:
    def __init__(self, path: str | os.PathLike[str], key: bytes) -> None:
        self.path = Path(path)
        self._key = key
        self._days: Heads | None = None

    def load(self) -> Heads:
        """The anchored heads ({} if none yet); ClinicalError if the file was altered."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        try:
            doc = json.loads(raw)
            days, mac = doc["days"], doc.pop("mac")
        except (ValueError, KeyError, TypeError):
            raise ClinicalError("audit-anchor", f"{self.path.name} is unreadable") from None
        if not isinstance(days, dict) or mac != record_mac(self._key, doc):
            raise ClinicalError("audit-tampered", f"{self.path.name} was altered or made with another key")
        return days

    def update(self, heads: Heads) -> None:
        """Merge ``heads`` in and replace the file atomically (synced, then renamed)."""
        if not heads:
            return
        if self._days is None:
            self._days = self.load()
        days = {**self._days, **heads}
        doc = {"kid": key_id(self._key), "days": days}
        doc["mac"] = record_mac(self._key, doc)
        aside = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}")
        with storing("the audit anchor"):
            try:
                fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(json.dumps(doc, separators=(",", ":")).encode())
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(aside, self.path)
            finally:
                aside.unlink(missing_ok=True)
            directory = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        self._days = days


class RedisAnchor:
    """Synchronous on purpose: it runs in the audit writer's thread, after the file anchor.

    While Redis is unreachable, heads wait here and are tried again every
    ``RETRY_SECONDS``, so that an outage costs the audit writer one timeout per retry,
    not one per record."""

    RETRY_SECONDS = 30.0

    def __init__(self, url: str, prefix: str = "telemed:") -> None:
        self._redis = redis.Redis.from_url(url, decode_responses=True, socket_timeout=2,
                                           socket_connect_timeout=2)
        self._key = f"{prefix}audit:anchors"
        self._pending: Heads = {}
        self._retry_at = 0.0

    def __repr__(self) -> str:  # the URL may hold a Redis password
        return f"RedisAnchor(key={self._key!r})"

    def update(self, heads: Heads) -> None:
        self._pending.update(heads)
        if not self._pending or time.monotonic() < self._retry_at:
            return
        try:
            self._redis.hset(self._key, mapping={day: json.dumps(head) for day, head in self._pending.items()})
        except redis.RedisError:
            self._retry_at = time.monotonic() + self.RETRY_SECONDS
            raise
        self._pending.clear()

    def load(self) -> Heads:
        try:
            return {day: json.loads(head) for day, head in self._redis.hgetall(self._key).items()}
        except ValueError:
            raise ClinicalError("audit-anchor", "an anchor in Redis is unreadable") from None

    def close(self) -> None:
        self._redis.close()
