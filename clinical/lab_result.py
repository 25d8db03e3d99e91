"""The one internal form of a lab result, whether it arrived as FHIR or as HL7 v2."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from typing import Any

from clinical.errors import ClinicalError

# Status values kept, as FHIR ObservationStatus. Cancelled or entered-in-error results
# carry no usable value and are refused rather than shown.
STATUSES = frozenset({"registered", "preliminary", "final", "amended", "corrected"})

# HL7 v3 ObservationInterpretation / HL7 v2 table 0078 codes that make sense for a
# numeric result, and whether each means "abnormal".
INTERPRETATIONS: dict[str, bool] = {
    "N": False,
    "L": True,
    "H": True,
    "LL": True,
    "HH": True,
    "LU": True,
    "HU": True,
    "A": True,
    "AA": True,
}

_LOINC = re.compile(r"(\d{1,7})-(\d)")
# Case-sensitive UCUM codes are printable ASCII without spaces; full grammar checks
# would need a UCUM library.
_UCUM = re.compile(r"[\x21-\x7e]{1,64}")


@dataclass(frozen=True)
class LabResult:
    loinc: str
    display: str
    value: float
    unit: str  # UCUM code
    ref_low: float | None
    ref_high: float | None
    interpretation: str | None  # a key of INTERPRETATIONS
    abnormal: bool | None  # None when neither a flag nor a range says
    status: str  # one of STATUSES
    effective: str | None  # ISO 8601
    patient: str | None  # FHIR subject reference, or the HL7 PID-3 identifier
    comparator: str | None = None  # "<", "<=", ">=", ">" when the value is a bound
    source: str = "fhir"  # "fhir" or "hl7v2"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_loinc(code: str, error: str = "lab-loinc") -> str:
    """A LOINC code such as "2345-7", including its mod-10 check digit."""
    match = _LOINC.fullmatch(code or "")
    if not match:
        raise ClinicalError(error, f"{code!r} is not a LOINC code (digits-checkdigit)")
    if _mod10(match.group(1)) != int(match.group(2)):
        raise ClinicalError(error, f"LOINC {code} has a wrong check digit")
    return code


def check_ucum(code: str, error: str = "lab-unit") -> str:
    if not isinstance(code, str) or not _UCUM.fullmatch(code):
        raise ClinicalError(error, f"unit {code!r} is not a UCUM code")
    return code


def check_finite(value: float, what: str, error: str = "lab-value") -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ClinicalError(error, f"{what} is not a finite number")
    return value


def interpret(
    value: float,
    low: float | None,
    high: float | None,
    given: str | None,
    comparator: str | None = None,
) -> tuple[str | None, bool | None]:
    """The sender's flag wins (it may know age- or sex-specific limits), else the range decides."""
    if given is not None:
        if given not in INTERPRETATIONS:
            raise ClinicalError(
                "lab-interpretation",
                f"interpretation {given!r} is not one of {sorted(INTERPRETATIONS)}",
            )
        return given, INTERPRETATIONS[given]
    if comparator is not None or (low is None and high is None):
        return None, None  # "<0.01" cannot be placed in a range reliably
    if low is not None and value < low:
        return "L", True
    if high is not None and value > high:
        return "H", True
    return "N", False


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
