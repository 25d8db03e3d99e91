"""Random and mutated input at every parser, then at a live room, which must keep forwarding,
then at every HTTP route, which must never answer 5xx."""

from __future__ import annotations

import asyncio
import json
import random
from urllib.parse import quote, urlencode

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from sfu import NegotiationError, parse_offer
from sfu.aiortc_hook import MediaTransport
from sfu.keyframe import h264_keyframe, vp8_keyframe
from sfu.rtcp import parse_rtcp
from sfu.rtp_packet import parse_rtp
from conference.protocol import ProtocolError, decode
from telemed_client import Client
from tests.raw_http import closed_by_peer, open_stream
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


# ---------- every HTTP route, with garbage paths, queries, headers and bodies ----------

FUZZ_ROOM, FUZZ_PASSWORD = "fz", "pw-fuzz-123"
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]
FIELDS = ["password", "name", "role", "identity", "settings", "token", "passwords", "label", "uses",
          "expires_in", "max_participants", "require_deidentification"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12)
bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(st.sampled_from(FIELDS), json_values | st.text(max_size=80), max_size=5)
    .map(lambda v: json.dumps(v).encode()),
    st.integers(1, 20000).map(lambda n: b"[" * n),  # nested past the parser's recursion limit
    st.just(b"v=0\r\n" + b"m=video 9 UDP/TLS/RTP/SAVPF 96\r\n" * 3),
)
# Header values a client can send: no CR/LF, latin-1.
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=80)
garbage_segments = st.one_of(st.sampled_from(["a" * 64, "0" * 64, "..", "%", "ws", ""]), st.text(max_size=80))
# Mostly the real room and well-formed ids, so that requests get past routing into the handlers.
SEGMENTS = {
    "room": st.one_of(st.just(FUZZ_ROOM), st.just(FUZZ_ROOM), garbage_segments),
    "sha256": st.one_of(st.text("0123456789abcdef", min_size=64, max_size=64), garbage_segments),
}
query_values = st.text(max_size=30) | st.integers(-10**30, 10**30).map(str) | st.just("9" * 4400) | st.just("²")
generic_query = st.lists(st.tuples(st.sampled_from(["frame", "wc", "ww", "x", "room"]) | st.text(max_size=8),
                                   query_values), max_size=5)
signed_link_query = st.fixed_dictionaries({"who": st.text(max_size=30), "exp": query_values,
                                           "sig": st.text(max_size=70)}).map(lambda d: list(d.items()))
# aiohttp refuses request lines over 8 KB itself, before any of our code runs
queries = st.one_of(generic_query, signed_link_query).filter(lambda q: len(urlencode(q)) < 7000)


def fuzz_path(template: str, draw) -> str:
    parts = []
    for part in template.split("/"):
        if part.startswith("{"):
            part = quote(draw(SEGMENTS.get(part.strip("{}"), garbage_segments)), safe="")
        parts.append(part)
    return "/".join(parts)


@pytest.fixture
async def fuzz_target(server):
    await server.create_room(FUZZ_ROOM, FUZZ_PASSWORD)
    token = await server.token(FUZZ_ROOM, FUZZ_PASSWORD, role="host", name="Fuzzer")
    # (method, path template) of every route, so that most requests reach a handler
    routes = sorted({(route.method, route.resource.canonical) for route in server.app.router.routes()
                     if route.method != "*"})
    return server, token, routes


async def send(server, method: str, path: str, headers: dict, body: bytes | None) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session:
        async with session.request(method, URL(f"{server.url}{path}", encoded=True), headers=headers, data=body,
                                   timeout=aiohttp.ClientTimeout(total=30)) as r:
            text = await r.text(errors="replace")
            if r.status >= 400 and method != "HEAD" and r.content_type == "application/json":
                assert "code" in json.loads(text), text
            return r.status, text


@settings(max_examples=600, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
async def test_no_route_answers_5xx_to_garbage(fuzz_target, data):
    server, token, routes = fuzz_target
    method, template = data.draw(st.one_of(
        st.sampled_from(routes),
        st.tuples(st.sampled_from(METHODS), st.sampled_from([t for _, t in routes] + ["/{x}", "/api/{x}", "/{x}/{y}"]))),
        label="route")
    path = fuzz_path(template, data.draw)
    query = urlencode(data.draw(queries, label="query"))
    headers = {}
    auth = data.draw(st.sampled_from(["none", "garbage", "token", "admin", "basic"]), label="auth")
    if auth != "none":
        headers["Authorization"] = {"garbage": "Bearer " + data.draw(header_text), "token": f"Bearer {token}",
                                    "admin": f"Bearer {server.admin_key}", "basic": "Basic " + data.draw(header_text)}[auth]
    headers["Content-Type"] = data.draw(st.sampled_from(
        ["application/json", "application/sdp", "application/trickle-ice-sdpfrag", "text/plain"]) | header_text)
    for name in data.draw(st.lists(st.sampled_from(["Origin", "X-Forwarded-For", "X-Forwarded-Proto", "Range",
                                                    "If-Modified-Since", "Accept-Encoding", "Upgrade"]), max_size=3)):
        headers[name] = data.draw(header_text)
    body = data.draw(bodies, label="body") if method in ("POST", "PUT", "PATCH", "DELETE") else None
    status, text = await send(server, method, path + (f"?{query}" if query else ""), headers, body)
    assert status < 500, (method, path, query, headers, body, status, text)


OBJECT = f"/api/rooms/{FUZZ_ROOM}/objects/{'a' * 64}"


@pytest.mark.parametrize("method, path, body, admin", [
    # signed links: an exp too long for int(), a digit int() does not take, a sign, spaces
    ("GET", f"{OBJECT}?who=a&exp={'9' * 5000}&sig=x", None, False),
    ("GET", f"{OBJECT}/preview.png?who=a&exp=%C2%B2&sig=x", None, False),
    ("GET", f"{OBJECT}?who=a&exp=-1&sig=x", None, False),
    ("GET", f"{OBJECT}?who=a&exp=%201&sig=x", None, False),
    ("GET", f"{OBJECT}/preview.png?frame=1e999&wc=nan&ww=inf", None, False),
    # names and identities with control characters, by password and by admin key
    ("POST", f"/api/rooms/{FUZZ_ROOM}/token", {"password": FUZZ_PASSWORD, "name": "Dr.\x00X"}, False),
    ("POST", f"/api/rooms/{FUZZ_ROOM}/token", {"password": FUZZ_PASSWORD, "name": "a\nb"}, False),
    ("POST", f"/api/rooms/{FUZZ_ROOM}/token", {"identity": "x\x1by"}, True),
    ("POST", "/api/rooms", {"name": "r\x00", "password": FUZZ_PASSWORD}, True),
    ("POST", "/api/rooms", {"name": "deep", "password": FUZZ_PASSWORD, "settings": {"max_participants": 1e300}}, True),
    # JSON nested beyond the parser's recursion limit
    ("POST", f"/api/rooms/{FUZZ_ROOM}/token", b"[" * 100000, False),
    ("POST", f"/api/rooms/{FUZZ_ROOM}/token", b"\xff\xfe", False),
], ids=["exp-5000-digits", "exp-superscript-digit", "exp-negative", "exp-space", "preview-window-nan",
        "name-nul", "name-newline", "identity-escape", "room-name-nul", "settings-huge-float",
        "json-nested-100000", "body-not-utf8"])
async def test_known_malformed_inputs_answer_4xx(fuzz_target, method, path, body, admin):
    server, _, _ = fuzz_target
    headers = {"Content-Type": "application/json"}
    if admin:
        headers["Authorization"] = f"Bearer {server.admin_key}"
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    status, text = await send(server, method, path, headers, data)
    assert 400 <= status < 500, (status, text)


@pytest.mark.parametrize("header", ["Bearer \u00e9\u00e9", "Bearer " + "x" * 7000, "Bearer", "Bearer  ", "\u00ff"],
                         ids=["latin1", "7000-chars", "bare", "blank", "no-scheme"])
@pytest.mark.parametrize("path", ["/metrics", f"/api/rooms/{FUZZ_ROOM}", "/api/rooms", f"{OBJECT}/links"])
async def test_odd_authorization_headers_answer_4xx(fuzz_target, header, path):
    server, _, _ = fuzz_target
    for method in ("GET", "POST", "DELETE"):
        status, text = await send(server, method, path, {"Authorization": header}, b"{}")
        assert status < 500, (method, status, text)


@pytest.mark.parametrize("raw", [
    b"GARBAGE\r\n\r\n",
    b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X: y\r\n" * 500 + b"\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    b"POST /api/rooms/fz/token HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
    b"POST /api/rooms/fz/token HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 9\r\n\r\n{}",
    b"GET /\x00\xff HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
], ids=["not-http", "long-path", "500-headers", "negative-length", "bad-chunk", "two-lengths", "nul-in-path",
        "http-9"])
async def test_malformed_http_gets_4xx(server, raw):
    reader, writer = await open_stream(server.url)
    try:
        writer.write(raw)
        await writer.drain()
        response = await closed_by_peer(reader)
    finally:
        writer.close()
    if response:  # the server may also just close on bytes that are not HTTP at all
        status = int(response.split(b" ", 2)[1])
        assert 400 <= status < 500, response[:200]
