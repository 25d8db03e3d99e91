"""Detects gaps in a producer's sequence numbers and decides when to NACK them."""

from __future__ import annotations

MAX_MISSING = 256      # a bigger jump is a stream reset, not loss: ask for a keyframe instead
RETRY_INTERVAL = 0.04  # seconds between NACKs of one sequence number
MAX_RETRIES = 8


def seq_delta(a: int, b: int) -> int:
    """Signed distance a - b in 16-bit sequence space."""
    return ((a - b + 0x8000) & 0xFFFF) - 0x8000


class NackGenerator:
    def __init__(self) -> None:
        self.highest: int | None = None
        self._missing: dict[int, list[float]] = {}  # seq -> [next_send_time, retries]
        self.packets_lost = 0
        self.recovered = 0

    def received(self, seq: int, now: float) -> bool:
        """Note an arriving packet; returns True if the stream jumped (keyframe needed)."""
        if self.highest is None:
            self.highest = seq
            return False
        if seq == (self.highest + 1) & 0xFFFF:  # the common case: in order, nothing missing
            self.highest = seq
            return False
        delta = seq_delta(seq, self.highest)
        if delta > 0:
            if delta - 1 > MAX_MISSING:
                self._missing.clear()
                self.highest = seq
                return True
            for i in range(1, delta):
                self._missing[(self.highest + i) & 0xFFFF] = [now, 0]
            self.packets_lost += delta - 1
            self.highest = seq
        elif self._missing.pop(seq, None) is not None:
            self.recovered += 1
        return False

    def due(self, now: float) -> list[int]:
        """Sequence numbers to NACK now; gives up after MAX_RETRIES."""
        out = []
        for seq, entry in list(self._missing.items()):
            if entry[0] <= now:
                if entry[1] >= MAX_RETRIES:
                    del self._missing[seq]
                    continue
                entry[0] = now + RETRY_INTERVAL
                entry[1] += 1
                out.append(seq)
        return out

    @property
    def pending(self) -> int:
        return len(self._missing)
