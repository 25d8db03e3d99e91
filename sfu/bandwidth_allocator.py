"""Shares one subscriber connection's bandwidth among its simulcast consumers.

Layers are chosen per connection, together (LiveKit's and mediasoup's allocators are
the model). The connection is congested when its receiver reports more than LOSSY
loss on any stream we send it. Then what it still takes (what we send, cut by half
the loss, as a loss-based controller would), less what its other streams (audio,
single-layer video) need, goes to the simulcast consumers by priority, then by tile
size, each taking the best layer that fits what is left. When it is calm, at most one
of them tries a layer up at a time.

The subscriber's REMB is not used here: without abs-send-time or transport-cc on what
we send, Chromium's receive-side estimate was seen to sit under the rate it received
on a clean loopback, so it cannot tell congestion from a slow start. It still caps
single-layer publishers (sfu/connection.py).
"""

from __future__ import annotations

from collections.abc import Iterable

from .consumer import RtpConsumer
from .simulcast_consumer import SimulcastConsumer

LOSSY = 0.10


def congestion_budget(consumers: list[RtpConsumer]) -> int | None:
    """What a congested subscriber can still take, in bit/s; None when it is not congested."""
    loss = max((c.fraction_lost for c in consumers), default=0) / 256
    if loss <= LOSSY:
        return None
    return int(sum(c.producer.bitrate for c in consumers) * (1 - 0.5 * loss))


def allocate(consumers: Iterable[RtpConsumer], now: float) -> None:
    consumers = [c for c in consumers if not c.closed]
    layered = [c for c in consumers if isinstance(c, SimulcastConsumer)]
    if not layered:
        return
    budget = congestion_budget(consumers)
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
