"""DICOM upload over data channels: a JSON announce, binary chunks, a JSON complete.

Control channel (JSON text)::

    {"type": "dicom-announce", "transfer_id": "t-42", "name": "ct.dcm",
     "size": 39206, "sha256": "<64 hex>", "chunk_count": 1, "chunk_size": 65536}
    {"type": "dicom-complete", "transfer_id": "t-42"}

``chunk_size`` is optional (default and maximum 65536, minimum 1024). Chunk ``i``
holds bytes ``[i * chunk_size, (i + 1) * chunk_size)`` of the object, so every chunk
but the last is exactly ``chunk_size`` long and ``chunk_count`` must equal
``ceil(size / chunk_size)``. Unknown fields are refused.

Bulk channel (binary), one message per chunk, integers little-endian::

    offset  size  field
    0       2     magic b"DC"
    2       1     version = 1
    3       1     n = byte length of transfer_id (1..64)
    4       n     transfer_id, ASCII [A-Za-z0-9._-]
    4 + n   4     chunk index, u32, 0-based
    8 + n   rest  payload (1..65536 bytes)

Chunks may arrive in any order. A repeated chunk with identical bytes is ignored
(retransmits are harmless); a repeat with different bytes is refused. The complete
message may overtake the last chunks (different channels are not ordered with
respect to each other); the transfer finishes when both have arrived.
"""

from __future__ import annotations

import hashlib
import math
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from clinical.errors import ClinicalError
from clinical.fields import check_type, reject_unknown, require_int, require_mapping, require_str

CHUNK_SIZE = 65536
MIN_CHUNK_SIZE = 1024  # bounds chunk_count, and so the per-transfer bookkeeping
DEFAULT_MAX_SIZE = 64 * 1024 * 1024
MAGIC = b"DC"
VERSION = 1

ANNOUNCE = "dicom-announce"
COMPLETE = "dicom-complete"

_HEAD = struct.Struct("<2sBB")
_INDEX = struct.Struct("<I")
_TRANSFER_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
# Display name only (storage is content-addressed), but it may become a download
# filename, so no path separators or control characters.
_NAME = re.compile(r"[^/\\\x00-\x1f\x7f]{1,255}")


@dataclass(frozen=True)
class TransferAnnounce:
    transfer_id: str
    name: str
    size: int
    sha256: str
    chunk_count: int
    chunk_size: int = CHUNK_SIZE

    @classmethod
    def from_message(cls, msg: Any, max_size: int = DEFAULT_MAX_SIZE) -> TransferAnnounce:
        code = "dicom-announce"
        msg = require_mapping(msg, code)
        reject_unknown(
            msg,
            {"type", "transfer_id", "name", "size", "sha256", "chunk_count", "chunk_size"},
            code,
        )
        check_type(msg, ANNOUNCE, code)
        transfer_id = require_str(msg, "transfer_id", _TRANSFER_ID, code)
        name = require_str(msg, "name", _NAME, code)
        if name in {".", ".."}:
            raise ClinicalError(code, "name must not be '.' or '..'")
        sha256 = require_str(msg, "sha256", _SHA256, code).lower()
        if type(msg.get("size")) is int and msg["size"] > max_size:
            raise ClinicalError(
                "dicom-too-large", f"object of {msg['size']} bytes exceeds {max_size}"
            )
        size = require_int(msg, "size", 1, max_size, code)
        chunk_size = CHUNK_SIZE
        if "chunk_size" in msg:
            chunk_size = require_int(msg, "chunk_size", MIN_CHUNK_SIZE, CHUNK_SIZE, code)
        chunk_count = require_int(msg, "chunk_count", 1, 2**32 - 1, code)
        expected = math.ceil(size / chunk_size)
        if chunk_count != expected:
            raise ClinicalError(
                code,
                f"chunk_count {chunk_count} does not match size/chunk_size (expected {expected})",
            )
        return cls(transfer_id, name, size, sha256, chunk_count, chunk_size)

    @classmethod
    def for_data(
        cls, transfer_id: str, name: str, data: bytes, chunk_size: int = CHUNK_SIZE
    ) -> TransferAnnounce:
        """Sender side: the announce describing ``data``."""
        return cls(
            transfer_id,
            name,
            len(data),
            hashlib.sha256(data).hexdigest(),
            math.ceil(len(data) / chunk_size),
            chunk_size,
        )

    def to_message(self) -> dict[str, Any]:
        return {
            "type": ANNOUNCE,
            "transfer_id": self.transfer_id,
            "name": self.name,
            "size": self.size,
            "sha256": self.sha256,
            "chunk_count": self.chunk_count,
            "chunk_size": self.chunk_size,
        }

    def chunk_length(self, index: int) -> int:
        if index == self.chunk_count - 1:
            return self.size - index * self.chunk_size
        return self.chunk_size


def pack_chunk(transfer_id: str, index: int, payload: bytes) -> bytes:
    if not _TRANSFER_ID.fullmatch(transfer_id):
        raise ClinicalError("dicom-chunk", "malformed transfer_id")
    if not 0 <= index < 2**32:
        raise ClinicalError("dicom-chunk", f"chunk index {index} out of u32 range")
    if not 1 <= len(payload) <= CHUNK_SIZE:
        raise ClinicalError(
            "dicom-chunk-size", f"payload of {len(payload)} bytes, allowed 1..{CHUNK_SIZE}"
        )
    tid = transfer_id.encode("ascii")
    return _HEAD.pack(MAGIC, VERSION, len(tid)) + tid + _INDEX.pack(index) + payload


def unpack_chunk(data: bytes) -> tuple[str, int, bytes]:
    if len(data) < _HEAD.size:
        raise ClinicalError("dicom-chunk", "chunk frame shorter than its header")
    magic, version, id_len = _HEAD.unpack_from(data)
    if magic != MAGIC:
        raise ClinicalError("dicom-chunk", "bad chunk magic")
    if version != VERSION:
        raise ClinicalError("dicom-chunk", f"unsupported chunk version {version}")
    start = _HEAD.size + id_len + _INDEX.size
    if len(data) <= start:
        raise ClinicalError("dicom-chunk", "chunk frame has no payload")
    try:
        transfer_id = bytes(data[_HEAD.size : _HEAD.size + id_len]).decode("ascii")
    except UnicodeDecodeError:
        raise ClinicalError("dicom-chunk", "transfer_id is not ASCII") from None
    if not _TRANSFER_ID.fullmatch(transfer_id):
        raise ClinicalError("dicom-chunk", "malformed transfer_id")
    (index,) = _INDEX.unpack_from(data, _HEAD.size + id_len)
    payload = bytes(data[start:])
    if len(payload) > CHUNK_SIZE:
        raise ClinicalError(
            "dicom-chunk-size", f"payload of {len(payload)} bytes exceeds {CHUNK_SIZE}"
        )
    return transfer_id, index, payload


def iter_chunk_frames(announce: TransferAnnounce, data: bytes) -> Iterator[bytes]:
    """Sender side: the bulk-channel messages carrying ``data``."""
    for index in range(announce.chunk_count):
        start = index * announce.chunk_size
        yield pack_chunk(announce.transfer_id, index, data[start : start + announce.chunk_size])


class DicomAssembler:
    """Reassembles one announced transfer. Memory grows only with bytes received."""

    def __init__(self, announce: TransferAnnounce) -> None:
        self.announce = announce
        self._chunks: dict[int, bytes] = {}
        self.received_bytes = 0

    @classmethod
    def from_message(cls, msg: Any, max_size: int = DEFAULT_MAX_SIZE) -> DicomAssembler:
        return cls(TransferAnnounce.from_message(msg, max_size))

    def add(self, index: int, payload: bytes) -> bool:
        """Store one chunk; False if it was an identical repeat."""
        a = self.announce
        if len(payload) > CHUNK_SIZE:
            raise ClinicalError(
                "dicom-chunk-size", f"payload of {len(payload)} bytes exceeds {CHUNK_SIZE}"
            )
        if not 0 <= index < a.chunk_count:
            raise ClinicalError(
                "dicom-chunk-index", f"chunk index {index} outside 0..{a.chunk_count - 1}"
            )
        expected = a.chunk_length(index)
        if len(payload) != expected:
            code = "dicom-overflow" if len(payload) > expected else "dicom-chunk-size"
            raise ClinicalError(
                code, f"chunk {index} has {len(payload)} bytes, expected {expected}"
            )
        previous = self._chunks.get(index)
        if previous is not None:
            if previous != payload:
                raise ClinicalError(
                    "dicom-chunk-conflict", f"chunk {index} resent with different bytes"
                )
            return False
        self._chunks[index] = bytes(payload)
        self.received_bytes += len(payload)
        return True

    @property
    def done(self) -> bool:
        return len(self._chunks) == self.announce.chunk_count

    def missing(self) -> list[int]:
        return [i for i in range(self.announce.chunk_count) if i not in self._chunks]

    def complete(self) -> bytes:
        a = self.announce
        if not self.done:
            missing = self.missing()
            raise ClinicalError(
                "dicom-incomplete",
                f"{len(missing)} of {a.chunk_count} chunks missing (first: {missing[0]})",
            )
        data = b"".join(self._chunks[i] for i in range(a.chunk_count))
        if len(data) != a.size:
            raise ClinicalError("dicom-size", f"received {len(data)} bytes, announced {a.size}")
        if hashlib.sha256(data).hexdigest() != a.sha256:
            raise ClinicalError(
                "dicom-sha256", "SHA-256 of the received bytes does not match the announce"
            )
        return data


@dataclass(frozen=True)
class ReceivedObject:
    announce: TransferAnnounce
    data: bytes


class DicomTransfers:
    """The transfers in flight from one sender: routes bulk-channel frames by transfer_id.

    The complete message travels on the control channel, which may overtake the last
    chunks on the bulk channel, so a transfer finishes when both have arrived:
    ``add_frame`` or ``complete``, whichever comes last, returns the verified object.
    Any error forgets the transfer; the sender starts it again. ``max_active`` bounds
    memory at ``max_active * max_size`` per sender.
    """

    def __init__(self, max_size: int = DEFAULT_MAX_SIZE, max_active: int = 4) -> None:
        self.max_size = max_size
        self.max_active = max_active
        self._active: dict[str, DicomAssembler] = {}
        self._completing: set[str] = set()

    def announce(self, msg: Any) -> TransferAnnounce:
        assembler = DicomAssembler.from_message(msg, self.max_size)
        tid = assembler.announce.transfer_id
        if tid in self._active:
            raise ClinicalError("dicom-announce", f"transfer {tid!r} is already in progress")
        if len(self._active) >= self.max_active:
            raise ClinicalError("dicom-busy", f"at most {self.max_active} transfers at a time")
        self._active[tid] = assembler
        return assembler.announce

    def add_frame(self, data: bytes) -> ReceivedObject | None:
        tid, index, payload = unpack_chunk(data)
        assembler = self._get(tid)
        try:
            assembler.add(index, payload)
        except ClinicalError:
            self.abort(tid)
            raise
        return self._finish(tid) if tid in self._completing and assembler.done else None

    def complete(self, msg: Any) -> ReceivedObject | None:
        msg = require_mapping(msg, "dicom-complete")
        reject_unknown(msg, {"type", "transfer_id"}, "dicom-complete")
        check_type(msg, COMPLETE, "dicom-complete")
        tid = require_str(msg, "transfer_id", _TRANSFER_ID, "dicom-complete")
        assembler = self._get(tid)
        self._completing.add(tid)
        return self._finish(tid) if assembler.done else None

    def abort(self, transfer_id: str) -> None:
        self._active.pop(transfer_id, None)
        self._completing.discard(transfer_id)

    def pending(self) -> list[str]:
        return list(self._active)

    def _finish(self, transfer_id: str) -> ReceivedObject:
        assembler = self._active[transfer_id]
        self.abort(transfer_id)
        return ReceivedObject(assembler.announce, assembler.complete())

    def _get(self, transfer_id: str) -> DicomAssembler:
        try:
            return self._active[transfer_id]
        except KeyError:
            raise ClinicalError(
                "dicom-unknown-transfer", f"no transfer {transfer_id!r} announced"
            ) from None
