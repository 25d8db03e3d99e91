"""Validation of client messages (docs/signaling.md). Everything a peer sends passes
through here before it touches state; failures become ProtocolError with a code.
Each type's fields are checked against its JSON Schema (message_schema.py)."""

from __future__ import annotations

import json

from .message_schema import problem

MAX_WS_MESSAGE = 256 * 1024
MAX_ID = 128
MAX_LABEL = 128


class ProtocolError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def decode(raw: str) -> dict:
    if len(raw) > MAX_WS_MESSAGE:
        raise ProtocolError("too-large", f"message exceeds {MAX_WS_MESSAGE} bytes")
    try:
        message = json.loads(raw)
    except (ValueError, RecursionError):
        raise ProtocolError("bad-json", "message is not valid JSON") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ProtocolError("bad-request", "message must be an object with a string 'type'")
    return message


def check(message: dict) -> None:
    """``message`` (from decode) against its type's schema; a reply to a bad one can
    still carry the message's id, so this comes apart from decoding."""
    wrong = problem(message)
    if wrong is not None:
        raise ProtocolError("bad-request", wrong)


def publish_map(value: object) -> dict[str, dict]:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > 16:
        raise ProtocolError("bad-request", "'publish' must map at most 16 mids to track info")
    out = {}
    for mid, info in value.items():
        if not isinstance(mid, str) or not mid or len(mid) > 32 or not isinstance(info, dict):
            raise ProtocolError("bad-request", "'publish' entries must be {mid: {source, label, track_id?}}")
        source = info.get("source", "camera")
        label = info.get("label", "")
        if not isinstance(source, str) or len(source) > 32 or not isinstance(label, str) or len(label) > MAX_LABEL:
            raise ProtocolError("bad-request", "track 'source' and 'label' must be short strings")
        out[mid] = {"source": source, "label": label}
        # After a resume: the track id this m-line published before, to go on with it.
        track_id = info.get("track_id")
        if track_id is not None:
            if not isinstance(track_id, str) or len(track_id) > MAX_ID:
                raise ProtocolError("bad-request", "track 'track_id' must be a track id")
            out[mid]["track_id"] = track_id
    return out


def subscribe_map(value: object) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > 256:
        raise ProtocolError("bad-request", "'subscribe' must map at most 256 mids to track ids")
    for mid, track_id in value.items():
        if not isinstance(mid, str) or not mid or len(mid) > 32 or not isinstance(track_id, str) or len(track_id) > MAX_ID:
            raise ProtocolError("bad-request", "'subscribe' entries must be {mid: track_id}")
    return dict(value)
