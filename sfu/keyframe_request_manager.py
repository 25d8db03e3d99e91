"""Throttles keyframe requests (PLI) sent upstream to one publisher.

Many subscribers may ask at once (a burst of joins, shared loss); the publisher
should see one request, and a repeat only if no keyframe came.
"""

from __future__ import annotations

MIN_INTERVAL = 0.3   # never two PLIs upstream closer than this
RETRY_AFTER = 1.0    # ask again if the keyframe did not arrive


class KeyFrameRequestManager:
    def __init__(self) -> None:
        self._last_sent = float("-inf")
        self._pending = False
        self.requests_sent = 0
        self.requests_received = 0

    def request(self, now: float) -> bool:
        """A keyframe is wanted; True if a PLI should go upstream now."""
        self.requests_received += 1
        self._pending = True
        return self._send_if_allowed(now)

    def send_deferred(self, now: float) -> bool:
        """A request the throttle held back: True if it should go now (none came meanwhile)."""
        return self._pending and self._send_if_allowed(now)

    def throttled_for(self, now: float) -> float:
        """Seconds until a PLI may go upstream again."""
        return max(0.0, self._last_sent + MIN_INTERVAL - now)

    def keyframe_arrived(self) -> None:
        self._pending = False

    def tick(self, now: float) -> bool:
        """Periodic retry for a request that got no keyframe."""
        return self._pending and now - self._last_sent >= RETRY_AFTER and self._send_if_allowed(now)

    def _send_if_allowed(self, now: float) -> bool:
        if now - self._last_sent < MIN_INTERVAL:
            return False
        self._last_sent = now
        self.requests_sent += 1
        return True
