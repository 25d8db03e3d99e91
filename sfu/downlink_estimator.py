"""What one subscriber's connection can take, from its own feedback: REMB, loss and RTT.

- REMB: the subscriber's receive-side estimate. Chromium makes it from the
  abs-send-time we stamp on every video packet (fanout.c), so it sees a link that
  queues before it drops anything. When it falls (a cut of more than 3 %, which is
  what Chromium's estimator does on overuse: 0.85 x what arrives) below what we send,
  the connection is congested and the estimate is its budget: down fast. A REMB under
  what we send that is rising is only the estimate catching up after a step up, and
  is no budget; but no further step up is tried until the estimate covers what we
  send: up slowly.
- Loss, from receiver reports: above LOSSY, what we send cut by half the loss (the
  loss-based half of Google congestion control).
- RTT, from receiver reports (their LSR/DLSR against the sender reports we wrote),
  for a subscriber that sends no REMB: when the last RTT_SUSTAINED of them are all
  more than QUEUE_DELAY over the lowest of the last RTT_WINDOW seconds, and twice it,
  the link is queueing: 0.85 x what we send. (One late report is not a queue: our
  own event loop, busy for a moment, delays the reports we time.)

The budget is the smallest that applies.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

LOSSY = 0.10
REMB_CUT = 0.97      # Chromium sends a REMB at once when its estimate falls this much
REMB_STALE = 5.0     # a REMB older than this says nothing
QUEUE_DELAY = 0.1    # seconds of RTT over the floor that mean a queue
RTT_WINDOW = 30.0
RTT_SUSTAINED = 3
DELAY_BACKOFF = 0.85


@dataclass(frozen=True)
class Downlink:
    """One moment's verdict: `budget` (bit/s for everything we send, None if not
    congested) and whether a step up may be tried."""
    budget: int | None
    may_step_up: bool


class DownlinkEstimator:
    def __init__(self) -> None:
        self.remb: int | None = None
        self.remb_falling = False
        self._remb_at = 0.0
        self.rtt: float | None = None
        self._recent: deque[float] = deque(maxlen=RTT_SUSTAINED)
        self._rtts: deque[tuple[float, float]] = deque()  # (time, rtt), oldest first

    def on_remb(self, bitrate: int, now: float) -> bool:
        """Fold in a REMB; True when it is a cut (choose layers now)."""
        fresh = self.remb is not None and now - self._remb_at < REMB_STALE
        self.remb_falling = fresh and bitrate < (self.remb or 0) * REMB_CUT
        self.remb, self._remb_at = bitrate, now
        return self.remb_falling

    def on_rtt(self, rtt: float, now: float) -> None:
        self.rtt = rtt
        self._recent.append(rtt)
        while self._rtts and now - self._rtts[0][0] > RTT_WINDOW:
            self._rtts.popleft()
        while self._rtts and self._rtts[-1][1] >= rtt:  # never the floor again
            self._rtts.pop()
        self._rtts.append((now, rtt))

    @property
    def min_rtt(self) -> float | None:
        return self._rtts[0][1] if self._rtts else None

    def remb_fresh(self, now: float) -> bool:
        return self.remb is not None and now - self._remb_at < REMB_STALE

    def queueing(self, now: float) -> bool:
        """The RTT says the link queues (only asked when there is no REMB)."""
        floor = self.min_rtt
        if floor is None or len(self._recent) < RTT_SUSTAINED or self.remb_fresh(now):
            return False
        rtt = min(self._recent)
        return rtt > floor + QUEUE_DELAY and rtt > 2 * floor

    def state(self, sending: int, loss: float, now: float, stamped: int | None = None) -> Downlink:
        """`sending`: what we send this connection now, bit/s; `stamped`: the part of it
        that carries abs-send-time (video; None: all of it), which is all a REMB
        estimates (Chromium's receive-side estimator skips packets without the stamp);
        `loss`: the worst fraction lost its receiver reports show (0..1)."""
        stamped = sending if stamped is None else stamped
        budgets = []
        if loss > LOSSY:
            budgets.append(int(sending * (1 - 0.5 * loss)))
        remb = self.remb if self.remb_fresh(now) else None
        if remb is not None and self.remb_falling and remb < stamped:
            budgets.append(remb + sending - stamped)  # the unstamped (audio) as it is
        if self.queueing(now):
            budgets.append(int(sending * DELAY_BACKOFF))
        budget = min(budgets) if budgets else None
        return Downlink(budget, budget is None and (remb is None or remb >= stamped))
