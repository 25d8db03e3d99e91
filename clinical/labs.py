"""FHIR R4 lab results (Observation, DiagnosticReport with its results, Bundle) -> LabResult.

The payload is checked as a whole: JSON primitive types strictly (``fhir_json_types``),
then structure by fhir.resources' R4B models. Then each result is read on its own: one
that cannot be understood (no LOINC code, no UCUM unit, a value we cannot show) is
refused alone and listed with its reason, and the rest are shared. Only a payload with
no readable result is refused whole.

A result is read from its value[x] (a quantity or integer is numeric; a coded value,
string, ratio, range, boolean or time is shown as text, with its codes) and from its
components (blood pressure: systolic and diastolic, each with its own range and flag).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.observation import Observation
from pydantic import ValidationError

from clinical.errors import ClinicalError
from clinical.fhir_json_types import check_json_types
from clinical.lab_result import (
    COMPARATORS,
    STATUSES,
    LabComponent,
    LabResult,
    ReferenceRange,
    RefusedResult,
    accepted_or_raise,
    check_finite,
    check_interpretation,
    check_loinc,
    interpret,
)
from clinical.ucum import check_ucum

LOINC_SYSTEM = "http://loinc.org"
UCUM_SYSTEM = "http://unitsofmeasure.org"
INTERPRETATION_SYSTEMS = frozenset({
    "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
    "http://terminology.hl7.org/CodeSystem/v2-0078",
})
MAX_PAYLOAD = 1024 * 1024

_MODELS = {"Observation": Observation, "DiagnosticReport": DiagnosticReport, "Bundle": Bundle}
_REPORT_REFUSED = {"cancelled", "entered-in-error"}
# value[x] kinds that cannot be shown in a lab table.
_UNSHOWN = ("valueSampledData", "valueAttachment")


@dataclass(frozen=True)
class FhirLabs:
    results: list[LabResult]
    refused: list[RefusedResult]


def parse_fhir(payload: dict[str, Any] | str) -> FhirLabs:
    """The readable lab results in an Observation, DiagnosticReport or Bundle (at least
    one), and those refused alone."""
    if isinstance(payload, (str, bytes)):
        if len(payload) > MAX_PAYLOAD:
            raise ClinicalError("fhir-too-large", f"payload exceeds {MAX_PAYLOAD} bytes")
        try:
            payload = json.loads(payload, parse_constant=_refuse_constant)
        except (ValueError, RecursionError) as exc:
            raise ClinicalError("fhir-json", f"not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise ClinicalError("fhir-structure", "expected a JSON object")
    kind = payload.get("resourceType")
    model = _MODELS.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise ClinicalError(
            "fhir-resource-type", f"resourceType must be one of {sorted(_MODELS)}, got {kind!r}"
        )
    check_json_types(payload)
    try:
        resource = model.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or kind
        raise ClinicalError("fhir-structure", f"invalid {kind} at {where}: {first['msg']}") from None
    except (TypeError, ValueError, RecursionError) as exc:
        raise ClinicalError("fhir-structure", f"invalid {kind}: {exc}") from None

    reader = _Reader()
    if isinstance(resource, Observation):
        reader.observation(resource, None)
    elif isinstance(resource, DiagnosticReport):
        reader.report(resource, {}, set())
    else:
        reader.bundle(resource)
    accepted_or_raise(reader.results, reader.refused, kind)
    return FhirLabs(reader.results, reader.refused)


class _Reader:
    """Collects results and per-result refusals while walking one payload."""

    def __init__(self) -> None:
        self.results: list[LabResult] = []
        self.refused: list[RefusedResult] = []

    def observation(self, obs: Observation, report: DiagnosticReport | None) -> None:
        try:
            self.results.append(_observation(obs, report))
        except ClinicalError as exc:
            self.refused.append(RefusedResult.of(f"Observation/{obs.id or '?'}", exc))

    def report(self, report: DiagnosticReport, index: dict[str, Observation], skip: set[int]) -> None:
        """The report's results, each defaulting to its subject and time; ``skip``: those
        that are Bundle entries of their own, read there."""
        where = f"DiagnosticReport/{report.id or '?'}"
        if report.status in _REPORT_REFUSED:
            self.refused.append(RefusedResult(where, "lab-status", f"report status is {report.status}"))
            return
        local = {f"#{r.id}": r for r in report.contained or [] if isinstance(r, Observation) and r.id}
        if not report.result:
            self.refused.append(RefusedResult(where, "lab-no-results", "the report lists no results"))
        for ref in report.result or []:
            target = local.get(ref.reference or "") or index.get(ref.reference or "")
            if target is None:
                self.refused.append(RefusedResult(
                    str(ref.reference or where), "fhir-reference", "referenced but not in the payload"))
            elif id(target) not in skip:
                self.observation(target, report)

    def bundle(self, bundle: Bundle) -> None:
        entries = [e.resource for e in bundle.entry or [] if e.resource is not None]
        index: dict[str, Observation] = {}
        for entry in bundle.entry or []:
            if isinstance(entry.resource, Observation):
                if entry.fullUrl:
                    index[entry.fullUrl] = entry.resource
                if entry.resource.id:
                    index[f"Observation/{entry.resource.id}"] = entry.resource
        owner: dict[int, DiagnosticReport] = {}
        for resource in entries:
            if isinstance(resource, DiagnosticReport):
                for ref in resource.result or []:
                    if (target := index.get(ref.reference or "")) is not None:
                        owner[id(target)] = resource
        listed = {id(o) for o in index.values()}
        for resource in entries:
            if isinstance(resource, Observation):
                self.observation(resource, owner.get(id(resource)))
            elif isinstance(resource, DiagnosticReport):
                self.report(resource, index, listed)


def _observation(obs: Observation, report: DiagnosticReport | None) -> LabResult:
    if obs.code is None:  # required by FHIR, but the model lets an explicit null through
        raise ClinicalError("fhir-structure", "Observation.code is required")
    if obs.status not in STATUSES:
        raise ClinicalError("lab-status", f"status {obs.status!r} is not one of {sorted(STATUSES)}")
    reading = _reading(obs, "Observation")
    components = [_component(c, i) for i, c in enumerate(obs.component or [])]
    if reading["value_type"] == "none" and not components:
        absent = obs.dataAbsentReason and (obs.dataAbsentReason.text or _first_code(obs.dataAbsentReason))
        raise ClinicalError("lab-value", f"no value{f' ({absent})' if absent else ''} and no components")

    effective = obs.effectiveDateTime or obs.effectiveInstant
    if effective is None and obs.effectivePeriod is not None:
        effective = obs.effectivePeriod.start
    subject = obs.subject
    if report is not None:
        effective = (
            effective
            or report.effectiveDateTime
            or (report.effectivePeriod and report.effectivePeriod.start)
        )
        subject = subject or report.subject
    return LabResult(
        **reading,
        status=obs.status,
        effective=_iso(effective or obs.issued),
        patient=subject.reference if subject is not None else None,
        source="fhir",
        components=components,
    )


def _component(component: Any, index: int) -> LabComponent:
    try:
        reading = _reading(component, "component")
    except ClinicalError as exc:
        raise ClinicalError(exc.code, f"component[{index}]: {exc.message}") from None
    if reading["value_type"] == "none":
        # A part the device could not measure is shown as such, beside the parts it did.
        absent = component.dataAbsentReason
        if absent is None:
            raise ClinicalError("lab-value", f"component[{index}] ({reading['loinc']}) has no value")
        reading.update(value_type="absent", text=absent.text or _first_code(absent) or "absent")
    return LabComponent(**reading)


def _reading(element: Any, what: str) -> dict[str, Any]:
    """The LabComponent fields of an Observation or one of its components."""
    loinc = [c for c in element.code.coding or [] if c.system == LOINC_SYSTEM]
    if not loinc:
        raise ClinicalError("lab-loinc", f"{what}.code has no {LOINC_SYSTEM} coding")
    code = check_loinc(loinc[0].code or "")
    value = _value(element, code)
    ranges = [_range(r, value.get("unit"), code) for r in element.referenceRange or []]
    given = None
    for concept in element.interpretation or []:
        for coding in concept.coding or []:
            if coding.system in INTERPRETATION_SYSTEMS and given is None:
                given = check_interpretation(coding.code or "")
    flags = interpret(value.get("value"), ranges, given, value.get("comparator"))
    return {
        "loinc": code,
        "display": loinc[0].display or element.code.text or code,
        **value,
        "ranges": ranges,
        **flags,
    }


def _value(element: Any, code: str) -> dict[str, Any]:
    for name in _UNSHOWN:
        if getattr(element, name, None) is not None:
            raise ClinicalError("lab-value", f"LOINC {code}: a {name[5:]} value cannot be shown as a lab result")
    if (quantity := element.valueQuantity) is not None:
        if quantity.value is None:
            raise ClinicalError("lab-value", f"LOINC {code}: valueQuantity has no value")
        return {
            "value_type": "quantity",
            "value": check_finite(quantity.value, "value"),
            "unit": _ucum(quantity, code),
            "comparator": quantity.comparator if quantity.comparator in COMPARATORS else None,
        }
    if element.valueInteger is not None:
        return {"value_type": "integer", "value": float(element.valueInteger)}
    if (concept := element.valueCodeableConcept) is not None:
        codes = [
            {"system": c.system or "", "code": c.code or "", "display": c.display or ""}
            for c in concept.coding or []
        ]
        text = concept.text or next((c["display"] or c["code"] for c in codes if c["display"] or c["code"]), "")
        if not text:
            raise ClinicalError("lab-value", f"LOINC {code}: the coded value has neither codes nor text")
        return {"value_type": "coded", "text": text, "codes": codes}
    if element.valueString is not None:
        return {"value_type": "string", "text": element.valueString}
    if element.valueBoolean is not None:
        return {"value_type": "boolean", "text": "yes" if element.valueBoolean else "no"}
    if (ratio := element.valueRatio) is not None:
        return {"value_type": "ratio", "text": f"{_quantity_text(ratio.numerator, code)} : "
                                               f"{_quantity_text(ratio.denominator, code)}"}
    if (span := element.valueRange) is not None:
        return {"value_type": "range", "text": f"{_quantity_text(span.low, code)} – "
                                               f"{_quantity_text(span.high, code)}"}
    for name in ("valueDateTime", "valueTime"):
        if (moment := getattr(element, name, None)) is not None:
            return {"value_type": "datetime", "text": _iso(moment)}
    if (period := element.valuePeriod) is not None:
        return {"value_type": "datetime", "text": f"{_iso(period.start) or '…'} – {_iso(period.end) or '…'}"}
    return {"value_type": "none"}


def _ucum(quantity: Any, code: str) -> str:
    if quantity.system != UCUM_SYSTEM or quantity.code is None:
        raise ClinicalError("lab-unit", f"LOINC {code}: the unit must be coded in {UCUM_SYSTEM}")
    return check_ucum(quantity.code)


def _quantity_text(quantity: Any, code: str) -> str:
    if quantity is None or quantity.value is None:
        return "…"
    number = f"{quantity.comparator or ''}{_number(check_finite(quantity.value, 'value'))}"
    if quantity.code is None and quantity.unit is None:
        return number
    return f"{number} {_ucum(quantity, code)}"


def _range(rng: Any, unit: str | None, code: str) -> ReferenceRange:
    bounds = [_bound(rng.low, unit, code), _bound(rng.high, unit, code)]
    kind = None
    if rng.type is not None:
        kind = _first_code(rng.type) or rng.type.text
    return ReferenceRange(low=bounds[0], high=bounds[1], type=kind, text=rng.text)


def _bound(quantity: Any, unit: str | None, code: str) -> float | None:
    if quantity is None or quantity.value is None:
        return None
    if quantity.code is not None and unit is not None and quantity.code != unit:
        raise ClinicalError(
            "lab-range", f"LOINC {code}: reference range in {quantity.code}, value in {unit}"
        )
    return check_finite(quantity.value, "reference range bound", "lab-range")


def _first_code(concept: Any) -> str | None:
    return next((c.code for c in concept.coding or [] if c.code), None)


def _number(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def _iso(value: Any) -> str | None:
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    return None if value is None else str(value)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")
