"""API keys for hospital systems: a public key id and a high-entropy secret.

The secret is shown once, at creation; the store keeps only its SHA-256, which is enough for
a random 256-bit secret (no password stretching needed: nothing to guess).
A key is presented as ``Authorization: Bearer <key_id>.<secret>``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

MAX_KEY_NAME_LENGTH = 80
_PREFIX = "tmk_"
_PRESENTED_RE = re.compile(r"(tmk_[0-9a-f]{16})\.([A-Za-z0-9_-]{43})")


@dataclass(frozen=True, slots=True)
class ApiKey:
    key_id: str
    name: str
    secret_sha256: str = field(repr=False)
    created_at: float
    revoked: bool = False

    @classmethod
    def new(cls, name: Any) -> tuple[ApiKey, str]:
        """A fresh key and its secret, which is never stored and is shown only this once."""
        if not isinstance(name, str) or not 0 < len(name) <= MAX_KEY_NAME_LENGTH \
                or not name.isprintable():
            raise ValueError(f"name must be 1-{MAX_KEY_NAME_LENGTH} printable characters")
        key_id = _PREFIX + secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        return cls(key_id, name, _digest(secret), time.time()), secret

    def matches(self, secret: str) -> bool:
        return not self.revoked and hmac.compare_digest(_digest(secret), self.secret_sha256)

    def to_public_dict(self) -> dict[str, Any]:
        return {"key_id": self.key_id, "name": self.name, "created_at": self.created_at,
                "revoked": self.revoked}

    def to_record(self) -> dict[str, Any]:
        return {**self.to_public_dict(), "secret_sha256": self.secret_sha256}

    @classmethod
    def from_record(cls, d: dict[str, Any]) -> ApiKey:
        return cls(d["key_id"], d["name"], d["secret_sha256"], float(d["created_at"]),
                   bool(d["revoked"]))


def split_presented(value: str | None) -> tuple[str, str] | None:
    """``(key_id, secret)`` if ``value`` has the shape of an API key, else None."""
    match = _PRESENTED_RE.fullmatch(value or "")
    return (match.group(1), match.group(2)) if match else None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()
