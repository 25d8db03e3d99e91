"""Recording over real aiortc peers: files decode with PyAV, frame-complete, encrypted."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import av
import numpy as np
import pytest

from sfu.aiortc_hook import tap
from sfu.rtp_packet import is_rtcp, parse_rtp
from telemed_client import Client
from tests.disk_files import file_contents
from tests.media import PatternTrack, ToneTrack
from tests.polling import until
from tests.processes import serving
from tests.server import ADMIN_KEY, RunningServer, free_media_port, free_port, start_server
from vault import EncryptedReader, KeyRing

PW = "pw-123456"
ROOT = Path(__file__).resolve().parents[1]


async def api(server, method: str, path: str, token: str | None = None, body: dict | None = None):
    headers = {"Authorization": f"Bearer {token or server.admin_key}"}
    async with aiohttp.ClientSession() as session:
        async with session.request(method, server.url + path, json=body, headers=headers) as resp:
            data = await resp.json() if resp.content_type == "application/json" else None
            return resp.status, data


def frames_written(server, room: str) -> dict[str, int]:
    recording = server.core.recordings.active(room)
    return {t.entry["kind"]: t.file.frames for t in recording._tracks.values()} if recording else {}


def demux_decode(reader) -> tuple[list[av.Packet], list[av.VideoFrame | av.AudioFrame], float]:
    """A file's media packets, every frame they decode to (the decoder drained at the end),
    and the seconds from the first packet to the last."""
    with av.open(reader) as container:
        stream = container.streams[0]
        packets, frames = [], []
        for packet in container.demux(stream):
            if packet.size:
                packets.append(packet)
            frames += packet.decode()  # the empty packet at the end drains the decoder
        duration = float((packets[-1].pts - packets[0].pts) * stream.time_base) if packets else 0.0
    return packets, frames, duration


def decode(server, recording_id: str, track: dict) -> tuple[int, int, float]:
    """(packets, decoded frames, seconds from first to last packet) of one track file."""
    path = server.core.recordings.root / recording_id / track["file"]
    with EncryptedReader(path, server.core.keyring) as reader:
        packets, frames, duration = demux_decode(reader)
    return len(packets), len(frames), duration


async def publisher(server, room: str, codec: str | None = None) -> Client:
    client = await Client.join(server.url, await server.mint(room, "participant", "Dr Pub", "pub-1"))
    await client.publish(PatternTrack(), "camera", codec=codec)
    await client.publish(ToneTrack(), "microphone")
    return client


@pytest.mark.parametrize("codec,container", [("video/VP8", "webm"), ("video/H264", "matroska")])
async def test_recording_decodes_frame_complete(server, codec, container):
    await server.create_room("rec", PW)
    host = await Client.join(server.url, await server.mint("rec", "host", "Dr Host", "host-1"))
    pub = await publisher(server, "rec", codec)
    try:
        status, body = await api(server, "POST", "/api/rooms/rec/recordings", host.token)
        assert status == 201, body
        rec_id = body["recording"]["id"]
        notice = await pub.wait_event("recording", match=lambda m: m["state"] == "started")
        assert notice == {"type": "recording", "state": "started", "id": rec_id, "by": "Dr Host"}
        started = time.monotonic()
        await until(lambda: frames_written(server, "rec").get("video", 0) >= 90
                    and frames_written(server, "rec").get("audio", 0) >= 150, what="3 s recorded")
        status, body = await api(server, "POST", f"/api/rooms/rec/recordings/{rec_id}/stop", host.token)
        elapsed = time.monotonic() - started
        assert status == 200 and body["recording"]["state"] == "stopped"
        await pub.wait_event("recording", match=lambda m: m["state"] == "stopped")
    finally:
        await pub.close()
        await host.close()
    status, manifest = await api(server, "GET", f"/api/rooms/rec/recordings/{rec_id}")
    assert status == 200 and manifest["state"] == "stopped" and manifest["by"]["identity"] == "host-1"
    tracks = {t["kind"]: t for t in manifest["tracks"]}
    assert tracks["video"]["container"] == container and tracks["audio"]["container"] == "webm"
    assert tracks["video"]["identity"] == "pub-1" and tracks["video"]["source"] == "camera"
    for kind, track in tracks.items():
        packets, frames, duration = decode(server, rec_id, track)
        assert packets == frames > 0, f"{kind}: {packets} packets gave {frames} frames"
        assert abs(duration - (track["end"] - track["start"])) < 0.1
        # a loaded publisher may send a backlog fast: bound it loosely, to catch clock-rate slips
        assert 2.5 < duration < elapsed * 1.5 + 0.5, (kind, duration, elapsed)


def raw_files(root) -> dict[str, bytes]:
    return {str(path): content for path, content in file_contents(root).items()}


async def test_data_dir_holds_no_plaintext_media(server, tmp_path):
    await server.create_room("plain", PW)
    pub = await publisher(server, "plain")
    try:
        status, body = await api(server, "POST", "/api/rooms/plain/recordings")
        assert status == 201
        rec_id = body["recording"]["id"]
        await until(lambda: frames_written(server, "plain").get("video", 0) >= 30, what="1 s recorded")
        await api(server, "POST", f"/api/rooms/plain/recordings/{rec_id}/stop")
    finally:
        await pub.close()
    manifest = server.core.recordings.get("plain", rec_id).describe()
    video = next(t for t in manifest["tracks"] if t["kind"] == "video")
    path = server.core.recordings.root / rec_id / video["file"]
    with EncryptedReader(path, server.core.keyring) as reader, av.open(reader) as container:
        payloads = [bytes(p) for p in container.demux(container.streams[0]) if p.size > 64]
    assert payloads
    files = raw_files(tmp_path / "data")
    assert any(name.endswith(".webm.enc") for name in files)
    for name, data in files.items():
        assert b"\x1a\x45\xdf\xa3" not in data, f"{name} holds a Matroska/WebM header"
        assert b"OpusHead" not in data and b"webm" not in data, name
        for payload in payloads[:20]:
            assert payload[16:48] not in data, f"{name} holds recorded media in the clear"
        assert b"Dr Pub" not in data or name.endswith("audit.jsonl"), f"{name} holds the manifest in the clear"


async def test_recording_starts_on_a_requested_keyframe(server):
    """The publisher's keyframe went by long before: recording asks for one and waits."""
    await server.create_room("kf", PW)
    pub = await publisher(server, "kf")
    try:
        live = server.core.live.rooms["kf"]
        video = next(p for p in live.router.producers.values() if p.kind == "video")
        await until(lambda: video.stats.received >= 100, what="video flowing")
        asked = video.keyframes.requests_received
        status, body = await api(server, "POST", "/api/rooms/kf/recordings")
        rec_id = body["recording"]["id"]
        assert video.keyframes.requests_received > asked  # asked for a keyframe at once
        await until(lambda: frames_written(server, "kf").get("video", 0) >= 30, what="video recorded")
        await api(server, "POST", f"/api/rooms/kf/recordings/{rec_id}/stop")
    finally:
        await pub.close()
    manifest = server.core.recordings.get("kf", rec_id).describe()
    track = next(t for t in manifest["tracks"] if t["kind"] == "video")
    assert 0 <= track["start"] <= 1.5, track
    path = server.core.recordings.root / rec_id / track["file"]
    with EncryptedReader(path, server.core.keyring) as reader:
        packets, frames, _ = demux_decode(reader)
        assert packets[0].is_keyframe
    assert len(frames) >= 29


async def test_loss_on_the_publisher_leg_still_decodes(server):
    await server.create_room("lossy", PW)
    client = await Client.join(server.url, await server.token("lossy", PW, name="Dr Pub"))
    dropped: set[int] = set()
    count = {"video": 0}

    def lose(data: bytes) -> bool:
        if is_rtcp(data):
            return True
        packet = parse_rtp(data)
        if packet.payload_type in video_pts:
            count["video"] += 1
            if count["video"] % 20 == 0 and packet.seq not in dropped:  # 5%, first sending only
                dropped.add(packet.seq)
                return False
        return True

    video_pts: set[int] = set()
    try:
        await client.publish(PatternTrack(640, 480), "camera")
        producer = next(iter(server.core.live.rooms["lossy"].router.producers.values()))
        video_pts.add(producer.payload_type)  # the original stream, not its RTX retransmissions
        tap(client.pc.getTransceivers()[0].sender.transport, on_sent=lose)
        status, body = await api(server, "POST", "/api/rooms/lossy/recordings")
        rec_id = body["recording"]["id"]
        await until(lambda: frames_written(server, "lossy").get("video", 0) >= 90 and len(dropped) >= 8,
                    timeout=30, what="3 s recorded through loss")
        await api(server, "POST", f"/api/rooms/lossy/recordings/{rec_id}/stop")
    finally:
        await client.close()
    assert producer.nack.recovered > 0  # retransmissions filled holes before the frames were written
    track = server.core.recordings.get("lossy", rec_id).describe()["tracks"][0]
    packets, frames, duration = decode(server, rec_id, track)
    assert packets == frames >= 90 and duration > 2.5


async def test_kill_9_leaves_playable_files_and_the_next_start_marks_interrupted(tmp_path):
    port = free_port()
    data = tmp_path / "data"
    url = f"http://127.0.0.1:{port}"
    args = [sys.executable, "-m", "signaling", "serve", "--host", "127.0.0.1", "--port", str(port),
            "--ice-hosts", "127.0.0.1", "--data-dir", str(data), "--admin-key", ADMIN_KEY,
            "--secret", "s" * 48, "--media-port", str(free_media_port())]

    def ready() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False

    remote = RunningServer(url, ADMIN_KEY, None)
    with serving("telemed", args, tmp_path / "server.log", ready, cwd=str(ROOT)) as proc:
        await remote.create_room("crash", PW)
        pub = await publisher(remote, "crash")
        try:
            status, body = await api(remote, "POST", "/api/rooms/crash/recordings")
            assert status == 201, body
            rec_id = body["recording"]["id"]
            started = time.monotonic()
            manifest: dict = {}

            async def video_end() -> float:
                nonlocal manifest
                _, manifest = await api(remote, "GET", f"/api/rooms/crash/recordings/{rec_id}")
                return max([t["end"] for t in manifest["tracks"] if t["kind"] == "video"] or [0])

            deadline = time.monotonic() + 30
            while await video_end() < 4.0:
                assert time.monotonic() < deadline, "the recording did not reach 4 s"
                await asyncio.sleep(0.2)
            os.kill(proc.pid, signal.SIGKILL)
            killed = time.monotonic()
            proc.wait()
        finally:
            await pub.close()
    ring = KeyRing.load(None, data / "keys" / "master.key")
    for track in manifest["tracks"]:
        path = data / "recordings" / rec_id / track["file"]
        with EncryptedReader(path, ring) as reader:
            assert not reader.complete  # cut, yet every complete chunk reads
            packets, frames, duration = demux_decode(reader)
        assert len(frames) == len(packets) > 0
        recorded = killed - started - track["start"]
        assert duration >= recorded - 2.0, (track["kind"], duration, recorded)
    running, runner = await start_server(str(data))
    try:
        status, manifest = await api(running, "GET", f"/api/rooms/crash/recordings/{rec_id}")
        assert status == 200 and manifest["state"] == "interrupted" and manifest["stopped_at"]
        for track in manifest["tracks"]:  # closed where their last complete chunk ended
            with EncryptedReader(data / "recordings" / rec_id / track["file"], ring) as reader:
                assert reader.complete and demux_decode(reader)[0]
    finally:
        await runner.cleanup()


class NoiseTrack(PatternTrack):
    async def recv(self) -> av.VideoFrame:
        frame = await super().recv()
        noisy = av.VideoFrame.from_ndarray(np.random.randint(0, 255, (self.height, self.width, 3), np.uint8),
                                           format="bgr24")
        noisy.pts, noisy.time_base = frame.pts, frame.time_base
        return noisy


@pytest.fixture
def small_disk(tmp_path):
    """A 384 KiB tmpfs where the recordings go."""
    mount = tmp_path / "data" / "recordings"
    mount.mkdir(parents=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=384k,mode=0700", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


async def test_full_disk_stops_the_recording_cleanly(tmp_path, small_disk):
    running, runner = await start_server(str(tmp_path / "data"))
    try:
        await running.create_room("full", PW)
        host = await Client.join(running.url, await running.token("full", PW, role="host", name="Dr Host"))
        pub = await Client.join(running.url, await running.token("full", PW, name="Dr Pub"))
        await pub.publish(NoiseTrack(), "camera")  # noise does not compress: the disk fills in seconds
        try:
            status, body = await api(running, "POST", "/api/rooms/full/recordings", host.token)
            assert status == 201
            rec_id = body["recording"]["id"]
            failed = await host.wait_event("recording", timeout=60, match=lambda m: m["state"] == "failed")
            assert failed["id"] == rec_id and "disk" in failed["reason"]
            status, manifest = await api(running, "GET", f"/api/rooms/full/recordings/{rec_id}", host.token)
            assert manifest["state"] == "failed" and manifest["stopped_at"]
            audit = tmp_path / "data" / "audit.jsonl"
            await until(lambda: audit.exists() and '"recording-fail"' in audit.read_text(), what="audited")
            # The room carries on: media still flows, signaling still answers.
            assert (await pub.request({"type": "ping"}))["type"] == "pong"
            video = next(iter(running.core.live.rooms["full"].router.producers.values()))
            received = video.stats.received
            await until(lambda: video.stats.received > received + 30, what="media after the failure")
        finally:
            await pub.close()
            await host.close()
        track = running.core.recordings.get("full", rec_id).manifest["tracks"][0]
        with EncryptedReader(small_disk / rec_id / track["file"], running.core.keyring) as reader:
            packets, frames, _ = demux_decode(reader)
        assert len(frames) == len(packets) > 0
    finally:
        await runner.cleanup()
