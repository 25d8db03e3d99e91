"""The consult report: written by a doctor at the end of a consult, citing what the
session saw, signed by the server, shared, exported as a FHIR R4 DiagnosticReport,
kept for replay and pushed to a FHIR server.

The FHIR server here is an endpoint this test serves (aiohttp on 127.0.0.1) that checks
what it receives with fhir.resources: no FHIR server can be installed from the registries."""

from __future__ import annotations

import copy
import json

import pytest
from aiohttp import web
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from telemed_client.ecg_sources import synthetic

from clinical.consult_report import ConsultReport, to_fhir
from clinical.errors import ClinicalError
from clinical.report_signer import ReportSigner, verify
from tests.clinical_peers import PASSWORD, bundled, close, join, potassium
from tests.server import start_server
from vault import KeyRing

SHA = "ab" * 32
ENTRIES = [
    {"seq": 1, "kind": "dicom", "body": {"sha256": SHA, "name": "ct.dcm", "object": {
        "modality": "CT", "sop_instance_uid": "1.2.3", "study_instance_uid": "1.2"}}},
    {"seq": 2, "kind": "lab", "body": {"results": [
        {"loinc": "2823-3", "display": "Potassium", "value": 6.2, "unit": "mmol/L", "interpretation": "H",
         "status": "final", "effective": "2024-05-01T10:00:00+00:00", "patient": "Patient/p1"},
        {"loinc": "883-9", "display": "ABO group", "value": None, "unit": None, "text": "A", "status": "final"}]}},
    {"seq": 3, "kind": "ecg-announce", "body": {"stream_id": 7, "leads": ["I", "II", "III"], "sample_rate": 500,
                                               "uv_per_lsb": 1.0, "recording": "ecg/p-7-1.ecg"}},
]
MESSAGE = {"type": "consult-report", "template": "stroke", "findings": "NIHSS 14.\nNo bleed on CT.",
           "conclusion": "Ischaemic stroke: thrombolysis.",
           "references": {"dicom": [SHA], "labs": [{"seq": 2, "loinc": "2823-3"}, {"seq": 2, "loinc": "883-9"}],
                          "ecg": [{"recording": "ecg/p-7-1.ecg", "start_s": 2, "end_s": 12.5}]}}
AUTHOR = {"identity": "u-1", "name": "Dr. Neuro", "role": "host"}


def report(message=MESSAGE) -> ConsultReport:
    return ConsultReport.from_message(copy.deepcopy(message), ENTRIES, room="r", author=AUTHOR,
                                      signed_at="2026-12-01T03:00:00+00:00")


def test_report_cites_what_the_session_saw_and_is_signed():
    signer = ReportSigner(KeyRing(bytes(32)).derive("consult-report-signing"))
    body = report().signed(signer)
    refs = body["references"]
    assert refs["dicom"][0]["sop_instance_uid"] == "1.2.3"
    assert [(lab["loinc"], lab["value"], lab["text"]) for lab in refs["labs"]] == [
        ("2823-3", 6.2, None), ("883-9", None, "A")]
    assert refs["ecg"][0] == {"recording": "ecg/p-7-1.ecg", "stream_id": 7, "leads": ["I", "II", "III"],
                                   "sample_rate": 500, "start_s": 2.0, "end_s": 12.5}
    content = {k: v for k, v in body.items() if k not in ("signature", "fhir")}
    assert verify(content, body["signature"], signer.public_key)
    assert not verify({**content, "conclusion": "No stroke."}, body["signature"], signer.public_key)
    other = ReportSigner(KeyRing(bytes(range(32))).derive("consult-report-signing"))
    assert not verify(content, body["signature"], other.public_key)


def test_fhir_export_is_a_valid_r4_diagnostic_report():
    signer = ReportSigner(bytes(32))
    body = report().signed(signer)
    fhir = DiagnosticReport.model_validate(body["fhir"])
    assert fhir.status == "final" and fhir.code.coding[0].code == "11488-4"
    assert fhir.conclusion == "Ischaemic stroke: thrombolysis."
    assert fhir.performer[0].display == "Dr. Neuro" and fhir.performer[0].identifier.value == "u-1"
    assert [r.reference for r in fhir.result] == ["#lab0", "#lab1"]
    assert float(fhir.contained[0].valueQuantity.value) == 6.2 and fhir.contained[1].valueString == "A"
    urls = [e.url for e in fhir.extension]
    assert urls.count("urn:telemed:consult-report:dicom") == 1 and urls.count("urn:telemed:consult-report:ecg") == 1
    assert body["signature"]["signature"] in body["fhir"]["extension"][-1]["valueString"]


@pytest.mark.parametrize("change,needle", [
    ({"template": "cardiology"}, "template"),
    ({"findings": "  "}, "findings"),
    ({"conclusion": "x" * 5001}, "conclusion"),
    ({"author": "Dr. Fake"}, "unknown"),
    ({"references": {"dicom": ["cd" * 32]}}, "no DICOM object"),
    ({"references": {"labs": [{"seq": 1, "loinc": "2823-3"}]}}, "no lab result"),
    ({"references": {"labs": [{"seq": "2", "loinc": "2823-3"}]}}, "no lab result"),
    ({"references": {"ecg": [{"recording": "ecg/other.ecg", "start_s": 0, "end_s": 1}]}}, "no ECG recording"),
    ({"references": {"ecg": [{"recording": "ecg/p-7-1.ecg", "start_s": 5, "end_s": 5}]}}, "start_s < end_s"),
    ({"references": {"images": []}}, "unknown"),
    ({"references": {"dicom": [SHA] * 65}}, "at most"),
])
def test_bad_reports_are_refused(change, needle):
    with pytest.raises(ClinicalError) as e:
        report({**MESSAGE, **change})
    assert e.value.code == "report" and needle in e.value.message


def test_export_refuses_to_produce_invalid_fhir():
    body = report().content
    with pytest.raises(ClinicalError) as e:
        to_fhir({**body, "signed_at": "yesterday"}, {"alg": "Ed25519", "key_id": "k", "signature": "s"})
    assert e.value.code == "internal"


class FhirEndpoint:
    """A FHIR server's create interaction, on 127.0.0.1: checks and keeps what it gets."""

    def __init__(self, status: int = 201) -> None:
        self.status = status
        self.received: list[dict] = []

    async def __aenter__(self) -> str:
        app = web.Application()
        app.router.add_post("/fhir/DiagnosticReport", self.create)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/fhir"

    async def __aexit__(self, *exc) -> None:
        await self.runner.cleanup()

    async def create(self, request: web.Request) -> web.Response:
        assert request.content_type == "application/fhir+json"
        resource = json.loads(await request.text())
        DiagnosticReport.model_validate(resource)
        self.received.append(resource)
        if self.status != 201:
            return web.json_response({"resourceType": "OperationOutcome"}, status=self.status)
        return web.json_response(resource, status=201, headers={
            "Location": f"{request.url}/{resource['id']}/_history/1"})


async def test_report_in_a_live_consult(tmp_path):
    endpoint = FhirEndpoint()
    async with endpoint as fhir_url:
        server, runner = await start_server(str(tmp_path / "data"), fhir_push_url=fhir_url)
        try:
            await _consult(server, endpoint)
        finally:
            await runner.cleanup()


async def _consult(server, endpoint: FhirEndpoint) -> None:
    await server.create_room("stroke", PASSWORD)
    doctor = await join(server, "stroke", "Dr. Neuro", role="host")
    colleague = await join(server, "stroke", "Dr. County")
    trainee = await join(server, "stroke", "Trainee", role="viewer")
    ambulance = await join(server, "stroke", "Ambulance", role="device")
    try:
        dicom = await doctor.send_dicom(bundled("CT_small.dcm"), "ct.dcm")
        lab = await ambulance.send_fhir(potassium(6.2))
        await ambulance.stream_ecg(synthetic(3, 500, 0.4), stream_id=5)
        announce = await doctor.wait_for(lambda m: m["type"] == "ecg-announce")
        message = {"template": "stroke", "findings": "NIHSS 14.", "conclusion": "Thrombolysis.",
                   "references": {"dicom": [dicom["sha256"]], "labs": [{"seq": lab["seq"], "loinc": "2823-3"}],
                                  "ecg": [{"recording": announce["recording"], "start_s": 0, "end_s": 0.4}]}}

        # A trainee and a device may not sign the consult's report.
        for peer in (trainee, ambulance):
            start = len(peer.messages)
            peer.send({"type": "consult-report", "ref": "r1", **message})
            error = await peer.wait_for(lambda m: m["type"] == "error" and m.get("ref") == "r1", start=start)
            assert error["code"] == "forbidden"

        start = len(doctor.messages)
        doctor.send({"type": "consult-report", "ref": "r2", **message, "author": "someone else"})
        error = await doctor.wait_for(lambda m: m["type"] == "error" and m.get("ref") == "r2", start=start)
        assert error["code"] == "report"

        doctor.send({"type": "consult-report", "ref": "r3", **message})
        for peer in (doctor, colleague, trainee):
            notice = await peer.wait_for(lambda m: m["type"] == "report")
            assert notice["author"] == {"identity": doctor.client.info["identity"], "name": "Dr. Neuro",
                                        "role": "host"}
            assert notice["references"]["labs"][0]["value"] == 6.2
        content = {k: v for k, v in notice.items() if k in (
            "id", "room", "author", "signed_at", "template", "title", "findings", "conclusion", "references")}
        assert verify(content, notice["signature"], server.core.clinical.signer.public_key)
        DiagnosticReport.model_validate(notice["fhir"])

        pushed = await doctor.wait_for(lambda m: m["type"] == "report-pushed")
        assert pushed["ref"] == "r3" and pushed["location"].endswith(f"/DiagnosticReport/{notice['id']}/_history/1")
        assert endpoint.received == [notice["fhir"]]

        # Kept with the session: a late joiner gets it, and the log (replay) has it.
        late = await join(server, "stroke", "Dr. Late")
        state = await late.wait_for(lambda m: m["type"] == "clinical-state")
        assert [r["id"] for r in state["reports"]] == [notice["id"]]
        assert {t["key"] for t in state["report_templates"]} == {"stroke", "ecg", "imaging"}
        assert state["ecg_recordings"][0]["recording"] == announce["recording"]
        entries = list(server.core.live.rooms["stroke"].clinical.log.read())
        assert [e["kind"] for e in entries].count("report") == 1
        await close(late)
    finally:
        await close(doctor, colleague, trainee, ambulance)


async def test_a_failing_fhir_server_is_reported_and_the_report_stands(tmp_path):
    async with FhirEndpoint(status=500) as fhir_url:
        server, runner = await start_server(str(tmp_path / "data"), fhir_push_url=fhir_url)
        try:
            await server.create_room("ecg", PASSWORD)
            doctor = await join(server, "ecg", "Dr. Heart")
            try:
                doctor.send({"type": "consult-report", "ref": "x", "template": "ecg", "findings": "Sinus rhythm.",
                             "conclusion": "Normal ECG."})
                notice = await doctor.wait_for(lambda m: m["type"] == "report")
                error = await doctor.wait_for(lambda m: m["type"] == "error" and m.get("ref") == "x")
                assert error["code"] == "fhir-push" and error["id"] == notice["id"] and "500" in error["error"]
                entries = list(server.core.live.rooms["ecg"].clinical.log.read())
                assert [e["kind"] for e in entries] == ["report"]
            finally:
                await close(doctor)
        finally:
            await runner.cleanup()


async def test_without_a_fhir_server_nothing_is_pushed(server):
    await server.create_room("plain", PASSWORD)
    doctor = await join(server, "plain", "Dr. Eye")
    try:
        doctor.send({"type": "consult-report", "template": "imaging", "findings": "Normal.", "conclusion": "No acute findings."})
        notice = await doctor.wait_for(lambda m: m["type"] == "report")
        assert notice["title"] == "Imaging consult"
        assert not [m for m in doctor.messages if m["type"] in ("report-pushed", "error")]
    finally:
        await close(doctor)


async def test_report_exports_for_members_only(server):
    import aiohttp

    await server.create_room("export", PASSWORD)
    doctor = await join(server, "export", "Dr. Yamada 山田")
    try:
        doctor.send({"type": "consult-report", "template": "imaging", "findings": "Small infarct, left MCA.",
                     "conclusion": "No haemorrhage."})
        notice = await doctor.wait_for(lambda m: m["type"] == "report")
        base = f"{server.url}/api/rooms/export/reports/{notice['id']}"
        token = await server.token("export", PASSWORD, role="viewer", name="Trainee")
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
            async with http.get(f"{base}.pdf") as r:
                assert r.status == 200 and r.content_type == "application/pdf"
                pdf = await r.read()
            assert pdf.startswith(b"%PDF-") and len(pdf) > 1000
            async with http.get(f"{base}.json") as r:
                assert r.status == 200
                DiagnosticReport.model_validate(json.loads(await r.read()))
            async with http.get(f"{server.url}/api/rooms/export/reports/{'0' * 8}-0000-0000-0000-{'0' * 12}.pdf") as r:
                assert r.status == 404 and (await r.json())["code"] == "not-found"
        async with aiohttp.ClientSession() as anonymous:
            async with anonymous.get(f"{base}.pdf") as r:
                assert r.status == 401
    finally:
        await close(doctor)
