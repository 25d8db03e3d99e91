"""The compositor on a fake clock: a stopped camera keeps its last picture, then shows
a placeholder; garbage is refused; microphones are mixed unless muted; parts keep coming."""

from __future__ import annotations

import io
from fractions import Fraction

import av
import numpy as np
from aiortc.codecs.opus import OpusEncoder
from aiortc.codecs.vpx import Vp8Encoder

from recorder.depacketizer import Vp8Depacketizer
from rooms import Layout
from streaming.compositor import Compositor
from streaming.program import ProgramFormat
from streaming.scene import Source, plan

PROGRAM = ProgramFormat(width=320, height=180, x264_preset="ultrafast", stale_after=1.0)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def vp8_frame(bgr: tuple[int, int, int]) -> bytes:
    """One VP8 keyframe of a solid colour, as a depacketized frame would be."""
    image = np.zeros((120, 160, 3), np.uint8)
    image[:] = bgr
    frame = av.VideoFrame.from_ndarray(image, format="bgr24")
    frame.pts, frame.time_base = 0, Fraction(1, 90000)
    payloads, _ = Vp8Encoder().encode(frame, force_keyframe=True)
    return Vp8Depacketizer().frame(payloads)


def opus_packets(count: int) -> list[bytes]:
    encoder = OpusEncoder()
    out = []
    for n in range(count):
        t = (np.arange(960) + n * 960) / 48000
        samples = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = 48000, n * 960, Fraction(1, 48000)
        payloads, _ = encoder.encode(frame)
        out += payloads
    return out


def run(compositor: Compositor, clock: Clock, seconds: float, feed=None) -> None:
    end = clock.now + seconds
    while clock.now < end:
        if feed is not None:
            feed()
        clock.now += 1 / 30
        compositor.tick()


def program_output(compositor: Compositor, parts: list[tuple]) -> av.container.InputContainer:
    init = compositor.init_segments()[0][0]
    return av.open(io.BytesIO(init + b"".join(m[3] for m in parts if m[1] == 0)))


def test_stopped_camera_then_placeholder_and_garbage_never_stall():
    out: list[tuple] = []
    clock = Clock()
    compositor = Compositor(PROGRAM, out.append, clock)
    compositor.set_scene(plan(Layout("grid"), [Source("cam", "Field")], [], 320, 180))
    compositor.video("cam", "vp8", vp8_frame((0, 0, 255)))
    run(compositor, clock, 0.9)
    red = compositor.draw()  # the camera stopped sending: its last picture stays
    compositor.video("cam", "vp8", b"\x00garbage" * 20)
    assert ("keyframe", "cam") in out and compositor.decode_errors == 1
    run(compositor, clock, 0.5)
    grey = compositor.draw()  # more than stale_after without a picture: the placeholder
    def v(picture: np.ndarray) -> int:  # red-difference chroma mid-picture
        flat = picture.reshape(-1)
        return int(flat[320 * 180 * 5 // 4:].reshape(90, 160)[40, 80])
    assert v(red) > 200 and v(grey) == 128  # red, then neutral grey
    parts = [m for m in out if m[0] == "part"]
    assert len(parts) >= 4 and [m[2] for m in parts] == list(range(len(parts)))
    frames = list(program_output(compositor, parts).decode(video=0))
    assert len(frames) >= 40


def test_unmuted_microphones_are_mixed_muted_ones_are_not():
    for mixed in (True, False):
        out: list[tuple] = []
        clock = Clock()
        compositor = Compositor(PROGRAM, out.append, clock)
        compositor.set_scene(plan(Layout("grid"), [], ["mic"] if mixed else [], 320, 180))
        packets = iter(opus_packets(100))
        run(compositor, clock, 1.5, feed=lambda: [compositor.audio("mic", next(packets, b"")) for _ in range(2)])
        parts = [m for m in out if m[0] == "part"]
        sound = np.concatenate([f.to_ndarray().reshape(-1) for f in program_output(compositor, parts).decode(audio=0)])
        level = float(np.sqrt(np.mean(sound[4800:] ** 2)))
        assert (level > 0.05) if mixed else (level < 0.001), level
