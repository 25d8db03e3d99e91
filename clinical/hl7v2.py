"""HL7 v2 ORU^R01 lab results -> LabResult, and the ACK the sending system expects.

Parsed by hand, strictly: delimiters from MSH-1/MSH-2, MSH-9 ORU^R01, a PID before
any OBR, every OBX inside an OBR group. Each OBX must be numeric (NM) and coded in
LOINC ("LN"), with UCUM units, an optional "lo-hi" (or "<hi", ">lo") range in OBX-7,
table 0078 flags in OBX-8 and a result status in OBX-11. One message per call: no
batches, no MLLP framing (the transport strips it).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime

from clinical.errors import ClinicalError
from clinical.lab_result import LabResult, check_finite, check_loinc, check_ucum, interpret

MAX_MESSAGE = 1024 * 1024

# OBX-11 (HL7 table 0085) -> FHIR ObservationStatus. D, W, X and order-state codes
# carry no result to show.
_STATUS = {
    "F": "final",
    "U": "final",
    "C": "corrected",
    "A": "amended",
    "P": "preliminary",
    "R": "preliminary",
    "S": "preliminary",
}
# ClinicalError code -> HL7 table 0357 error condition, for the ERR segment of a NAK.
_ERROR_CONDITION = {
    "hl7-structure": ("100", "Segment sequence error"),
    "hl7-msh": ("101", "Required field missing"),
    "hl7-message-type": ("200", "Unsupported message type"),
    "hl7-version": ("203", "Unsupported version id"),
    "hl7-value": ("102", "Data type error"),
    "hl7-value-type": ("102", "Data type error"),
    "hl7-range": ("102", "Data type error"),
    "hl7-timestamp": ("102", "Data type error"),
    "hl7-unit": ("103", "Table value not found"),
    "hl7-loinc": ("103", "Table value not found"),
    "hl7-status": ("103", "Table value not found"),
    "lab-interpretation": ("103", "Table value not found"),
}
# Refusals of the message as such (AR) rather than of its content (AE).
_REJECT = {"hl7-msh", "hl7-message-type", "hl7-version", "hl7-encoding"}

_SEGMENT_ID = re.compile(r"[A-Z][A-Z0-9]{2}")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)")
_RANGE = re.compile(rf"\s*({_NUMBER.pattern})\s*-\s*({_NUMBER.pattern})\s*")
_BOUND = re.compile(rf"\s*([<>])\s*({_NUMBER.pattern})\s*")
_TS = re.compile(r"(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2}(?:\.\d{1,4})?)?([+-]\d{4})?")
_VERSION = re.compile(r"2\.[1-9](\.\d+)?")


@dataclass(frozen=True)
class _Delimiters:
    field: str
    component: str
    repetition: str
    escape: str
    subcomponent: str

    def unescape(self, text: str) -> str:
        table = {
            "F": self.field,
            "S": self.component,
            "T": self.subcomponent,
            "R": self.repetition,
            "E": self.escape,
        }
        esc = re.escape(self.escape)
        return re.sub(rf"{esc}([FSTRE]){esc}", lambda m: table[m.group(1)], text)

    def escape_text(self, text: str) -> str:
        text = text.replace(self.escape, f"{self.escape}E{self.escape}")
        for char, code in (
            (self.field, "F"),
            (self.component, "S"),
            (self.repetition, "R"),
            (self.subcomponent, "T"),
        ):
            text = text.replace(char, f"{self.escape}{code}{self.escape}")
        return " ".join(text.split())  # no segment breaks inside a field


class _Segment:
    def __init__(self, raw: str, d: _Delimiters) -> None:
        self.d = d
        self.fields = raw.split(d.field)
        self.id = self.fields[0]
        if self.id == "MSH":  # MSH-1 is the field separator itself
            self.fields.insert(1, d.field)

    def field(self, n: int) -> str:
        return self.fields[n] if n < len(self.fields) else ""

    def components(self, n: int) -> list[str]:
        first = self.field(n).split(self.d.repetition)[0]
        return [self.d.unescape(c) for c in first.split(self.d.component)]

    def component(self, n: int, k: int = 1) -> str:
        parts = self.components(n)
        return parts[k - 1] if k <= len(parts) else ""


def parse_oru_r01(message: str) -> tuple[list[LabResult], str]:
    """The lab results of one ORU^R01 message and its accept ACK (MSA|AA)."""
    segments = _segments(message)
    msh = segments[0]
    results: list[LabResult] = []
    patient: str | None = None
    obr: _Segment | None = None
    obr_count = 0
    for seg in segments[1:]:
        if seg.id == "MSH":
            raise ClinicalError("hl7-structure", "one message per call; batches are not accepted")
        if seg.id == "PID":
            patient = seg.component(3, 1)
            if not patient:
                raise ClinicalError("hl7-structure", "PID-3 patient identifier is empty")
            obr = None
        elif seg.id == "OBR":
            if patient is None:
                raise ClinicalError("hl7-structure", "OBR before any PID")
            obr, obr_count = seg, obr_count + 1
        elif seg.id == "OBX":
            if obr is None:
                raise ClinicalError("hl7-structure", "OBX outside an OBR group")
            results.append(_observation(seg, obr, patient))
    if patient is None:
        raise ClinicalError("hl7-structure", "no PID segment")
    if obr_count == 0:
        raise ClinicalError("hl7-structure", "no OBR segment")
    if not results:
        raise ClinicalError("hl7-structure", "no OBX segment")
    return results, _ack(msh, "AA")


def nack_for(message: str, error: ClinicalError) -> str | None:
    """An AE (content) or AR (message) ACK for a refused message.

    None when the message has no readable control id: there is nothing to acknowledge.
    """
    try:
        msh = _segments(message, header_only=True)[0]
    except ClinicalError:
        return None
    if not msh.field(10):
        return None
    return _ack(msh, "AR" if error.code in _REJECT else "AE", error)


def _segments(message: str, header_only: bool = False) -> list[_Segment]:
    if not isinstance(message, str):
        raise ClinicalError("hl7-msh", "an HL7 v2 message must be text")
    if len(message) > MAX_MESSAGE:
        raise ClinicalError("hl7-structure", f"message exceeds {MAX_MESSAGE} characters")
    lines = [line for line in re.split(r"\r\n|\r|\n", message) if line]
    if not lines or not lines[0].startswith("MSH") or len(lines[0]) < 8:
        raise ClinicalError("hl7-msh", "message does not start with an MSH segment")
    d = _delimiters(lines[0])
    if header_only:
        return [_Segment(lines[0], d)]
    segments = []
    for line in lines:
        seg = _Segment(line, d)
        if not _SEGMENT_ID.fullmatch(seg.id):
            raise ClinicalError("hl7-structure", f"malformed segment id {seg.id[:8]!r}")
        segments.append(seg)
    _check_header(segments[0])
    return segments


def _delimiters(msh: str) -> _Delimiters:
    field = msh[3]
    encoding = msh[4:].split(field, 1)[0]
    chars = field + encoding
    # MSH-2 is ^~\& (v2.7+ may add the truncation character, ignored here).
    if (
        len(encoding) not in (4, 5)
        or len(set(chars)) != len(chars)
        or any(c.isalnum() or c.isspace() for c in chars)
    ):
        raise ClinicalError("hl7-msh", "MSH-1/MSH-2 delimiters are invalid")
    return _Delimiters(field, encoding[0], encoding[1], encoding[2], encoding[3])


def _check_header(msh: _Segment) -> None:
    kind = msh.components(9)
    if kind[:2] != ["ORU", "R01"]:
        raise ClinicalError("hl7-message-type", f"MSH-9 is {msh.field(9)!r}, expected ORU^R01")
    if not msh.field(10):
        raise ClinicalError("hl7-msh", "MSH-10 message control id is empty")
    if not _VERSION.fullmatch(msh.component(12, 1)):
        raise ClinicalError("hl7-version", f"MSH-12 version {msh.field(12)!r} is not HL7 v2")


def _observation(obx: _Segment, obr: _Segment, patient: str) -> LabResult:
    if obx.field(2) != "NM":
        raise ClinicalError(
            "hl7-value-type", f"OBX-2 value type {obx.field(2)!r}: only numeric (NM) results"
        )
    code_parts = obx.components(3) + [""] * 6
    if code_parts[2] == "LN":
        code, display = code_parts[0], code_parts[1]
    elif code_parts[5] == "LN":
        code, display = code_parts[3], code_parts[4]
    else:
        raise ClinicalError("hl7-loinc", f"OBX-3 {obx.field(3)!r} has no LOINC (LN) code")
    check_loinc(code, "hl7-loinc")

    raw_value = obx.field(5)
    if obx.d.repetition in raw_value or not _NUMBER.fullmatch(raw_value):
        raise ClinicalError("hl7-value", f"LOINC {code}: OBX-5 {raw_value!r} is not a number")
    value = check_finite(float(raw_value), "OBX-5", "hl7-value")

    unit, unit_system = obx.component(6, 1), obx.component(6, 3)
    if unit_system not in ("", "UCUM"):
        raise ClinicalError(
            "hl7-unit", f"LOINC {code}: OBX-6 coding system {unit_system!r} is not UCUM"
        )
    check_ucum(unit, "hl7-unit")

    low, high = _range(obx.field(7), code)
    flag = next((f for f in obx.field(8).split(obx.d.repetition) if f), None)
    interpretation, abnormal = interpret(value, low, high, flag)

    status = _STATUS.get(obx.field(11))
    if status is None:
        raise ClinicalError(
            "hl7-status", f"LOINC {code}: OBX-11 result status {obx.field(11)!r} is not a result"
        )
    when = obx.component(14, 1) or obr.component(7, 1)
    return LabResult(
        loinc=code,
        display=display or code,
        value=value,
        unit=unit,
        ref_low=low,
        ref_high=high,
        interpretation=interpretation,
        abnormal=abnormal,
        status=status,
        effective=_timestamp(when) if when else None,
        patient=patient,
        source="hl7v2",
    )


def _range(text: str, code: str) -> tuple[float | None, float | None]:
    if not text:
        return None, None
    if m := _RANGE.fullmatch(text):
        low, high = float(m.group(1)), float(m.group(3))
        if low > high:
            raise ClinicalError("hl7-range", f"LOINC {code}: OBX-7 range {text!r} is reversed")
        return low, high
    if m := _BOUND.fullmatch(text):
        bound = float(m.group(2))
        return (bound, None) if m.group(1) == ">" else (None, bound)
    raise ClinicalError("hl7-range", f"LOINC {code}: OBX-7 {text!r} is not 'lo-hi', '<hi' or '>lo'")


def _timestamp(ts: str) -> str:
    """HL7 TS/DTM (YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ]) -> ISO 8601 of the same precision."""
    m = _TS.fullmatch(ts)
    if not m:
        raise ClinicalError("hl7-timestamp", f"{ts!r} is not an HL7 timestamp")
    year, month, day, hour, minute, second, zone = m.groups()
    try:  # let datetime judge calendar validity
        datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            int(float(second or 0)),
        )
    except ValueError:
        raise ClinicalError("hl7-timestamp", f"{ts!r} is not a valid date/time") from None
    out = "-".join(p for p in (year, month, day) if p)
    if hour:
        out += f"T{hour}:{minute or '00'}" + (f":{second}" if second else "")
        if zone:
            out += f"{zone[:3]}:{zone[3:]}"
    return out


def _ack(msh: _Segment, code: str, error: ClinicalError | None = None) -> str:
    d = msh.d
    encoding = d.component + d.repetition + d.escape + d.subcomponent
    header = [
        "MSH",
        encoding,
        msh.field(5),  # we answer as the application the message was sent to
        msh.field(6),
        msh.field(3),
        msh.field(4),
        datetime.now().strftime("%Y%m%d%H%M%S"),
        "",
        d.component.join(["ACK", msh.component(9, 2), "ACK"]),
        uuid.uuid4().hex[:20],
        msh.field(11),
        msh.field(12),
    ]
    segments = [d.field.join(header), d.field.join(["MSA", code, msh.field(10)])]
    if error is not None:
        text = d.escape_text(error.message)
        segments[1] += d.field + text
        condition, name = _ERROR_CONDITION.get(error.code, ("207", "Application internal error"))
        segments.append(
            d.field.join(
                [
                    "ERR",
                    "",
                    "",
                    d.component.join([condition, name, "HL70357"]),
                    "E",
                    "",
                    "",
                    "",
                    text,
                ]
            )
        )
    return "\r".join(segments) + "\r"
