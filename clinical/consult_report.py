"""The consult report: what a remote consult delivers. The responsible doctor writes the
findings and a conclusion on a specialty template and cites what was discussed, picked from
the session log (DICOM objects, lab results, ECG segments). The server stamps the author,
from the token, never the message, and the time, and signs the whole, so that the report
kept in the session log, its FHIR R4 DiagnosticReport and its PDF say who wrote what, when.

The signature is an HMAC-SHA256 under a key derived from the server's secret: the server
(any node sharing the secret) can tell that a report is the one it signed, unaltered.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from clinical.errors import ClinicalError

MAX_FINDINGS = 20_000
MAX_CONCLUSION = 4_000
MAX_REFERENCES = 64
CITABLE = ("dicom", "lab", "ecg-announce")
# What the signature covers: the whole report as kept, but not what the session log adds
# around it (the sender's display name).
SIGNED_FIELDS = ("template", "title", "findings", "conclusion", "references", "author", "signed_at")


@dataclass(frozen=True)
class Template:
    title: str
    loinc: str  # DiagnosticReport.code
    loinc_display: str
    sections: tuple[str, ...]  # headings the page offers for the findings


TEMPLATES = {
    "stroke": Template("Stroke consult", "11488-4", "Consult note",
                       ("Onset and NIHSS", "Imaging", "Thrombolysis / thrombectomy decision")),
    "ecg": Template("ECG consult", "11524-6", "EKG study", ("Rhythm and rate", "Intervals", "Ischaemia")),
    "imaging": Template("Imaging consult", "18748-4", "Diagnostic imaging study",
                        ("Technique", "Findings", "Comparison")),
}


class ReportSigner:
    def __init__(self, secret: bytes) -> None:
        # Derived, not reused: a report key must not sign tokens or links, nor the reverse.
        self._key = hmac.new(secret, b"telemed consult reports v1", hashlib.sha256).digest()

    def sign(self, report: Mapping[str, Any]) -> str:
        unsigned = {k: report.get(k) for k in SIGNED_FIELDS}
        canonical = json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hmac.new(self._key, canonical.encode(), hashlib.sha256).hexdigest()

    def verify(self, report: Mapping[str, Any]) -> bool:
        given = report.get("signature")
        return isinstance(given, str) and hmac.compare_digest(given.encode(), self.sign(report).encode())


def draft(message: Mapping[str, Any], entries: Mapping[int, Mapping[str, Any]]) -> dict[str, Any]:
    """The report's content from a ``report`` message, with every citation checked against
    the session log's ``entries`` (by seq); ClinicalError ``report`` names what is wrong."""
    template = message.get("template")
    if template not in TEMPLATES:
        raise ClinicalError("report", f"template must be one of {', '.join(TEMPLATES)}")
    findings, conclusion = message.get("findings"), message.get("conclusion")
    for name, value, limit in (("findings", findings, MAX_FINDINGS), ("conclusion", conclusion, MAX_CONCLUSION)):
        if not isinstance(value, str) or not value.strip() or len(value) > limit:
            raise ClinicalError("report", f"{name} must be text of 1-{limit} characters")
        if any(c < " " and c not in "\n\t" for c in value):
            raise ClinicalError("report", f"{name} holds control characters")
    cited = message.get("references", [])
    if not isinstance(cited, list) or len(cited) > MAX_REFERENCES:
        raise ClinicalError("report", f"references must be a list of at most {MAX_REFERENCES}")
    references = [_reference(item, entries) for item in cited]
    if len({(r["seq"], r.get("start"), r.get("end")) for r in references}) < len(references):
        raise ClinicalError("report", "a reference is cited twice")
    return {"template": template, "title": TEMPLATES[template].title, "findings": findings.strip(),
            "conclusion": conclusion.strip(), "references": references}


def seal(content: Mapping[str, Any], author: Mapping[str, str], signer: ReportSigner,
         now: datetime | None = None) -> dict[str, Any]:
    """The report as kept: content, the author the server knows, the time, the signature."""
    report = {**content, "author": dict(author),
              "signed_at": (now or datetime.now(UTC)).isoformat(timespec="seconds")}
    report["signature"] = signer.sign(report)
    return report


def _reference(item: Any, entries: Mapping[int, Mapping[str, Any]]) -> dict[str, Any]:
    if not isinstance(item, dict) or set(item) - {"seq", "start", "end"}:
        raise ClinicalError("report", "a reference is {seq, start?, end?}")
    seq = item.get("seq")
    entry = entries.get(seq) if type(seq) is int else None
    if entry is None or entry["kind"] not in CITABLE:
        raise ClinicalError("report", f"reference {seq!r} is no DICOM object, lab result or ECG of this session")
    body = entry["body"]
    reference: dict[str, Any] = {"seq": seq, "kind": entry["kind"], "summary": _summary(entry["kind"], body)}
    if entry["kind"] == "dicom":
        described = body.get("object") or {}
        reference.update({"sha256": body.get("sha256"), "study_uid": described.get("study_instance_uid"),
                          "sop_instance_uid": described.get("sop_instance_uid")})
    span = [item.get("start"), item.get("end")]
    if span != [None, None]:
        if entry["kind"] != "ecg-announce":
            raise ClinicalError("report", "only an ECG reference takes a segment (start, end)")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in span) \
                or not 0 <= span[0] < span[1] <= 86_400:
            raise ClinicalError("report", "an ECG segment needs 0 <= start < end, in seconds of the stream")
        reference.update({"start": float(span[0]), "end": float(span[1])})
    return reference


def _summary(kind: str, body: Mapping[str, Any]) -> str:
    if kind == "dicom":
        described = body.get("object") or {}
        parts = [described.get("modality"), described.get("sop_class_name"), body.get("name")]
        return " · ".join(str(p) for p in parts if p) or "DICOM object"
    if kind == "lab":
        results = body.get("results") or []
        return "; ".join(f"{r.get('display') or r.get('loinc')} {_reading(r)} {r.get('unit') or ''}".strip()
                         for r in results[:6]) or "lab results"
    leads = body.get("leads") or []
    return f"ECG, {len(leads)} lead{'s' if len(leads) != 1 else ''} at {body.get('sample_rate', '?')} Hz"


def _reading(result: Mapping[str, Any]) -> str:
    """A lab result's value as shown: the number, or the text of a coded or text result."""
    if result.get("value") is not None:
        return f"{result.get('comparator') or ''}{result['value']}"
    return str(result.get("text") or "")
