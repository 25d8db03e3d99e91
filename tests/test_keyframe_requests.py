"""Keyframe requests upstream: a request made while a keyframe is already on its way is
served by it; otherwise throttled, and a throttled one goes out when the throttle allows
rather than at the next upkeep tick. A new viewer asks once its DTLS is up, not before;
one that comes up just after a keyframe went by starts on it, from the buffer, and asks
for nothing."""

from __future__ import annotations

import asyncio

import pytest

import sfu.producer as producer_module
from sfu import Producer, RtpConsumer, keyframe_request_manager
from sfu.aiortc_hook import tap
from sfu.codec import Codec
from sfu.consumer import Consumer
from sfu.keyframe_request_manager import MIN_INTERVAL, RETRY_AFTER, KeyFrameRequestManager
from sfu.rtcp import PSFB_PLI, RtcpPsfbPacket, parse_rtcp
from sfu.rtp_packet import RtpPacket
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


class Collected(Consumer):
    """An in-process sink, as the recorder is: what it was given, in our numbering."""

    def __init__(self, producer: Producer) -> None:
        super().__init__(producer)
        self.got: list[tuple[int, bool]] = []  # (input seq, keyframe)
        self.attach()

    def write(self, packet: RtpPacket, seq: int, timestamp: int) -> None:
        self.got.append((packet.seq, packet.keyframe))


def vp8(keyframe: bool, first: bool = True) -> bytes:
    """A VP8 payload: descriptor (S bit on a frame's first packet), then the frame header."""
    return bytes([0x10 if first else 0x00, 0x00 if keyframe else 0x01]) + bytes(40)


def feed(producer: Producer, seqs: range, keyframe_at: int, arrival: float) -> None:
    for seq in seqs:
        first = seq == keyframe_at or seq % 3 == 0
        payload = vp8(seq == keyframe_at, first)
        producer.receive(RtpPacket(96, int(seq % 3 == 2), seq, 3000 * (seq // 3), 1234, payload), arrival, 60)


def test_a_viewer_up_just_after_a_keyframe_starts_on_it_from_the_buffer():
    sent: list[bytes] = []
    producer = video_producer(sent)
    feed(producer, range(65530, 65536), 0, 100.0)  # delta frames before, across the wrap
    feed(producer, range(0, 9), 3, 100.0)         # the keyframe at seq 3, then more
    viewer = Collected(producer)
    requests = producer.keyframes.requests_received  # attach() asked, as a recorder does
    assert producer.start_on_recent_keyframe(viewer, 100.0 + producer_module.RECENT_KEYFRAME / 2)
    assert viewer.started and [seq for seq, _ in viewer.got] == list(range(3, 9))
    assert viewer.got[0][1] and producer.started_from_buffer == 1
    assert producer.keyframes.requests_received == requests
    feed(producer, range(9, 12), -1, 100.2)
    assert [seq for seq, _ in viewer.got][-3:] == [9, 10, 11]  # and on with the live stream

    late = Collected(producer)  # too long after it: asks for a fresh keyframe instead
    assert not producer.start_on_recent_keyframe(late, 100.0 + producer_module.RECENT_KEYFRAME + 0.01)
    assert late.got == [] and not late.started
    producer.close()


def test_a_late_retransmission_of_an_older_keyframe_is_not_started_on():
    producer = video_producer([])
    feed(producer, range(1, 3), -1, 10.0)  # keyframe 1's first packet, seq 0, is lost
    feed(producer, range(3, 9), 6, 11.0)   # keyframe 2 at seq 6
    producer.receive_retransmission(RtpPacket(96, 0, 0, 0, 1234, vp8(True)), 11.1, 60)  # 0 comes back
    viewer = Collected(producer)
    assert producer.start_on_recent_keyframe(viewer, 11.1)
    assert [seq for seq, _ in viewer.got] == [6, 7, 8]
    producer.close()


def test_no_start_from_the_buffer_over_a_hole():
    producer = video_producer([])
    feed(producer, range(0, 3), 0, 50.0)
    feed(producer, range(4, 9), -1, 50.0)  # 3 lost: the NACK is still out
    viewer = Collected(producer)
    assert not producer.start_on_recent_keyframe(viewer, 50.0)
    assert viewer.got == []
    producer.close()


async def test_a_late_viewer_decodes_what_the_buffer_gave_it(server, monkeypatch):
    """Real aiortc peers: with the window stretched, a viewer joining seconds after the
    publisher's first keyframe is caught up from the buffer, asks for no keyframe, and
    its decoder shows the picture."""
    monkeypatch.setattr(producer_module, "RECENT_KEYFRAME", 3600.0)
    monkeypatch.setattr(producer_module, "MAX_CATCH_UP", 1024)
    await server.create_room("catch-up", "pw-123456")
    publisher = await Client.join(server.url, await server.token("catch-up", "pw-123456", name="Surgeon"))
    track_id = await publisher.publish(PatternTrack(), "camera")
    producer = server.core.live.rooms["catch-up"].router.get(track_id)
    viewer = None
    try:
        await asyncio.wait_for(_until(lambda: producer.stats.received > 30), timeout=20)
        requests_before = producer.keyframes.requests_sent
        viewer = await Client.join(server.url, await server.token("catch-up", "pw-123456", role="viewer", name="Trainee"))
        track = await viewer.subscribe(track_id)
        frame = await asyncio.wait_for(track.recv(), timeout=20)
        assert frame.width == 320
        assert producer.started_from_buffer == 1
        assert producer.keyframes.requests_sent == requests_before
    finally:
        for client in (viewer, publisher):
            if client is not None:
                await client.close()


async def _until(condition) -> None:
    while not condition():
        await asyncio.sleep(0.02)
