"""DICOM and lab results over real aiortc connections: shared, fetched, audited, and
handed to a late joiner."""

from __future__ import annotations

import hashlib
import json
from io import BytesIO
from pathlib import Path

import aiohttp
import cv2
import numpy as np
from pydicom import dcmread

from clinical.audit import verify
from telemed_client.ecg_sources import synthetic
from tests.clinical_peers import PASSWORD, bundled, close, join, multiframe_ct, oru_r01, potassium
from tests.disk_files import file_contents


def audit_records(server) -> list[dict]:
    path = Path(server.core.settings.data_dir) / "audit.jsonl"
    verify(path, server.core.audit.key)  # the keyed chain is intact
    return [json.loads(line) for line in path.read_text().splitlines()]


async def http_get(url: str, token: str | None = None) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as session:
        async with session.get(url, headers=headers) as r:
            return r.status, await r.read()


async def test_eight_mib_dicom_reaches_everyone_byte_identical(server):
    await server.create_room("consult", PASSWORD)
    sender, viewer, other = [await join(server, "consult", n) for n in ("Dr A", "Dr B", "Dr C")]
    data = multiframe_ct()
    assert len(data) > 8 * 1024 * 1024
    try:
        receipt = await sender.send_dicom(data, "chest ct.dcm")
        assert receipt["sha256"] == hashlib.sha256(data).hexdigest()
        assert receipt["deidentified"] is False and receipt["object"]["frames"] == 16
        for peer in (other, viewer):
            notice = await peer.wait_for(lambda m: m["type"] == "dicom")
            assert notice["sha256"] == receipt["sha256"] and notice["sender"] == sender.client.peer_id
            assert notice["size"] == len(data) and "bytes" not in notice  # a reference, not the file
        # `notice` is now the viewer's: its links name the viewer, for the audit log
        # The viewer opens its own signed link; the other participant uses its room token.
        assert await viewer.fetch(notice["url"]) == data
        status, body = await http_get(f"{server.url}/api/rooms/consult/objects/{receipt['sha256']}",
                                      other.client.token)
        assert status == 200 and body == data
        # CT_small rescales by -1024: discs are near 0 HU, the background near -1000 HU.
        frames = [await viewer.fetch(f"{notice['preview_url']}&frame={k}&wc=-500&ww=400") for k in (0, 15)]
        first, last = (cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED) for png in frames)
        assert first.shape == last.shape == (512, 512)
        lit = [int((image > 128).sum()) for image in (first, last)]
        assert abs(lit[0] - np.pi * 40**2) < 500 and abs(lit[1] - np.pi * 220**2) < 2000
        actions = [(r["action"], r["actor"]["identity"]) for r in audit_records(server)]
        assert ("share", sender.client.info["identity"]) in actions
        assert ("open", viewer.client.info["identity"]) in actions
        assert ("open", other.client.info["identity"]) in actions
        assert ("preview", viewer.client.info["identity"]) in actions
        assert_no_plaintext(Path(server.core.settings.data_dir), [b"DICM", data[-4096:]])
    finally:
        await close(sender, viewer, other)


def assert_no_plaintext(data_dir: Path, needles: list[bytes]) -> None:
    """Nothing on disk carries the shared bytes: every file is searched."""
    files = file_contents(data_dir)
    assert files
    for path, content in files.items():
        assert not any(needle in content for needle in needles), f"{path} holds plaintext"


async def test_room_requiring_deidentification_shares_a_deidentified_copy(server):
    await server.create_room("deid", PASSWORD, require_deidentification=True)
    sender, viewer = await join(server, "deid", "Dr A"), await join(server, "deid", "Dr B")
    data = multiframe_ct()
    original = dcmread(BytesIO(data))
    try:
        receipt = await sender.send_dicom(data, "Yamada^Tarou H31EXAMPLE.dcm")
        notice = await viewer.wait_for(lambda m: m["type"] == "dicom")
        assert receipt["deidentified"] is True and notice["sha256"] != hashlib.sha256(data).hexdigest()
        # The uploader's file name (a patient's name) is replaced: modality, shifted date, counter.
        assert "Yamada" not in json.dumps(notice) and notice["name"].startswith("CT_")
        assert notice["name"].endswith("_1.dcm") and notice["name"].split("_")[1] != original.StudyDate
        shared = await viewer.fetch(notice["url"])
        assert hashlib.sha256(shared).hexdigest() == notice["sha256"]
        ds = dcmread(BytesIO(shared))
        assert str(ds.PatientName) != str(original.PatientName)
        assert ds.PatientID != original.PatientID
        assert ds.SOPInstanceUID != original.SOPInstanceUID
        assert notice["object"]["sop_instance_uid"] == ds.SOPInstanceUID
        assert ds.PixelData == original.PixelData  # the image itself is untouched
        # Only the de-identified copy is reachable: the original's hash is not shared here.
        status, _ = await http_get(f"{server.url}/api/rooms/deid/objects/{hashlib.sha256(data).hexdigest()}",
                                   viewer.client.token)
        assert status == 404
    finally:
        await close(sender, viewer)


async def test_fhir_and_hl7_results_reach_all_participants(server):
    await server.create_room("labs", PASSWORD)
    lab, doctors = await join(server, "labs", "Lab", role="device"), [
        await join(server, "labs", n) for n in ("Dr A", "Dr B")]
    try:
        receipt = await lab.send_fhir(potassium(6.2))
        assert receipt["results"][0]["loinc"] == "2823-3"
        ack = await lab.send_hl7(oru_r01())
        assert "MSA|AA|MSG0001" in ack
        for doctor in doctors:
            fhir = await doctor.wait_for(lambda m: m["type"] == "lab" and m["source"] == "fhir")
            hl7 = await doctor.wait_for(lambda m: m["type"] == "lab" and m["source"] == "hl7v2")
            (k,), (hb,) = fhir["results"], hl7["results"]
            assert (k["value"], k["unit"], k["interpretation"], k["abnormal"]) == (6.2, "mmol/L", "H", True)
            assert (hb["loinc"], hb["value"], hb["ref_low"], hb["interpretation"]) == ("718-7", 9.1, 12.0, "L")
            assert hl7["seq"] > fhir["seq"] and hl7["sender_name"] == "Lab"
        entries = list(server.core.live.rooms["labs"].clinical.log.read())
        assert [e["kind"] for e in entries] == ["lab", "lab"]
    finally:
        await close(lab, *doctors)


async def test_late_joiner_gets_the_state(server):
    await server.create_room("late", PASSWORD)
    early = await join(server, "late", "Dr A")
    device = await join(server, "late", "Ambulance", role="device")
    try:
        dicom = await early.send_dicom(bundled("CT_small.dcm"), "ct.dcm")
        await early.send_fhir(potassium(4.0))
        await early.send_fhir(potassium(6.5))  # a newer result for the same test replaces it
        stream_id = await device.announce_ecg(synthetic(3, 250, 1))
        late = await join(server, "late", "Dr Late")
        over_ws = await late.client.wait_event("clinical-state")
        over_dc = await late.wait_for(lambda m: m["type"] == "clinical-state")
        for state in (over_ws, over_dc):
            assert [d["sha256"] for d in state["dicom"]] == [dicom["sha256"]]
            assert [r["value"] for r in state["labs"]] == [6.5]
            assert [(s["stream_id"], s["leads"]) for s in state["ecg_streams"]] == [(stream_id, ["I", "II", "III"])]
            assert state["seq"] == 4
            assert state["pacs"] is False  # no PACS configured: pages offer no pull
        # the late joiner's links are its own, and they work
        assert await late.fetch(over_dc["dicom"][0]["url"]) == bundled("CT_small.dcm")
        assert f"who={late.client.info['identity']}" in over_dc["dicom"][0]["url"]
    finally:
        await close(early, device)
        await close(late)


async def test_links_are_checked(server):
    await server.create_room("a", PASSWORD)
    await server.create_room("b", PASSWORD)
    sender = await join(server, "a", "Dr A")
    try:
        notice = await sender.send_dicom(bundled("CT_small.dcm"), "ct.dcm")
        sha, query = notice["sha256"], notice["url"].split("?", 1)[1]
        base = f"{server.url}/api/rooms"
        assert (await http_get(f"{base}/a/objects/{sha}"))[0] == 401  # no credentials
        assert (await http_get(f"{base}/b/objects/{sha}?{query}"))[0] == 403  # link of another room
        token_b = await server.token("b", PASSWORD)
        assert (await http_get(f"{base}/b/objects/{sha}", token_b))[0] == 404  # not shared in b
        assert (await http_get(f"{base}/a/objects/{sha}", token_b))[0] == 403  # b's token, a's object
        forged = query.replace("who=", "who=x")
        assert (await http_get(f"{base}/a/objects/{sha}?{forged}"))[0] == 403
        assert (await http_get(f"{base}/a/objects/{'0' * 64}?{query}"))[0] == 403  # link is per object
        status, body = await http_get(f"{base}/a/objects/{sha}/preview.png?{query}&frame=7")
        assert status == 400 and json.loads(body)["code"] == "preview-frame"
    finally:
        await close(sender)
