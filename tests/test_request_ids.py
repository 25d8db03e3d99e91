"""Every HTTP request and WebSocket session has a request id: in the answer's
X-Request-ID and in each JSON log line written on its behalf."""

from __future__ import annotations

import json
import logging

import aiohttp

from signaling.logs import JsonFormatter
from telemed_client import fetch_token


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


async def test_requests_get_an_id_or_keep_a_proxys(server):
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{server.url}/healthz") as answer:
            made = answer.headers["X-Request-ID"]
        async with session.get(f"{server.url}/healthz", headers={"X-Request-ID": "lb-7f3a9c01"}) as answer:
            assert answer.headers["X-Request-ID"] == "lb-7f3a9c01"
        async with session.get(f"{server.url}/healthz", headers={"X-Request-ID": 'x" {bad} ' + 'y' * 80}) as answer:
            replaced = answer.headers["X-Request-ID"]
        async with session.get(f"{server.url}/api/rooms/nope") as answer:  # an error answer too
            assert answer.status == 401 and answer.headers["X-Request-ID"]
    assert len({made, replaced}) == 2 and replaced.isalnum()


async def test_a_websocket_sessions_log_lines_carry_its_id(server):
    await server.create_room("ward", "pw-123456")
    token = (await fetch_token(server.url, "ward", "pw-123456", name="Dr A"))["token"]
    lines = Lines()
    logging.getLogger("telemed").addHandler(lines)
    logging.getLogger("telemed").setLevel(logging.INFO)
    try:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"{server.url}/ws", headers={"X-Request-ID": "session-42ab"}) as ws:
                assert ws._response.headers["X-Request-ID"] == "session-42ab"
                await ws.send_json({"type": "join", "token": token})
                joined = await ws.receive_json(timeout=10)
                assert joined["type"] == "joined"
    finally:
        logging.getLogger("telemed").removeHandler(lines)
    mine = [line for line in lines.lines if line.get("peer") == joined["peer_id"]]
    assert {line["msg"] for line in mine} >= {"peer joined"}
    assert all(line["request_id"] == "session-42ab" for line in mine)
