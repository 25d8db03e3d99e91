"""The ambulance on a moving link (issue 11), in network namespaces this test creates:
the server and a doctor in one, the ambulance device client (its own process, as on
the tablet) in the other, joined by a veth pair.

- its address changes mid-call: it resumes, and the doctor never sees it leave;
- 20% loss and 200 ms of jitter: every ECG frame arrives, and audio goes on.

This kernel has no `tc netem`, so the link runs through a third namespace where
benchmarks/impairment.py drops and delays frames (benchmarks/netns.py).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from aiortc.mediastreams import MediaStreamError

from benchmarks.netns import NETWORK, SERVER_IP, NetnsPair
from telemed_client import Client
from telemed_client.clinical import CHANNELS, Clinical
from telemed_client.wire import unpack_ecg
from tests.network_guard import allowed_network
from tests.polling import until
from tests.server import start_server

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "moving-pw-1"
NEW_CELL_IP = "10.99.0.7"

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip"),
                                reason="needs root and iproute2 for network namespaces")


class Ambulance:
    """The device client, run in the client namespace; its stdout lines are followed."""

    def __init__(self, ns: NetnsPair, url: str, room: str, seconds: float) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT / "clients" / "python"), "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            ns.client_cmd([sys.executable, "-m", "telemed_client.ambulance", "--url", url, "--room", room,
                           "--password", PASSWORD, "--name", "Ambulance 12", "--leads", "3",
                           "--seconds", str(seconds), "--no-video"]),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self.lines: list[str] = []
        self._reader = asyncio.ensure_future(asyncio.to_thread(self._read))

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip())

    async def said(self, text: str, timeout: float) -> None:
        async def poll() -> None:
            while not any(text in line for line in self.lines):
                if self._reader.done():
                    raise AssertionError(f"the ambulance ended without saying {text!r}: {self.lines[-20:]}")
                await asyncio.sleep(0.05)
        await asyncio.wait_for(poll(), timeout)

    async def finished(self, timeout: float) -> int:
        await asyncio.wait_for(asyncio.shield(self._reader), timeout)
        return self.process.wait(5)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
async def moving_link(tmp_path):
    """Namespaces, a server on SERVER_IP (and its loopback) with a doctor, in-process."""
    with NetnsPair(f"res{os.getpid()}", impairable=True) as ns, allowed_network(NETWORK), \
            ns.entered(ns.server):
        running, runner = await start_server(str(tmp_path / "data"), host="0.0.0.0",
                                             ice_hosts=["127.0.0.1", SERVER_IP])
        try:
            yield ns, running
        finally:
            await runner.cleanup()


async def doctor_in(running, room: str) -> Clinical:
    token = await running.token(room, PASSWORD, "host", "Dr Stroke")
    return await Clinical.open(await Client.join(running.url, token, channels=CHANNELS))


def ecg_seqs(doctor: Clinical) -> list[int]:
    seqs = []
    while not doctor.ecg_frames.empty():
        seqs.append(unpack_ecg(doctor.ecg_frames.get_nowait()[1]).seq)
    return seqs


async def test_the_ambulance_changes_address_mid_call_and_resumes(moving_link):
    ns, running = moving_link
    room = "stroke-1"
    await running.create_room(room, PASSWORD)
    doctor = await doctor_in(running, room)
    seen: list[dict] = []
    doctor.client.on_event = seen.append
    ambulance = Ambulance(ns, f"http://{SERVER_IP}:{running.url.rsplit(':', 1)[1]}", room, seconds=12)
    try:
        await ambulance.said("streaming", 60)
        joined = next(e for e in seen if e["type"] == "participant-joined")
        peer_id = joined["participant"]["peer_id"]
        audio_id = await _track_of(doctor.client, peer_id, "audio")
        audio = await doctor.client.subscribe(audio_id)
        await _frames(audio, 25, 30)
        await until(lambda: doctor.ecg_frames.qsize() >= 25, 30)

        ns.move_client(NEW_CELL_IP)  # a new cell: the old address and its connections are gone

        await ambulance.said("connection resumed", 30)
        await doctor.client.wait_event("participant-reconnected", timeout=30,
                                       match=lambda m: m["participant"]["peer_id"] == peer_id)
        await _frames(audio, 50, 30)  # the same subscription, media again
        end = await doctor.wait_for(lambda m: m.get("type") == "ecg-end", timeout=60)
        assert await ambulance.finished(30) == 0, ambulance.lines[-20:]
        await until(lambda: doctor.ecg_frames.qsize() >= end["frames"], 10)
        seqs = ecg_seqs(doctor)
        assert sorted(seqs) == list(range(end["frames"])), "ECG frames lost or doubled"
        # One seat throughout: its only leave is the one at the end of the run.
        kinds = [e["type"] for e in seen]
        assert kinds.count("participant-joined") == 1 and kinds.count("participant-left") <= 1, kinds
        assert kinds.index("participant-reconnected") < kinds.index("participant-left") == len(kinds) - 1
        assert ambulance.lines[-1].startswith("sent ")
    finally:
        ambulance.stop()
        await doctor.client.close()


async def test_ecg_is_complete_and_audio_goes_on_with_loss_and_jitter(moving_link):
    ns, running = moving_link
    room = "stroke-2"
    await running.create_room(room, PASSWORD)
    doctor = await doctor_in(running, room)
    seen: list[dict] = []
    doctor.client.on_event = seen.append
    ambulance = Ambulance(ns, f"http://{SERVER_IP}:{running.url.rsplit(':', 1)[1]}", room, seconds=15)
    try:
        await ambulance.said("streaming", 60)
        peer_id = next(e for e in seen if e["type"] == "participant-joined")["participant"]["peer_id"]
        audio = await doctor.client.subscribe(await _track_of(doctor.client, peer_id, "audio"))
        await _frames(audio, 25, 30)

        # Audio goes on through the loss: counted while the ECG runs. (Counting a fixed
        # number of frames raced the ambulance's fixed 15 s of streaming on a busy machine.)
        heard = [0]
        counting = asyncio.ensure_future(_count_frames(audio, heard))
        ns.impair(loss=0.2, delay=0.2, jitter=0.2)  # 0..400 ms each way, reordered
        end = await doctor.wait_for(lambda m: m.get("type") == "ecg-end", timeout=90)
        ns.impair()
        counting.cancel()
        assert heard[0] >= 50, f"only {heard[0]} audio frames came through the lossy link"

        assert await ambulance.finished(30) == 0, ambulance.lines[-20:]
        await until(lambda: doctor.ecg_frames.qsize() >= end["frames"], 10)
        assert sorted(ecg_seqs(doctor)) == list(range(end["frames"])), "ECG frames lost or doubled"
        assert end["frames"] >= 15 * 25 - 1
        kinds = [e["type"] for e in seen]
        assert kinds.count("participant-joined") == 1 and kinds.count("participant-left") <= 1, kinds
    finally:
        ambulance.stop()
        await doctor.client.close()


async def _track_of(client: Client, peer_id: str, kind: str) -> str:
    def find() -> str | None:
        return next((t["id"] for t in client.tracks.values() if t["peer_id"] == peer_id and t["kind"] == kind),
                    None)
    await until(lambda: find() is not None, 30)
    return find()


async def _count_frames(track, heard: list[int]) -> None:
    try:
        while True:
            await track.recv()
            heard[0] += 1
    except MediaStreamError:
        pass  # the track ended


async def _frames(track, count: int, timeout: float) -> None:
    async def pull() -> None:
        for _ in range(count):
            await track.recv()
    await asyncio.wait_for(pull(), timeout)
