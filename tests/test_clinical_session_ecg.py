"""Live ECG from a device client to subscribers over real aiortc connections."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import numpy as np
import pytest
import wfdb
from pydicom.data import get_testdata_file

from conference.ecg_relay import BUFFER_LIMIT, RECORD_HEAD, EcgRelay
from clinical.ecg import EcgAnnounce, unpack_frame
from telemed_client import ambulance
from telemed_client.ecg_sources import EcgSignal, from_dicom_waveform, from_wfdb, synthetic
from telemed_client.wire import EcgFrame, pack_ecg, unpack_ecg
from tests.clinical_peers import PASSWORD, close, join
from vault import EncryptedReader, EncryptedWriter, KeyRing


async def drain(queue: asyncio.Queue, count: int, timeout: float = 10) -> list[EcgFrame]:
    """``count`` received frames in seq order (the ecg channel is unordered)."""
    out = []
    async def pull() -> None:
        while len(out) < count:
            out.append(unpack_ecg((await queue.get())[1]))
    await asyncio.wait_for(pull(), timeout)
    return sorted(out, key=lambda f: f.seq)


def recorded_frames(path: Path, ring: KeyRing) -> list[bytes]:
    """The frames of an ECG recording, decrypted (it is never plaintext on disk)."""
    with EncryptedReader(path, ring) as reader:
        data = reader.readall()
    frames, pos = [], 0
    raw = path.read_bytes()
    while pos < len(data):
        _, length = RECORD_HEAD.unpack_from(data, pos)
        pos += RECORD_HEAD.size
        frames.append(data[pos:pos + length])
        pos += length
    assert not any(frame in raw for frame in frames), "ECG frames on disk in plaintext"
    return frames


async def test_device_streams_to_two_subscribers_without_loss(server):
    await server.create_room("ambulance", PASSWORD)
    device = await join(server, "ambulance", "Ambulance 7", role="device")
    doctors = [await join(server, "ambulance", n) for n in ("Dr A", "Dr B")]
    signal = synthetic(12, 500, 3.0)
    sent: list[int] = []
    try:
        frames = await device.stream_ecg(signal, stream_id=7,
                                         on_sent=lambda seq, t: sent.append(seq))
        assert frames == len(sent) == 75  # 3 s in 40 ms frames
        for doctor in doctors:
            announce = await doctor.wait_for(lambda m: m["type"] == "ecg-announce")
            assert announce["leads"][6] == "V1" and announce["sample_rate"] == 500
            got = await drain(doctor.ecg_frames, frames)
            assert [f.seq for f in got] == list(range(frames))  # every frame, none twice
            assert np.array_equal(np.concatenate([f.samples for f in got]), signal.samples)
            end = await doctor.wait_for(lambda m: m["type"] == "ecg-end")
            assert (end["stream_id"], end["frames"], end["reason"]) == (7, frames, "ended")
        assert device.ecg_frames.empty()  # nobody gets their own stream back
        session = server.core.live.rooms["ambulance"].clinical
        announce_entry = next(session.log.read())
        recording = recorded_frames(session.directory / announce_entry["body"]["recording"],
                                    server.core.keyring)
        assert sorted(unpack_frame(f).seq for f in recording) == list(range(frames))
    finally:
        await close(device, *doctors)


async def test_disconnected_device_ends_its_streams(server):
    await server.create_room("cut", PASSWORD)
    device = await join(server, "cut", "Ambulance", role="device")
    doctor = await join(server, "cut", "Dr A")
    try:
        signal = synthetic(3, 250, 1)
        await device.announce_ecg(signal, stream_id=1)
        for k in range(5):
            device.ecg.send(pack_ecg(1, k, 10 * k, 250, signal.samples[10 * k:10 * (k + 1)]))
        await drain(doctor.ecg_frames, 5)
        await device.client.close()  # gone without an ecg-end
        end = await doctor.wait_for(lambda m: m["type"] == "ecg-end")
        assert (end["stream_id"], end["reason"], end["frames"]) == (1, "disconnected", 5)
        late = await join(server, "cut", "Dr Late")
        state = await late.wait_for(lambda m: m["type"] == "clinical-state")
        assert state["ecg_streams"] == []
        await close(late)
    finally:
        await close(device, doctor)


async def test_dicom_waveform_and_wfdb_sources_stream(server, tmp_path):
    await server.create_room("sources", PASSWORD)
    device = await join(server, "sources", "Cart", role="device")
    doctor = await join(server, "sources", "Dr A")
    dicom = from_dicom_waveform(get_testdata_file("waveform_ecg.dcm"))
    assert dicom.leads[:3] == ("I", "II", "III") and dicom.sample_rate == 1000 and len(dicom.leads) == 12
    # A 3-lead WFDB record written here (wfdb's own writer), read back by the client's reader.
    mv = synthetic(3, 360, 2.0).samples / 1000.0
    wfdb.wrsamp("rec", fs=360, units=["mV"] * 3, sig_name=["I", "II", "III"], p_signal=mv,
                fmt=["16"] * 3, adc_gain=[1000.0] * 3, baseline=[0] * 3, write_dir=str(tmp_path))
    record = from_wfdb(tmp_path / "rec")
    assert record.sample_rate == 360 and np.abs(record.samples - synthetic(3, 360, 2.0).samples).max() <= 1
    try:
        for signal, sid in ((EcgSignal(dicom.leads, 1000, dicom.samples[:1000], dicom.uv_per_lsb), 1),
                            (record, 2)):
            sent = await device.stream_ecg(signal, stream_id=sid)
            got = await drain(doctor.ecg_frames, sent)
            assert {f.stream_id for f in got} == {sid}
            assert np.array_equal(np.concatenate([f.samples for f in got]), signal.samples)
    finally:
        await close(device, doctor)


class FakeChannel:
    def __init__(self, buffered: int = 0) -> None:
        self.readyState = "open"
        self.bufferedAmount = buffered
        self.sent: list[bytes] = []

    def send(self, data: bytes) -> None:
        self.sent.append(data)


def test_a_slow_receiver_loses_frames_and_holds_back_nobody(tmp_path):
    relay = EcgRelay()
    fast, slow = FakeChannel(), FakeChannel(buffered=BUFFER_LIMIT + 1)
    relay.attach("fast", fast)
    relay.attach("slow", slow)
    ring = KeyRing(bytes(range(32)))
    relay.open("device", EcgAnnounce(3, ("I", "II", "III"), 500),
               lambda: EncryptedWriter(tmp_path / "3.ecg", *ring.new_data_key()))
    frames = [pack_ecg(3, k, 20 * k, 500, np.zeros((20, 3), np.int16)) for k in range(10)]
    for k, data in enumerate(frames):
        if k == 5:
            slow.bufferedAmount = 0  # it caught up
        assert relay.forward("device", unpack_frame(data), data) == []
    assert fast.sent == frames and slow.sent == frames[5:]
    assert relay.detach("slow") == 5 and relay.detach("fast") == 0
    assert relay.close("device", 3)["frames"] == 10
    assert len(recorded_frames(tmp_path / "3.ecg", ring)) == 10


def test_a_stream_carried_over_from_a_dead_node_acknowledges_from_its_first_resent_frame(tmp_path):
    """docs/multinode.md "A node lost": the sender resends from frame 40 on (the dead node
    had the rest); a resent duplicate is dropped, and acknowledgements go on from 40."""
    relay = EcgRelay()
    ring = KeyRing(bytes(range(32)))
    relay.open("device", EcgAnnounce(3, ("I", "II", "III"), 500),
               lambda: EncryptedWriter(tmp_path / "3.ecg", *ring.new_data_key()), carried=True)
    assert relay.acked("device", 3) == -1
    frames = [pack_ecg(3, k, 20 * k, 500, np.zeros((20, 3), np.int16)) for k in range(40, 45)]
    for data in [*frames, frames[1]]:
        relay.forward("device", unpack_frame(data), data)
    assert relay.acked("device", 3) == 44 and relay.close("device", 3)["frames"] == 5


@pytest.mark.parametrize("credential", ["password", "invite"])
async def test_ambulance_example_streams_ecg_and_video(server, credential):
    await server.create_room("stroke", PASSWORD)
    doctor = await join(server, "stroke", "Neurologist")
    secret = PASSWORD
    if credential == "invite":  # a device invitation, as a host would hand to the ambulance crew
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{server.url}/api/rooms/stroke/invites", json={"role": "device"},
                                 headers={"Authorization": f"Bearer {server.admin_key}"}) as r:
                secret = (await r.json())["code"]
    args = ambulance.build_parser().parse_args(
        ["--url", server.url, "--room", "stroke", f"--{credential}", secret, "--seconds", "3"])
    try:
        run = asyncio.ensure_future(ambulance.run(args))
        track = await doctor.client.wait_event("track-published", timeout=15)
        assert track["track"]["source"] == "camera"
        frames = await drain(doctor.ecg_frames, 25)
        assert frames[0].samples.shape == (20, 12) and len({f.seq for f in frames}) == 25
        await asyncio.wait_for(run, 15)
        assert (await doctor.wait_for(lambda m: m["type"] == "ecg-end"))["reason"] == "ended"
    finally:
        await close(doctor)
