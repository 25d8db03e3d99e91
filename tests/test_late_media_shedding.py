"""Late media shed by the producer (sfu/producer.py, sfu/late_media.py): viewers get no
backlog of stale media after the server fell behind, and go on from a fresh keyframe;
consumers that keep everything (recording) still get all of it."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine
from typing import Any

from sfu import Consumer, Producer
from sfu.aiortc_hook import tap
from sfu.codec import Codec
from sfu.keyframe import vp8_keyframe
from sfu.rtcp import PSFB_PLI, RtcpPsfbPacket, parse_rtcp
from sfu.rtp_packet import RtpPacket
from telemed_client import Client
from tests.media import PatternTrack, ToneTrack
from tests.test_resume import wait_until

KEYFRAME, DELTA, MIDDLE = b"\x10\x00" + b"k" * 40, b"\x10\x01" + b"d" * 40, b"\x00" + b"m" * 40


class Kept(Consumer):
    """In-process, like the recorder: keeps every packet (live is False)."""

    def __init__(self, producer: Producer) -> None:
        super().__init__(producer)
        self.out: list[tuple[int, int, bytes]] = []

    def write(self, packet: RtpPacket, seq: int, timestamp: int) -> None:
        self.out.append((seq, timestamp, packet.payload))


class Viewer(Kept):
    """In-process but live, as a remote subscriber is."""
    live = True


def video_frames(seconds: float, keyframe_at: tuple[float, ...]) -> list[tuple[float, RtpPacket]]:
    """30 frames a second, two packets each: (send time, packet)."""
    out = []
    for frame in range(int(seconds * 30)):
        sent = frame / 30
        first = KEYFRAME if any(abs(sent - k) < 1e-6 for k in keyframe_at) else DELTA
        for i, payload in enumerate((first, MIDDLE)):
            out.append((sent, RtpPacket(96, i, (2 * frame + i) & 0xFFFF, 5000 + frame * 3000, 7, payload)))
    return out


async def test_a_stall_is_shed_for_viewers_who_go_on_from_a_keyframe_while_recording_keeps_it():
    rtcp_sent: list[bytes] = []
    producer = Producer(Codec("video/VP8", 90000), 96, 1, rtcp_sent.append)
    producer.ssrc = 7
    viewer, kept = Viewer(producer), Kept(producer)
    viewer.attach()
    kept.attach()
    # The server reads nothing between 3 s and 6 s, then drains; the publisher answers
    # the keyframe request at 6.5 s.
    packets = video_frames(10, keyframe_at=(0.0, 6.5))
    for n, (sent, packet) in enumerate(packets):
        if sent == 6.0 and packet.marker == 0:
            # The backlog is through: fresh again, it asks for a keyframe (the throttle may
            # hold the request a moment) before the publisher's answer comes.
            await wait_until(lambda: any(isinstance(p, RtcpPsfbPacket) and p.fmt == PSFB_PLI
                                         for data in rtcp_sent[1:] for p in parse_rtcp(data)))
        producer.receive(packet, 1000.0 + (6.0 + n * 1e-5 if 3.0 <= sent < 6.0 else sent), 60)
    assert len(rtcp_sent) == 2  # the viewer's first keyframe, and that one
    assert producer.late_episodes == 1 and producer.late_shed > 150
    assert len(kept.out) == len(packets)  # recording: every packet, the backlog too
    # The viewer: the first two frames of the backlog (while it shows it is one), then
    # nothing until the keyframe at 6.5 s; no hole in its numbering, and its timeline
    # stands where the time went.
    stamps = [ts - viewer.ts_offset for _, ts, _ in viewer.out]
    stale = [ts for ts in stamps if 5000 + 3.0 * 90000 <= ts < 5000 + 6.0 * 90000]
    assert len(stale) <= 4 and all(ts < 5000 + 3.1 * 90000 for ts in stale)
    resumed = next(i for i, ts in enumerate(stamps) if ts >= 5000 + 6.0 * 90000)
    assert viewer.out[resumed][2] == KEYFRAME and stamps[resumed] == 5000 + 6.5 * 90000
    seqs = [seq for seq, _, _ in viewer.out]
    assert seqs == [(seqs[0] + i) & 0xFFFF for i in range(len(seqs))]
    producer.close()


async def test_stale_audio_is_not_sent_and_the_numbering_closes_up():
    producer = Producer(Codec("audio/opus", 48000, 2), 111, 1, lambda data: None)
    viewer, kept = Viewer(producer), Kept(producer)
    viewer.attach()
    kept.attach()
    for n in range(500):  # 10 s of 20 ms packets; the server stalls from 3 s to 6 s
        sent = n * 0.02
        arrival = 6.0 + n * 1e-5 if 3.0 <= sent < 6.0 else sent
        producer.receive(RtpPacket(111, 0, n, 960 * n, 8, b"opus%d" % n), 500.0 + arrival, 40)
    assert len(kept.out) == 500
    payloads = [p for _, _, p in viewer.out]
    assert 500 - len(payloads) == producer.late_shed > 100
    assert payloads[-1] == b"opus499"
    seqs = [seq for seq, _, _ in viewer.out]
    assert seqs == [(seqs[0] + i) & 0xFFFF for i in range(len(seqs))]


async def test_a_late_retransmission_is_not_sent_but_recorded():
    producer = Producer(Codec("video/VP8", 90000), 96, 1, lambda data: None)
    producer.ssrc = 7
    viewer, kept = Viewer(producer), Kept(producer)
    viewer.attach()
    kept.attach()
    packets = video_frames(4, keyframe_at=(0.0,))
    lost = packets[40][1]
    for sent, packet in packets:
        if packet is not lost:
            producer.receive(packet, 100.0 + sent, 60)
    sent_before, kept_before = len(viewer.out), len(kept.out)
    producer.receive_retransmission(lost, 100.0 + 4.0, 60)  # 3.3 s after it was due
    assert producer.late_shed == 1 and producer.late_episodes == 0
    assert len(viewer.out) == sent_before and len(kept.out) == kept_before + 1
    assert viewer.started  # one late retransmission is no episode: nothing restarted


class Received:
    """What the viewer got of one stream: (when, seq, timestamp, keyframe) per packet."""

    def __init__(self, kind: str, rate: int) -> None:
        self.kind, self.rate = kind, rate
        self.packets: list[tuple[float, int, int, bool]] = []
        self.before = 0         # how many came before the stall
        self.floor = 0.0        # ... and their least transit

    def add(self, data: bytes) -> None:
        payload = data[12 + 4 * (data[0] & 0x0F):]
        if data[0] & 0x10:  # a header extension
            payload = payload[4 + 4 * int.from_bytes(payload[2:4], "big"):]
        self.packets.append((time.monotonic(), int.from_bytes(data[2:4], "big"),
                             int.from_bytes(data[4:8], "big"), self.kind == "video" and vp8_keyframe(payload)))

    def transit(self, packet: tuple[float, int, int, bool]) -> float:
        ticks = ((packet[2] - self.packets[0][2] + 0x80000000) & 0xFFFFFFFF) - 0x80000000
        return packet[0] - ticks / self.rate

    def stall(self) -> None:
        self.before = len(self.packets)
        self.floor = min(map(self.transit, self.packets))

    def lateness(self, packet: tuple[float, int, int, bool]) -> float:
        return self.transit(packet) - self.floor


class ThreadedPublisher:
    """A publisher on an event loop of its own, in a thread: it goes on sending while the
    test blocks the loop that the server (and the viewer) run on."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.client: Client | None = None

    def run(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Future:
        return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop))

    async def start(self, url: str, token: str) -> tuple[str, str]:
        async def publish() -> tuple[str, str]:
            self.client = await Client.join(url, token)
            return (await self.client.publish(PatternTrack(), "camera"),
                    await self.client.publish(ToneTrack(), "microphone"))
        return await asyncio.wait_for(self.run(publish()), 30)

    async def close(self) -> None:
        if self.client is not None:
            await asyncio.wait_for(self.run(self.client.close()), 10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


async def test_a_blocked_server_sheds_the_backlog_and_the_viewer_goes_on_from_a_fresh_keyframe(server):
    """Real aiortc peers. The server's loop is blocked for 3 s (time.sleep: media piles up
    in the media port's kernel buffer, as when the process gets no CPU). Afterwards the
    viewer gets no burst of that backlog, a fresh keyframe, and media goes on."""
    await server.create_room("stall", "pw-123456")
    publisher = ThreadedPublisher()
    viewer = None
    try:
        video_id, audio_id = await publisher.start(
            server.url, await server.token("stall", "pw-123456", name="Surgeon"))
        viewer = await Client.join(server.url, await server.token("stall", "pw-123456", role="viewer", name="Trainee"))
        video = await viewer.subscribe(video_id)
        await viewer.subscribe(audio_id)
        router = server.core.live.rooms["stall"].router
        producers = {"video": router.get(video_id), "audio": router.get(audio_id)}
        kept = Kept(producers["video"])  # as the recorder
        kept.attach()
        await wait_until(lambda: all(len(p.consumers) >= 2 - (k == "audio") for k, p in producers.items()))
        streams = {c.ssrc: Received(kind, producers[kind].codec.clock_rate)
                   for kind, p in producers.items() for c in p.consumers if hasattr(c, "ssrc")}
        got = {stream.kind: stream for stream in streams.values()}

        def on_received(data: bytes) -> bool:
            stream = streams.get(int.from_bytes(data[8:12], "big"))
            if stream is not None:
                stream.add(data)
            return True

        tap(viewer.pc.getTransceivers()[0].receiver.transport, on_received=on_received)
        await asyncio.wait_for(video.recv(), 20)
        await wait_until(lambda: len(got["video"].packets) > 60 and len(got["audio"].packets) > 50)
        for stream in got.values():
            stream.stall()

        time.sleep(3.0)  # the server's loop, blocked: the publisher's media piles up

        def fresh_keyframe() -> int | None:
            stream = got["video"]
            return next((i for i in range(stream.before, len(stream.packets))
                         if stream.packets[i][3] and stream.lateness(stream.packets[i]) < 0.5), None)
        await wait_until(lambda: fresh_keyframe() is not None)
        first_key = fresh_keyframe()
        await wait_until(lambda: len(got["video"].packets) > first_key + 30
                         and len(got["audio"].packets) > got["audio"].before + 25)
        for kind, stream in got.items():
            producer = producers[kind]
            assert producer.late_episodes >= 1 and producer.late_shed > 20, kind
            # No burst: at most the backlog's first frames (forwarded while it shows that
            # it is a backlog rather than a publisher resuming), none after them.
            stale = [p for p in stream.packets[stream.before:] if stream.lateness(p) > 1.0]
            span = ((stale[-1][2] - stale[0][2]) & 0xFFFFFFFF) / stream.rate if stale else 0
            assert span < 0.2, f"{kind}: {len(stale)} stale packets over {span:.2f} s of media"
            seqs = [p[1] for p in stream.packets]
            assert seqs == [(seqs[0] + i) & 0xFFFF for i in range(len(seqs))], f"{kind}: a hole in the numbering"
        # The in-process consumer (as a recording) got the backlog too.
        assert len(kept.out) >= producers["video"].late_shed
    finally:
        if viewer is not None:
            await viewer.close()
        await publisher.close()



def test_no_viewer_starts_from_the_buffer_on_a_stale_keyframe():
    """A keyframe in a drained backlog is not one a new viewer may start on (sfu/producer.py
    starts viewers on a keyframe that has just arrived): its media is seconds old."""
    producer = Producer(Codec("video/VP8", 90000), 96, 1, lambda data: None)
    producer.ssrc = 7
    for n, (sent, packet) in enumerate(video_frames(6, keyframe_at=(0.0, 4.0))):
        producer.receive(packet, 1000.0 + (6.0 + n * 1e-5 if 3.0 <= sent < 6.0 else sent), 60)
    assert producer.late_episodes == 1
    viewer = Viewer(producer)
    viewer.attach()
    assert not producer.start_on_recent_keyframe(viewer, 1006.1)
    assert viewer.out == []
