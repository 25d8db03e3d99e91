"""The program's picture plan: which camera goes in which rectangle, with which label,
and which microphones are mixed. A pure function of the room's layout and tracks, so
the compositor process only draws what it is told."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from rooms import Layout


@dataclass(frozen=True)
class Source:
    """A video track as the program sees it."""
    track: str
    label: str
    screen: bool = False  # a shared screen, which the presentation preset puts first


@dataclass(frozen=True)
class Tile:
    track: str
    x: int
    y: int
    w: int
    h: int
    label: str


@dataclass(frozen=True)
class Scene:
    width: int
    height: int
    tiles: tuple[Tile, ...] = ()
    audio: tuple[str, ...] = ()   # tracks whose sound is mixed (the unmuted microphones)
    version: int = 0

    def to_dict(self) -> dict:
        return {**asdict(self), "tiles": [asdict(t) for t in self.tiles], "audio": list(self.audio)}

    @classmethod
    def from_dict(cls, d: dict) -> Scene:
        return cls(d["width"], d["height"], tuple(Tile(**t) for t in d["tiles"]), tuple(d["audio"]),
                   d.get("version", 0))


def _even(v: float) -> int:
    return int(v) & ~1


def _rect(track: Source, x: float, y: float, w: float, h: float) -> Tile:
    return Tile(track.track, _even(x), _even(y), max(2, _even(w)), max(2, _even(h)), track.label)


def plan(layout: Layout, videos: list[Source], audio: list[str], width: int, height: int,
         version: int = 0) -> Scene:
    """Lay the room's video tracks out on a width x height canvas by the layout preset."""
    by_id = {v.track: v for v in videos}
    main = by_id.get(layout.main_track or "")
    if layout.preset == "presentation":
        main = next((v for v in videos if v.screen), None) or main
    main = main or (videos[0] if videos else None)
    others = [v for v in videos if v is not main]
    tiles: list[Tile] = []
    if layout.preset == "grid" or main is None:
        n = len(videos)
        cols = math.ceil(math.sqrt(n)) if n else 1
        rows = math.ceil(n / cols) if n else 1
        w, h = width / cols, height / rows
        tiles = [_rect(v, (i % cols) * w, (i // cols) * h, w, h) for i, v in enumerate(videos)]
    elif layout.preset == "surgery":
        pinned = [by_id[t] for t in layout.pip_tracks if t in by_id and by_id[t] is not main]
        pips = (pinned or others)[:3]
        w, h, margin = width / 4, height / 4, width / 64
        tiles = [_rect(main, 0, 0, width, height)]
        tiles += [_rect(p, width - (i + 1) * (w + margin), height - h - margin, w, h)
                  for i, p in enumerate(pips)]
    elif layout.preset == "speaker":
        strip = others[:4]
        main_h = height * 3 / 4 if strip else height
        tiles = [_rect(main, 0, 0, width, main_h)]
        tiles += [_rect(p, i * width / 4, main_h, width / 4, height - main_h) for i, p in enumerate(strip)]
    else:  # presentation: the shared screen large, the cameras in a column beside it
        column = others[:4]
        main_w = width * 3 / 4 if column else width
        tiles = [_rect(main, 0, 0, main_w, height)]
        tiles += [_rect(p, main_w, i * height / 4, width - main_w, height / 4) for i, p in enumerate(column)]
    return Scene(width, height, tuple(tiles), tuple(audio), version)
