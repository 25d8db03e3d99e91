"""What a producer carries, as negotiated: enough for a consumer to match it."""

from __future__ import annotations

from dataclasses import dataclass, field

from .h264_profile import decodable


@dataclass(frozen=True)
class Codec:
    mime_type: str            # "audio/opus", "video/VP8", "video/H264"
    clock_rate: int
    channels: int | None = None
    parameters: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def kind(self) -> str:
        return self.mime_type.split("/")[0]

    @property
    def name(self) -> str:
        return self.mime_type.split("/")[1].lower()

    def decodable_by(self, mime_type: str, parameters: dict) -> bool:
        """Can a receiver offering this codec with these fmtp parameters take the stream?"""
        if mime_type.lower() != self.mime_type.lower():
            return False
        if self.name == "h264":
            return decodable(self.parameters, parameters)
        return True


FORWARDABLE = {"audio/opus", "video/vp8", "video/h264"}
