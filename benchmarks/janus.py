"""Janus VideoRoom: a minimal config of our own, and its HTTP (REST + long-poll) API.

Only the HTTP transport and the VideoRoom plugin are loaded. ICE is pinned to the
benchmark's veth interface; Janus otherwise keeps its stock defaults (one event
loop thread per handle, NACK queues, RTCP), so it is measured as shipped.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
from pathlib import Path
from typing import Any

import aiohttp
from aiortc import RTCSessionDescription

from .peers import Publisher, Subscriber
from .readiness import answers_ok

LIB = Path("/usr/lib/x86_64-linux-gnu/janus")
PORT = 8088
ROOM = 4242


def _disable_all_but(folder: Path, keep: str) -> str:
    names = sorted(p.name for p in folder.glob("*.so"))
    return ",".join(n for n in names if n != keep)


def write_config(conf_dir: Path, interface: str) -> None:
    conf_dir.mkdir(parents=True, exist_ok=True)
    (conf_dir / "janus.jcfg").write_text(f"""
general: {{
    configs_folder = "{conf_dir}"
    plugins_folder = "{LIB / 'plugins'}"
    transports_folder = "{LIB / 'transports'}"
    events_folder = "{LIB / 'events'}"
    loggers_folder = "{LIB / 'loggers'}"
    debug_level = 3
    session_timeout = 60
}}
media: {{
    rtp_port_range = "20000-40000"
}}
nat: {{
    nice_debug = false
    ice_enforce_list = "{interface}"
    ignore_mdns = true
}}
plugins: {{
    disable = "{_disable_all_but(LIB / 'plugins', 'libjanus_videoroom.so')}"
}}
transports: {{
    disable = "{_disable_all_but(LIB / 'transports', 'libjanus_http.so')}"
}}
loggers: {{
    disable = "{_disable_all_but(LIB / 'loggers', '')}"
}}
events: {{
    broadcast = false
}}
""")
    (conf_dir / "janus.transport.http.jcfg").write_text(f"""
general: {{
    json = "plain"
    base_path = "/janus"
    http = true
    port = {PORT}
    https = false
}}
admin: {{
    admin_http = false
}}
""")
    (conf_dir / "janus.plugin.videoroom.jcfg").write_text("general: {\n}\n")


def server_argv(conf_dir: Path) -> list[str]:
    return ["/usr/bin/janus", "-F", str(conf_dir), "-C", str(conf_dir / "janus.jcfg"), "-o"]


class JanusError(RuntimeError):
    pass


class JanusSession:
    """One Janus session with its own long-poll, as one browser tab would have."""

    _tx = itertools.count(1)

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self._http = http
        self._base = base
        self.id: int | None = None
        self._waiters: dict[str, asyncio.Future[dict]] = {}
        self._poller: asyncio.Task | None = None

    async def _post(self, path: str, body: dict[str, Any]) -> dict:
        body = {**body, "transaction": body.get("transaction") or self._new_tx()}
        async with self._http.post(self._base + path, json=body, timeout=aiohttp.ClientTimeout(total=15)) as r:
            reply = await r.json(content_type=None)
        if reply.get("janus") == "error":
            raise JanusError(str(reply.get("error")))
        return reply

    def _new_tx(self) -> str:
        return f"{os.getpid()}-{next(self._tx)}-{random.getrandbits(32):x}"

    async def create(self) -> None:
        reply = await self._post("", {"janus": "create"})
        self.id = reply["data"]["id"]
        self._poller = asyncio.create_task(self._poll())

    async def _poll(self) -> None:
        while True:
            try:
                async with self._http.get(
                    f"{self._base}/{self.id}", params={"maxev": "10"},
                    timeout=aiohttp.ClientTimeout(total=70),
                ) as r:
                    events = await r.json(content_type=None)
            except (aiohttp.ClientError, asyncio.TimeoutError):
                await asyncio.sleep(0.5)
                continue
            for event in events if isinstance(events, list) else [events]:
                waiter = self._waiters.pop(event.get("transaction", ""), None)
                if waiter is not None and not waiter.done() and event.get("janus") == "event":
                    waiter.set_result(event)

    async def attach(self, plugin: str = "janus.plugin.videoroom") -> int:
        reply = await self._post(f"/{self.id}", {"janus": "attach", "plugin": plugin})
        return reply["data"]["id"]

    async def message(self, handle: int, body: dict, jsep: dict | None = None) -> dict:
        """Send a plugin request; returns its plugindata.data (+ "jsep" if any)."""
        tx = self._new_tx()
        msg: dict[str, Any] = {"janus": "message", "body": body, "transaction": tx}
        if jsep is not None:
            msg["jsep"] = jsep
        waiter = asyncio.get_running_loop().create_future()
        self._waiters[tx] = waiter
        try:
            reply = await self._post(f"/{self.id}/{handle}", msg)
            if reply.get("janus") == "success":
                event = reply
            else:  # "ack": the answer comes on the long-poll
                event = await asyncio.wait_for(waiter, 20)
        finally:
            self._waiters.pop(tx, None)
        data = event.get("plugindata", {}).get("data", {})
        if "error" in data:
            raise JanusError(f"{body.get('request')}: {data['error']}")
        if "jsep" in event:
            data = {**data, "jsep": event["jsep"]}
        return data

    async def trickle_done(self, handle: int) -> None:
        await self._post(f"/{self.id}/{handle}", {"janus": "trickle", "candidate": {"completed": True}})

    async def destroy(self) -> None:
        if self._poller:
            self._poller.cancel()
        if self.id is not None:
            try:
                await self._post(f"/{self.id}", {"janus": "destroy"})
            except (aiohttp.ClientError, asyncio.TimeoutError, JanusError):
                pass


async def wait_ready(http: aiohttp.ClientSession, base: str, timeout: float = 20) -> None:
    if not await answers_ok(http, base + "/info", timeout):
        raise JanusError(f"Janus did not answer at {base} within {timeout} s")


class JanusPublisher:
    """``record_dir``: the room records (``record: true``) into this directory."""

    def __init__(self, http: aiohttp.ClientSession, base: str, publisher: Publisher,
                 record_dir: str | None = None) -> None:
        self.session = JanusSession(http, base)
        self.publisher = publisher
        self._http, self._base = http, base
        self._record = {"record": True, "rec_dir": record_dir} if record_dir else {}

    async def start(self) -> dict:
        await wait_ready(self._http, self._base)
        s = self.session
        await s.create()
        handle = await s.attach()
        await s.message(handle, {
            "request": "create", "room": ROOM, "publishers": 1, "videocodec": "vp8",
            "bitrate": 0, "notify_joining": False, "permanent": False, **self._record,
        })
        joined = await s.message(handle, {"request": "join", "ptype": "publisher", "room": ROOM, "display": "pub"})
        offer = await self.publisher.offer()
        audio = self.publisher.audio_track is not None
        reply = await s.message(handle, {"request": "publish", "audio": audio, "video": True},
                                jsep={"type": "offer", "sdp": offer})
        answer = reply["jsep"]
        await self.publisher.pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))
        await s.trickle_done(handle)
        return {"room": ROOM, "feed": joined["id"], "mid": self.publisher.transceiver.mid,
                "layers_answered": answer["sdp"].count("a=rid:")}

    async def close(self) -> None:
        await self.publisher.close()
        await self.session.destroy()


class JanusSubscriber:
    def __init__(self, http: aiohttp.ClientSession, base: str, info: dict) -> None:
        self.session = JanusSession(http, base)
        self.peer = Subscriber()
        self._info = info

    async def start(self) -> None:
        s = self.session
        await s.create()
        handle = await s.attach()
        self.peer.mark("session")
        reply = await s.message(handle, {
            "request": "join", "ptype": "subscriber", "room": self._info["room"],
            "streams": [{"feed": self._info["feed"], "mid": self._info["mid"]}],  # the camera only, as ours
        })
        offer = reply["jsep"]
        self.peer.mark("offer")
        pc = self.peer.pc
        await pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], offer["type"]))
        self.peer.intercept()
        await pc.setLocalDescription(await pc.createAnswer())
        self.peer.learn_payload_type()
        await s.message(handle, {"request": "start"},
                        jsep={"type": "answer", "sdp": pc.localDescription.sdp})
        self.peer.mark("started")
        await s.trickle_done(handle)

    async def close(self) -> None:
        await self.peer.close()
        await self.session.destroy()
