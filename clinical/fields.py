"""Strict field checks for JSON control messages (shared by the announce parsers)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from clinical.errors import ClinicalError


def require_mapping(msg: Any, code: str) -> Mapping[str, Any]:
    if not isinstance(msg, Mapping):
        raise ClinicalError(code, f"expected a JSON object, got {type(msg).__name__}")
    return msg


def reject_unknown(msg: Mapping[str, Any], allowed: set[str], code: str) -> None:
    unknown = sorted(set(msg) - allowed)
    if unknown:
        raise ClinicalError(code, f"unknown field(s): {', '.join(map(str, unknown))}")


def check_type(msg: Mapping[str, Any], expected: str, code: str) -> None:
    """``type`` may be omitted (the caller already dispatched on it) but never wrong."""
    if "type" in msg and msg["type"] != expected:
        raise ClinicalError(code, f"type must be {expected!r}")


def require_int(msg: Mapping[str, Any], key: str, lo: int, hi: int, code: str) -> int:
    value = msg.get(key)
    # bool is an int subclass; JSON true must not pass as 1.
    if type(value) is not int:
        raise ClinicalError(code, f"{key} must be an integer")
    if not lo <= value <= hi:
        raise ClinicalError(code, f"{key} must be in [{lo}, {hi}], got {value}")
    return value


def require_str(msg: Mapping[str, Any], key: str, pattern: re.Pattern[str], code: str) -> str:
    value = msg.get(key)
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ClinicalError(code, f"{key} is missing or malformed")
    return value
