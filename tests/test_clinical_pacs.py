"""Pulling a study from a real Orthanc PACS (DICOMweb plugin) into a room: every instance
takes the upload's path (checks, de-identification, store, log, audit, notices), and each
bad request gets a clear error to its sender only."""

from __future__ import annotations

import asyncio
import hashlib
import json
from contextlib import aclosing
from io import BytesIO
from pathlib import Path

import pytest
from aiohttp import web
from pydicom import dcmread

from clinical.audit import verify
from clinical.errors import ClinicalError
from clinical.pacs import DicomWebSource, PullRequest
from signaling import config
from signaling.cli import build_parser
from telemed_client import ClientError
from telemed_client.clinical import Clinical
from tests.clinical_peers import PASSWORD, close, join, potassium
from tests.orthanc import PACS_PASSWORD, PACS_USER, STUDY_UID
from tests.server import free_port, start_server


async def _notices(peer: Clinical, ref: str, count: int) -> list[dict]:
    """The first ``count`` dicom notices of the pull ``ref`` that ``peer`` received."""
    found: list[dict] = []
    while len(found) < count:
        start = peer.messages.index(found[-1]) + 1 if found else 0
        found.append(await peer.wait_for(lambda m: m["type"] == "dicom" and m.get("ref") == ref, start=start))
    return found


def audit_records(server) -> list[dict]:
    path = Path(server.core.settings.data_dir) / "audit.jsonl"
    verify(path, server.core.audit.key)  # the keyed chain is intact
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_pulled_study_reaches_everyone_byte_identical(pacs_server, orthanc):
    server = pacs_server
    await server.create_room("pacs", PASSWORD)
    doctor, trainee = await join(server, "pacs", "Dr A"), await join(server, "pacs", "Trainee", role="viewer")
    try:
        state = await doctor.wait_for(lambda m: m["type"] == "clinical-state")
        assert state["pacs"] is True  # pages offer the pull
        done = await doctor.pull_dicom(STUDY_UID)
        assert done["count"] == 3 and [r["code"] for r in done["refused"]] == ["dicom-sop-class"]
        for peer in (doctor, trainee):
            notices = await _notices(peer, done["ref"], 3)
            assert {n["object"]["sop_instance_uid"] for n in notices} == set(orthanc.files) - {
                orthanc.series["rtdose.dcm"][1]}
            for notice in notices:
                assert (notice["source"], notice["ref"]) == ("pacs", done["ref"])
                assert notice["sender"] == doctor.client.peer_id
                assert notice["deidentified"] is False
                assert await peer.fetch(notice["url"]) == orthanc.files[notice["object"]["sop_instance_uid"]]
        assert {n["object"]["frames"] for n in notices} == {1, 2}  # the RLE capture has two
        # One instance by its three UIDs.
        series, instance = orthanc.series["MR_small.dcm"]
        done = await doctor.pull_dicom(STUDY_UID, series, instance)
        assert (done["count"], done["refused"]) == (1, [])
        notice = await doctor.wait_for(lambda m: m["type"] == "dicom" and m.get("ref") == done["ref"])
        assert notice["object"]["sop_instance_uid"] == instance
        records = audit_records(server)
        pulls = [r for r in records if r["action"] == "pacs-pull"]
        assert [(r["actor"]["identity"], r["object"], r["details"]["count"]) for r in pulls] == [
            (doctor.client.info["identity"], STUDY_UID, 3), (doctor.client.info["identity"], STUDY_UID, 1)]
        shares = [r for r in records if r["action"] == "share"]
        assert len(shares) == 4 and all(r["details"]["source"] == "pacs" for r in shares)
        assert [r["details"]["code"] for r in records if r["action"] == "share-refused"] == ["dicom-sop-class"]
    finally:
        await close(doctor, trainee)


async def test_room_requiring_deidentification_gets_deidentified_copies(pacs_server, orthanc):
    server = pacs_server
    await server.create_room("deid", PASSWORD, require_deidentification=True)
    doctor, other = await join(server, "deid", "Dr A"), await join(server, "deid", "Dr B")
    series, instance = orthanc.series["CT_small.dcm"]
    original = dcmread(BytesIO(orthanc.files[instance]))
    try:
        done = await doctor.pull_dicom(STUDY_UID, series)
        assert done["count"] == 1
        notice = await other.wait_for(lambda m: m["type"] == "dicom")
        assert notice["deidentified"] is True and instance not in notice["name"]
        shared = await other.fetch(notice["url"])
        original_sha256 = hashlib.sha256(orthanc.files[instance]).hexdigest()
        assert hashlib.sha256(shared).hexdigest() == notice["sha256"] != original_sha256
        ds = dcmread(BytesIO(shared))
        assert str(ds.PatientName) != "Doe^Jane" and ds.PatientID != "PACS-0001"
        assert ds.SOPInstanceUID != instance and ds.StudyInstanceUID != STUDY_UID
        assert notice["object"]["study_instance_uid"] == ds.StudyInstanceUID
        assert ds.PixelData == original.PixelData
        # Only the de-identified copy is reachable in this room.
        with pytest.raises(ClientError):
            await other.fetch(notice["url"].replace(notice["sha256"], original_sha256))
    finally:
        await close(doctor, other)


async def test_bad_pulls_are_refused_to_their_sender_only(pacs_server, server, tmp_path, orthanc):
    await pacs_server.create_room("strict", PASSWORD)
    sender, witness = await join(pacs_server, "strict", "Dr A"), await join(pacs_server, "strict", "Dr B")
    trainee = await join(pacs_server, "strict", "Trainee", role="viewer")
    unused = f"http://127.0.0.1:{free_port()}/dicom-web"  # nothing listens there
    down, down_runner = await start_server(str(tmp_path / "down"), pacs_url=unused)
    await down.create_room("down", PASSWORD)
    await server.create_room("off", PASSWORD)
    down_sender, off_sender = await join(down, "down", "Dr C"), await join(server, "off", "Dr D")
    cases = {  # name: (peer, request, expected error code)
        "malformed UID": (sender, {"study_uid": "1.2.03"}, "pacs-uid"),
        "path in a UID": (sender, {"study_uid": "1.2/../../instances"}, "pacs-uid"),
        "UID over 64 characters": (sender, {"study_uid": "1." + "2" * 63}, "pacs-uid"),
        "instance without series": (sender, {"study_uid": STUDY_UID, "instance_uid": "1.2.3"}, "pacs-uid"),
        "unknown field": (sender, {"study_uid": STUDY_UID, "accession": "A1"}, "dicom-pull"),
        "unknown study": (sender, {"study_uid": "1.2.3.4.5.6"}, "pacs-not-found"),
        "a viewer": (trainee, {"study_uid": STUDY_UID}, "forbidden"),
        "PACS down": (down_sender, {"study_uid": STUDY_UID}, "pacs-unreachable"),
        "no PACS configured": (off_sender, {"study_uid": STUDY_UID}, "pacs-off"),
    }
    try:
        for value, (name, (peer, request, code)) in enumerate(cases.items()):
            seen_by_witness, start = len(witness.messages), len(peer.messages)
            peer.send({"type": "dicom-pull", "ref": f"case-{value}", **request})
            error = await peer.wait_for(lambda m: m["type"] in ("error", "dicom-pull-done"), start=start)
            assert (error["type"], error["code"], error["ref"]) == ("error", code, f"case-{value}"), (name, error)
            # The room carries on, and the witness saw nothing of the refused pull.
            receipt = await sender.send_fhir(potassium(float(value)))
            await witness.wait_for(lambda m: m.get("seq") == receipt["seq"], start=seen_by_witness)
            assert [m["type"] for m in witness.messages[seen_by_witness:]] == ["lab"], name
        assert (await sender.pull_dicom(STUDY_UID))["count"] == 3  # and a good pull still works
    finally:
        await close(sender, witness, trainee, down_sender, off_sender)
        await down_runner.cleanup()


async def test_pulls_per_room_are_bounded(tmp_path):
    release = asyncio.Event()

    async def slow_pacs(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(status=404)

    stub, stub_port = await _serve_stub(slow_pacs)
    server, runner = await start_server(str(tmp_path / "data"), pacs_url=f"http://127.0.0.1:{stub_port}/dicom-web")
    await server.create_room("busy", PASSWORD)
    peer = await join(server, "busy", "Dr A")

    async def error_for(ref: str) -> str:
        return (await peer.wait_for(lambda m: m["type"] == "error" and m.get("ref") == ref))["code"]

    try:
        for ref in ("p0", "p1", "p2"):
            peer.send({"type": "dicom-pull", "study_uid": "1.2.3", "ref": ref})
        assert await error_for("p2") == "pacs-busy"
        release.set()
        assert [await error_for("p0"), await error_for("p1")] == ["pacs-not-found"] * 2
        peer.send({"type": "dicom-pull", "study_uid": "1.2.3", "ref": "p3"})  # room for another now
        assert await error_for("p3") == "pacs-not-found"
    finally:
        await close(peer)
        await runner.cleanup()
        await stub.cleanup()


async def test_source_maps_pacs_failures_to_clear_errors(orthanc):
    request = PullRequest(STUDY_UID)
    sources = {
        "pacs-forbidden": DicomWebSource(orthanc.dicomweb, PACS_USER, "wrong-password"),
        "pacs-too-many": DicomWebSource(orthanc.dicomweb, PACS_USER, PACS_PASSWORD, max_instances=2),
        "dicom-too-large": DicomWebSource(orthanc.dicomweb, PACS_USER, PACS_PASSWORD, max_size=20_000),
    }
    for code, source in sources.items():
        try:
            with pytest.raises(ClinicalError) as caught:
                async with aclosing(source.instances(request)) as instances:
                    async for _ in instances:
                        pass
            assert caught.value.code == code
        finally:
            await source.close()


@pytest.mark.parametrize("answer, code", [
    ({"status": 500}, "pacs-error"),
    ({"status": 302, "headers": {"Location": "http://example.org/"}}, "pacs-error"),
    ({"content_type": "application/dicom+json", "body": b"[]"}, "pacs-multipart"),
    ({"headers": {"Content-Type": 'multipart/related; type="application/dicom"'}, "body": b"x"}, "pacs-multipart"),
    ({"headers": {"Content-Type": "multipart/related; boundary=b"}, "body": b"no boundary here"}, "pacs-multipart"),
    ({"parts": [("text/plain", b"not an image")]}, "pacs-not-dicom"),
    ({"parts": [("multipart/mixed; boundary=c", b"--c--")]}, "pacs-multipart"),
    ({"parts": [("application/dicom", b"D" * 100)], "truncate": 10}, "pacs-error"),
    ({"delay": 2}, "pacs-timeout"),
])
async def test_misbehaving_dicomweb_servers_get_clear_errors(answer, code):
    async def handler(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(answer.get("delay", 0))
        if "parts" in answer:
            body = b"".join(b"--b\r\nContent-Type: %s\r\n\r\n%s\r\n" % (kind.encode(), data)
                            for kind, data in answer["parts"]) + b"--b--\r\n"
            response = web.StreamResponse(headers={
                "Content-Type": 'multipart/related; type="application/dicom"; boundary=b',
                "Content-Length": str(len(body))})
            await response.prepare(request)
            await response.write(body[:-answer["truncate"]] if "truncate" in answer else body)
            if "truncate" in answer:
                request.transport.close()  # fewer bytes than announced, then hang up
            return response
        return web.Response(status=answer.get("status", 200), body=answer.get("body"),
                            content_type=answer.get("content_type"), headers=answer.get("headers"))

    runner, port = await _serve_stub(handler)
    source = DicomWebSource(f"http://127.0.0.1:{port}/dicom-web", timeout=0.5)
    try:
        with pytest.raises(ClinicalError) as caught:
            async with aclosing(source.instances(PullRequest("1.2.3"))) as instances:
                async for _ in instances:
                    pass
        assert caught.value.code == code
    finally:
        await source.close()
        await runner.cleanup()


def test_pacs_settings(tmp_path):
    args = build_parser().parse_args(["--pacs-url", "http://127.0.0.1:8042/dicom-web/"])
    settings = config.load(args, environ={"TELEMED_PACS_USERNAME": "telemed", "TELEMED_PACS_PASSWORD": "hunter2-pw",
                                          "TELEMED_PACS_TIMEOUT": "5"})
    assert (settings.pacs_url, settings.pacs_username, settings.pacs_timeout) == (
        "http://127.0.0.1:8042/dicom-web", "telemed", 5.0)
    assert "hunter2-pw" not in repr(settings) and "hunter2-pw" not in repr(DicomWebSource(
        settings.pacs_url, settings.pacs_username, config.reveal(settings.pacs_password)))
    assert config.load(build_parser().parse_args([]), environ={}).pacs_url is None  # off by default
    for bad in ({"TELEMED_PACS_URL": "ftp://pacs/dicom-web"}, {"TELEMED_PACS_URL": "http://u:p@pacs/dicom-web"},
                {"TELEMED_PACS_USERNAME": "telemed"},
                {"TELEMED_PACS_URL": "http://pacs", "TELEMED_PACS_TIMEOUT": "0"}):
        with pytest.raises(ValueError):
            config.load(build_parser().parse_args([]), environ=bad)
    help_text = build_parser().format_help()
    assert all(flag in help_text for flag in ("--pacs-url", "--pacs-password", "TELEMED_PACS_TIMEOUT"))


async def _serve_stub(handler) -> tuple[web.AppRunner, int]:
    """A stand-in DICOMweb server on loopback, for answers no real PACS gives on purpose."""
    app = web.Application()
    app.router.add_get("/dicom-web/studies/{uid}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, port
