"""The program's encoding format: picture size, frame rate, bitrates and the LL-HLS
part and segment lengths, which the compositor cuts on its own clock."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class ProgramFormat:
    width: int = 1280
    height: int = 720
    fps: int = 30
    video_bitrate: int = 2_500_000
    audio_bitrate: int = 96_000
    part_frames: int = 10         # 1/3 s at 30 fps: an LL-HLS part
    segment_parts: int = 3        # a segment (and a keyframe interval) of 1 s
    x264_preset: str = "veryfast"
    stale_after: float = 2.0      # seconds a stopped camera keeps its last frame
    ladder: bool = True           # also a half-size rendition at a quarter of the bitrate (ABR)

    def __post_init__(self) -> None:
        if self.width % 4 or self.height % 4 or not 64 <= self.width <= 3840 or not 64 <= self.height <= 2160:
            raise ValueError("program size must be multiples of 4, from 64x64 to 3840x2160")
        if not 1 <= self.fps <= 60:
            raise ValueError("program fps must be 1..60")
        if not 0.2 <= self.part_duration <= 0.34:
            raise ValueError("an LL-HLS part must last 200..333 ms")
        if not 1.0 <= self.segment_duration <= 2.0:
            raise ValueError("a segment must last 1..2 s")

    @property
    def part_duration(self) -> float:
        return self.part_frames / self.fps

    @property
    def segment_duration(self) -> float:
        return self.part_frames * self.segment_parts / self.fps

    @property
    def part_target(self) -> float:
        """EXT-X-PART-INF's PART-TARGET: no part is longer (rounded up to the millisecond)."""
        return math.ceil(self.part_duration * 1000) / 1000

    @property
    def renditions(self) -> list[tuple[int, int, int]]:
        """(width, height, video bitrate) of each rendition, the full-size one first."""
        out = [(self.width, self.height, self.video_bitrate)]
        if self.ladder and self.height >= 256:
            out.append((self.width // 2 & ~3, self.height // 2 & ~3, self.video_bitrate // 4))
        return out

    def to_dict(self) -> dict:
        return asdict(self)
