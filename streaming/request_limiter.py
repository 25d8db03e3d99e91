"""A token bucket per client, so one flooding player gets 429s and the rest get parts."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable

MAX_CLIENTS = 100_000


class RequestLimiter:
    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst = rate, burst
        self._clock = clock
        self._buckets: dict[Hashable, tuple[float, float]] = {}

    def allow(self, key: Hashable) -> bool:
        now = self._clock()
        tokens, at = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if len(self._buckets) >= MAX_CLIENTS and key not in self._buckets:
            self._prune(now)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return False
        self._buckets[key] = (tokens - 1, now)
        return True

    def _prune(self, now: float) -> None:
        full = self.burst / self.rate  # a bucket idle this long is full again: forget it
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full}
