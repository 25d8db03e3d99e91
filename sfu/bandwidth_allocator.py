"""Shares one subscriber connection's bandwidth among its simulcast consumers.

A browser's REMB speaks for its whole connection, so layers are chosen together
(LiveKit's and mediasoup's allocators are the model): what the subscriber can take
(its REMB, cut by the loss its receiver reports show), less what its other streams
(audio, single-layer video) arrive at, goes to the simulcast consumers by priority,
then by tile size; each takes the best layer that fits what is left, and at most
one of them tries a layer up at a time.
"""

from __future__ import annotations

from collections.abc import Iterable

from .consumer import RtpConsumer
from .simulcast_consumer import SimulcastConsumer

LOSSY = 0.10  # reported loss above this: the subscriber gets less than its REMB says


def subscriber_budget(consumers: Iterable[RtpConsumer]) -> int | None:
    """What the subscriber can take, in bit/s, or None before it has told us."""
    consumers = list(consumers)
    estimates = [c.remb_bitrate for c in consumers if c.remb_bitrate]
    if not estimates:
        return None
    loss = max((c.fraction_lost for c in consumers), default=0) / 256
    budget = min(estimates)
    if loss > LOSSY:
        budget = int(budget * (1 - 0.5 * loss))
    return budget


def allocate(consumers: Iterable[RtpConsumer], now: float) -> None:
    consumers = [c for c in consumers if not c.closed]
    budget = subscriber_budget(consumers)
    layered = [c for c in consumers if isinstance(c, SimulcastConsumer)]
    if not layered:
        return
    if budget is not None:
        budget -= sum(c.producer.bitrate for c in consumers if not isinstance(c, SimulcastConsumer))
    def tile_area(c: SimulcastConsumer) -> int:
        return c.tile[0] * c.tile[1] if c.tile else 1 << 30

    stepped = False  # one step up per connection at a time: each is a probe
    for consumer in sorted(layered, key=lambda c: (-c.priority, -tile_area(c))):
        taken, up = consumer.choose(now, None if budget is None else max(0, budget), not stepped)
        stepped = stepped or up
        if budget is not None:
            budget -= taken
