"""Keyframe requests (PLI) sent upstream to one publisher: coalesced, then throttled.

Many subscribers may ask at once (a burst of joins, shared loss). A request made while
a PLI is already out and its keyframe not yet here is served by that keyframe: it
sends nothing and waits for nothing more. Otherwise PLIs go out at least MIN_INTERVAL
apart (a held-back one goes when the interval ends), and a PLI whose keyframe did not
come is repeated after RETRY_AFTER.
"""

from __future__ import annotations

# Never two PLIs upstream closer than this: at most ten keyframes a second from one
# publisher, even while viewers join in a burst (each one that comes up just after a
# keyframe went by needs another; Janus asks once per viewer, unthrottled).
MIN_INTERVAL = 0.1
RETRY_AFTER = 1.0    # ask again if the keyframe did not arrive


class KeyFrameRequestManager:
    def __init__(self) -> None:
        self._last_sent = float("-inf")
        self._pending = False    # a keyframe is wanted
        self._in_flight = False  # ... and a PLI is out for it
        self.requests_sent = 0
        self.requests_received = 0
        self.requests_coalesced = 0  # served by a keyframe already asked for

    def request(self, now: float) -> bool:
        """A keyframe is wanted; True if a PLI should go upstream now."""
        self.requests_received += 1
        if self._pending and (not self._in_flight or now - self._last_sent < RETRY_AFTER):
            self.requests_coalesced += 1
            return False
        self._pending = True
        self._in_flight = False
        return self._send_if_allowed(now)

    @property
    def held_back(self) -> bool:
        """A keyframe is wanted and the throttle has not let its PLI out yet."""
        return self._pending and not self._in_flight

    def send_deferred(self, now: float) -> bool:
        """A request the throttle held back: True if it should go now (no keyframe came meanwhile)."""
        return self.held_back and self._send_if_allowed(now)

    def throttled_for(self, now: float) -> float:
        """Seconds until a PLI may go upstream again."""
        return max(0.0, self._last_sent + MIN_INTERVAL - now)

    def keyframe_arrived(self) -> None:
        self._pending = self._in_flight = False

    def tick(self, now: float) -> bool:
        """Periodic retry for a request that got no keyframe."""
        return self._pending and now - self._last_sent >= RETRY_AFTER and self._send_if_allowed(now)

    def _send_if_allowed(self, now: float) -> bool:
        if now - self._last_sent < MIN_INTERVAL:
            return False
        self._last_sent = now
        self._in_flight = True
        self.requests_sent += 1
        return True
