"""The consult report: what a remote consult delivers, written by the responsible doctor
at its end, signed by the server, exported as a FHIR R4 DiagnosticReport.

A report has a template (its specialty: stroke, ECG, imaging), findings and a
conclusion, and references to what was discussed, picked from the session: DICOM
objects (by sha256), lab results (by the seq of their notice and LOINC code) and ECG
segments (a recording with start and end seconds). ``ConsultReport.from_message``
checks every reference against the session log, so that a report cites only what the
room actually saw, and copies what each one is (name, value, lead set) into the report,
which then stands on its own.

The author, the room and the time are the server's, never the message's.
"""

from __future__ import annotations

import base64
import math
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from pydantic import ValidationError

from clinical.errors import ClinicalError
from clinical.fields import reject_unknown, require_mapping
from clinical.report_signer import ReportSigner

CODE = "report"
MAX_FINDINGS = 20_000
MAX_CONCLUSION = 5_000
MAX_REFERENCES = 64
_SHA256 = re.compile(r"[0-9a-f]{64}")
_LOINC = "http://loinc.org"


@dataclass(frozen=True)
class Template:
    key: str
    title: str
    loinc: str  # DiagnosticReport.code
    loinc_display: str
    findings_prompt: str  # the headings the page pre-fills the findings with
    conclusion_prompt: str


TEMPLATES: dict[str, Template] = {
    t.key: t
    for t in (
        Template("stroke", "Stroke consult", "11488-4", "Consult note",
                 "Onset (last known well):\nNIHSS:\nImaging (CT/CTA):\nContraindications to thrombolysis:\n",
                 "Diagnosis, thrombolysis / thrombectomy decision, transfer:"),
        Template("ecg", "ECG consult", "11524-6", "EKG study",
                 "Rhythm:\nRate:\nPR / QRS / QTc:\nAxis:\nST-T changes:\n",
                 "Interpretation and recommended action:"),
        Template("imaging", "Imaging consult", "18748-4", "Diagnostic imaging study",
                 "Technique:\nComparison:\nFindings:\n",
                 "Impression:"),
    )
}


@dataclass(frozen=True)
class ConsultReport:
    """The signed content: everything the signature covers, and nothing else."""

    content: dict[str, Any]

    @classmethod
    def from_message(cls, message: Any, entries: Iterable[Mapping[str, Any]], *, room: str,
                     author: Mapping[str, str], signed_at: str) -> ConsultReport:
        """Check a ``consult-report`` message against the session log ``entries``."""
        msg = require_mapping(message, CODE)
        reject_unknown(msg, {"type", "ref", "template", "findings", "conclusion", "references"}, CODE)
        template = TEMPLATES.get(msg.get("template")) if isinstance(msg.get("template"), str) else None
        if template is None:
            raise ClinicalError(CODE, f"template must be one of {sorted(TEMPLATES)}")
        findings = _text(msg, "findings", MAX_FINDINGS)
        conclusion = _text(msg, "conclusion", MAX_CONCLUSION)
        refs = require_mapping(msg.get("references", {}), CODE)
        reject_unknown(refs, {"dicom", "labs", "ecg"}, CODE)
        seen = _Session(entries)
        return cls({
            "id": str(uuid.uuid4()),
            "room": room,
            "author": dict(author),
            "signed_at": signed_at,
            "template": template.key,
            "title": template.title,
            "findings": findings,
            "conclusion": conclusion,
            "references": {
                "dicom": [seen.dicom(x) for x in _list(refs, "dicom")],
                "labs": [seen.lab(x) for x in _list(refs, "labs")],
                "ecg": [seen.ecg(x) for x in _list(refs, "ecg")],
            },
        })

    def signed(self, signer: ReportSigner) -> dict[str, Any]:
        """The notice body: the content, its signature and its FHIR export."""
        signature = signer.sign(self.content)
        return {**self.content, "signature": signature, "fhir": to_fhir(self.content, signature)}


def to_fhir(content: Mapping[str, Any], signature: Mapping[str, str]) -> dict[str, Any]:
    """A FHIR R4 DiagnosticReport (checked with fhir.resources' R4B model, whose
    DiagnosticReport is R4's): the cited lab results as contained Observations, the
    images and ECG segments and the server's signature as extensions."""
    template = TEMPLATES[content["template"]]
    observations = [_observation(i, lab) for i, lab in enumerate(content["references"]["labs"])]
    extensions = [
        {"url": "urn:telemed:consult-report:dicom",
         "valueString": f"{d['name']} ({d['modality']}, SOP Instance {d['sop_instance_uid']}, sha256 {d['sha256']})"}
        for d in content["references"]["dicom"]
    ] + [
        {"url": "urn:telemed:consult-report:ecg",
         "valueString": f"{e['recording']} {e['start_s']:g}-{e['end_s']:g} s ({', '.join(e['leads'])} at {e['sample_rate']} Hz)"}
        for e in content["references"]["ecg"]
    ] + [
        {"url": "urn:telemed:consult-report:signature",
         "valueString": f"{signature['alg']} {signature['key_id']} {signature['signature']}"},
    ]
    text = f"{template.title}\n\nFindings:\n{content['findings']}\n\nConclusion:\n{content['conclusion']}\n"
    resource = {
        "resourceType": "DiagnosticReport",
        "id": content["id"],
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "OTH",
                                  "display": "Other"}], "text": template.title}],
        "code": {"coding": [{"system": _LOINC, "code": template.loinc, "display": template.loinc_display}],
                 "text": template.title},
        "issued": content["signed_at"],
        "performer": [{"display": content["author"]["name"],
                       "identifier": {"system": "urn:telemed:identity", "value": content["author"]["identity"]}}],
        "conclusion": content["conclusion"],
        "presentedForm": [{"contentType": "text/plain; charset=utf-8", "title": template.title,
                           "data": base64.b64encode(text.encode()).decode()}],
        "extension": extensions,
    }
    if observations:
        resource["contained"] = observations
        resource["result"] = [{"reference": f"#{o['id']}"} for o in observations]
    try:
        DiagnosticReport.model_validate(resource)
    except ValidationError as exc:  # a bug of ours, not the sender's: say where
        raise ClinicalError("internal", f"report export is not valid FHIR: {exc.errors()[0]['msg']}") from None
    return resource


class _Session:
    """What the session log says was shared, for checking references."""

    def __init__(self, entries: Iterable[Mapping[str, Any]]) -> None:
        self.dicoms: dict[str, Mapping[str, Any]] = {}
        self.labs: dict[tuple[int, str], Mapping[str, Any]] = {}
        self.recordings: dict[str, Mapping[str, Any]] = {}
        for e in entries:
            body = e.get("body") or {}
            if e.get("kind") == "dicom":
                self.dicoms.setdefault(body.get("sha256"), body)
            elif e.get("kind") == "lab":
                for r in body.get("results") or []:
                    self.labs[(e.get("seq"), r.get("loinc"))] = r
            elif e.get("kind") == "ecg-announce":
                self.recordings[body.get("recording")] = body

    def dicom(self, sha256: Any) -> dict[str, Any]:
        if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256) or sha256 not in self.dicoms:
            raise ClinicalError(CODE, f"no DICOM object {str(sha256)[:64]!r} was shared in this consult")
        d = self.dicoms[sha256]
        o = d.get("object") or {}
        return {"sha256": sha256, "name": d.get("name"), "modality": o.get("modality"),
                "sop_instance_uid": o.get("sop_instance_uid"), "study_instance_uid": o.get("study_instance_uid")}

    def lab(self, ref: Any) -> dict[str, Any]:
        ref = require_mapping(ref, CODE)
        key = (ref.get("seq"), ref.get("loinc"))
        if type(key[0]) is not int or key not in self.labs:
            raise ClinicalError(CODE, f"no lab result {key[1]!r} in notice {key[0]!r} of this consult")
        r = self.labs[key]
        return {"seq": key[0], **{k: r.get(k) for k in (
            "loinc", "display", "value", "unit", "comparator", "text", "interpretation", "status", "effective",
            "patient")}}

    def ecg(self, ref: Any) -> dict[str, Any]:
        ref = require_mapping(ref, CODE)
        reject_unknown(ref, {"recording", "start_s", "end_s"}, CODE)
        stream = self.recordings.get(ref.get("recording")) if isinstance(ref.get("recording"), str) else None
        if stream is None:
            raise ClinicalError(CODE, f"no ECG recording {str(ref.get('recording'))[:80]!r} in this consult")
        start, end = ref.get("start_s"), ref.get("end_s")
        if not all(type(v) in (int, float) and math.isfinite(v) for v in (start, end)) or not 0 <= start < end:
            raise ClinicalError(CODE, "an ECG segment needs 0 <= start_s < end_s, in seconds")
        return {"recording": stream["recording"], "stream_id": stream.get("stream_id"), "leads": stream.get("leads"),
                "sample_rate": stream.get("sample_rate"), "start_s": float(start), "end_s": float(end)}


def _observation(index: int, lab: Mapping[str, Any]) -> dict[str, Any]:
    obs: dict[str, Any] = {
        "resourceType": "Observation", "id": f"lab{index}", "status": lab.get("status") or "final",
        "code": {"coding": [{"system": _LOINC, "code": lab["loinc"], "display": lab.get("display") or lab["loinc"]}]},
    }
    if lab.get("value") is not None and lab.get("unit"):
        quantity = {"value": lab["value"], "unit": lab["unit"], "system": "http://unitsofmeasure.org",
                    "code": lab["unit"]}
        if lab.get("comparator"):
            quantity["comparator"] = lab["comparator"]
        obs["valueQuantity"] = quantity
    elif lab.get("value") is not None:
        obs["valueQuantity"] = {"value": lab["value"]}
    elif lab.get("text"):
        obs["valueString"] = lab["text"]
    if lab.get("effective"):
        obs["effectiveDateTime"] = lab["effective"]
    if lab.get("interpretation"):
        obs["interpretation"] = [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
            "code": lab["interpretation"]}]}]
    return obs


def _text(msg: Mapping[str, Any], key: str, limit: int) -> str:
    value = msg.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ClinicalError(CODE, f"{key} is required")
    if len(value) > limit:
        raise ClinicalError(CODE, f"{key} is longer than {limit} characters")
    return value.strip()


def _list(refs: Mapping[str, Any], key: str) -> list[Any]:
    value = refs.get(key, [])
    if not isinstance(value, list) or len(value) > MAX_REFERENCES:
        raise ClinicalError(CODE, f"references.{key} must be a list of at most {MAX_REFERENCES}")
    return value
