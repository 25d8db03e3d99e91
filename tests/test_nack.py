"""Loss on the subscriber leg is repaired from the SFU's retransmission buffer."""

from __future__ import annotations

import asyncio

from sfu.aiortc_hook import tap
from sfu.rtp_packet import parse_rtp
from telemed_client import Client
from tests.test_forwarding import frames, join_publishing


async def test_subscriber_loss_recovered_with_rtx(server):
    await server.create_room("lossy", "pw-123456")
    publisher, tracks = await join_publishing(server, "lossy", "Surgeon")
    viewer = await Client.join(server.url, await server.token("lossy", "pw-123456", name="Remote"))
    dropped: set[int] = set()
    recovered: set[int] = set()
    state = {"media_ssrc": None, "count": 0}

    def receive(data: bytes) -> bool:
        packet = parse_rtp(data)
        consumer = next(iter(server.core.live.rooms["lossy"].peers[viewer.peer_id].connection.consumers.values()), None)
        if consumer is None or consumer.kind != "video":
            return True
        if packet.ssrc == consumer.ssrc:
            state["count"] += 1
            if state["count"] % 15 == 0 and packet.seq not in dropped:
                dropped.add(packet.seq)  # lost on the wire, first time only
                return False
        elif packet.ssrc == consumer.rtx_ssrc and len(packet.payload) >= 2:
            recovered.add((packet.payload[0] << 8) | packet.payload[1])
        return True

    try:
        track = await viewer.subscribe(tracks["video"])
        tap(viewer.pc.getTransceivers()[0].sender.transport, on_received=receive)
        decoded = await frames(track, 60, timeout=30)
        await asyncio.sleep(0.5)
        consumer = next(iter(server.core.live.rooms["lossy"].peers[viewer.peer_id].connection.consumers.values()))
        assert len(dropped) >= 5
        assert consumer.nacks_received >= len(dropped) * 0.8
        assert consumer.retransmitted > 0 and consumer.rtx_payload_type is not None
        assert len(recovered & dropped) >= len(dropped) * 0.8, (len(recovered & dropped), len(dropped))
        assert decoded[-1].width == 320
    finally:
        await viewer.close()
        await publisher.close()


def test_receive_stats_count_sequence_cycles_in_order_and_reordered():
    """The receiver report's extended highest sequence number (RFC 3550) across a wrap,
    in order (the fast path) and with the packet after the wrap arriving early."""
    from sfu.receive_stats import ReceiveStats

    in_order = ReceiveStats(90000)
    for i, seq in enumerate((65534, 65535, 0, 1)):
        in_order.add(seq, i * 3000, i / 30, 100)
    assert in_order.extended_max == (1 << 16) | 1
    assert (in_order.expected, in_order.lost, in_order.received) == (4, 0, 4)
    reordered = ReceiveStats(90000)
    for i, seq in enumerate((65534, 0, 65535, 2)):
        reordered.add(seq, i * 3000, i / 30, 100)
    assert reordered.extended_max == (1 << 16) | 2
    assert (reordered.expected, reordered.lost) == (5, 1)
