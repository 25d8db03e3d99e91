"""How long the C fan-out step takes for one packet to all its consumers.

fanout.c times every step itself (two clock reads and an atomic add: nothing in Python
per packet); this is the metrics' read of its counts, as a cumulative histogram.
"""

from __future__ import annotations

from ._fanout import lib

# Upper bounds in seconds: one packet to a few subscribers takes microseconds.
BUCKETS = tuple(ns / 1e9 for ns in lib.fanout_time_bounds_ns)


class BatchTimes:
    @property
    def count(self) -> int:
        return sum(lib.fanout_time_counts)

    @property
    def sum_ns(self) -> int:
        return lib.fanout_time_sum_ns

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound in seconds, steps that took at most that), ending with +inf."""
        out, running = [], 0
        for bound, count in zip((*BUCKETS, float("inf")), lib.fanout_time_counts):
            running += count
            out.append((bound, running))
        return out


# One per process, as the fan-out step is.
FANOUT_BATCHES = BatchTimes()
