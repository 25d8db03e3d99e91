"""What a node says about itself in each heartbeat, and how loaded that makes it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

# A node this busy is passed over while a calmer one is up (as LiveKit's selectors skip
# nodes above their load limit before sorting the rest).
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
        """What placement sorts by, apart from the rooms leased to the node (Redis counts
        those itself, so that rooms placed between two heartbeats count at once): four
        peers weigh as much as a room, and so does 25 Mbit/s forwarded. CPU only decides
        whether the node is ``busy``: below that its samples are mostly noise."""
        return self.peers / 4 + self.bitrate / 25e6

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
