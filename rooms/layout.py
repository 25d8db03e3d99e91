"""The shared on-screen arrangement of a room, as every client and the recorder see it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PRESETS = frozenset({"grid", "speaker", "presentation", "surgery"})
MAX_PIP_TRACKS = 3
MAX_TRACK_ID_LENGTH = 128

_KEYS = frozenset({"preset", "main_track", "pip_tracks", "version"})


# Frozen, with a tuple of pips: one Layout object is shared by the store, the room's
# subscribers and the recorder, so nobody may change it in place behind the others' backs.
@dataclass(frozen=True, slots=True)
class Layout:
    preset: str = "grid"
    main_track: str | None = None
    pip_tracks: tuple[str, ...] = field(default_factory=tuple)
    version: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.pip_tracks, list):  # JSON hands us lists
            object.__setattr__(self, "pip_tracks", tuple(self.pip_tracks))
        if not isinstance(self.preset, str) or self.preset not in PRESETS:
            raise ValueError(f"layout preset must be one of {sorted(PRESETS)}")
        if self.main_track is not None:
            _check_track_id(self.main_track, "main_track")
        if not isinstance(self.pip_tracks, tuple):
            raise ValueError("pip_tracks must be a list of track ids")
        if len(self.pip_tracks) > MAX_PIP_TRACKS:
            raise ValueError(f"at most {MAX_PIP_TRACKS} pip_tracks are allowed")
        for track in self.pip_tracks:
            _check_track_id(track, "pip_tracks entry")
        if len(set(self.pip_tracks)) != len(self.pip_tracks):
            raise ValueError("pip_tracks must not repeat a track")
        if self.main_track is not None and self.main_track in self.pip_tracks:
            raise ValueError("main_track must not also be a pip track")
        if not isinstance(self.version, int) or isinstance(self.version, bool) or self.version < 0:
            raise ValueError("layout version must be a non-negative integer")

    @classmethod
    def from_dict(cls, d: Any) -> Layout:
        if not isinstance(d, dict):
            raise ValueError("layout must be an object")
        unknown = set(d) - _KEYS
        if unknown:
            raise ValueError(f"unknown layout field(s): {sorted(map(str, unknown))}")
        if "preset" not in d:
            raise ValueError("layout preset is required")
        pips = d.get("pip_tracks", [])
        if not isinstance(pips, list):
            raise ValueError("pip_tracks must be a list of track ids")
        return cls(
            preset=d["preset"],
            main_track=d.get("main_track"),
            pip_tracks=pips,
            version=d.get("version", 0),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "preset": self.preset,
            "main_track": self.main_track,
            "pip_tracks": list(self.pip_tracks),
            "version": self.version,
        }


def _check_track_id(value: Any, what: str) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string")
    if len(value) > MAX_TRACK_ID_LENGTH:
        raise ValueError(f"{what} must be at most {MAX_TRACK_ID_LENGTH} characters")
    if not value.isprintable():
        raise ValueError(f"{what} must not contain control characters")
