"""Live ECG over data channels: the binary frame format and per-stream consistency checks.

Binary channel, one frame per message, all integers little-endian::

    offset  size  field
    0       2     magic b"EC"
    2       1     version = 1
    3       1     lead_count: 1, 3 or 12
    4       4     stream_id, u32
    8       4     seq, u32: +1 per frame
    12      8     first_sample, u64: index of the frame's first sample since stream start
    20      2     sample_rate, u16, Hz: 250..1000
    22      2     samples_per_lead, u16: >= 1
    24      ...   int16 samples, sample-major (interleaved):
                  s0.L0 s0.L1 .. s0.Ln  s1.L0 s1.L1 .. s1.Ln  ...

The frame is exactly 24 + 2 * lead_count * samples_per_lead bytes, at most 65536.
Sample-major matches how devices produce data (all leads at one instant) and maps to
a numpy array of shape (samples, leads) without copying.

Control channel (JSON)::

    {"type": "ecg-announce", "stream_id": 7, "leads": ["I", "II", "III"],
     "sample_rate": 500, "uv_per_lsb": 1.0}        # uv_per_lsb optional, default 1.0
    {"type": "ecg-end", "stream_id": 7}

``uv_per_lsb`` is the amplitude of one sample unit in microvolts.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from clinical.errors import ClinicalError
from clinical.fields import check_type, reject_unknown, require_int, require_mapping

MAGIC = b"EC"
VERSION = 1
LEAD_COUNTS = frozenset({1, 3, 12})
MIN_RATE, MAX_RATE = 250, 1000
MAX_FRAME = 65536
ANNOUNCE = "ecg-announce"
END = "ecg-end"

STANDARD_LEADS: dict[int, tuple[str, ...]] = {
    1: ("II",),
    3: ("I", "II", "III"),
    12: ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"),
}

_HEADER = struct.Struct("<2sBBIIQHH")
_SAMPLE = np.dtype("<i2")
_LEAD_NAME = re.compile(r"[A-Za-z0-9_.+-]{1,16}")


@dataclass(frozen=True)
class EcgFrame:
    stream_id: int
    seq: int
    first_sample: int
    sample_rate: int
    samples: np.ndarray = field(repr=False)  # int16, shape (samples_per_lead, lead_count)

    @property
    def lead_count(self) -> int:
        return int(self.samples.shape[1])

    @property
    def samples_per_lead(self) -> int:
        return int(self.samples.shape[0])


def pack_frame(
    stream_id: int, seq: int, first_sample: int, sample_rate: int, samples: np.ndarray
) -> bytes:
    """Encode ``samples`` (integer array, shape (samples, leads)) as one frame."""
    arr = np.asarray(samples)
    if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.integer):
        raise ClinicalError("ecg-frame", "samples must be a 2-D integer array (samples, leads)")
    if arr.size and (arr.min() < -32768 or arr.max() > 32767):
        raise ClinicalError("ecg-frame", "sample values exceed int16")
    n, leads = arr.shape
    _check_shape(leads, sample_rate, n)
    for name, value, bits in (
        ("stream_id", stream_id, 32),
        ("seq", seq, 32),
        ("first_sample", first_sample, 64),
    ):
        if not 0 <= value < 2**bits:
            raise ClinicalError("ecg-frame", f"{name} {value} out of u{bits} range")
    header = _HEADER.pack(MAGIC, VERSION, leads, stream_id, seq, first_sample, sample_rate, n)
    return header + arr.astype(_SAMPLE, copy=False).tobytes()


def unpack_frame(data: bytes) -> EcgFrame:
    if len(data) < _HEADER.size:
        raise ClinicalError(
            "ecg-frame-length", f"frame of {len(data)} bytes is shorter than its header"
        )
    magic, version, leads, stream_id, seq, first_sample, rate, n = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise ClinicalError("ecg-frame", "bad frame magic")
    if version != VERSION:
        raise ClinicalError("ecg-frame", f"unsupported frame version {version}")
    _check_shape(leads, rate, n)
    expected = _HEADER.size + 2 * leads * n
    if len(data) != expected:
        raise ClinicalError(
            "ecg-frame-length", f"frame is {len(data)} bytes, header implies {expected}"
        )
    samples = np.frombuffer(data, dtype=_SAMPLE, offset=_HEADER.size).reshape(n, leads)
    return EcgFrame(stream_id, seq, first_sample, rate, samples)


def iter_frames(
    stream_id: int,
    sample_rate: int,
    samples: np.ndarray,
    samples_per_frame: int,
    first_seq: int = 0,
    first_sample: int = 0,
) -> Iterator[bytes]:
    """Sender side: cut a (samples, leads) array into consecutive frames."""
    if samples_per_frame < 1:
        raise ClinicalError("ecg-frame", "samples_per_frame must be >= 1")
    for k, start in enumerate(range(0, len(samples), samples_per_frame)):
        chunk = samples[start : start + samples_per_frame]
        yield pack_frame(stream_id, first_seq + k, first_sample + start, sample_rate, chunk)


def _check_shape(leads: int, rate: int, n: int) -> None:
    if leads not in LEAD_COUNTS:
        raise ClinicalError("ecg-lead-count", f"lead_count {leads} not in {sorted(LEAD_COUNTS)}")
    if not MIN_RATE <= rate <= MAX_RATE:
        raise ClinicalError(
            "ecg-sample-rate", f"sample_rate {rate} Hz outside {MIN_RATE}..{MAX_RATE}"
        )
    if n < 1:
        raise ClinicalError("ecg-frame", "samples_per_lead must be >= 1")
    if _HEADER.size + 2 * leads * n > MAX_FRAME:
        raise ClinicalError(
            "ecg-frame-length", f"{n} samples x {leads} leads exceeds {MAX_FRAME} bytes"
        )


@dataclass(frozen=True)
class EcgAnnounce:
    stream_id: int
    leads: tuple[str, ...]
    sample_rate: int
    uv_per_lsb: float = 1.0

    @classmethod
    def from_message(cls, msg: Any) -> EcgAnnounce:
        code = "ecg-announce"
        msg = require_mapping(msg, code)
        reject_unknown(msg, {"type", "stream_id", "leads", "sample_rate", "uv_per_lsb"}, code)
        check_type(msg, ANNOUNCE, code)
        stream_id = require_int(msg, "stream_id", 0, 2**32 - 1, code)
        rate = require_int(msg, "sample_rate", MIN_RATE, MAX_RATE, code)
        leads = msg.get("leads")
        if not isinstance(leads, list) or len(leads) not in LEAD_COUNTS:
            raise ClinicalError(code, f"leads must be a list of {sorted(LEAD_COUNTS)} names")
        if not all(isinstance(name, str) and _LEAD_NAME.fullmatch(name) for name in leads):
            raise ClinicalError(code, "lead names must be 1-16 characters of [A-Za-z0-9_.+-]")
        if len(set(leads)) != len(leads):
            raise ClinicalError(code, "lead names must be unique")
        scale = msg.get("uv_per_lsb", 1.0)
        if type(scale) not in (int, float) or not math.isfinite(scale) or not 0 < scale <= 1000:
            raise ClinicalError(code, "uv_per_lsb must be a number in (0, 1000]")
        return cls(stream_id, tuple(leads), rate, float(scale))

    def to_message(self) -> dict[str, Any]:
        return {
            "type": ANNOUNCE,
            "stream_id": self.stream_id,
            "leads": list(self.leads),
            "sample_rate": self.sample_rate,
            "uv_per_lsb": self.uv_per_lsb,
        }


def parse_end(msg: Any) -> int:
    """The stream_id of an ``ecg-end`` message."""
    msg = require_mapping(msg, "ecg-end")
    reject_unknown(msg, {"type", "stream_id"}, "ecg-end")
    check_type(msg, END, "ecg-end")
    return require_int(msg, "stream_id", 0, 2**32 - 1, "ecg-end")


@dataclass(frozen=True)
class Gap:
    """A discontinuity worth showing on the strip; the frame itself is still accepted.

    kind "seq": frames were lost (expected/got are seq numbers);
    kind "samples": seq is contiguous but the sample index jumped (sample indexes);
    kind "late": an older frame arrived after a newer one (seq numbers).
    """

    kind: str
    expected: int
    got: int


class EcgStream:
    """Checks the frames of one announced stream and counts what went missing."""

    def __init__(self, announce: EcgAnnounce) -> None:
        self.announce = announce
        self.frames = 0
        self.gaps = 0
        self.late = 0
        self.ended = False
        self._next_seq: int | None = None
        self._next_sample = 0

    @classmethod
    def from_message(cls, msg: Any) -> EcgStream:
        return cls(EcgAnnounce.from_message(msg))

    def accept(self, frame: EcgFrame | bytes) -> list[Gap]:
        """Refuse a frame that contradicts the announce; report gaps without refusing."""
        if not isinstance(frame, EcgFrame):
            frame = unpack_frame(frame)
        a = self.announce
        if self.ended:
            raise ClinicalError("ecg-ended", f"stream {a.stream_id} has ended")
        if frame.stream_id != a.stream_id:
            raise ClinicalError(
                "ecg-inconsistent", f"frame for stream {frame.stream_id}, expected {a.stream_id}"
            )
        if frame.lead_count != len(a.leads):
            raise ClinicalError(
                "ecg-inconsistent", f"{frame.lead_count} leads, announced {len(a.leads)}"
            )
        if frame.sample_rate != a.sample_rate:
            raise ClinicalError(
                "ecg-inconsistent", f"{frame.sample_rate} Hz, announced {a.sample_rate} Hz"
            )

        gaps: list[Gap] = []
        if self._next_seq is not None and frame.seq < self._next_seq:
            gaps.append(Gap("late", self._next_seq, frame.seq))
            self.late += 1
        else:
            if self._next_seq is not None and frame.seq > self._next_seq:
                gaps.append(Gap("seq", self._next_seq, frame.seq))
            elif self._next_seq is not None and frame.first_sample != self._next_sample:
                gaps.append(Gap("samples", self._next_sample, frame.first_sample))
            self._next_seq = frame.seq + 1
            self._next_sample = frame.first_sample + frame.samples_per_lead
        self.frames += 1
        self.gaps += sum(g.kind != "late" for g in gaps)
        return gaps

    def end(self) -> None:
        self.ended = True

    def stats(self) -> dict[str, int]:
        return {"frames": self.frames, "gaps": self.gaps, "late": self.late}
