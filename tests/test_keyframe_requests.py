"""Keyframe requests upstream: a request made while a keyframe is already on its way is
served by it; otherwise throttled, and a throttled one goes out when the throttle allows
rather than at the next upkeep tick. A new viewer asks once its DTLS is up, not before."""

from __future__ import annotations

import asyncio

import pytest

from sfu import Producer, RtpConsumer, keyframe_request_manager
from sfu.aiortc_hook import tap
from sfu.codec import Codec
from sfu.keyframe_request_manager import MIN_INTERVAL, RETRY_AFTER, KeyFrameRequestManager
from sfu.rtcp import PSFB_PLI, RtcpPsfbPacket, parse_rtcp
from telemed_client import Client
from tests.media import PatternTrack


def video_producer(sent: list[bytes]) -> Producer:
    producer = Producer(Codec("video/VP8", 90000), 96, 1, sent.append)
    producer.ssrc = 1234
    return producer


def test_manager_coalesces_throttles_and_retries():
    manager = KeyFrameRequestManager()
    t0, half = 0.0, MIN_INTERVAL / 2
    assert manager.request(t0) is True
    assert manager.request(t0 + half) is False and not manager.held_back  # served by the keyframe asked for
    assert manager.requests_coalesced == 1
    manager.keyframe_arrived()
    assert manager.request(t0 + half) is False and manager.held_back      # a new keyframe, but throttled
    assert manager.throttled_for(t0 + half) == pytest.approx(half)
    assert manager.send_deferred(t0 + half) is False
    assert manager.send_deferred(t0 + MIN_INTERVAL) is True
    assert manager.request(t0 + MIN_INTERVAL + half) is False            # in flight again
    assert manager.tick(t0 + MIN_INTERVAL + RETRY_AFTER) is True           # no keyframe came: again
    manager.keyframe_arrived()
    assert manager.send_deferred(t0 + 20) is False and manager.tick(t0 + 20) is False  # nothing pending


async def test_a_throttled_request_is_sent_when_the_throttle_ends():
    sent: list[bytes] = []
    producer = video_producer(sent)
    producer.request_keyframe()
    producer.request_keyframe()  # coalesced: its keyframe is on the way
    assert len(sent) == 1 and producer._deferred_pli is None
    producer.keyframes.keyframe_arrived()
    producer.request_keyframe()  # throttled
    handle = producer._deferred_pli
    loop = asyncio.get_running_loop()
    assert handle is not None and handle.when() - loop.time() <= MIN_INTERVAL + 0.01
    handle.cancel()
    producer._send_deferred_pli()  # as if its timer fired early (uvloop's clock is coarser)
    assert len(sent) == 1 and producer._deferred_pli is not None  # armed again, not dropped
    await asyncio.wait_for(_until(lambda: len(sent) == 2), timeout=5)
    assert all(parse_rtcp(p) for p in sent)
    producer.close()


async def test_no_deferred_request_once_a_keyframe_came():
    sent: list[bytes] = []
    producer = video_producer(sent)
    producer.request_keyframe()
    producer.keyframes.keyframe_arrived()
    producer.request_keyframe()  # held back by the throttle
    producer.keyframes.keyframe_arrived()
    handle = producer._deferred_pli
    await asyncio.sleep(max(0.0, handle.when() - asyncio.get_running_loop().time()) + 0.05)
    assert len(sent) == 1
    producer.close()


async def test_joiners_ask_once_their_dtls_is_up_and_a_burst_asks_once(server, monkeypatch):
    """Real aiortc peers. The publisher holds back everything it sends from the first PLI
    on, so no keyframe can come while the viewers join: every PLI must go out only once a
    viewer's DTLS is up, and the whole burst must cost exactly one."""
    monkeypatch.setattr(keyframe_request_manager, "RETRY_AFTER", 3600.0)  # no retry mid-test
    await server.create_room("burst", "pw-123456")
    publisher = await Client.join(server.url, await server.token("burst", "pw-123456", name="Surgeon"))
    track_id = await publisher.publish(PatternTrack(), "camera")
    held: list[bytes] = []
    holding = False

    def on_publisher_rtcp(data: bytes) -> None:
        nonlocal holding
        if any(isinstance(p, RtcpPsfbPacket) and p.fmt == PSFB_PLI for p in parse_rtcp(data)):
            holding = True

    def on_publisher_sent(data: bytes) -> bool | list[bytes]:
        if holding:
            held.append(data)
            return []
        out = held + [data]
        held.clear()
        return out

    tap(publisher.pc.getTransceivers()[0].sender.transport, on_sent=on_publisher_sent,
        on_received_rtcp=on_publisher_rtcp)
    producer = server.core.live.rooms["burst"].router.get(track_id)
    await asyncio.wait_for(_until(lambda: producer.stats.received > 30), timeout=20)
    plis: list[list[bool]] = []  # per PLI upstream: which viewers' transports were up
    send_rtcp = producer._send_rtcp

    def watch(data: bytes) -> object:
        if any(isinstance(p, RtcpPsfbPacket) and p.fmt == PSFB_PLI for p in parse_rtcp(data)):
            plis.append([c.transport.ready for c in producer.consumers if isinstance(c, RtpConsumer)])
        return send_rtcp(data)

    producer._send_rtcp = watch
    sent_before = producer.keyframes.requests_sent
    tokens = [await server.token("burst", "pw-123456", role="viewer", name=f"Trainee {n}") for n in range(4)]
    viewers = await asyncio.gather(*(Client.join(server.url, token) for token in tokens))
    try:
        tracks = await asyncio.gather(*(v.subscribe(track_id) for v in viewers))
        consumers = [c for c in producer.consumers if isinstance(c, RtpConsumer)]
        assert len(consumers) == 4
        await asyncio.wait_for(_until(lambda: all(c.transport.ready for c in consumers)), timeout=20)
        assert producer.keyframes.requests_sent - sent_before == 1, plis
        assert len(plis) == 1 and any(plis[0]), f"a PLI went out before any viewer's DTLS was up: {plis}"
        assert not any(c.started for c in consumers)  # the publisher still holds its keyframe
        holding = False  # its keyframe now reaches every viewer: one PLI served the burst
        for track in tracks:
            frame = await asyncio.wait_for(track.recv(), timeout=20)
            assert frame.width == 320
        assert producer.keyframes.requests_sent - sent_before == 1
    finally:
        for client in (*viewers, publisher):
            await client.close()


async def _until(condition) -> None:
    while not condition():
        await asyncio.sleep(0.02)
