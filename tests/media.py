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


class ColourTrack(VideoStreamTrack):
    """One solid colour (BGR), so a composited picture shows whose camera is where."""

    def __init__(self, bgr: tuple[int, int, int], width: int = 320, height: int = 240) -> None:
        super().__init__()
        self.image = np.zeros((height, width, 3), np.uint8)
        self.image[:] = bgr

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = av.VideoFrame.from_ndarray(self.image, format="bgr24")
        frame.pts, frame.time_base = pts, time_base
        return frame


class H264PacketTrack(VideoStreamTrack):
    """Pre-encoded H264, as an OR encoder would send it over WHIP: aiortc packetizes
    these packets without re-encoding. Keyframes every `gop` frames, SPS/PPS in-band;
    `sent` keeps every published access unit (Annex B) for byte comparisons."""

    def __init__(self, width: int = 320, height: int = 240, fps: int = 30, gop: int = 30) -> None:
        super().__init__()
        self.encoder = av.CodecContext.create("libx264", "w")
        self.encoder.width, self.encoder.height, self.encoder.pix_fmt = width, height, "yuv420p"
        self.encoder.time_base = fractions.Fraction(1, 90000)
        self.encoder.framerate = fractions.Fraction(fps)
        self.encoder.gop_size, self.encoder.max_b_frames = gop, 0
        self.encoder.profile = "Baseline"
        self.encoder.options = {"tune": "zerolatency", "preset": "ultrafast", "sc_threshold": "0"}
        self.fps = fps
        self.sent: list[bytes] = []
        self._n = 0
        self._start: float | None = None

    async def recv(self) -> av.Packet:
        import asyncio
        import time
        while True:
            if self._start is None:
                self._start = time.monotonic()
            delay = self._start + self._n / self.fps - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            image = np.zeros((self.encoder.height, self.encoder.width, 3), np.uint8)
            image[:, :, 1] = (self._n * 7) % 255
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts, frame.time_base = self._n * 90000 // self.fps, self.encoder.time_base
            self._n += 1
            packets = self.encoder.encode(frame)
            if packets:
                packet = packets[0]
                self.sent.append(bytes(packet))
                packet.time_base = self.encoder.time_base
                return packet
