"""Bad clinical input: each gets its error back to its sender only, and the room carries on."""

from __future__ import annotations

import asyncio
import hashlib
import json
from io import BytesIO

import numpy as np
from pydicom import dcmread

from telemed_client import ClientError
from telemed_client.ecg_sources import EcgSignal
from telemed_client.wire import pack_chunk, pack_ecg, unpack_ecg
from tests.clinical_peers import PASSWORD, bundled, close, join, oru_r01, potassium


async def test_each_bad_input_is_refused_to_its_sender_only(server):
    await server.create_room("strict", PASSWORD)
    sender = await join(server, "strict", "Dr A")
    device = await join(server, "strict", "Ambulance", role="device")
    witness = await join(server, "strict", "Dr B")
    ct = bundled("CT_small.dcm")
    three_leads = EcgSignal(("I", "II", "III"), 500, np.zeros((50, 3), np.int16))

    def dicom(data: bytes, name: str):
        return lambda: sender.send_dicom(data, name, transfer_id=name)

    def control(peer, message):
        return lambda: _raw(peer.client.control, message if isinstance(message, str) else json.dumps(message))

    cases = {  # name: (who sends, how, the error code it must get)
        "garbage on bulk": (sender, lambda: _raw(sender.bulk, b"\x00garbage"), "dicom-chunk"),
        "text on bulk": (sender, lambda: _raw(sender.bulk, "hello"), "dicom-chunk"),
        "truncated DICOM": (sender, dicom(ct[:-1000], "truncated"), "dicom-truncated"),
        "force-only DICOM": (sender, dicom(bundled("no_meta.dcm"), "no-meta"), "dicom-not-part10"),
        "not DICOM at all": (sender, dicom(b"%PDF-1.7 " * 100, "pdf"), "dicom-not-part10"),
        "SOP class not accepted": (sender, dicom(bundled("rtdose.dcm"), "rtdose"), "dicom-sop-class"),
        "burned-in annotation": (sender, dicom(_burned_in(ct), "burned"), "dicom-burned-in"),
        "wrong SHA-256": (sender, lambda: _wrong_sha(sender, ct), "dicom-sha256"),
        "oversized DICOM": (sender, control(sender, {
            "type": "dicom-announce", "transfer_id": "huge", "name": "huge.dcm", "size": 65 * 2**20,
            "sha256": "0" * 64, "chunk_count": 1040, "chunk_size": 65536}), "dicom-too-large"),
        "oversized chunk": (sender, lambda: _oversized_chunk(sender), "dicom-chunk-size"),
        "oversized message": (sender, control(sender, {"type": "lab-fhir", "resource": {"x": "x" * 200_000}}),
                              "too-large"),
        "invalid FHIR": (sender, control(sender, {"type": "lab-fhir", "resource": {
            **potassium(), "valueQuantity": "high"}}), "fhir-type"),
        "FHIR without LOINC": (sender, control(sender, {"type": "lab-fhir", "resource": {
            **potassium(), "code": {"coding": [{"system": "http://snomed.info/sct", "code": "1"}]}}}),
            "lab-loinc"),
        "HL7 without OBR": (sender, control(sender, {"type": "lab-hl7", "message": oru_r01(with_obr=False)}),
                            "hl7-structure"),
        "ECG frame of an unknown stream": (device, lambda: _raw(device.ecg, _frame(99, 3, 10)),
                                           "ecg-unknown-stream"),
        "ECG frame too short": (device, lambda: _raw(device.ecg, _frame(5, 3, 10)[:-2]), "ecg-frame-length"),
        "ECG frame with too many leads": (device, lambda: _raw(device.ecg, _frame(5, 12, 10)), "ecg-inconsistent"),
        "ECG frame at another rate": (device, lambda: _raw(device.ecg, _frame(5, 3, 10, rate=1000)),
                                      "ecg-inconsistent"),
        "ECG announce of 5 leads": (device, control(device, {
            "type": "ecg-announce", "stream_id": 6, "leads": list("abcde"), "sample_rate": 500}), "ecg-announce"),
        "ECG stream id taken": (sender, lambda: sender.announce_ecg(three_leads, stream_id=5), "ecg-stream-in-use"),
        "unknown message type": (sender, control(sender, {"type": "dicom-nonsense"}), "unknown-type"),
    }
    try:
        await device.announce_ecg(three_leads, stream_id=5)
        await witness.wait_for(lambda m: m["type"] == "ecg-announce")
        errors = {}
        for value, (name, (peer, action, code)) in enumerate(cases.items()):
            seen_by_witness = len(witness.messages)
            start = len(peer.messages)
            try:
                await action()
            except ClientError as exc:  # the helpers that wait for a reply raise the refusal
                assert exc.code == code, name
            errors[name] = await peer.wait_for(lambda m: m["type"] == "error", start=start)
            assert errors[name]["code"] == code, (name, errors[name])
            # The room carries on: a valid result still reaches the witness, and it is all
            # the witness saw: nothing of the refused input.
            receipt = await sender.send_fhir(potassium(float(value)))
            await witness.wait_for(lambda m: m.get("seq") == receipt["seq"], start=seen_by_witness)
            assert [m["type"] for m in witness.messages[seen_by_witness:]] == ["lab"], name
        assert errors["truncated DICOM"]["ref"] == "truncated"
        assert errors["ECG frame with too many leads"]["ref"] == 5
        assert "MSA|AE|MSG0001" in errors["HL7 without OBR"]["ack"]
        # the device's stream survived its bad frames
        device.ecg.send(_frame(5, 3, 10))
        assert unpack_ecg((await asyncio.wait_for(witness.ecg_frames.get(), 10))[1]).stream_id == 5
        assert witness.ecg_frames.empty()  # and no bad frame was ever relayed
        session = server.core.live.rooms["strict"].clinical
        assert {e["kind"] for e in session.log.read()} == {"ecg-announce", "lab"}
    finally:
        await close(sender, device, witness)


def _burned_in(data: bytes) -> bytes:
    ds = dcmread(BytesIO(data))
    ds.BurnedInAnnotation = "YES"
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


async def _raw(channel, data) -> None:
    channel.send(data)


def _frame(stream_id: int, leads: int, n: int, rate: int = 500) -> bytes:
    return pack_ecg(stream_id, 0, 0, rate, np.zeros((n, leads), np.int16))


async def _wrong_sha(peer, data: bytes) -> None:
    peer.send({"type": "dicom-announce", "transfer_id": "badsha", "name": "x.dcm", "size": len(data),
               "sha256": hashlib.sha256(b"other").hexdigest(), "chunk_count": 1, "chunk_size": 65536})
    await peer.wait_for(lambda m: m["type"] == "dicom-ready" and m["transfer_id"] == "badsha")
    peer.bulk.send(pack_chunk("badsha", 0, data))
    peer.send({"type": "dicom-complete", "transfer_id": "badsha"})


async def _oversized_chunk(peer) -> None:
    peer.send({"type": "dicom-announce", "transfer_id": "big-chunk", "name": "x.dcm", "size": 70000,
               "sha256": "0" * 64, "chunk_count": 2, "chunk_size": 65536})
    await peer.wait_for(lambda m: m["type"] == "dicom-ready" and m["transfer_id"] == "big-chunk")
    peer.bulk.send(pack_chunk("big-chunk", 0, b"\x00" * 65537))
