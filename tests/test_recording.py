"""Recording over real aiortc peers: files decode with PyAV, frame-complete, encrypted."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import av
import pytest

from telemed_client import Client
from tests.media import PatternTrack, ToneTrack
from vault import EncryptedReader

PW = "pw-123456"


async def api(server, method: str, path: str, token: str | None = None, body: dict | None = None):
    headers = {"Authorization": f"Bearer {token or server.admin_key}"}
    async with aiohttp.ClientSession() as session:
        async with session.request(method, server.url + path, json=body, headers=headers) as resp:
            data = await resp.json() if resp.content_type == "application/json" else None
            return resp.status, data


async def until(condition, timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def frames_written(server, room: str) -> dict[str, int]:
    recording = server.core.recordings.active(room)
    return {t.entry["kind"]: t.file.frames for t in recording._tracks.values()} if recording else {}


def decode(server, recording_id: str, track: dict) -> tuple[int, int, float]:
    """(packets, decoded frames, seconds from first to last packet) of one track file."""
    path = server.core.recordings.root / recording_id / track["file"]
    with EncryptedReader(path, server.core.keyring) as reader, av.open(reader) as container:
        stream = container.streams[0]
        packets = frames = 0
        first = last = None
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            packets += 1
            first = packet.pts if first is None else first
            last = packet.pts
            frames += len(packet.decode())
        return packets, frames, float((last - first) * stream.time_base)


async def publisher(server, room: str, codec: str | None = None) -> Client:
    client = await Client.join(server.url, await server.token(room, PW, name="Dr Pub", identity="pub-1"))
    await client.publish(PatternTrack(), "camera", codec=codec)
    await client.publish(ToneTrack(), "microphone")
    return client


@pytest.mark.parametrize("codec,container", [("video/VP8", "webm"), ("video/H264", "matroska")])
async def test_recording_decodes_frame_complete(server, codec, container):
    await server.create_room("rec", PW)
    host = await Client.join(server.url, await server.token("rec", PW, role="host", name="Dr Host", identity="host-1"))
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
        assert 2.5 < duration < elapsed + 0.5, (kind, duration, elapsed)
