"""Slows password guessing: after too many failures a key must wait before trying again."""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable

# Callers use (client_ip, room) so that one attacker can't lock a room for everyone else.
AttemptKey = Hashable


class AttemptLimiter:
    """Sliding window: at most ``max_failures`` failures per key in any ``window_seconds``.

    Memory stays bounded: keys whose last failure left the window are dropped, and beyond
    ``max_keys`` the least recently failing keys are forgotten. Forgetting favours the attacker
    only after they have spent ``max_keys`` failed attempts to do it.
    """

    def __init__(
        self,
        max_failures: int = 5,
        window_seconds: float = 60,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        if max_failures < 1 or window_seconds <= 0 or max_keys < 1:
            raise ValueError("max_failures, window_seconds and max_keys must be positive")
        self._max_failures = max_failures
        self._window = window_seconds
        self._clock = clock
        self._max_keys = max_keys
        # Ordered by last failure, oldest first, so stale keys are always at the front.
        self._failures: OrderedDict[AttemptKey, deque[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._failures)

    def check(self, key: AttemptKey) -> float:
        """Seconds ``key`` must wait before its next attempt; 0 if it may try now."""
        now = self._clock()
        self._prune(now)
        times = self._failures.get(key)
        if times is None:
            return 0.0
        while times and times[0] <= now - self._window:
            times.popleft()
        if len(times) < self._max_failures:
            return 0.0
        return times[0] + self._window - now

    def failed(self, key: AttemptKey) -> None:
        now = self._clock()
        self._prune(now)
        times = self._failures.get(key)
        if times is None:
            times = self._failures[key] = deque(maxlen=self._max_failures)
        else:
            self._failures.move_to_end(key)
        times.append(now)
        while len(self._failures) > self._max_keys:
            self._failures.popitem(last=False)

    def succeeded(self, key: AttemptKey) -> None:
        self._failures.pop(key, None)

    def _prune(self, now: float) -> None:
        cutoff = now - self._window
        while self._failures:
            oldest_key, times = next(iter(self._failures.items()))
            if times[-1] > cutoff:
                break
            del self._failures[oldest_key]
