"""One error type for the vault, with a stable code for callers to map onto HTTP/WS errors."""

from __future__ import annotations


class VaultError(Exception):
    """``code``: ``wrong-key`` (no key of the ring wrapped this), ``tampered`` (a chunk or the
    header fails authentication), ``format`` (not a vault file), ``closed`` (writer closed)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
