"""Durable before acknowledged, on real file systems: a full tmpfs under a running server,
a torn log after a crash, a read-only data directory."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from clinical.audit_check import check_trail
from clinical.jsonl import read_jsonl
from vault import KeyRing
from vault.sealed_lines import is_header
from telemed_client.client import ClientError
from telemed_client.ecg_sources import synthetic
from telemed_client.wire import pack_ecg
from tests.test_clinical_session_ecg import drain
from tests.clinical_peers import PASSWORD, bundled, close, join, oru_r01, potassium
from tests.server import free_port, start_server
from tests.tmpfs import Filler, mount_tmpfs, remount_read_only, small_disk, unmount  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent


def lab_message(i: int) -> str:
    """An ORU^R01 whose haemoglobin value (i + 0.5) tells it apart."""
    return oru_r01(control_id=f"MSG{i:04d}").replace("|9.1|", f"|{i}.5|")


def session_logs(data: Path, room: str) -> list[Path]:
    return sorted((data / "rooms" / room).glob("*/session.jsonl"))


def logged_values(data: Path, room: str, ring: KeyRing) -> list[float]:
    (path,) = session_logs(data, room)
    return [r["value"] for e in read_jsonl(path, ring) if e["kind"] == "lab" for r in e["body"]["results"]]


def assert_whole(path: Path, ring: KeyRing) -> None:
    """Every line complete and readable (session logs are sealed): nothing half-written."""
    raw = path.read_bytes()
    assert raw.endswith(b"\n")
    lines = raw.splitlines()
    assert len(list(read_jsonl(path, ring))) == len(lines) - is_header(lines[0])


async def test_full_disk_acknowledges_only_what_is_on_disk(small_disk):
    data = small_disk / "data"
    server, runner = await start_server(str(data))
    key = server.core.audit.key
    filler = None
    try:
        await server.create_room("er", PASSWORD)
        lab = await join(server, "er", "Lab", role="device")
        doctor = await join(server, "er", "Dr A")
        try:
            assert "MSA|AA|MSG0000" in await lab.send_hl7(lab_message(0))
            filler = Filler(small_disk)
            filler.free(12 * 1024)  # a few pages left: some labs fit, the rest do not
            sent = range(1, 41)
            outcomes = await asyncio.gather(*(lab.send_hl7(lab_message(i)) for i in sent),
                                            return_exceptions=True)
            acked, refused = set(), set()
            for i, outcome in zip(sent, outcomes):
                if isinstance(outcome, ClientError):
                    assert outcome.code == "storage-unavailable", outcome
                    refused.add(i)
                else:
                    assert isinstance(outcome, str) and f"MSA|AA|MSG{i:04d}" in outcome, outcome
                    acked.add(i)
            assert refused, "the disk never filled up"
            print(f"full disk: {len(acked)} labs acknowledged, {len(refused)} refused")
            # The room carries on while the disk is full: chat is relayed, media untouched.
            await doctor.client.send_chat("still here")
            assert (await lab.wait_for(lambda m: m["type"] == "chat"))["text"] == "still here"
            filler.remove()
            filler = None
            assert "MSA|AA|MSG0099" in await lab.send_hl7(lab_message(99))
            seen = await doctor.wait_for(lambda m: m["type"] == "lab" and m["results"][0]["value"] == 99.5)
            heard = {m["results"][0]["value"] for m in doctor.messages[:doctor.messages.index(seen) + 1]
                     if m["type"] == "lab"}
            assert heard == {i + 0.5 for i in {0, *acked, 99}}  # a refused lab reached nobody
        finally:
            await close(lab, doctor)
    finally:
        if filler is not None:
            filler.remove()
        await runner.cleanup()

    # After a restart: every acknowledged lab is in the log, nothing else, nothing torn.
    server, runner = await start_server(str(data))
    try:
        assert sorted(logged_values(data, "er", server.core.keyring)) == sorted(i + 0.5 for i in {0, *acked, 99})
        for path in (*session_logs(data, "er"), data / "audit.jsonl"):
            assert_whole(path, server.core.keyring)
        report = check_trail(data, key)
        assert report.ok, report.lines
        shares = [json.loads(line) for line in (data / "audit.jsonl").read_text().splitlines()]
        assert sum(1 for r in shares if r["action"] == "share" and r["details"]["kind"] == "lab") >= \
            len(acked) + 2
        # A rejoin finds the clinical state (the newest haemoglobin) and can add to it.
        late = await join(server, "er", "Dr Late")
        try:
            state = await late.wait_for(lambda m: m["type"] == "clinical-state")
            assert [r["value"] for r in state["labs"]] == [99.5]
            assert (await late.send_fhir(potassium(5.0)))["results"][0]["value"] == 5.0
        finally:
            await close(late)
    finally:
        await runner.cleanup()


async def test_full_disk_refuses_a_dicom_share_to_its_sender_only(small_disk):
    server, runner = await start_server(str(small_disk / "data"))
    filler = None
    try:
        await server.create_room("ct", PASSWORD)
        sender, witness = await join(server, "ct", "Dr A"), await join(server, "ct", "Dr B")
        try:
            filler = Filler(small_disk)
            with pytest.raises(ClientError) as e:
                await sender.send_dicom(bundled("CT_small.dcm"), "ct.dcm")
            assert e.value.code == "storage-unavailable"
            filler.remove()
            filler = None
            receipt = await sender.send_dicom(bundled("CT_small.dcm"), "ct.dcm")
            notice = await witness.wait_for(lambda m: m["type"] == "dicom")
            assert notice["seq"] == receipt["seq"]  # the refused one was never announced
            assert [m for m in witness.messages if m["type"] == "dicom"] == [notice]
            records = [json.loads(line) for line in (small_disk / "data" / "audit.jsonl").read_text().splitlines()]
            share = next(r for r in records if r["action"] == "share" and r["object"] == receipt["sha256"])
            assert share["details"]["kind"] == "dicom"
        finally:
            await close(sender, witness)
    finally:
        if filler is not None:
            filler.remove()
        await runner.cleanup()


async def test_torn_logs_are_repaired_on_start_and_the_repair_is_audited(tmp_path):
    data = tmp_path / "data"
    server, runner = await start_server(str(data))
    key = server.core.audit.key
    try:
        await server.create_room("icu", PASSWORD)
        doctor = await join(server, "icu", "Dr A")
        try:
            image = await doctor.send_dicom(bundled("CT_small.dcm"), "ct.dcm")
            await doctor.send_fhir(potassium(6.1))
        finally:
            await close(doctor)
    finally:
        await runner.cleanup()
    (session_log,) = session_logs(data, "icu")
    torn_session = b'{"seq":3,"t":12.5,"kind":"lab","sender":"x","bo'
    torn_audit = b'{"seq":99,"wall":"2026-'
    with open(session_log, "ab") as f:
        f.write(torn_session)  # a crash mid-write
    with open(data / "audit.jsonl", "ab") as f:
        f.write(torn_audit)

    server, runner = await start_server(str(data))
    try:
        for path in (session_log, data / "audit.jsonl"):
            assert_whole(path, server.core.keyring)
        records = [json.loads(line) for line in (data / "audit.jsonl").read_text().splitlines()]
        repairs = {r["object"]: r for r in records if r["action"] == "log-repaired"}
        assert set(repairs) == {"audit.jsonl", str(session_log.relative_to(data))}
        assert repairs["audit.jsonl"]["details"]["bytes_cut"] == len(torn_audit)
        assert repairs[str(session_log.relative_to(data))]["details"]["bytes_cut"] == len(torn_session)
        assert {r["actor"]["identity"] for r in repairs.values()} == {"server"}
        report = check_trail(data, key)
        assert report.ok, report.lines
        # The consult goes on where it was: its state, and the earlier image by link.
        late = await join(server, "icu", "Dr B")
        try:
            state = await late.wait_for(lambda m: m["type"] == "clinical-state")
            assert [r["value"] for r in state["labs"]] == [6.1]
            assert [d["sha256"] for d in state["dicom"]] == [image["sha256"]]
            assert await late.fetch(state["dicom"][0]["url"]) == bundled("CT_small.dcm")
            assert (await late.send_fhir(potassium(5.2)))["seq"] == 3
        finally:
            await close(late)
    finally:
        await runner.cleanup()


def test_read_only_data_directory_refuses_to_start(tmp_path):
    disk = tmp_path / "disk"
    mount_tmpfs(disk, "4m")
    try:
        (disk / "data").mkdir()
        (disk / "data" / "audit.jsonl").write_bytes(b"")
        remount_read_only(disk)
        done = subprocess.run(
            [sys.executable, "-m", "signaling", "serve", "--data-dir", str(disk / "data"), "--host", "127.0.0.1",
             "--port", str(free_port())],
            cwd=ROOT, capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    finally:
        unmount(disk)
    assert done.returncode != 0
    assert done.stderr.splitlines() == [
        f"telemed: cannot start: the server cannot store data in {disk / 'data'} (Read-only file system); "
        "the data directory must be writable"]


async def test_full_disk_keeps_ecg_live(small_disk):
    """Recording stops when the disk is full; the live strip does not."""
    server, runner = await start_server(str(small_disk / "data"))
    filler = None
    try:
        await server.create_room("amb", PASSWORD)
        device = await join(server, "amb", "Ambulance", role="device")
        doctor = await join(server, "amb", "Dr A")
        try:
            signal = synthetic(12, 500, 4.0)
            sid = await device.announce_ecg(signal)
            filler = Filler(small_disk)
            per_frame = 20
            count = len(signal.samples) // per_frame  # 100 frames, ~150 KB: far beyond the free space
            for seq in range(count):
                device.ecg.send(pack_ecg(sid, seq, seq * per_frame, 500,
                                         signal.samples[seq * per_frame:(seq + 1) * per_frame]))
                if seq % 10 == 9:
                    await asyncio.sleep(0.01)  # let SCTP drain
            got = await drain(doctor.ecg_frames, count)
            assert [f.seq for f in got] == list(range(count))
            start = len(device.messages)
            device.send({"type": "ecg-end", "stream_id": sid})
            reply = await device.wait_for(
                lambda m: m.get("stream_id") == sid and m["type"] in ("ecg-end", "error") or m.get("ref") == sid,
                start=start)
            if reply["type"] == "error":  # the log's last page was full as well
                assert reply["code"] == "storage-unavailable"
            else:
                assert reply["recording_lost"] is True and reply["frames"] == count
        finally:
            await close(device, doctor)
    finally:
        if filler is not None:
            filler.remove()
        await runner.cleanup()
