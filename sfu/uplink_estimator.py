"""What a publisher's uplink carries, told back to it as REMB so its encoder follows.

A loss-based controller, as in Google congestion control (the model is its
loss-based half): loss above 10 % over the last interval cuts the estimate by half
the loss, loss under 2 % lets it grow by 8 %, in between it holds. It starts high (it
is a loss-based bound, not a probe: a browser's own estimate ramps up beneath it).
When loss strikes, the cut starts from what actually arrived (at most `HEADROOM` times
the received rate) rather than from an estimate the link never carried, so a sender
whose link just shrank is told so within a second or two.

Counts come from the producers' receive statistics (ReceiveStats), once a second.
Loss is what the link lost: a packet recovered by NACK was still lost on the way.
Subscribers' own REMB still caps what the publisher of a single-layer track is asked
to send (the smallest wins).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

LOSS_HIGH = 0.10
LOSS_LOW = 0.02
GROWTH = 1.08
HEADROOM = 1.5
MIN_BITRATE = 100_000
MAX_BITRATE = 30_000_000


class Counted(Protocol):
    """What the estimator reads of one incoming stream (a Producer's ReceiveStats)."""
    expected: int
    received: int
    retransmitted: int
    bytes: int


class UplinkEstimator:
    def __init__(self, min_bitrate: int = MIN_BITRATE, max_bitrate: int = MAX_BITRATE) -> None:
        self.min_bitrate = min_bitrate
        self.max_bitrate = max_bitrate
        self.bitrate: int | None = None  # None until there is something to go by
        self.loss = 0.0                  # over the last interval
        self.received_bitrate = 0
        self._totals: dict[int, tuple[int, int, int]] = {}  # stream id -> expected, first-time, bytes
        self._last: float | None = None

    def update(self, now: float, streams: Iterable[Counted]) -> int | None:
        """Fold in one interval's counts; returns the estimate in bit/s."""
        expected = received = octets = 0
        totals = {}
        for stream in streams:
            now_counts = (stream.expected, stream.received - stream.retransmitted, stream.bytes)
            before = self._totals.get(id(stream), (0, 0, 0))
            totals[id(stream)] = now_counts
            expected += now_counts[0] - before[0]
            received += now_counts[1] - before[1]
            octets += now_counts[2] - before[2]
        self._totals = totals
        last, self._last = self._last, now
        if last is None or now <= last or expected <= 0:
            return self.bitrate
        self.loss = max(0.0, (expected - received) / expected)
        self.received_bitrate = int(octets * 8 / (now - last))
        bitrate = float(self.bitrate if self.bitrate is not None else self.max_bitrate)
        if self.loss > LOSS_HIGH:
            bitrate = min(bitrate, self.received_bitrate * HEADROOM) * (1 - 0.5 * self.loss)
        elif self.loss < LOSS_LOW:
            bitrate *= GROWTH
        self.bitrate = int(max(self.min_bitrate, min(self.max_bitrate, bitrate)))
        return self.bitrate
