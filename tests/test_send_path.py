"""The send path leaves no holes: real aiortc peers through the SFU over loopback.

What the producer drops (padding-only probes, stray payload types) closes up in every
consumer's numbering; a reused m-line and a resumed stream continue both sequence
number and timestamp.
"""

from __future__ import annotations

import time

from sfu.aiortc_hook import tap
from sfu.rtcp import RTPFB_NACK, RtcpRtpfbPacket, parse_rtcp
from sfu.rtp_packet import is_rtcp, parse_rtp
from telemed_client import Client
from tests.media import PatternTrack
from tests.polling import until
from tests.test_forwarding import frames, join_publishing


class ReceiveLog:
    """What one subscriber's transport receives (RTP) and sends back (NACKs)."""

    def __init__(self) -> None:
        self.rtp: list[tuple[int, int, int, int, int, float]] = []  # ssrc, pt, seq, ts, size, when
        self.nacked: set[int] = set()  # media SSRCs the subscriber NACKed
        self.attached = False

    def attach(self, client: Client) -> None:
        """Once the client has its (bundled) transport: after its first subscription."""
        if not self.attached:
            tap(client.pc.getTransceivers()[0].sender.transport, on_sent=self._sent,
                on_received=self._received)
            self.attached = True

    def _received(self, data: bytes) -> bool:
        p = parse_rtp(data)
        self.rtp.append((p.ssrc, p.payload_type, p.seq, p.timestamp, len(p.payload), time.monotonic()))
        return True

    def _sent(self, data: bytes) -> None:
        if is_rtcp(data):
            for packet in parse_rtcp(data):
                if isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTPFB_NACK:
                    self.nacked.add(packet.media_ssrc)

    def stream(self, ssrc: int) -> list[tuple[int, int, int, int, int, float]]:
        return [r for r in self.rtp if r[0] == ssrc]


class Prober:
    """Makes a publisher's video stream carry what browsers put in it besides media:
    every 7th packet, a padding-only probe or a packet of an unnegotiated payload type
    takes its own sequence number (the media after it is renumbered to make room)."""

    def __init__(self, ssrc: int) -> None:
        self.ssrc = ssrc
        self.packets = 0
        self.injected = 0

    def __call__(self, data: bytes) -> list[bytes] | None:
        if is_rtcp(data) or int.from_bytes(data[8:12], "big") != self.ssrc:
            return None
        self.packets += 1
        seq = int.from_bytes(data[2:4], "big")
        out = []
        if self.packets % 7 == 0:
            pt = data[1] & 0x7F
            header = bytearray(data[:12])
            header[2:4] = ((seq + self.injected) & 0xFFFF).to_bytes(2, "big")
            if self.injected % 2 == 0:
                header[0], header[1] = 0xA0, pt  # P bit: 16 bytes of nothing but padding
                out.append(bytes(header) + bytes(15) + b"\x10")
            else:
                header[0], header[1] = 0x80, 120  # a payload type nobody negotiated
                out.append(bytes(header) + b"stray payload")
            self.injected += 1
        packet = bytearray(data)
        packet[2:4] = ((seq + self.injected) & 0xFFFF).to_bytes(2, "big")
        out.append(bytes(packet))
        return out


def assert_no_holes(stream: list) -> None:
    seqs = [r[2] for r in stream]
    steps = {(b - a) & 0xFFFF for a, b in zip(seqs, seqs[1:])}
    assert steps == {1}, f"sequence steps seen: {sorted(steps)[:10]}"


def consumer_of(server, room: str, client: Client, kind: str):
    connection = server.core.live.rooms[room].peers[client.peer_id].connection
    return next(c for c in connection.consumers.values() if c.kind == kind)


async def test_dropped_padding_and_stray_payload_leave_no_hole(server):
    await server.create_room("probes", "pw-123456")
    publisher, tracks = await join_publishing(server, "probes", "Ambulance")
    viewer = await Client.join(server.url, await server.token("probes", "pw-123456", name="Stroke centre"))
    producer = server.core.live.rooms["probes"].router.get(tracks["video"])
    await until(lambda: producer.ssrc is not None, what="the video SSRC")
    prober = Prober(producer.ssrc)
    tap(publisher.pc.getTransceivers()[0].sender.transport, on_sent=prober)
    log = ReceiveLog()
    try:
        track = await viewer.subscribe(tracks["video"])
        log.attach(viewer)
        decoded = await frames(track, 30)
        start = prober.injected
        await until(lambda: prober.injected >= start + 12, what="probes")
        decoded += await frames(track, 10)
        consumer = consumer_of(server, "probes", viewer, "video")
        stream = log.stream(consumer.ssrc)
        assert len(stream) > 50
        assert {r[1] for r in stream} == {consumer.payload_type} and all(r[4] > 0 for r in stream)
        assert_no_holes(stream)
        assert consumer.ssrc not in log.nacked  # nothing to ask for
        assert producer.nacks_sent == 0  # the probes were counted as received upstream too
        assert decoded[-1].width == 320
    finally:
        await viewer.close()
        await publisher.close()


async def test_reused_mline_continues_sequence_and_timestamp(server):
    await server.create_room("reuse", "pw-123456")
    first, first_tracks = await join_publishing(server, "reuse", "Camera A")
    second_camera = await first.publish(PatternTrack(), "camera", "overview")  # same sender clock
    other, other_tracks = await join_publishing(server, "reuse", "Camera B")
    viewer = await Client.join(server.url, await server.token("reuse", "pw-123456", name="Viewer"))
    router = server.core.live.rooms["reuse"].router
    log = ReceiveLog()
    sources = [first_tracks["video"], second_camera, other_tracks["video"]]
    try:
        await until(lambda: all(router.get(t).last_sr is not None for t in sources[:2]),
                    what="sender reports from both cameras")
        marks = []
        ssrcs = set()
        for i, track_id in enumerate(sources):
            if i:
                await viewer.unsubscribe(sources[i - 1])
            marks.append(len(log.rtp))
            track = await viewer.subscribe(track_id)  # the same m-line every time
            log.attach(viewer)
            consumer = consumer_of(server, "reuse", viewer, "video")
            assert consumer.producer is router.get(track_id)
            ssrcs.add(consumer.ssrc)
            got = await frames(track, 10)
            assert got[-1].width == 320  # the receiver's SRTP and decoder took the new source
        assert len(ssrcs) == 1
        stream = log.stream(ssrcs.pop())
        assert_no_holes(stream)
        for mark in marks[1:]:
            before = [r for r in stream if log.rtp.index(r) < mark][-1]
            after = next(r for r in stream if log.rtp.index(r) >= mark)
            elapsed = after[5] - before[5]
            step = ((after[3] - before[3] + 0x80000000) & 0xFFFFFFFF) - 0x80000000
            assert 0 < step <= (elapsed + 1.0) * 90000, (step, elapsed)
    finally:
        for client in (viewer, first, other):
            await client.close()


async def test_paused_audio_resumes_where_it_left_off(server):
    await server.create_room("mute", "pw-123456")
    publisher, tracks = await join_publishing(server, "mute", "Surgeon")
    viewer = await Client.join(server.url, await server.token("mute", "pw-123456", name="Trainee"))
    producer = server.core.live.rooms["mute"].router.get(tracks["audio"])
    log = ReceiveLog()
    try:
        await viewer.subscribe(tracks["audio"])
        log.attach(viewer)
        consumer = consumer_of(server, "mute", viewer, "audio")
        await until(lambda: len(log.stream(consumer.ssrc)) > 20 and producer.last_sr is not None,
                    what="audio and a sender report")
        offset = consumer.ts_offset
        producer.paused = True
        received = producer.stats.received
        await until(lambda: producer.stats.received > received + 25, what="packets while paused")
        before = len(log.stream(consumer.ssrc))
        producer.paused = False
        await until(lambda: len(log.stream(consumer.ssrc)) > before + 20, what="audio after the pause")
        stream = log.stream(consumer.ssrc)
        assert_no_holes(stream)
        step = (stream[before][3] - stream[before - 1][3]) & 0xFFFFFFFF
        assert step >= 25 * 960  # the pause shows in the timeline, as it happened
        assert consumer.ts_offset == offset  # one source, one clock: the mapping stays
    finally:
        await viewer.close()
        await publisher.close()
