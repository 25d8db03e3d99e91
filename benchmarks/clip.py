"""The publisher's pre-encoded media: a VP8 clip made once with libvpx, then only read,
and an Opus tone.

The publisher must spend nothing on encoding while it is measured, so the clip is
encoded ahead of time into benchmarks/.cache and replayed packet by packet; the Opus
loop is a fraction of a second to encode and is made when asked for.
"""

from __future__ import annotations

import dataclasses
import fractions
import json
from pathlib import Path

import av
import numpy as np

CACHE_DIR = Path(__file__).resolve().parent / ".cache"
WIDTH, HEIGHT, FPS = 1280, 720, 30
SECONDS = 10
KEYFRAME_EVERY = 75  # frames: 2.5 s
BITRATE = 1_500_000
# Bump when the recipe changes, so an old cache file is not reused.
RECIPE = f"v1-{WIDTH}x{HEIGHT}p{FPS}-{SECONDS}s-gop{KEYFRAME_EVERY}-{BITRATE}"


@dataclasses.dataclass(frozen=True)
class Clip:
    frames: list[bytes]  # one encoded VP8 frame each, in display order
    keyframes: list[bool]
    fps: int

    @property
    def duration(self) -> float:
        return len(self.frames) / self.fps

    @property
    def bitrate(self) -> float:
        return sum(len(f) for f in self.frames) * 8 / self.duration


def _pattern(index: int, texture: np.ndarray) -> np.ndarray:
    """A moving test card: scrolling texture, a sweeping bar and a bouncing box.

    The noise texture keeps the encoder busy enough to reach the target bitrate;
    pure gradients would encode to a fraction of it.
    """
    shift_x = (index * 7) % WIDTH
    shift_y = (index * 3) % HEIGHT
    img = np.roll(texture, (shift_y, shift_x), axis=(0, 1)).copy()
    bar = (index * 16) % WIDTH
    img[:, bar : bar + 40] = (255, 255, 255)
    box_x = int((np.sin(index / 20) * 0.4 + 0.5) * (WIDTH - 200))
    box_y = int((np.cos(index / 27) * 0.4 + 0.5) * (HEIGHT - 200))
    img[box_y : box_y + 200, box_x : box_x + 200] = ((index * 5) % 256, 64, 200)
    return img


def _encode(path: Path) -> None:
    rng = np.random.default_rng(20240601)
    coarse = rng.integers(0, 256, size=(HEIGHT // 8, WIDTH // 8, 3), dtype=np.uint8)
    texture = np.repeat(np.repeat(coarse, 8, axis=0), 8, axis=1)
    fine = rng.integers(0, 48, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)
    texture = (texture // 2 + fine).astype(np.uint8)

    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height = WIDTH, HEIGHT
    codec.pix_fmt = "yuv420p"
    codec.time_base = fractions.Fraction(1, FPS)
    codec.framerate = fractions.Fraction(FPS, 1)
    codec.bit_rate = BITRATE
    codec.gop_size = KEYFRAME_EVERY
    codec.options = {
        "deadline": "realtime",
        "cpu-used": "8",
        "lag-in-frames": "0",
        "minrate": str(BITRATE),
        "maxrate": str(BITRATE),
        "bufsize": str(BITRATE),
        "keyint_min": str(KEYFRAME_EVERY),
        "undershoot-pct": "95",
        "overshoot-pct": "15",
    }
    frames: list[bytes] = []
    keys: list[bool] = []

    def take(packets: list[av.Packet]) -> None:
        for packet in packets:
            frames.append(bytes(packet))
            keys.append(bool(packet.is_keyframe))

    for i in range(FPS * SECONDS):
        frame = av.VideoFrame.from_ndarray(_pattern(i, texture), format="rgb24")
        frame = frame.reformat(format="yuv420p")
        frame.pts = i
        frame.time_base = codec.time_base
        take(codec.encode(frame))
    take(codec.encode(None))

    blob = bytearray()
    index = []
    for data, key in zip(frames, keys):
        index.append([len(blob), len(data), key])
        blob += data
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(bytes(blob))
    path.with_suffix(".json").write_text(json.dumps({"recipe": RECIPE, "fps": FPS, "index": index}))
    tmp.replace(path)


def load(cache_dir: Path = CACHE_DIR) -> Clip:
    """The clip, encoding it first if the cache has none for the current recipe."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / "clip-720p30-vp8.bin"
    meta_path = path.with_suffix(".json")
    meta = json.loads(meta_path.read_text()) if meta_path.exists() and path.exists() else None
    if meta is None or meta.get("recipe") != RECIPE:
        _encode(path)
        meta = json.loads(meta_path.read_text())
    blob = path.read_bytes()
    frames = [blob[off : off + size] for off, size, _ in meta["index"]]
    keys = [bool(k) for _, _, k in meta["index"]]
    if not frames or not keys[0]:
        raise RuntimeError(f"clip cache {path} is unusable: delete it and rerun")
    return Clip(frames=frames, keyframes=keys, fps=meta["fps"])


OPUS_RATE, OPUS_FRAME = 48000, 960  # 20 ms packets


def opus_loop(seconds: int = SECONDS, bitrate: int = 32000) -> list[bytes]:
    """A 440 Hz stereo tone as 20 ms Opus packets, `seconds` long."""
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate, encoder.layout, encoder.format = OPUS_RATE, "stereo", "s16"
    encoder.bit_rate = bitrate
    encoder.open()
    out: list[bytes] = []
    t = np.arange(OPUS_FRAME) / OPUS_RATE
    for i in range(seconds * OPUS_RATE // OPUS_FRAME):
        tone = (np.sin(2 * np.pi * 440 * (t + i * OPUS_FRAME / OPUS_RATE)) * 8000).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(np.repeat(tone, 2).reshape(1, -1), format="s16", layout="stereo")
        frame.sample_rate, frame.pts = OPUS_RATE, i * OPUS_FRAME
        frame.time_base = fractions.Fraction(1, OPUS_RATE)
        out += [bytes(p) for p in encoder.encode(frame)]
    return out


if __name__ == "__main__":
    import time

    t0 = time.monotonic()
    clip = load()
    print(
        f"{len(clip.frames)} frames, {sum(clip.keyframes)} keyframes, "
        f"{clip.bitrate / 1e6:.2f} Mbit/s, {time.monotonic() - t0:.1f} s"
    )
