"""Shares one subscriber connection's bandwidth among its simulcast consumers.

Layers are chosen per connection, together (LiveKit's and mediasoup's allocators are
the model). The connection's own feedback says whether it is congested and what it
can take then (sfu/downlink_estimator.py: its REMB, loss and RTT). Then that budget,
less what its other streams (audio, single-layer video) need, goes to the simulcast
consumers by priority, then by tile size, each taking the best level (layer and
temporal layers) that fits what is left. When it is calm, and the subscriber's
estimate covers what it gets, at most one of them tries a level up at a time.
"""

from __future__ import annotations

from collections.abc import Iterable

from .consumer import RtpConsumer
from .downlink_estimator import DownlinkEstimator
from .simulcast_consumer import SimulcastConsumer


def allocate(consumers: Iterable[RtpConsumer], now: float, downlink: DownlinkEstimator) -> None:
    consumers = [c for c in consumers if not c.closed]
    layered = [c for c in consumers if isinstance(c, SimulcastConsumer)]
    if not layered:
        return
    loss = max((c.fraction_lost for c in consumers), default=0) / 256
    sending = sum(c.sending_bitrate for c in consumers)
    video = sum(c.sending_bitrate for c in consumers if c.producer.kind == "video")  # stamped
    state = downlink.state(sending, loss, now, video)
    budget = state.budget
    if budget is not None:
        budget -= sum(c.sending_bitrate for c in consumers if not isinstance(c, SimulcastConsumer))

    def tile_area(c: SimulcastConsumer) -> int:
        return c.tile[0] * c.tile[1] if c.tile else 1 << 30

    stepped = not state.may_step_up  # one step up per connection at a time: each is a probe
    for consumer in sorted(layered, key=lambda c: (-c.priority, -tile_area(c))):
        taken, up = consumer.choose(now, None if budget is None else max(0, budget), not stepped)
        stepped = stepped or up
        if budget is not None:
            budget -= taken
