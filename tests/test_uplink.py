"""Uplink adaptation: the server tells a publisher, by REMB, what its uplink carries."""

from __future__ import annotations

from dataclasses import dataclass

from sfu import rtcp
from sfu.aiortc_hook import tap
from sfu.rtp_packet import is_rtcp
from sfu.uplink_estimator import GROWTH, MAX_BITRATE, MIN_BITRATE, UplinkEstimator
from tests.test_forwarding import join_publishing
from tests.test_send_path import until


@dataclass
class Counts:
    expected: int = 0
    received: int = 0
    retransmitted: int = 0
    bytes: int = 0

    def add(self, sent: int, lost: int, recovered: int, size: int = 1000) -> None:
        self.expected += sent
        self.received += sent - lost + recovered
        self.retransmitted += recovered
        self.bytes += (sent - lost + recovered) * size


def test_estimate_follows_loss_from_what_arrives_and_grows_back():
    estimator = UplinkEstimator()
    stream = Counts()
    assert estimator.update(0.0, [stream]) is None
    stream.add(200, 0, 0)  # 1.6 Mbit/s, clean: no reason to hold the sender back
    assert estimator.update(1.0, [stream]) == MAX_BITRATE
    rates = []
    for t in range(2, 7):
        stream.add(200, 80, 70)  # 40 % lost on the link; NACKs recover most of it
        rates.append(estimator.update(float(t), [stream]))
    assert estimator.loss == 0.4
    assert rates[0] == int(1_520_000 * 1.5 * (1 - 0.5 * 0.4))  # from what arrived, cut by half the loss
    assert all(b < a for a, b in zip(rates, rates[1:])) and rates[-1] < 1_000_000
    stream.add(100, 5, 0)  # 5 %: hold
    assert estimator.update(7.0, [stream]) == rates[-1]
    for t in range(8, 12):
        stream.add(60, 0, 0)  # the encoder backed off; the link is clean again
        last = estimator.update(float(t), [stream])
    assert abs(last - rates[-1] * GROWTH ** 4) < 5  # 8 % a second
    floor = UplinkEstimator()
    quiet = Counts()
    floor.update(0.0, [quiet])
    quiet.add(10, 9, 0, size=100)
    assert floor.update(1.0, [quiet]) == MIN_BITRATE


async def test_publisher_is_told_to_back_off_under_loss_and_to_recover(server):
    await server.create_room("uplink", "pw-123456")
    publisher, tracks = await join_publishing(server, "uplink", "Ambulance")
    producer = server.core.live.rooms["uplink"].router.get(tracks["video"])
    await until(lambda: producer.ssrc is not None, what="the video SSRC")
    state = {"lossy": False, "count": 0}
    remb: list[int] = []

    def sent(data: bytes) -> bool:
        if is_rtcp(data) or not state["lossy"]:
            return True
        state["count"] += 1
        return state["count"] % 3 != 0  # a third of every RTP packet, RTX included

    def received_rtcp(data: bytes) -> None:
        for packet in rtcp.parse_rtcp(data):
            if isinstance(packet, rtcp.RtcpPsfbPacket) and packet.fmt == rtcp.PSFB_APP:
                value = rtcp.unpack_remb(packet)
                if value is not None and producer.ssrc in value[1]:
                    remb.append(value[0])

    tap(publisher.pc.getTransceivers()[0].sender.transport, on_sent=sent,
        on_received_rtcp=received_rtcp)
    try:
        await until(lambda: len(remb) >= 3, what="REMB on a clean link")
        clean = remb[-1]
        state["lossy"] = True
        await until(lambda: remb[-1] < clean * 0.6, what="the estimate to fall under loss")
        low = remb[-1]
        assert producer.stats.retransmitted > 0  # NACK recovered packets, loss still counted
        state["lossy"] = False
        await until(lambda: remb[-1] > low * 1.3, what="the estimate to recover")
    finally:
        await publisher.close()
