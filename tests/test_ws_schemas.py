"""The client→server WebSocket messages have one JSON Schema each
(conference/message_schemas/): the server refuses what breaks them, the Python client
sends only what fits them, and docs/signaling.md lists exactly those types."""

from __future__ import annotations

import json
import re
from pathlib import Path

import aiohttp
import pytest
from jsonschema import Draft202012Validator

from conference.message_schema import SCHEMA_DIR, validators
from rooms.layout import PRESETS
from telemed_client import Client
from tests.media import PatternTrack, ToneTrack

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "pw-123456"


def test_every_documented_client_message_has_a_schema_and_no_other():
    text = (ROOT / "docs" / "signaling.md").read_text()
    section = text.split("### Client → server", 1)[1].split("### Server → client", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    documented = {name for row in rows for name in re.findall(r"`([a-z-]+)`", row.split("|")[1])}
    assert documented == set(validators())
    for path in SCHEMA_DIR.glob("*.json"):
        schema = json.loads(path.read_text())
        Draft202012Validator.check_schema(schema)
        assert schema["properties"]["type"] == {"const": path.stem}
    presets = validators()["set-layout"].schema["properties"]["layout"]["properties"]["preset"]["enum"]
    assert set(presets) == PRESETS  # the schema and the layout model agree


async def test_the_python_client_sends_only_messages_that_fit(server, monkeypatch):
    sent: list[str] = []
    send_str = aiohttp.ClientWebSocketResponse.send_str

    async def recording(self, data: str, *args, **kwargs):
        sent.append(data)
        return await send_str(self, data, *args, **kwargs)

    monkeypatch.setattr(aiohttp.ClientWebSocketResponse, "send_str", recording)
    await server.create_room("schemas", PASSWORD)
    host = await Client.join(server.url, await server.token("schemas", PASSWORD, role="host", name="Dr H"))
    other = await Client.join(server.url, await server.token("schemas", PASSWORD, name="Dr O"))
    try:
        video = await host.publish(PatternTrack(), "camera")
        audio = await host.publish(ToneTrack(), "microphone", label="lapel")
        await other.subscribe(video)
        await host.set_muted(audio, True)
        await host.set_layout({"preset": "speaker", "main_track": video})
        await host.refresh_token()
        assert (await host.request({"type": "ping"}))["type"] == "pong"
        await host.lock(True)
        await host.lock(False)
        await other.unsubscribe(video)
        await host.unpublish(video)
    finally:
        await other.close()
        await host.close()
    messages = [json.loads(text) for text in sent]
    kinds = {m["type"] for m in messages}
    assert {"join", "offer", "mute", "set-layout", "refresh-token", "ping", "lock", "leave"} <= kinds
    for message in messages:
        errors = [e.message for e in validators()[message["type"]].iter_errors(message)]
        assert not errors, (message["type"], errors)


@pytest.mark.parametrize(("message", "named"), [
    ({"type": "join"}, "'token' is a required property"),
    ({"type": "join", "token": 7}, "'token' must be a non-empty string"),
    ({"type": "join", "token": "t", "screen": 4}, "'screen' must be 1, 2 or 3"),
    ({"type": "join", "token": "t", "screen": True}, "'screen' must be 1, 2 or 3"),
    ({"type": "join", "token": "t", "resume": "p1"}, "'resume_secret' is a required property"),
    ({"type": "offer"}, "'sdp' is a required property"),
    ({"type": "offer", "sdp": "v=0", "publish": {"0": {"source": 5}}}, "'publish.0.source' must be a short string"),
    ({"type": "offer", "sdp": "v=0", "subscribe": {"1": 2}}, "'subscribe.1' must map at most 256 mids"),
    ({"type": "candidate", "sdpMLineIndex": "0"}, "'sdpMLineIndex' must be an integer or null"),
    ({"type": "mute", "track_id": "x", "muted": "yes"}, "'muted' must be true or false"),
    ({"type": "set-layout", "layout": {"preset": "mosaic"}}, "'layout.preset' must be grid, speaker"),
    ({"type": "lock", "locked": 1}, "'locked' must be true or false"),
    ({"type": "remove", "peer_id": ""}, "'peer_id' must be the peer_id of a participant"),
    ({"type": "tile-size", "track_id": "x", "width": 0, "height": 360}, "'width' must be whole device pixels"),
])
async def test_a_message_that_breaks_its_schema_is_refused_by_name(server, message, named):
    """Before and after joining alike: the reply names the field and echoes the id;
    the session goes on."""
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(f"{server.url.replace('http', 'ws', 1)}/ws") as ws:
            await ws.send_str(json.dumps({**message, "id": "r1"}))
            reply = json.loads((await ws.receive(timeout=10)).data)
            assert reply["type"] == "error" and reply["code"] == "bad-request" and reply["id"] == "r1"
            assert reply["error"].startswith(named), reply["error"]
            await ws.send_str(json.dumps({"type": "ping", "id": 2}))
            assert json.loads((await ws.receive(timeout=10)).data) == {"type": "pong", "id": 2}
