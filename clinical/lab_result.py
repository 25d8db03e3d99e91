"""The one internal form of a lab result, whether it arrived as FHIR or as HL7 v2.

A result is numeric (``value`` and a UCUM ``unit``) or not (``text``, with its ``codes``
when coded); it may carry components of its own (blood pressure: systolic, diastolic),
each read like a result. Every reference range is kept for display (``ranges``); only
the one that says what normal is (``ref_low``/``ref_high``) places a value.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from clinical.errors import ClinicalError

# Status values kept, as FHIR ObservationStatus. Cancelled or entered-in-error results
# carry no usable value and are refused rather than shown.
STATUSES = frozenset({"registered", "preliminary", "final", "amended", "corrected"})

# HL7 v3 ObservationInterpretation codes (HL7 v2 table 0078 shares them) -> whether the
# code means "abnormal"; None where the code says something else (resistance, trend,
# a test problem), so that no colour is implied.
INTERPRETATIONS: dict[str, bool | None] = {
    "N": False, "NEG": False, "ND": False, "S": False, "SDD": None, "NR": None,
    "L": True, "H": True, "LL": True, "HH": True, "LU": True, "HU": True, "L<": True, "H>": True,
    "<": True, ">": True, "A": True, "AA": True, "AC": True, "POS": True, "DET": True, "R": True,
    "RR": True, "I": None, "IND": None, "E": None, "EX": None, "EXP": None, "HX": None, "LX": None,
    "HM": None, "U": None, "D": None, "B": None, "W": None, "WR": None, "MS": None, "VS": None,
    "NS": None, "NCL": None, "QCF": None, "TOX": True, "CAR": None, "Carrier": None, "IE": None,
    "OBX": None, "UNE": None, "SYN-R": None, "SYN-S": None,
}
COMPARATORS = frozenset({"<", "<=", ">=", ">"})

_LOINC = re.compile(r"(\d{1,7})-(\d)")


@dataclass(frozen=True, kw_only=True)
class ReferenceRange:
    low: float | None = None
    high: float | None = None
    type: str | None = None  # "normal", "treatment", "Severe TBI"...; None when untyped
    text: str | None = None  # the sender's words, for ranges given (also) as text


@dataclass(frozen=True, kw_only=True)
class LabComponent:
    """One coded value with its ranges and flag: a whole result, or a part of one."""

    loinc: str
    display: str
    # quantity | integer (numeric); coded | string | ratio | range | boolean | datetime | absent
    # (shown as text); none (the result is its components)
    value_type: str = "quantity"
    value: float | None = None
    unit: str | None = None  # UCUM code
    comparator: str | None = None  # "<", "<=", ">=", ">" when the value is a bound
    text: str | None = None  # how a non-numeric value (or a numeric one with words) reads
    codes: list[dict[str, str]] = field(default_factory=list)  # {"system", "code", "display"}
    ref_low: float | None = None  # the range the flag was computed against
    ref_high: float | None = None
    ranges: list[ReferenceRange] = field(default_factory=list)
    interpretation: str | None = None  # a key of INTERPRETATIONS
    interpretation_source: str | None = None  # "sender", or "computed" when we placed it
    abnormal: bool | None = None  # None when neither a flag nor a range says


@dataclass(frozen=True, kw_only=True)
class LabResult(LabComponent):
    status: str  # one of STATUSES
    effective: str | None  # ISO 8601
    patient: str | None  # FHIR subject reference, or the HL7 PID-3 identifier
    source: str = "fhir"  # "fhir" or "hl7v2"
    components: list[LabComponent] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RefusedResult:
    """A result left out of an otherwise accepted message, and why."""

    where: str  # "Observation/f204", "OBX 3"
    code: str
    error: str

    @classmethod
    def of(cls, where: str, exc: ClinicalError) -> RefusedResult:
        return cls(where, exc.code, exc.message)

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def accepted_or_raise(results: list[LabResult], refused: list[RefusedResult], what: str) -> None:
    """A message none of whose results can be read is refused as a whole, naming why."""
    if results:
        return
    if not refused:
        raise ClinicalError("lab-no-results", f"no lab result in the {what}")
    first = refused[0]
    more = f" (and {len(refused) - 1} more refused)" if len(refused) > 1 else ""
    raise ClinicalError(first.code, f"{first.where}: {first.error}{more}")


def check_loinc(code: str, error: str = "lab-loinc") -> str:
    """A LOINC code such as "2345-7", including its mod-10 check digit."""
    match = _LOINC.fullmatch(code or "")
    if not match:
        raise ClinicalError(error, f"{code!r} is not a LOINC code (digits-checkdigit)")
    if _mod10(match.group(1)) != int(match.group(2)):
        raise ClinicalError(error, f"LOINC {code} has a wrong check digit")
    return code


def check_finite(value: float, what: str, error: str = "lab-value") -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ClinicalError(error, f"{what} is not a finite number")
    return value


def check_interpretation(code: str, error: str = "lab-interpretation") -> str:
    if code not in INTERPRETATIONS:
        raise ClinicalError(error, f"interpretation {code!r} is not an ObservationInterpretation code")
    return code


def flagging_range(ranges: list[ReferenceRange]) -> ReferenceRange | None:
    """The range that says what normal is: the one typed ``normal``, else the single
    untyped one. Typed ranges (treatment, severity bands) are shown, never flagged on."""
    normal = [r for r in ranges if r.type == "normal"]
    if len(normal) == 1:
        return normal[0]
    untyped = [r for r in ranges if r.type is None]
    return untyped[0] if not normal and len(untyped) == 1 else None


def interpret(
    value: float | None,
    ranges: list[ReferenceRange],
    given: str | None,
    comparator: str | None = None,
) -> dict[str, Any]:
    """The sender's flag wins (it may know age- or sex-specific limits); else the
    flagging range places the value, and the flag says it was computed here.

    Returns the interpretation fields of a LabComponent.
    """
    chosen = flagging_range(ranges)
    bounds = {"ref_low": chosen.low if chosen else None, "ref_high": chosen.high if chosen else None}
    if given is not None:
        return {**bounds, "interpretation": given, "interpretation_source": "sender",
                "abnormal": INTERPRETATIONS[given]}
    low, high = bounds["ref_low"], bounds["ref_high"]
    # "<0.01" cannot be placed in a range reliably, nor can a value without one.
    if value is None or comparator is not None or chosen is None or (low is None and high is None):
        return {**bounds, "interpretation": None, "interpretation_source": None, "abnormal": None}
    flag = "L" if low is not None and value < low else "H" if high is not None and value > high else "N"
    return {**bounds, "interpretation": flag, "interpretation_source": "computed",
            "abnormal": flag != "N"}


def _mod10(digits: str) -> int:
    # LOINC's check digit is the Luhn mod-10 of the part before the hyphen.
    total = 0
    for position, char in enumerate(reversed(digits)):
        d = int(char)
        if position % 2 == 0:
            d *= 2
            d = d - 9 if d > 9 else d
        total += d
    return (10 - total % 10) % 10
