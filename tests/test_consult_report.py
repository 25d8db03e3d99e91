"""The consult report: a doctor signs findings and a conclusion citing the images, labs and
ECG discussed; the server stamps author and time, signs, keeps it in the session log,
exports it as FHIR R4 and PDF, and sends it to the hospital's FHIR server."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from fhir.resources.R4B.diagnosticreport import DiagnosticReport

from clinical.consult_report import ReportSigner, seal
from telemed_client import ClientError
from telemed_client.ecg_sources import synthetic
from tests.clinical_peers import PASSWORD, bundled, close, join, potassium
from tests.server import start_server

ROOM = "stroke-1"


async def get(server, path: str, token: str) -> tuple[int, dict | bytes, str]:
    async with aiohttp.ClientSession() as http, \
            http.get(server.url + path, headers={"Authorization": f"Bearer {token}"}) as r:
        body = await r.read()
        return r.status, (json.loads(body) if r.content_type.endswith("json") else body), r.content_type


async def shared_session(server):
    """A consult with an image, a lab and an ECG stream on record; returns (doctor, device, seqs)."""
    await server.create_room(ROOM, PASSWORD)
    doctor = await join(server, ROOM, "Dr. Neuro")
    device = await join(server, ROOM, "Ambulance 7", role="device")
    image = await doctor.send_dicom(bundled("CT_small.dcm"), "ct.dcm")
    lab = await doctor.send_fhir(potassium(6.4))
    stream = await device.announce_ecg(synthetic(12, 500, 1.0))
    ecg = await doctor.wait_for(lambda m: m.get("type") == "ecg-announce" and m.get("stream_id") == stream)
    return doctor, device, {"dicom": image["seq"], "lab": lab["seq"], "ecg": ecg["seq"]}


async def test_a_signed_report_is_shared_kept_and_exported(server):
    doctor, device, seqs = await shared_session(server)
    viewer = await join(server, ROOM, "Trainee", role="viewer")
    try:
        notice = await doctor.send_report(
            "stroke", "NIHSS 14. Left MCA hyperdensity on CT.", "Thrombectomy indicated.",
            [{"seq": seqs["dicom"]}, {"seq": seqs["lab"]}, {"seq": seqs["ecg"], "start": 0.0, "end": 0.8}])
        # The author and time are the server's: the identity the token names.
        assert notice["author"] == {"identity": doctor.client.info["identity"], "name": "Dr. Neuro",
                                    "role": "participant"}
        assert notice["title"] == "Stroke consult" and len(notice["signature"]) == 64
        assert [r["kind"] for r in notice["references"]] == ["dicom", "lab", "ecg-announce"]
        assert "Potassium 6.4" in notice["references"][1]["summary"]
        seen = await viewer.wait_for(lambda m: m.get("type") == "report")  # everyone is told
        assert seen["signature"] == notice["signature"]

        token = viewer.client.token
        status, listing, _ = await get(server, f"/api/rooms/{ROOM}/reports", token)
        assert status == 200 and [(r["seq"], r["verified"]) for r in listing["reports"]] == [(notice["seq"], True)]
        status, fhir, content_type = await get(server, f"/api/rooms/{ROOM}/reports/{notice['seq']}/fhir", token)
        assert status == 200 and content_type == "application/fhir+json"
        report = DiagnosticReport.model_validate(fhir)  # valid FHIR R4(B)
        assert report.code.coding[0].code == "11488-4" and report.conclusion == "Thrombectomy indicated."
        assert report.performer[0].identifier.value == doctor.client.info["identity"]
        assert fhir["contained"][0]["valueQuantity"]["value"] == 6.4
        assert fhir["contained"][0]["code"]["coding"][0]["code"] == "2823-3"
        assert fhir["imagingStudy"][0]["identifier"]["value"].startswith("urn:oid:1.")
        assert "0.0-0.8 s" in fhir["media"][0]["comment"]
        assert {f["contentType"] for f in fhir["presentedForm"]} == {"text/plain; charset=utf-8", "application/pdf"}
        status, pdf, content_type = await get(server, f"/api/rooms/{ROOM}/reports/{notice['seq']}/pdf", token)
        assert status == 200 and content_type == "application/pdf" and pdf.startswith(b"%PDF-")
        for bad in ("999", "x", str(seqs["lab"])):  # no such entry, not a number, not a report
            assert (await get(server, f"/api/rooms/{ROOM}/reports/{bad}", token))[0] == 404
        assert (await get(server, f"/api/rooms/{ROOM}/reports", "not-a-token"))[0] == 401
    finally:
        await close(doctor, device, viewer)
    # Kept in the session log (encrypted at rest), so that replay shows it; opens are audited.
    entries = await server.core.clinical.log_entries(ROOM)
    assert [e["seq"] for e in entries if e["kind"] == "report"] == [notice["seq"]]
    audit = [json.loads(line) for line in (Path(server.core.settings.data_dir) / "audit.jsonl").read_text().splitlines()]
    assert {"report-signed", "report-open"} <= {r["action"] for r in audit}


async def test_viewers_devices_and_bad_citations_are_refused(server):
    doctor, device, seqs = await shared_session(server)
    viewer = await join(server, ROOM, "Trainee", role="viewer")
    try:
        for peer in (viewer, device):
            with pytest.raises(ClientError) as refused:
                await peer.send_report("ecg", "Sinus rhythm.", "Normal ECG.")
            assert refused.value.code == "forbidden"
        cases = [
            ({"template": "dermatology"}, "template"),
            ({"findings": ""}, "findings"),
            ({"conclusion": "x" * 5000}, "conclusion"),
            ({"references": [{"seq": 999}]}, "999"),
            ({"references": [{"seq": seqs["lab"], "start": 0, "end": 1}]}, "only an ECG"),
            ({"references": [{"seq": seqs["ecg"], "start": 5, "end": 1}]}, "start < end"),
            ({"references": [{"seq": seqs["lab"]}, {"seq": seqs["lab"]}]}, "twice"),
        ]
        for change, words in cases:
            message = {"template": "imaging", "findings": "Findings.", "conclusion": "Conclusion.",
                       "references": [], **change}
            with pytest.raises(ClientError) as refused:
                await doctor.send_report(**message)
            assert refused.value.code == "report" and words in refused.value.message, (change, refused.value)
        # The author comes from the token: a message naming one is refused, not believed.
        doctor.send({"type": "report", "template": "ecg", "findings": "f", "conclusion": "c",
                     "author": {"identity": "someone-else"}, "ref": "spoof"})
        error = await doctor.wait_for(lambda m: m.get("type") == "error" and m.get("ref") == "spoof")
        assert error["code"] == "bad-request" or "author" in error["error"]
    finally:
        await close(doctor, device, viewer)
    assert not [e for e in await server.core.clinical.log_entries(ROOM) if e["kind"] == "report"]


def test_the_signature_covers_every_field():
    signer = ReportSigner(b"k" * 32)
    report = seal({"template": "ecg", "title": "ECG consult", "findings": "f", "conclusion": "c", "references": []},
                  {"identity": "dr-a", "name": "Dr A", "role": "host"}, signer)
    assert signer.verify(report)
    for field, value in (("findings", "changed"), ("author", {"identity": "dr-b"}), ("signed_at", "2020-01-01")):
        assert not signer.verify({**report, field: value}), field
    assert not ReportSigner(b"o" * 32).verify(report)


@pytest.fixture
async def fhir_server():
    """A FHIR endpoint served by the test (no FHIR server can be installed from the
    registries here): it files DiagnosticReports conditionally, like HAPI does."""
    received: list[tuple[dict, dict]] = []
    answer = {"status": 201}

    async def create(request: web.Request) -> web.Response:
        received.append((dict(request.headers), await request.json()))
        return web.json_response({"resourceType": "DiagnosticReport", "id": "r1"}, status=answer["status"],
                                 headers={"Location": "DiagnosticReport/r1/_history/1"}, content_type="application/fhir+json")

    app = web.Application()
    app.router.add_post("/fhir/DiagnosticReport", create)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}/fhir", received, answer
    await runner.cleanup()


async def test_a_signed_report_is_sent_to_the_hospital_fhir_server(tmp_path, fhir_server):
    url, received, answer = fhir_server
    server, runner = await start_server(str(tmp_path / "data"), fhir_report_url=url, fhir_report_token="fhir-token")
    try:
        doctor, device, seqs = await shared_session(server)
        try:
            start = len(doctor.messages)
            notice = await doctor.send_report("stroke", "Findings.", "Conclusion.", [{"seq": seqs["lab"]}])
            pushed = await doctor.wait_for(lambda m: m.get("type") == "report-pushed", start=start)
            assert pushed["ok"] and pushed["seq"] == notice["seq"] and pushed["location"].startswith("DiagnosticReport/")
            headers, resource = received[0]
            assert headers["Authorization"] == "Bearer fhir-token"
            assert headers["If-None-Exist"] == f"identifier=urn:telemed:consult-report|{ROOM}/{notice['seq']}"
            DiagnosticReport.model_validate(resource)
            # The hospital's server failing costs nothing on record: the author is told.
            answer["status"] = 500
            start = len(doctor.messages)
            await doctor.send_report("stroke", "Addendum.", "Unchanged.")
            failed = await doctor.wait_for(lambda m: m.get("type") == "report-pushed", start=start)
            assert not failed["ok"] and failed["status"] == 500
        finally:
            await close(doctor, device)
        kept = [e for e in await server.core.clinical.log_entries(ROOM) if e["kind"] == "report"]
        assert len(kept) == 2
    finally:
        await runner.cleanup()
    audit = [json.loads(line)["action"] for line in (tmp_path / "data" / "audit.jsonl").read_text().splitlines()]
    assert audit.count("report-pushed") == 1 and audit.count("report-push-failed") == 1
