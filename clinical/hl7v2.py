"""HL7 v2 ORU^R01 lab results -> LabResult, and the ACK the sending system expects.

Tokenizing, escape sequences (``\\F\\ \\S\\ \\T\\ \\R\\ \\E\\``, ``\\Xhh\\``, ``\\.br\\``...)
and the ACK header come from python-hl7. The ORU semantics stay ours and strict:
MSH-9 ORU^R01, a PID before any OBR, every OBX inside an OBR group. Each OBX is then
read on its own: numeric (NM, or SN such as ``>^11.0``), coded in LOINC ("LN"), with a
UCUM unit, a reference range in OBX-7 (``lo-hi``, ``lo to hi``, ``<hi``, ``>lo``, with
an optional unit; other free text is kept as text), table 0078 flags in OBX-8 and a
result status in OBX-11 (a pending result is shown as such). An OBX that cannot be read
is left out and named in the ACK (``AA`` with an ERR segment per OBX; ``AE`` when no
OBX could be read); the message is never refused for one odd result. One message per
call: no batches, no MLLP framing (the transport strips it).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import hl7
from hl7.containers import Message

from clinical.errors import ClinicalError
from clinical.lab_result import (
    COMPARATORS,
    LabResult,
    ReferenceRange,
    RefusedResult,
    check_finite,
    check_interpretation,
    check_loinc,
    interpret,
)
from clinical.ucum import check_ucum

MAX_MESSAGE = 1024 * 1024

# OBX-11 (HL7 table 0085) -> FHIR ObservationStatus. I (pending) and O (order
# received) carry no value yet and are shown as pending; D, W, X, N carry no result.
_STATUS = {
    "F": "final",
    "U": "final",
    "C": "corrected",
    "A": "amended",
    "P": "preliminary",
    "R": "preliminary",
    "S": "preliminary",
    "I": "registered",
    "O": "registered",
}
_PENDING = frozenset({"I", "O"})
# ClinicalError code -> HL7 table 0357 error condition, for ERR segments.
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
    "hl7-interpretation": ("103", "Table value not found"),
}
# Refusals of the message as such (AR) rather than of its content (AE).
_REJECT = {"hl7-msh", "hl7-message-type", "hl7-version", "hl7-encoding"}
# Display text: highlighting is dropped, a line break stays a line break.
_TEXT_MAP = {"H": "", "N": "", ".br": "\n", ".sp": "\n", ".ce": "\n"}

_SEGMENT_ID = re.compile(r"[A-Z][A-Z0-9]{2}")
_NUM = r"[+-]?(?:\d+\.?\d*|\.\d+)"
_NUMBER = re.compile(_NUM)
# "4.3-6.2", "4.3 - 6.2", "4.3 to 6.2", optionally followed by a unit.
_RANGE = re.compile(rf"\s*({_NUM})\s*(?:-|to)\s*({_NUM})\s*(\S+)?\s*", re.IGNORECASE)
_BOUND = re.compile(rf"\s*(<=|>=|<|>)\s*({_NUM})\s*(\S+)?\s*")
_TS = re.compile(r"(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2}(?:\.\d{1,4})?)?([+-]\d{4})?")
_VERSION = re.compile(r"2\.[1-9](\.\d+)?")


class UnreadableResults(ClinicalError):
    """No OBX of the message could be read: the AE names each one and why."""

    def __init__(self, refused: list[RefusedResult]) -> None:
        first = refused[0]
        more = f" (and {len(refused) - 1} more refused)" if len(refused) > 1 else ""
        super().__init__(first.code, f"{first.where}: {first.error}{more}")
        self.refused = refused


@dataclass(frozen=True)
class Hl7Labs:
    results: list[LabResult]
    refused: list[RefusedResult]
    ack: str  # AA, with one ERR segment per OBX left out


class _Segment:
    """One parsed segment, with fields, repetitions and components by HL7 number."""

    def __init__(self, segment: Any, message: Message) -> None:
        self._segment = segment
        self._message = message
        self.id = str(segment[0])

    def field(self, n: int) -> str:
        """Raw (still escaped) text of field ``n``; MSH-1 is the field separator."""
        return str(self._segment[n]) if n < len(self._segment) else ""

    def repetitions(self, n: int) -> list[list[str]]:
        """Field ``n`` as repetitions of raw components."""
        if n >= len(self._segment):
            return [[""]]
        out = []
        for rep in self._segment[n]:
            out.append([rep] if isinstance(rep, str) else [str(c) for c in rep])
        return out or [[""]]

    def components(self, n: int) -> list[str]:
        return [self.text(c) for c in self.repetitions(n)[0]]

    def component(self, n: int, k: int = 1) -> str:
        parts = self.components(n)
        return parts[k - 1] if k <= len(parts) else ""

    def text(self, raw: str) -> str:
        return self._message.unescape(raw, _TEXT_MAP)


def parse_oru_r01(message: str) -> Hl7Labs:
    """The readable lab results of one ORU^R01 message, those left out, and its ACK."""
    parsed, segments = _segments(message)
    results: list[LabResult] = []
    refused: list[RefusedResult] = []
    patient: str | None = None
    obr: _Segment | None = None
    obr_count = obx_count = 0
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
            obx_count += 1
            try:
                results.append(_observation(seg, obr, patient))
            except ClinicalError as exc:
                refused.append(RefusedResult.of(f"OBX {obx_count}", _hl7_error(exc)))
    if patient is None:
        raise ClinicalError("hl7-structure", "no PID segment")
    if obr_count == 0:
        raise ClinicalError("hl7-structure", "no OBR segment")
    if obx_count == 0:
        raise ClinicalError("hl7-structure", "no OBX segment")
    if not results:
        raise UnreadableResults(refused)
    return Hl7Labs(results, refused, _ack(parsed, "AA", refused))


def nack_for(message: str, error: ClinicalError) -> str | None:
    """An AE (content) or AR (message) ACK for a refused message, with an ERR segment
    per OBX when it was refused because none of its results could be read.

    None when the message has no readable control id: there is nothing to acknowledge.
    """
    try:
        parsed = _header(message)
    except ClinicalError:
        return None
    if not str(parsed.segment("MSH")[10]):
        return None
    code = "AR" if error.code in _REJECT else "AE"
    if isinstance(error, UnreadableResults):
        return _ack(parsed, code, error.refused)
    return _ack(parsed, code, [RefusedResult("", error.code, error.message)])


def _lines(message: object) -> list[str]:
    if not isinstance(message, str):
        raise ClinicalError("hl7-msh", "an HL7 v2 message must be text")
    if len(message) > MAX_MESSAGE:
        raise ClinicalError("hl7-structure", f"message exceeds {MAX_MESSAGE} characters")
    lines = [line for line in re.split(r"\r\n|\r|\n", message) if line]
    if not lines or not lines[0].startswith("MSH") or len(lines[0]) < 8:
        raise ClinicalError("hl7-msh", "message does not start with an MSH segment")
    _check_delimiters(lines[0])
    return lines


def _header(message: object) -> Message:
    return _parse(_lines(message)[:1])


def _parse(lines: list[str]) -> Message:
    try:
        return hl7.parse("\r".join(lines))
    except Exception as exc:  # python-hl7 raises plain ParseException, ValueError...
        raise ClinicalError("hl7-structure", f"unreadable message: {type(exc).__name__}") from None


def _segments(message: object) -> tuple[Message, list[_Segment]]:
    parsed = _parse(_lines(message))
    segments = [_Segment(seg, parsed) for seg in parsed]
    for seg in segments:
        if not _SEGMENT_ID.fullmatch(seg.id):
            raise ClinicalError("hl7-structure", f"malformed segment id {seg.id[:8]!r}")
    _check_header(segments[0])
    return parsed, segments


def _check_delimiters(msh: str) -> None:
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


def _check_header(msh: _Segment) -> None:
    kind = msh.components(9)
    if kind[:2] != ["ORU", "R01"]:
        raise ClinicalError("hl7-message-type", f"MSH-9 is {msh.field(9)!r}, expected ORU^R01")
    if not msh.field(10):
        raise ClinicalError("hl7-msh", "MSH-10 message control id is empty")
    if not _VERSION.fullmatch(msh.component(12, 1)):
        raise ClinicalError("hl7-version", f"MSH-12 version {msh.field(12)!r} is not HL7 v2")


def _observation(obx: _Segment, obr: _Segment, patient: str) -> LabResult:
    kind = obx.field(2)
    if kind not in ("NM", "SN"):
        raise ClinicalError(
            "hl7-value-type", f"OBX-2 value type {kind!r}: only numeric (NM, SN) results"
        )
    code_parts = obx.components(3) + [""] * 6
    if code_parts[2] == "LN":
        code, display = code_parts[0], code_parts[1]
    elif code_parts[5] == "LN":
        code, display = code_parts[3], code_parts[4]
    else:
        raise ClinicalError("hl7-loinc", f"OBX-3 {obx.field(3)!r} has no LOINC (LN) code")
    check_loinc(code, "hl7-loinc")

    status_code = obx.field(11)
    status = _STATUS.get(status_code)
    pending = status_code in _PENDING and not obx.field(5)
    value, comparator = (None, None) if pending else _value(obx, kind, code)

    unit = None
    if obx.component(6, 1) or not pending:
        unit_system = obx.component(6, 3)
        if unit_system not in ("", "UCUM"):
            raise ClinicalError("hl7-unit", f"OBX-6 coding system {unit_system!r} is not UCUM")
        unit = check_ucum(obx.component(6, 1), "hl7-unit")

    ranges = _ranges(obx, unit)
    flags = [f for f in obx.repetitions(8) if f and f[0]]
    given = check_interpretation(obx.text(flags[0][0]), "hl7-interpretation") if flags else None
    if status is None:
        raise ClinicalError("hl7-status", f"OBX-11 result status {status_code!r} is not a result")
    when = obx.component(14, 1) or obr.component(7, 1)
    return LabResult(
        loinc=code,
        display=display or code,
        value_type="none" if pending else "quantity",
        value=value,
        unit=unit,
        comparator=comparator,
        text="pending" if pending else None,
        ranges=ranges,
        **interpret(value, ranges, given, comparator),
        status=status,
        effective=_timestamp(when) if when else None,
        patient=patient,
        source="hl7v2",
    )


def _value(obx: _Segment, kind: str, code: str) -> tuple[float, str | None]:
    reps = obx.repetitions(5)
    if len(reps) > 1:
        raise ClinicalError("hl7-value", "OBX-5 repeats: one value per OBX")
    if kind == "NM":
        raw = obx.text(obx.field(5))
        if not _NUMBER.fullmatch(raw.strip()):
            raise ClinicalError("hl7-value", f"OBX-5 {raw!r} is not a number")
        return check_finite(float(raw), "OBX-5", "hl7-value"), None
    # SN: comparator ^ number [^ separator ^ number]; only a single number is a value.
    parts = [obx.text(p) for p in reps[0]] + ["", "", ""]
    comparator, number, separator, second = parts[:4]
    if separator or second:
        raise ClinicalError("hl7-value", f"OBX-5 {obx.field(5)!r}: a ratio or range is not one value")
    if comparator not in ("", "=") and comparator not in COMPARATORS:
        raise ClinicalError("hl7-value", f"OBX-5 comparator {comparator!r} is not <, <=, >=, > or =")
    if not _NUMBER.fullmatch(number.strip()):
        raise ClinicalError("hl7-value", f"OBX-5 {obx.field(5)!r} has no number")
    return check_finite(float(number), "OBX-5", "hl7-value"), (comparator if comparator in COMPARATORS else None)


def _ranges(obx: _Segment, unit: str | None) -> list[ReferenceRange]:
    raw = obx.field(7)
    if not raw:
        return []
    if len(obx.repetitions(7)[0]) > 1:  # OBX-7 is a plain string
        raise ClinicalError("hl7-range", f"OBX-7 {raw!r} is not a range")
    text = obx.text(raw)
    if (m := _RANGE.fullmatch(text)) and _same_unit(m.group(3), unit):
        low, high = float(m.group(1)), float(m.group(2))
        if low > high:
            raise ClinicalError("hl7-range", f"OBX-7 range {text!r} is reversed")
        return [ReferenceRange(low=low, high=high)]
    if (m := _BOUND.fullmatch(text)) and _same_unit(m.group(3), unit):
        bound = float(m.group(2))
        return [ReferenceRange(low=bound) if m.group(1).startswith(">") else ReferenceRange(high=bound)]
    return [ReferenceRange(text=text)]  # shown as the sender wrote it, never flagged on


def _same_unit(written: str | None, unit: str | None) -> bool:
    # "<10 ug/dl" beside OBX-6 "ug/dl": a bound in the result's unit. Another unit is text.
    return written is None or (unit is not None and written.lower() == unit.lower())


def _hl7_error(exc: ClinicalError) -> ClinicalError:
    """Shared lab-result checks name their codes lab-*; an ACK speaks hl7-*."""
    if exc.code.startswith("lab-"):
        return ClinicalError("hl7-" + exc.code[4:], exc.message)
    return exc


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


def _ack(message: Message, code: str, errors: list[RefusedResult]) -> str:
    """MSH and MSA from python-hl7, then one ERR segment (ERR-2 location, ERR-3 table
    0357 condition, ERR-4 severity, ERR-8 text) per refusal. Left-out OBX are warnings
    (W) beside an accept; a refusal of the whole message is an error (E)."""
    with warnings.catch_warnings():  # python-hl7 0.4.5 stamps MSH-7 with utcnow()
        warnings.simplefilter("ignore", DeprecationWarning)
        ack = message.create_ack(code, message_id=hl7.generate_message_control_id())
    field, component = ack.separators[1], ack.separators[3]
    lines = [str(segment) for segment in ack]
    texts = [" ".join(message.escape(f"{e.where}: {e.error}" if e.where else e.error).split()) for e in errors]
    if code != "AA" and errors:
        lines[1] += field + texts[0]  # MSA-3, for v2.3 readers
    severity = "W" if code == "AA" else "E"
    for error, text in zip(errors, texts, strict=True):
        condition, name = _ERROR_CONDITION.get(error.code, ("207", "Application internal error"))
        location = component.join(["OBX", error.where.split()[-1]]) if error.where.startswith("OBX") else ""
        lines.append(field.join(["ERR", "", location, component.join([condition, name, "HL70357"]),
                                 severity, "", "", "", text]))
    return "\r".join(lines) + "\r"
