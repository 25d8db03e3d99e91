"""What a producer carries, as negotiated: enough for a consumer to match it."""

from __future__ import annotations

from dataclasses import dataclass, field


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

    def matches(self, mime_type: str, parameters: dict) -> bool:
        if mime_type.lower() != self.mime_type.lower():
            return False
        if self.name == "h264":  # only the same packetization and profile can be forwarded
            return (str(parameters.get("packetization-mode", "0"))
                    == str(self.parameters.get("packetization-mode", "0"))
                    and str(parameters.get("profile-level-id", ""))[:4].lower()
                    == str(self.parameters.get("profile-level-id", ""))[:4].lower())
        return True


FORWARDABLE = {"audio/opus", "video/vp8", "video/h264"}
