"""Structured (JSON lines) logging. Secrets are never passed to the logger, and
anything that looks like a bearer token or password field is masked as a guard."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from contextvars import ContextVar

# The HTTP request or WebSocket session a line belongs to (signaling/request_ids.py).
request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

_SECRET = re.compile(r'(?i)(bearer\s+|"?(?:password|token|secret|admin_key|credential)"?\s*[:=]\s*"?)[^\s",}]+')


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": round(time.time(), 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": _SECRET.sub(r"\1***", record.getMessage()),
        }
        if (rid := request_id.get()) is not None:
            entry["request_id"] = rid
        for key, value in getattr(record, "fields", {}).items():
            entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiortc/aioice are chatty at info about every candidate pair.
    for noisy in ("aioice", "aiortc"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))

