"""Audio and video of one person line up in the recording: a clip whose audio beeps when
its frames flash (both keyed to the sender's wall clock), measured in the decoded files."""

from __future__ import annotations

import fractions
import math
import time
from datetime import datetime

import av
import numpy as np
from aiortc import AudioStreamTrack

from telemed_client import Client
from tests.media import PatternTrack
from tests.test_recording import PW, api, until
from vault import EncryptedReader

BEEP = 0.1        # seconds of tone after each whole second
TOLERANCE = 0.040


def scheduled(track, frame) -> float:
    """The wall time a frame stands for: aiortc paces frames from the first one's time by
    their pts (and the RTP timestamps follow the pts), so lateness in waking up does not
    move it."""
    if track.origin is None:
        track.origin = time.time() - float(frame.pts * frame.time_base)
    return track.origin + float(frame.pts * frame.time_base)


class FlashTrack(PatternTrack):
    """Black frames; the first frame after each whole wall-clock second is white."""

    def __init__(self) -> None:
        super().__init__()
        self.late: dict[int, float] = {}   # whole second -> how long after it the white frame came
        self.origin: float | None = None
        self._last_second = None

    async def recv(self) -> av.VideoFrame:
        frame = await super().recv()
        now = scheduled(self, frame)
        second = math.floor(now)
        white = self._last_second is not None and second != self._last_second
        self._last_second = second
        if white:
            self.late[second] = now - second
        image = np.full((self.height, self.width, 3), 255 if white else 0, np.uint8)
        out = av.VideoFrame.from_ndarray(image, format="bgr24")
        out.pts, out.time_base = frame.pts, frame.time_base
        return out


class BeepTrack(AudioStreamTrack):
    """Silence, with a tone starting exactly at each whole wall-clock second."""

    origin: float | None = None

    async def recv(self) -> av.AudioFrame:
        frame = await super().recv()  # paced every 20 ms (as 8 kHz silence)
        t = scheduled(self, frame) + np.arange(frame.samples * 48000 // frame.sample_rate) / 48000
        on = (t - np.floor(t)) < BEEP
        data = (np.sin(2 * np.pi * 1000 * t) * 12000 * on).astype(np.int16).reshape(1, -1)
        out = av.AudioFrame.from_ndarray(data, format="s16", layout="mono")
        out.pts = frame.pts * 48000 // frame.sample_rate
        out.sample_rate, out.time_base = 48000, fractions.Fraction(1, 48000)
        return out


def onsets(times: list[float], values: list[float], threshold: float, gap: float = 0.5) -> list[float]:
    found: list[float] = []
    for t, v in zip(times, values):
        if v > threshold and (not found or t - found[-1] > gap):
            found.append(t)
    return found


def video_flashes(reader) -> list[float]:
    with av.open(reader) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        times = [float(f.pts * f.time_base) for f in frames]
        values = [float(f.to_ndarray(format="gray").mean()) for f in frames]
    return onsets(times, values, 128)


def audio_beeps(reader) -> list[float]:
    times, values = [], []
    with av.open(reader) as container:
        for frame in container.decode(audio=0):
            samples = np.abs(frame.to_ndarray()).max(axis=0)
            base = float(frame.pts * frame.time_base)
            hot = np.flatnonzero(samples > 0.1)
            if len(hot):
                times.append(base + hot[0] / frame.sample_rate)
                values.append(1.0)
    return onsets(times, values, 0.5)


async def test_audio_and_video_of_one_person_stay_within_40_ms(server):
    await server.create_room("sync", PW)
    pub = await Client.join(server.url, await server.token("sync", PW, name="Dr Pub"))
    flash = FlashTrack()
    await pub.publish(flash, "camera")
    await pub.publish(BeepTrack(), "microphone")
    try:
        got, body = await api(server, "POST", "/api/rooms/sync/recordings")
        rec_id = body["recording"]["id"]
        recording = server.core.recordings.active("sync")
        await until(lambda: len(recording._tracks) == 2
                    and all(t.clock._report for t in recording._tracks.values()), what="sender reports")
        recorded_from = time.time()
        await until(lambda: len([s for s in flash.late if s > recorded_from]) >= 5, timeout=30,
                    what="5 flashes recorded")
        await api(server, "POST", f"/api/rooms/sync/recordings/{rec_id}/stop")
    finally:
        await pub.close()
    manifest = server.core.recordings.get("sync", rec_id).describe()
    wall_start = datetime.fromisoformat(manifest["started_at"]).timestamp()
    tracks = {t["kind"]: t for t in manifest["tracks"]}
    root = server.core.recordings.root / rec_id
    with EncryptedReader(root / tracks["video"]["file"], server.core.keyring) as reader:
        seen = [tracks["video"]["start"] + t for t in video_flashes(reader)]
    with EncryptedReader(root / tracks["audio"]["file"], server.core.keyring) as reader:
        heard = [tracks["audio"]["start"] + t for t in audio_beeps(reader)]
    # seconds wholly inside both tracks (stopping may cut a beep or a flash short)
    inside = (max(t["start"] for t in tracks.values()) + 0.5, min(t["end"] for t in tracks.values()) - 0.5)
    errors = {}
    for beep in heard:
        if not inside[0] <= beep <= inside[1]:
            continue
        second = round(wall_start + beep)     # which whole second this beep marks
        flashes = [f for f in seen if abs(f - beep) < 0.5]
        if second in flash.late and flashes:
            # the white frame was captured `late` after the beep began: the file must say so
            errors[second] = round(flashes[0] - beep - flash.late[second], 4)
    assert len(errors) >= 3, ([round(float(x), 3) for x in seen], [round(float(x), 3) for x in heard])
    assert max(abs(e) for e in errors.values()) < TOLERANCE, errors
