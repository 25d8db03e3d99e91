"""Layer choice without a network: real producers and simulcast consumers, made-up rates."""

from __future__ import annotations

from types import SimpleNamespace

from sfu.bandwidth_allocator import allocate
from sfu.codec import Codec
from sfu.fanout import Wire
from sfu.producer import Producer
from sfu.simulcast_consumer import TRIAL, UP_AFTER, SimulcastConsumer

RATES = (150_000, 500_000, 2_000_000)
SIZES = ((320, 180), (640, 360), (1280, 720))


def simulcast_track(now: float) -> Producer:
    def layer() -> Producer:
        return Producer(Codec("video/VP8", 90000), 96, 1, lambda data: None)
    track = layer()
    track.layers = [layer(), layer(), track]
    for producer, rate, size, rid in zip(track.layers, RATES, SIZES, "qhf"):
        producer.bitrate, producer.frame_size, producer.rid, producer.last_arrival = rate, size, rid, now
    return track


def consumer_of(track: Producer, ssrc: int) -> SimulcastConsumer:
    transport = SimpleNamespace(wire=Wire(), ready=False, ready_listeners=[])
    consumer = SimulcastConsumer(track, transport, ssrc, 96)
    consumer.attach()
    return consumer


async def test_tile_then_congestion_by_priority_then_careful_steps_up():
    now = 100.0
    main, other = simulcast_track(now), simulcast_track(now)
    first, second = consumer_of(main, 1), consumer_of(other, 2)
    assert first.layer == 0  # starts low
    first.priority = 1
    first.tile, second.tile = (1280, 720), (300, 170)

    def allocate_at(t: float) -> None:  # every layer that is still sending sent just now
        for layer in main.layers + other.layers:
            if layer.last_arrival > t - 30:
                layer.last_arrival = t
        allocate([first, second], t)
    allocate_at(now)
    assert (first.wanted, second.wanted) == (1, 0)  # one step up at a time; the small tile stays low
    allocate_at(now + UP_AFTER)
    assert first.wanted == 1  # the step is tried for a while before the next
    allocate_at(now + TRIAL)
    assert first.wanted == 2 and first.layer == 2  # not started yet: moves without a keyframe
    allocate_at(now + 2 * TRIAL)  # and that one held too

    # 30 % loss reported: the main camera keeps what fits of what still arrives.
    now += 2 * TRIAL + 1
    for consumer in (first, second):
        consumer.fraction_lost = 77
    allocate_at(now)
    assert first.wanted == 1 and second.wanted == 0 and first._up_after == UP_AFTER

    # Calm again: it tries the full layer; loss at once undoes it and doubles the wait.
    for consumer in (first, second):
        consumer.fraction_lost = 0
    allocate_at(now + UP_AFTER)
    assert first.wanted == 2
    first.fraction_lost = 77
    failed = now + UP_AFTER + 1
    allocate_at(failed)
    assert first.wanted == 1 and first._up_after == 2 * UP_AFTER
    first.fraction_lost = 0
    allocate_at(failed + 2 * UP_AFTER - 1)
    assert first.wanted == 1  # still waiting
    allocate_at(failed + 2 * UP_AFTER)
    assert first.wanted == 2

    # A layer that stops arriving is left.
    main.last_arrival = now - 60
    allocate_at(failed + 2 * UP_AFTER + 1)
    assert first.wanted == 1
    for consumer in (first, second):
        consumer.close()
