"""The server's signature on consult reports: Ed25519 over the report's canonical JSON.

The key is derived from the master key ring (``KeyRing.derive("consult-report-signing")``),
so nothing more is kept; the public key travels with every signature, and the key id
(its SHA-256, first 16 hex digits) names it. Anyone with the report and the server's
public key can check that the server issued it unchanged.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

PURPOSE = "consult-report-signing"


def canonical(content: Mapping[str, Any]) -> bytes:
    """The bytes signed: sorted keys, no spaces, UTF-8."""
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class ReportSigner:
    def __init__(self, seed: bytes) -> None:
        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        raw = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.public_key = base64.b64encode(raw).decode()
        self.key_id = hashlib.sha256(raw).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"ReportSigner(key_id={self.key_id})"

    def sign(self, content: Mapping[str, Any]) -> dict[str, str]:
        signature = self._key.sign(canonical(content))
        return {"alg": "Ed25519", "key_id": self.key_id, "public_key": self.public_key,
                "signature": base64.b64encode(signature).decode()}


def verify(content: Mapping[str, Any], signature: Mapping[str, str], public_key: str) -> bool:
    """Whether ``signature`` is the holder of ``public_key``'s over ``content``."""
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key))
        key.verify(base64.b64decode(signature["signature"]), canonical(content))
    except (InvalidSignature, ValueError, KeyError, TypeError):
        return False
    return True
