"""Binary data-channel formats of docs/signaling.md ("Clinical data"), client side.

Clients speak the documented wire format and import nothing of the server.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

CHUNK_SIZE = 65536  # largest DICOM chunk payload the server accepts

_CHUNK_HEAD = struct.Struct("<2sBB")
_CHUNK_INDEX = struct.Struct("<I")
_ECG_HEAD = struct.Struct("<2sBBIIQHH")  # magic, version, leads, stream, seq, first sample, rate, n


def pack_chunk(transfer_id: str, index: int, payload: bytes) -> bytes:
    """One ``bulk`` message: chunk ``index`` of transfer ``transfer_id``."""
    tid = transfer_id.encode("ascii")
    return _CHUNK_HEAD.pack(b"DC", 1, len(tid)) + tid + _CHUNK_INDEX.pack(index) + payload


def pack_ecg(stream_id: int, seq: int, first_sample: int, sample_rate: int,
             samples: np.ndarray) -> bytes:
    """One ``ecg`` frame from an int16-compatible (samples, leads) array."""
    n, leads = samples.shape
    head = _ECG_HEAD.pack(b"EC", 1, leads, stream_id, seq, first_sample, sample_rate, n)
    return head + np.ascontiguousarray(samples, dtype="<i2").tobytes()


@dataclass(frozen=True)
class EcgFrame:
    stream_id: int
    seq: int
    first_sample: int
    sample_rate: int
    samples: np.ndarray  # int16, (samples, leads)


def unpack_ecg(data: bytes) -> EcgFrame:
    """A received ``ecg`` frame; ValueError if it is not one."""
    if len(data) < _ECG_HEAD.size:
        raise ValueError("shorter than an ECG frame header")
    magic, version, leads, stream_id, seq, first, rate, n = _ECG_HEAD.unpack_from(data)
    if magic != b"EC" or version != 1 or len(data) != _ECG_HEAD.size + 2 * leads * n:
        raise ValueError("not a version 1 ECG frame")
    samples = np.frombuffer(data, "<i2", offset=_ECG_HEAD.size).reshape(n, leads)
    return EcgFrame(stream_id, seq, first, rate, samples)
