"""Keyframe requests upstream: throttled, and a throttled one goes out when the throttle
allows rather than at the next upkeep tick (a new viewer's second request, once its DTLS
is up, is the common case)."""

from __future__ import annotations

import asyncio

import pytest

from sfu import Producer
from sfu.codec import Codec
from sfu.keyframe_request_manager import MIN_INTERVAL, KeyFrameRequestManager
from sfu.rtcp import parse_rtcp


def video_producer(sent: list[bytes]) -> Producer:
    producer = Producer(Codec("video/VP8", 90000), 96, 1, sent.append)
    producer.ssrc = 1234
    return producer


def test_manager_throttles_and_retries():
    manager = KeyFrameRequestManager()
    assert manager.request(10.0) is True
    assert manager.request(10.1) is False and manager.throttled_for(10.1) == pytest.approx(MIN_INTERVAL - 0.1)
    assert manager.send_deferred(10.1) is False
    assert manager.send_deferred(10.0 + MIN_INTERVAL) is True
    manager.keyframe_arrived()
    assert manager.send_deferred(20.0) is False  # nothing pending any more


async def test_a_throttled_request_is_sent_when_the_throttle_ends():
    sent: list[bytes] = []
    producer = video_producer(sent)
    producer.request_keyframe()
    producer.request_keyframe()  # throttled
    assert len(sent) == 1
    handle = producer._deferred_pli
    loop = asyncio.get_running_loop()
    assert handle is not None and handle.when() - loop.time() <= MIN_INTERVAL
    await asyncio.wait_for(_until(lambda: len(sent) == 2), timeout=5)
    assert all(parse_rtcp(p) for p in sent)
    producer.close()


async def test_no_deferred_request_once_a_keyframe_came():
    sent: list[bytes] = []
    producer = video_producer(sent)
    producer.request_keyframe()
    producer.request_keyframe()
    producer.keyframes.keyframe_arrived()
    handle = producer._deferred_pli
    await asyncio.sleep(max(0.0, handle.when() - asyncio.get_running_loop().time()) + 0.05)
    assert len(sent) == 1
    producer.close()


async def _until(condition) -> None:
    while not condition():
        await asyncio.sleep(0.02)
