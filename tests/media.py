"""Synthetic media tracks for tests: real frames that aiortc really encodes."""

from __future__ import annotations

import fractions

import av
import numpy as np
from aiortc import AudioStreamTrack, VideoStreamTrack


class PatternTrack(VideoStreamTrack):
    """A moving colour pattern; each frame's colour encodes its index."""

    def __init__(self, width: int = 320, height: int = 240) -> None:
        super().__init__()
        self.width, self.height = width, height
        self.frames = 0

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        image = np.zeros((self.height, self.width, 3), np.uint8)
        image[:, :, 1] = (self.frames * 7) % 255
        image[:, (self.frames * 4) % self.width:, 2] = 200
        self.frames += 1
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts, frame.time_base = pts, time_base
        return frame


class ToneTrack(AudioStreamTrack):
    """A 440 Hz tone, so a receiver can tell real audio from silence."""

    def __init__(self) -> None:
        super().__init__()
        self._t = 0

    async def recv(self) -> av.AudioFrame:
        frame = await super().recv()  # paced every 20 ms, but 8 kHz silence: make it 48 kHz
        samples = frame.samples * 48000 // frame.sample_rate
        t = (np.arange(samples) + self._t) / 48000
        self._t += samples
        data = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16).reshape(1, -1)
        out = av.AudioFrame.from_ndarray(data, format="s16", layout="mono")
        out.pts = frame.pts * 48000 // frame.sample_rate
        out.sample_rate, out.time_base = 48000, fractions.Fraction(1, 48000)
        return out
