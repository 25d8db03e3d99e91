"""A recording made without the recorder, for testing what serves and replays one:
real VP8 and Opus encoded by PyAV into WebM, encrypted through the vault, and a
manifest in the recorder's contract (docs/signaling.md, "Recordings")."""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vault import EncryptedWriter, KeyRing

FPS = 15
# As the recorder writes: the muxer's live mode, no cues, no duration, short clusters.
LIVE = {"live": "1", "cluster_time_limit": "500"}


def webm_video(seconds: float, width: int = 320, height: int = 240) -> bytes:
    """VP8 in WebM; frame n is lit by n and carries noise, so frames differ and the
    file spans several vault chunks."""
    rng = np.random.default_rng(7)
    out = io.BytesIO()
    with av.open(out, "w", format="webm", options=LIVE) as container:
        stream = container.add_stream("libvpx", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"deadline": "realtime", "cpu-used": "8"}
        for n in range(int(seconds * FPS)):
            image = np.zeros((height, width, 3), np.uint8)
            image[:, :, 1] = (n * 9) % 255
            image[:, (n * 5) % width:, 2] = 200
            image[:48, :48] = rng.integers(0, 255, (48, 48, 3), np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = n, Fraction(1, FPS)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return out.getvalue()


def webm_audio(seconds: float) -> bytes:
    """A 440 Hz tone, Opus in WebM."""
    out = io.BytesIO()
    with av.open(out, "w", format="webm", options=LIVE) as container:
        stream = container.add_stream("libopus", rate=48000)
        stream.layout = "mono"
        samples = 960
        for n in range(int(seconds * 48000 / samples)):
            t = (np.arange(samples) + n * samples) / 48000
            data = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(data, format="s16", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = 48000, n * samples, Fraction(1, 48000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return out.getvalue()


def encrypt(path: Path, data: bytes, ring: KeyRing) -> None:
    key, wrapped = ring.new_data_key()
    with EncryptedWriter(path, key, wrapped, chunk_size=16 * 1024, fsync_interval=None) as writer:
        writer.write(data)


@dataclass
class Shelf:
    """Recordings by (room, id): their manifests and encrypted track files."""

    root: Path
    ring: KeyRing
    manifests: dict[tuple[str, str], dict] = field(default_factory=dict)
    plain: dict[str, bytes] = field(default_factory=dict)  # track id -> what was encrypted

    async def list(self, room: str) -> list[dict]:
        return [m for (r, _), m in self.manifests.items() if r == room]

    async def manifest(self, room: str, recording_id: str) -> dict | None:
        return self.manifests.get((room, recording_id))

    def track_path(self, room: str, recording_id: str, track_id: str) -> Path | None:
        path = self.root / room / recording_id / f"{track_id}.webm"
        return path if (room, recording_id) in self.manifests else None

    def add(self, room: str, seconds: float = 3.0, events: list[dict] | None = None,
            session_log: dict | None = None) -> dict:
        recording_id = uuid.uuid4().hex
        folder = self.root / room / recording_id
        folder.mkdir(parents=True)
        started = datetime.now(UTC) - timedelta(seconds=seconds + 1)
        peer = uuid.uuid4().hex[:8]
        tracks = []
        for kind, data in (("video", webm_video(seconds)), ("audio", webm_audio(seconds))):
            track_id = uuid.uuid4().hex
            encrypt(folder / f"{track_id}.webm", data, self.ring)
            self.plain[track_id] = data
            tracks.append({"id": track_id, "kind": kind, "codec": "VP8" if kind == "video" else "opus",
                           "container": "webm", "peer_id": peer, "identity": "dr-a", "name": "Dr. A",
                           "source": "camera" if kind == "video" else "microphone", "label": "",
                           "start": 0.0, "end": seconds})
        manifest = {"id": recording_id, "room": room, "state": "stopped",
                    "started_at": started.isoformat(), "stopped_at": (started + timedelta(seconds=seconds)).isoformat(),
                    "by": {"identity": "dr-a", "name": "Dr. A"}, "tracks": tracks, "events": events or [],
                    "session_log": session_log or {"from_seq": 1, "to_seq": None}}
        self.manifests[(room, recording_id)] = manifest
        return manifest
