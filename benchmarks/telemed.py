"""Our server, driven through its public API only: REST for the room and tokens,
one WebSocket per peer for signaling (docs/signaling.md)."""

from __future__ import annotations

import asyncio
import itertools
import secrets
import sys
from pathlib import Path
from typing import Any

import aiohttp
from aiortc import RTCSessionDescription

from .peers import Publisher, Subscriber, vp8_payload_type
from .readiness import answers_ok

PORT = 8443
ADMIN_KEY = "bench-" + secrets.token_hex(8)
ROOM = "bench"
PASSWORD = "bench-password-1"


def server_argv(repo: Path) -> list[str]:
    return [sys.executable, "-m", "signaling", "serve"]


def server_env(host: str, admin_key: str) -> dict[str, str]:
    return {
        "TELEMED_HOST": host,
        "TELEMED_PORT": str(PORT),
        "TELEMED_ICE_HOSTS": host,
        "TELEMED_ADMIN_KEY": admin_key,
        "TELEMED_METRICS_KEY": admin_key,
        "TELEMED_LOG_LEVEL": "warning",
    }


class SignalingError(RuntimeError):
    pass


# Server counters the benchmark reports (docs/metrics.md): keyframe requests, send
# failures of the fan-out step, what the media port's demultiplexer dropped, and the late
# media shed instead of forwarded (sfu/late_media.py).
METRICS = ("telemed_plis_sent_total", "telemed_plis_received_total", "telemed_send_failures_total",
           "telemed_packets_forwarded_total", "telemed_media_port_dropped_total",
           "telemed_late_packets_shed_total", "telemed_late_episodes_total")


async def server_counters(http: aiohttp.ClientSession, base: str, key: str) -> dict[str, float]:
    async with http.get(f"{base}/metrics", headers={"Authorization": f"Bearer {key}"}) as r:
        text = await r.text()
    out: dict[str, float] = {}
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in METRICS:
            key_name = line.rsplit(" ", 1)[0].replace("telemed_", "", 1)
            out[key_name] = float(line.rsplit(" ", 1)[1])
    return out


async def _json(r: aiohttp.ClientResponse) -> Any:
    try:
        return await r.json(content_type=None)
    except Exception:
        return {"error": (await r.text())[:200]}


async def wait_ready(http: aiohttp.ClientSession, base: str, timeout: float = 30) -> None:
    if not await answers_ok(http, base + "/healthz", timeout):
        raise SignalingError(f"server did not answer /healthz at {base} within {timeout} s")


async def create_room(http: aiohttp.ClientSession, base: str, admin_key: str, record: bool = False) -> None:
    settings = {"record": "auto"} if record else {}
    async with http.post(
        f"{base}/api/rooms", json={"name": ROOM, "password": PASSWORD, "settings": settings},
        headers={"Authorization": f"Bearer {admin_key}"},
    ) as r:
        if r.status not in (201, 409):
            raise SignalingError(f"POST /api/rooms: {r.status} {await _json(r)}")


async def get_token(http: aiohttp.ClientSession, base: str, admin_key: str, role: str, name: str) -> str:
    """Minted server-side with the admin key, as a hospital portal does with its API key:
    thirty viewers joining at once are not thirty password guesses from one address."""
    async with http.post(
        f"{base}/api/rooms/{ROOM}/token", json={"role": role, "name": name},
        headers={"Authorization": f"Bearer {admin_key}"},
    ) as r:
        body = await _json(r)
        if r.status != 200:
            raise SignalingError(f"POST /api/rooms/{ROOM}/token: {r.status} {body}")
        return body["token"]


class Signaling:
    """One /ws connection: requests with ids, replies matched by id, events ignored."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self._http = http
        self._url = base.replace("http", "ws", 1) + "/ws"
        self._ids = itertools.count(1)
        self._waiters: dict[int, asyncio.Future[dict]] = {}
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task | None = None
        self.events: list[str] = []

    async def connect(self) -> None:
        self._ws = await self._http.ws_connect(self._url, max_msg_size=1 << 20, heartbeat=None)
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self._ws is not None
        async for msg in self._ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            data = msg.json()
            waiter = self._waiters.pop(data.get("id"), None) if "id" in data else None
            if waiter is not None and not waiter.done():
                waiter.set_result(data)
            elif len(self.events) < 1000:
                self.events.append(data.get("type", "?"))
        for waiter in self._waiters.values():
            if not waiter.done():
                waiter.set_exception(SignalingError("WebSocket closed"))

    async def request(self, msg: dict, expect: str, timeout: float = 20) -> dict:
        assert self._ws is not None
        rid = next(self._ids)
        waiter = asyncio.get_running_loop().create_future()
        self._waiters[rid] = waiter
        await self._ws.send_json({**msg, "id": rid})
        reply = await asyncio.wait_for(waiter, timeout)
        if reply.get("type") != expect:
            raise SignalingError(f"{msg['type']}: expected {expect!r}, got {reply}")
        return reply

    async def join(self, token: str) -> dict:
        return await self.request({"type": "join", "token": token}, "joined")

    async def close(self) -> None:
        if self._ws is not None and not self._ws.closed:
            try:
                await self._ws.send_json({"type": "leave"})
            except (ConnectionError, RuntimeError):
                pass
            await self._ws.close()
        if self._reader:
            self._reader.cancel()


class TelemedPublisher:
    """``record``: the room records automatically from this publisher on."""

    def __init__(self, http: aiohttp.ClientSession, base: str, publisher: Publisher, admin_key: str,
                 record: bool = False) -> None:
        self.publisher = publisher
        self.signaling = Signaling(http, base)
        self._http, self._base, self._admin_key = http, base, admin_key
        self._record = record

    async def start(self) -> dict:
        await wait_ready(self._http, self._base)
        await create_room(self._http, self._base, self._admin_key, self._record)
        token = await get_token(self._http, self._base, self._admin_key, "participant", "pub")
        await self.signaling.connect()
        await self.signaling.join(token)
        offer = await self.publisher.offer()
        mid = self.publisher.transceiver.mid
        publish = {mid: {"source": "camera"}}
        if self.publisher.audio_transceiver:
            publish[self.publisher.audio_transceiver.mid] = {"source": "microphone"}
        reply = await self.signaling.request(
            {"type": "offer", "sdp": offer, "publish": publish, "subscribe": {}}, "answer")
        if publish.keys() - reply.get("published", {}).keys():
            raise SignalingError(f"publish refused: {reply.get('rejected')}")
        await self.publisher.pc.setRemoteDescription(RTCSessionDescription(reply["sdp"], "answer"))
        return {"track_id": reply["published"][mid], "admin_key": self._admin_key,
                "layers_answered": reply["sdp"].count("a=rid:")}

    async def close(self) -> None:
        await self.publisher.close()
        await self.signaling.close()


class TelemedSubscriber:
    def __init__(self, http: aiohttp.ClientSession, base: str, info: dict) -> None:
        self.peer = Subscriber()
        self.signaling = Signaling(http, base)
        self._http, self._base, self._info = http, base, info

    async def start(self) -> None:
        token = await get_token(self._http, self._base, self._info["admin_key"], "viewer", "sub")
        self.peer.mark("token")
        await self.signaling.connect()
        await self.signaling.join(token)
        self.peer.mark("ws_joined")
        pc = self.peer.pc
        transceiver = pc.addTransceiver("video", direction="recvonly")
        self.peer.intercept()
        await pc.setLocalDescription(await pc.createOffer())
        self.peer.mark("offer")
        reply = await self.signaling.request(
            {"type": "offer", "sdp": pc.localDescription.sdp, "publish": {},
             "subscribe": {transceiver.mid: self._info["track_id"]}},
            "answer",
        )
        self.peer.mark("answer")
        if reply.get("rejected"):
            raise SignalingError(f"subscribe refused: {reply['rejected']}")
        await pc.setRemoteDescription(RTCSessionDescription(reply["sdp"], "answer"))
        self.peer.counter.payload_type = vp8_payload_type(reply["sdp"])

    async def close(self) -> None:
        await self.peer.close()
        await self.signaling.close()
