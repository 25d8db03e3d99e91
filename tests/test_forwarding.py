"""Three, then four, aiortc peers in one room over real loopback connections."""

from __future__ import annotations

import asyncio
import hashlib

from sfu.aiortc_hook import tap
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
