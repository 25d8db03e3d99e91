"""What a node says about itself in each heartbeat, and how loaded that makes it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

# A node this busy is passed over while a calmer one is up (as LiveKit's CPU-load selector
# skips nodes above its limit).
BUSY_CPU = 0.9


@dataclass(frozen=True, slots=True)
class NodeInfo:
    id: str
    url: str            # public base URL clients are sent to, e.g. https://node2.example.org
    cpu: float = 0.0    # share of the machine's cores this process used, 0..1
    peers: int = 0
    rooms: int = 0      # live rooms here
    bitrate: float = 0.0  # forwarded bits per second

    @property
    def load(self) -> float:
        """Placement weight apart from the rooms leased to the node (which Redis counts
        itself, so that rooms placed between two heartbeats count at once): four peers
        weigh as much as a room, a fully busy machine as ten rooms, 25 Mbit/s forwarded as one."""
        return self.peers / 4 + 10 * self.cpu + self.bitrate / 25e6

    @property
    def busy(self) -> bool:
        return self.cpu >= BUSY_CPU

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str) -> NodeInfo:
        d = json.loads(raw)
        return cls(str(d["id"]), str(d["url"]), float(d["cpu"]), int(d["peers"]), int(d["rooms"]),
                   float(d["bitrate"]))
