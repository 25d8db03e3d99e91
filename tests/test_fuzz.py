"""Random and mutated input at every parser, then at a live room, which must keep forwarding."""

from __future__ import annotations

import asyncio
import json
import random

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sfu import NegotiationError, parse_offer
from sfu.aiortc_hook import MediaTransport
from sfu.keyframe import h264_keyframe, vp8_keyframe
from sfu.rtcp import parse_rtcp
from sfu.rtp_packet import parse_rtp
from conference.protocol import ProtocolError, decode
from telemed_client import Client
from tests.test_forwarding import frames, join_publishing

VALID_RTP = bytes.fromhex("906f1234000000010a0b0c0dbede000112ab0000") + bytes(range(40))
VALID_RTCP = bytes.fromhex("80c8000600000001") + bytes(20) + bytes.fromhex("81cd000300000001000000010001000f")


def mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        op = rng.random()
        if op < 0.5 and buf:
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        elif op < 0.75:
            buf = buf[: rng.randrange(len(buf) + 1)]
        else:
            buf += bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    return bytes(buf)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=300), st.binary(max_size=40).map(lambda b: VALID_RTP[:20] + b),
                 st.integers(0, 2**32).map(lambda seed: mutate(random.Random(seed), VALID_RTP))))
def test_rtp_parser_only_raises_value_error(data):
    try:
        packet = parse_rtp(data, audio_level_id=1, mid_id=2)
        vp8_keyframe(packet.payload)
        h264_keyframe(packet.payload)
    except ValueError:
        pass


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.binary(max_size=200),
                 st.integers(0, 2**32).map(lambda seed: mutate(random.Random(seed), VALID_RTCP))))
def test_rtcp_parser_only_raises_value_error(data):
    try:
        parse_rtcp(data)
    except ValueError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=300), st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
).map(json.dumps)))
def test_ws_decoder_only_raises_protocol_error(raw):
    try:
        decode(raw)
    except ProtocolError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=500))
def test_sdp_parser_only_raises_negotiation_error(sdp):
    try:
        parse_offer("v=0\r\n" + sdp)
    except NegotiationError:
        pass


@pytest.mark.timeout(120)
async def test_live_room_survives_garbage(server):
    await server.create_room("fuzz", "pw-123456")
    publisher, tracks = await join_publishing(server, "fuzz", "Publisher")
    viewer = await Client.join(server.url, await server.token("fuzz", "pw-123456", name="Viewer"))
    attacker, attacker_tracks = await join_publishing(server, "fuzz", "Attacker")
    rng = random.Random(1234)
    try:
        video = await viewer.subscribe(tracks["video"])
        await frames(video, 5)
        # 1. RTP/RTCP garbage through the attacker's real SRTP transport
        transport = MediaTransport(attacker.pc.getTransceivers()[0].sender.transport)
        sent = 0
        for _ in range(3000):
            base = VALID_RTCP if rng.random() < 0.3 else VALID_RTP
            packet = mutate(rng, base) if rng.random() < 0.8 else rng.randbytes(rng.randint(0, 200))
            if len(packet) >= 2 and packet[0] >> 6 == 2:
                sent += transport.send_rtcp(packet) if 192 <= packet[1] <= 223 else transport.send_rtp(packet)
            if sent % 200 == 0:
                await asyncio.sleep(0)
        # 2. WebSocket garbage, with and without valid shapes
        valid = [{"type": "offer", "sdp": "v=0"}, {"type": "mute", "track_id": "x", "muted": True},
                 {"type": "candidate", "candidate": "candidate:1 1 udp 1 1.2.3.4 5 typ host"},
                 {"type": "set-layout", "layout": {"preset": "grid"}}, {"type": "join", "token": "x"}]
        for _ in range(300):
            message = json.dumps(rng.choice(valid))
            raw = mutate(rng, message.encode()).decode("utf-8", "replace") if rng.random() < 0.7 else message
            await attacker.send_raw(raw)
            await asyncio.sleep(0.005)
        await attacker.send_raw("x" * (300 * 1024))  # oversized but under aiohttp's hard limit
        # 3. data-channel garbage
        for _ in range(200):
            attacker.control.send(mutate(rng, b'{"type": "chat", "text": "hi"}').decode("utf-8", "replace"))
            attacker.control.send(rng.randbytes(rng.randint(1, 64)))
        attacker.control.send("y" * 20000)
        await asyncio.sleep(1)  # let the rate limiter's budget refill
        assert (await attacker.request({"type": "ping"}))["type"] == "pong"  # all of the above was handled

        errors = []
        while not attacker.events.empty():
            event = attacker.events.get_nowait()
            if event.get("type") == "error":
                errors.append(event["code"])
        assert "bad-json" in errors and "too-large" in errors
        # the room still forwards, the server still answers, the victims noticed nothing
        assert len(await frames(video, 30)) == 30
        await viewer.send_chat("still here")
        message = await asyncio.wait_for(publisher.messages.get(), 10)
        while message.get("text") != "still here":
            message = await asyncio.wait_for(publisher.messages.get(), 10)
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{server.url}/healthz") as r:
                assert r.status == 200
        attacker_peer = server.core.live.rooms["fuzz"].peers[attacker.peer_id]
        assert attacker_peer.connection.bad_packets > 0
    finally:
        for client in (publisher, viewer, attacker):
            await client.close()
