"""Layer choice without a network: real producers and simulcast consumers, made-up rates."""

from __future__ import annotations

from types import SimpleNamespace

from sfu.bandwidth_allocator import allocate
from sfu.codec import Codec
from sfu.downlink_estimator import DownlinkEstimator
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

    downlink = DownlinkEstimator()

    def allocate_at(t: float) -> None:  # every layer that is still sending sent just now
        for layer in main.layers + other.layers:
            if layer.last_arrival > t - 30:
                layer.last_arrival = t
        allocate([first, second], t, downlink)
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


async def test_remb_and_rtt_choose_the_frame_rate_before_the_resolution():
    """A link that queues without loss: the subscriber's REMB cuts, and the RTT grows."""
    now = 100.0
    track = simulcast_track(now)
    consumer = consumer_of(track, 1)
    consumer.target.c.max_tid = 2  # the fan-out step saw L1T3
    consumer.want(2, None, now)
    downlink = DownlinkEstimator()

    def allocate_at(t: float) -> None:
        for layer in track.layers:
            layer.last_arrival = t
        allocate([consumer], t, downlink)

    def level() -> tuple[int, int]:
        return consumer.wanted, consumer.target.c.tid_target

    downlink.on_remb(3_000_000, now)
    allocate_at(now + 1)
    assert level() == (2, 255)
    # A little short of the full layer (2 Mbit/s): TL2 goes, then TL1; no resolution lost.
    assert downlink.on_remb(1_500_000, now + 1.2)
    allocate_at(now + 1.2)
    assert level() == (2, 1) and consumer.sending_bitrate == 1_200_000
    assert downlink.on_remb(1_000_000, now + 1.4)
    allocate_at(now + 1.4)
    assert level() == (2, 0)
    # Further short: the half layer, at its full frame rate.
    assert downlink.on_remb(600_000, now + 1.6)
    allocate_at(now + 1.6)
    assert consumer.wanted == 1 and consumer.tid == 255
    # The estimate recovers: the next layer is tried at its full frame rate. While the
    # estimate catches up with it (rising, under what is sent) it is no budget, and no
    # further step up is tried; a cut then settles on what fits: fewer temporal layers.
    t = now + 1.6 + UP_AFTER
    assert not downlink.on_remb(620_000, t)
    allocate_at(t)
    assert level() == (2, 255)
    assert not downlink.on_remb(1_200_000, t + 1)
    allocate_at(t + 1)
    assert level() == (2, 255) and not downlink.state(2_000_000, 0, t + 1).may_step_up
    assert downlink.on_remb(1_100_000, t + 2)
    allocate_at(t + 2)
    assert level() == (2, 0) and consumer._up_after == 2 * UP_AFTER  # the try failed
    downlink.on_remb(1_300_000, t + 3)
    allocate_at(t + 2 + 2 * UP_AFTER)
    assert level() == (2, 255)  # up: the full frame rate at once

    # No REMB any more (it went stale), but the RTT climbs and stays up: queueing.
    t += 10
    for rtt in (0.02, 0.03):
        downlink.on_rtt(rtt, t)
    allocate_at(t)
    assert level() == (2, 255)
    downlink.on_rtt(0.3, t + 1)
    downlink.on_rtt(0.25, t + 1.5)
    allocate_at(t + 1.5)
    assert level() == (2, 255)  # two late reports are not a queue yet
    downlink.on_rtt(0.3, t + 2)
    assert downlink.queueing(t + 2)
    allocate_at(t + 2)
    assert level() == (2, 1)  # 0.85 x what was sent
    consumer.close()


def test_a_remb_is_set_against_the_video_it_estimates():
    """Chromium's REMB counts only packets stamped with abs-send-time (our video), not the
    audio we send beside it."""
    downlink = DownlinkEstimator()
    downlink.on_remb(200_000, 0.0)
    calm = downlink.state(240_000, 0, 1.0, stamped=200_000)  # 40 kbit/s of Opus besides
    assert calm.budget is None and calm.may_step_up
    assert downlink.on_remb(150_000, 2.0)  # a cut: the video's budget, the audio kept
    assert downlink.state(240_000, 0, 2.5, stamped=200_000).budget == 190_000
