"""Three, then four, aiortc peers in one room over real loopback connections."""

from __future__ import annotations

import asyncio
import hashlib

from sfu.aiortc_hook import tap
from sfu.producer import RECENT_KEYFRAME
from sfu.rtp_packet import is_rtcp, parse_rtp
from telemed_client import Client
from tests.media import PatternTrack, ToneTrack


class PayloadLog:
    """Digests of RTP payloads crossing one client's transport, per payload type."""

    def __init__(self) -> None:
        self.sent: set[bytes] = set()
        self.received: list[tuple[int, bytes]] = []

    def attach(self, client: Client) -> None:
        dtls = client.pc.getTransceivers()[0].sender.transport
        tap(dtls, on_sent=self._sent, on_received=self._received)

    def _sent(self, data: bytes) -> None:
        if not is_rtcp(data):
            self.sent.add(hashlib.sha1(parse_rtp(data).payload).digest())

    def _received(self, data: bytes) -> bool:
        packet = parse_rtp(data)
        self.received.append((packet.payload_type, hashlib.sha1(packet.payload).digest()))
        return True


async def frames(track, count: int, timeout: float = 20) -> list:
    out = []
    async def pull() -> None:
        while len(out) < count:
            out.append(await track.recv())
    await asyncio.wait_for(pull(), timeout)
    return out


async def join_publishing(server, room: str, name: str) -> tuple[Client, dict[str, str]]:
    client = await Client.join(server.url, await server.token(room, "pw-123456", name=name))
    video = await client.publish(PatternTrack(), "camera")
    audio = await client.publish(ToneTrack(), "microphone")
    return client, {"video": video, "audio": audio}


async def test_three_peers_receive_each_other_byte_identical(server):
    await server.create_room("consult", "pw-123456")
    peers = [await join_publishing(server, "consult", f"Dr {n}") for n in "ABC"]
    logs = []
    for client, _ in peers:
        log = PayloadLog()
        log.attach(client)
        logs.append(log)
    # A viewer may start on a keyframe that went by just before it subscribed (from the
    # buffer): only what went by after the logs began can be matched.
    await asyncio.sleep(RECENT_KEYFRAME)
    received = {}
    for i, (client, _) in enumerate(peers):
        for j, (_, tracks) in enumerate(peers):
            if i != j:
                for kind, track_id in tracks.items():
                    received[(i, j, kind)] = await client.subscribe(track_id)
    try:
        for (i, j, kind), track in received.items():
            got = await frames(track, 10 if kind == "video" else 20)
            if kind == "video":
                assert got[-1].width == 320 and got[-1].height == 240
        sent_by_others = [set().union(*(logs[j].sent for j in range(3) if j != i)) for i in range(3)]
        for i, log in enumerate(logs):
            media = [digest for pt, digest in log.received if pt < 96 or pt in (96, 97, 111)]
            assert len(media) > 50
            foreign = [d for d in media if d not in sent_by_others[i]]
            assert not foreign, f"peer {i} got {len(foreign)} payloads nobody sent"
    finally:
        for client, _ in peers:
            await client.close()


async def test_late_joiner_decodes_after_relayed_keyframe(server):
    await server.create_room("latejoin", "pw-123456")
    publisher, tracks = await join_publishing(server, "latejoin", "Surgeon")
    early = await Client.join(server.url, await server.token("latejoin", "pw-123456", name="Early"))
    try:
        await frames(await early.subscribe(tracks["video"]), 30)  # the stream is well past its keyframe
        producer = server.core.live.rooms["latejoin"].router.get(tracks["video"])
        requests_before = producer.keyframes.requests_sent
        late = await Client.join(server.url, await server.token("latejoin", "pw-123456", name="Late"))
        loop = asyncio.get_running_loop()
        start = loop.time()
        got = await frames(await late.subscribe(tracks["video"]), 1, timeout=10)
        elapsed = loop.time() - start
        assert got[0].width == 320
        assert producer.keyframes.requests_sent > requests_before  # the PLI went upstream
        print(f"late joiner decoded its first frame after {elapsed:.2f}s")
        await late.close()
    finally:
        await early.close()
        await publisher.close()


async def test_sender_reports_translated_and_receiver_reports_go_upstream(server):
    from sfu.rtcp import RtcpSrPacket, parse_rtcp

    await server.create_room("sync", "pw-123456")
    publisher, tracks = await join_publishing(server, "sync", "Cardiologist")
    viewer = await Client.join(server.url, await server.token("sync", "pw-123456", name="GP"))
    sent_sr: dict[int, int] = {}      # ntp -> rtp timestamp, as the publisher stated them
    received_sr: list[tuple[int, int, int]] = []

    def on_sent(data: bytes) -> None:
        if is_rtcp(data):
            for packet in parse_rtcp(data):
                if isinstance(packet, RtcpSrPacket):
                    sent_sr[packet.sender_info.ntp_timestamp] = packet.sender_info.rtp_timestamp

    def on_rtcp(data: bytes) -> None:
        for packet in parse_rtcp(data):
            if isinstance(packet, RtcpSrPacket):
                info = packet.sender_info
                received_sr.append((packet.ssrc, info.ntp_timestamp, info.rtp_timestamp))

    tap(publisher.pc.getTransceivers()[0].sender.transport, on_sent=on_sent)
    try:
        track = await viewer.subscribe(tracks["video"])
        tap(viewer.pc.getTransceivers()[0].sender.transport, on_received_rtcp=on_rtcp)
        await frames(track, 90, timeout=30)  # ~3 s: a few report intervals
        consumer = next(iter(server.core.live.rooms["sync"].peers[viewer.peer_id].connection.consumers.values()))
        matched = [(ntp, rtp) for ssrc, ntp, rtp in received_sr if ssrc == consumer.ssrc and ntp in sent_sr]
        assert matched, "no translated sender report reached the subscriber"
        for ntp, rtp in matched:
            assert rtp == (sent_sr[ntp] + consumer.ts_offset) & 0xFFFFFFFF
        # our receiver reports reached the publisher's sender
        stats = await publisher.pc.getTransceivers()[0].sender.getStats()
        assert any(s.type == "remote-inbound-rtp" for s in stats.values())
    finally:
        await viewer.close()
        await publisher.close()


async def test_h264_is_forwarded_and_starts_on_a_keyframe(server):
    await server.create_room("h264", "pw-123456")
    publisher = await Client.join(server.url, await server.token("h264", "pw-123456", name="Endoscope"))
    viewer = await Client.join(server.url, await server.token("h264", "pw-123456", name="Trainee"))
    try:
        track_id = await publisher.publish(PatternTrack(), codec="video/H264")
        assert publisher.tracks.get(track_id, {}).get("codec", "video/H264") == "video/H264"
        producer = server.core.live.rooms["h264"].router.get(track_id)
        assert producer.codec.mime_type == "video/H264"
        assert producer.codec.parameters.get("packetization-mode") == "1"
        got = await frames(await viewer.subscribe(track_id), 10)
        assert got[-1].width == 320
    finally:
        await viewer.close()
        await publisher.close()
