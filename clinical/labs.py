"""FHIR R4 lab results (Observation, DiagnosticReport with contained results, Bundle) -> LabResult.

Structure is validated by fhir.resources' R4B models; on top of that every result must be
coded in LOINC and carry a numeric valueQuantity with a UCUM unit.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.observation import Observation
from pydantic import ValidationError

from clinical.errors import ClinicalError
from clinical.lab_result import (
    STATUSES,
    LabResult,
    check_finite,
    check_loinc,
    check_ucum,
    interpret,
)

LOINC_SYSTEM = "http://loinc.org"
UCUM_SYSTEM = "http://unitsofmeasure.org"
INTERPRETATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
MAX_PAYLOAD = 1024 * 1024

_MODELS = {"Observation": Observation, "DiagnosticReport": DiagnosticReport, "Bundle": Bundle}
_REPORT_REFUSED = {"cancelled", "entered-in-error"}


def parse_fhir(payload: dict[str, Any] | str) -> list[LabResult]:
    """All lab results in an Observation, DiagnosticReport or Bundle; at least one."""
    if isinstance(payload, (str, bytes)):
        if len(payload) > MAX_PAYLOAD:
            raise ClinicalError("fhir-too-large", f"payload exceeds {MAX_PAYLOAD} bytes")
        try:
            payload = json.loads(payload, parse_constant=_refuse_constant)
        except ValueError as exc:
            raise ClinicalError("fhir-json", f"not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise ClinicalError("fhir-structure", "expected a JSON object")
    kind = payload.get("resourceType")
    model = _MODELS.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise ClinicalError(
            "fhir-resource-type", f"resourceType must be one of {sorted(_MODELS)}, got {kind!r}"
        )
    try:
        resource = model.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or kind
        raise ClinicalError(
            "fhir-structure", f"invalid {kind} at {where}: {first['msg']}"
        ) from None
    except (TypeError, ValueError) as exc:
        raise ClinicalError("fhir-structure", f"invalid {kind}: {exc}") from None

    if isinstance(resource, Observation):
        results = [_observation(resource, None)]
    elif isinstance(resource, DiagnosticReport):
        results = [_observation(obs, resource) for obs in _report_results(resource, {})]
    else:
        results = _bundle(resource)
    if not results:
        raise ClinicalError("fhir-no-results", "no lab result in the payload")
    return results


def _bundle(bundle: Bundle) -> list[LabResult]:
    entries = [e for e in bundle.entry or [] if e.resource is not None]
    index: dict[str, Observation] = {}
    for e in entries:
        if isinstance(e.resource, Observation):
            if e.fullUrl:
                index[e.fullUrl] = e.resource
            if e.resource.id:
                index[f"Observation/{e.resource.id}"] = e.resource
    # A report's subject and time are the defaults for the results it lists.
    owner: dict[int, DiagnosticReport] = {}
    contained: dict[int, list[Observation]] = {}
    entry_ids = {id(o) for o in index.values()}
    for e in entries:
        if isinstance(e.resource, DiagnosticReport):
            listed = _report_results(e.resource, index)
            contained[id(e.resource)] = [o for o in listed if id(o) not in entry_ids]
            owner.update((id(o), e.resource) for o in listed)
    results = []
    for e in entries:
        if isinstance(e.resource, Observation):
            results.append(_observation(e.resource, owner.get(id(e.resource))))
        elif isinstance(e.resource, DiagnosticReport):
            results.extend(_observation(o, e.resource) for o in contained[id(e.resource)])
    return results


def _report_results(report: DiagnosticReport, index: dict[str, Observation]) -> list[Observation]:
    if report.status in _REPORT_REFUSED:
        raise ClinicalError("lab-status", f"DiagnosticReport status is {report.status}")
    local = {f"#{r.id}": r for r in report.contained or [] if isinstance(r, Observation) and r.id}
    found = []
    for ref in report.result or []:
        target = local.get(ref.reference or "") or index.get(ref.reference or "")
        if target is None:
            raise ClinicalError("fhir-reference", f"result {ref.reference!r} is not in the payload")
        found.append(target)
    if not found:
        raise ClinicalError("fhir-no-results", "DiagnosticReport lists no results")
    return found


def _observation(obs: Observation, report: DiagnosticReport | None) -> LabResult:
    if obs.code is None:  # required by FHIR, but the model lets an explicit null through
        raise ClinicalError("fhir-structure", "Observation.code is required")
    loinc = [c for c in obs.code.coding or [] if c.system == LOINC_SYSTEM]
    if not loinc:
        name = f"Observation {obs.id}" if obs.id else "Observation"
        raise ClinicalError("lab-loinc", f"{name} has no {LOINC_SYSTEM} coding")
    code = check_loinc(loinc[0].code or "")
    if obs.status not in STATUSES:
        raise ClinicalError(
            "lab-status", f"Observation status {obs.status!r} not in {sorted(STATUSES)}"
        )

    quantity = obs.valueQuantity
    if quantity is None:
        raise ClinicalError("lab-value", f"LOINC {code}: a numeric valueQuantity is required")
    if quantity.value is None:
        raise ClinicalError("lab-value", f"LOINC {code}: valueQuantity has no value")
    if quantity.system != UCUM_SYSTEM:
        raise ClinicalError("lab-unit", f"LOINC {code}: unit system must be {UCUM_SYSTEM}")
    unit = check_ucum(quantity.code)
    value = check_finite(quantity.value, "value")

    low = high = None
    if obs.referenceRange:
        rng = obs.referenceRange[0]
        low = _bound(rng.low, unit, code)
        high = _bound(rng.high, unit, code)
    given = None
    for concept in obs.interpretation or []:
        for coding in concept.coding or []:
            if coding.system == INTERPRETATION_SYSTEM and given is None:
                given = coding.code
    interpretation, abnormal = interpret(value, low, high, given, quantity.comparator)

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
    display = loinc[0].display or obs.code.text or code
    return LabResult(
        loinc=code,
        display=display,
        value=value,
        unit=unit,
        ref_low=low,
        ref_high=high,
        interpretation=interpretation,
        abnormal=abnormal,
        status=obs.status,
        effective=_iso(effective or obs.issued),
        patient=subject.reference if subject is not None else None,
        comparator=quantity.comparator,
        source="fhir",
    )


def _bound(quantity: Any, unit: str, code: str) -> float | None:
    if quantity is None or quantity.value is None:
        return None
    if quantity.code is not None and quantity.code != unit:
        raise ClinicalError(
            "lab-range", f"LOINC {code}: reference range in {quantity.code}, value in {unit}"
        )
    return check_finite(quantity.value, "reference range bound", "lab-range")


def _iso(value: Any) -> str | None:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return None if value is None else str(value)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")
