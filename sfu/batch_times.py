"""How long the C fan-out step takes for one packet to all its consumers.

fanout.c times every step itself (two clock reads and atomic additions: nothing in
Python per packet); this reads its counts for the metrics, as a cumulative histogram.
One per process, as the fan-out step is.
"""

from __future__ import annotations

from ._fanout import lib

# Upper bounds in seconds: one packet to a few subscribers takes microseconds.
BUCKETS = tuple(ns / 1e9 for ns in lib.fanout_time_bounds_ns)


def cumulative() -> list[tuple[float, int]]:
    """(upper bound in seconds, steps that took at most that), ending with +inf."""
    out, running = [], 0
    for bound, count in zip((*BUCKETS, float("inf")), lib.fanout_time_counts):
        running += count
        out.append((bound, running))
    return out


def total_seconds() -> float:
    """All the steps' time together."""
    return lib.fanout_time_sum_ns / 1e9
