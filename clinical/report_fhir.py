"""A signed consult report as a FHIR R4 DiagnosticReport: the template's LOINC code, the
author as performer and interpreter, the cited lab results as contained Observations, the
cited studies as ``imagingStudy`` identifiers (DICOM UIDs), the ECG segments as ``media``,
the findings and the PDF as ``presentedForm``, and the server's signature as an extension.
Validated with fhir.resources' R4B models (R4B is R4 for this resource) before it leaves."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from typing import Any

from fhir.resources.R4B.diagnosticreport import DiagnosticReport

from clinical.consult_report import TEMPLATES

# FHIR R4 dateTime: a year, month or day, or a full time with seconds and a zone.
_DATETIME = re.compile(r"\d{4}(-\d{2}(-\d{2}(T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2}))?)?)?")

IDENTIFIER_SYSTEM = "urn:telemed:consult-report"
IDENTITY_SYSTEM = "urn:telemed:identity"
SIGNATURE_EXTENSION = "urn:telemed:fhir:server-signature"


def diagnostic_report(report: Mapping[str, Any], room: str, seq: int,
                      entries: Mapping[int, Mapping[str, Any]], pdf: bytes | None = None) -> dict[str, Any]:
    """``entries``: the session log by seq, for the cited lab results' values."""
    template = TEMPLATES[report["template"]]
    author = report["author"]
    who = {"display": author.get("name") or author["identity"],
           "identifier": {"system": IDENTITY_SYSTEM, "value": author["identity"]}}
    contained, results, studies, media = [], [], [], []
    for ref in report["references"]:
        if ref["kind"] == "lab":
            for i, result in enumerate(entries[ref["seq"]]["body"].get("results", [])):
                observation = _observation(f"lab-{ref['seq']}-{i}", result)
                contained.append(observation)
                results.append({"reference": f"#{observation['id']}", "display": ref["summary"]})
        elif ref["kind"] == "dicom" and ref.get("study_uid"):
            studies.append({"identifier": {"system": "urn:dicom:uid", "value": f"urn:oid:{ref['study_uid']}"},
                            "display": ref["summary"]})
        elif ref["kind"] == "ecg-announce":
            span = f", {ref['start']:.1f}-{ref['end']:.1f} s" if "start" in ref else ""
            media.append({"comment": f"{ref['summary']}{span}",
                          "link": {"display": f"ECG stream, session entry {ref['seq']}"}})
    forms = [{"contentType": "text/plain; charset=utf-8", "title": "Findings",
              "data": base64.b64encode(report["findings"].encode()).decode()}]
    if pdf is not None:
        forms.append({"contentType": "application/pdf", "title": f"{report['title']} (print)",
                      "data": base64.b64encode(pdf).decode()})
    resource: dict[str, Any] = {
        "resourceType": "DiagnosticReport",
        "id": hashlib.sha256(f"{room}/{seq}".encode()).hexdigest()[:32],
        "identifier": [{"system": IDENTIFIER_SYSTEM, "value": f"{room}/{seq}"}],
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": template.loinc,
                             "display": template.loinc_display}], "text": report["title"]},
        "effectiveDateTime": report["signed_at"],
        "issued": report["signed_at"],
        "performer": [who],
        "resultsInterpreter": [who],
        "conclusion": report["conclusion"],
        "presentedForm": forms,
        "extension": [{"url": SIGNATURE_EXTENSION, "valueString": report["signature"]}],
    }
    for key, value in (("contained", contained), ("result", results), ("imagingStudy", studies), ("media", media)):
        if value:
            resource[key] = value
    DiagnosticReport.model_validate(resource)  # what we send out is valid R4(B), or this is a bug
    return resource


def _observation(ident: str, result: Mapping[str, Any]) -> dict[str, Any]:
    observation: dict[str, Any] = {
        "resourceType": "Observation", "id": ident, "status": result.get("status") or "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": result.get("loinc"),
                             **({"display": result["display"]} if result.get("display") else {})}]},
    }
    value = result.get("value")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        unit = result.get("unit")
        observation["valueQuantity"] = {"value": value, **({"unit": unit, "system": "http://unitsofmeasure.org",
                                                            "code": unit} if unit else {})}
    elif value is not None:
        observation["valueString"] = str(value)
    elif result.get("text"):  # a coded or text result (clinical/lab_result.py): shown as read
        observation["valueString"] = str(result["text"])
    if result.get("effective"):
        observation["effectiveDateTime"] = _fhir_datetime(str(result["effective"]))
    return observation


def _fhir_datetime(value: str) -> str:
    """FHIR's dateTime wants seconds and a zone once it has a time; an HL7 v2 time such
    as 201007281400 (no seconds, no zone) keeps its date."""
    return value if _DATETIME.fullmatch(value) else value[:10]
