"""How long the C fan-out step takes for one packet to all its consumers.

Timed on every batch, so it stays a bisect and three additions (no lock: the event
loop's thread is the only writer). Metrics read it as a cumulative histogram.
"""

from __future__ import annotations

from bisect import bisect_left

# Upper bounds in seconds: one packet to a few subscribers takes microseconds.
BUCKETS = (2e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 1e-2)
_BOUNDS_NS = tuple(round(b * 1e9) for b in BUCKETS)


class BatchTimes:
    def __init__(self) -> None:
        self._counts = [0] * (len(BUCKETS) + 1)  # the last: above every bound
        self.count = 0
        self.sum_ns = 0

    def observe_ns(self, ns: int) -> None:
        self._counts[bisect_left(_BOUNDS_NS, ns)] += 1
        self.count += 1
        self.sum_ns += ns

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound in seconds, batches that took at most that), ending with +inf."""
        out, running = [], 0
        for bound, count in zip((*BUCKETS, float("inf")), self._counts):
            running += count
            out.append((bound, running))
        return out


# One per process, as the fan-out step is.
FANOUT_BATCHES = BatchTimes()
