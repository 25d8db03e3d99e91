"""Messages between the server and the compositor process: a 4-byte length, then a
pickled tuple. Both ends are our own code, started by us; nothing else speaks on it."""

from __future__ import annotations

import pickle
import struct

HEADER = struct.Struct(">I")
MAX_MESSAGE = 64 * 1024 * 1024


def pack(message: tuple) -> bytes:
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(body)) + body


def unpack(body: bytes) -> tuple:
    return pickle.loads(body)
