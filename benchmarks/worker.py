"""A client worker process: the publisher, or a share of the subscribers.

Runs inside the client network namespace and takes one JSON command per stdin
line, answering each with one JSON line on stdout:

  {"cmd": "ping"}   -> {"ok": true}                  (answered once imports are done)
  {"cmd": "publish", "server": "janus"|"ours", "base": url, "admin_key"?, "record"?, "audio"?, "simulcast"?}
      -> {"ok": true, "info": {...what subscribers need...}}
  {"cmd": "subscribe", "server", "base", "info", "count"}
      -> {"ok": true, "joined": [seconds per subscriber, to its first complete keyframe],
          "failed": [errors]}
  {"cmd": "start"}  -> {"ok": true, "t"}             (open the measurement window)
  {"cmd": "stop"}   -> {"ok": true, "t", "stats": [...], "publisher"?: {...}}   (close it)
  {"cmd": "dump", "out": path} -> {"ok": true}       (send/receive logs written to path)
  {"cmd": "counters", "base", "key"} -> {"ok": true, "counters": {...}}   (our server's /metrics)
  {"cmd": "quit"}   -> closes every peer connection and exits

Every wait is bounded; the orchestrator also kills workers that overstay.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from typing import Any

import aiohttp

from . import janus, telemed
from .clip import load as load_clip
from .media import CLOCK
from .peers import Publisher

JOIN_TIMEOUT = 45.0
FIRST_FRAME_TIMEOUT = 20.0


class Worker:
    def __init__(self) -> None:
        self.http: aiohttp.ClientSession | None = None
        self.publisher: Any = None
        self.subscribers: list[Any] = []

    async def handle(self, msg: dict) -> dict:
        cmd = msg["cmd"]
        if self.http is None:
            self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        if cmd == "ping":
            return {"ok": True}
        if cmd == "publish":
            return await self.publish(msg)
        if cmd == "subscribe":
            return await self.subscribe(msg)
        if cmd == "start":
            for sub in self.subscribers:
                sub.peer.counter.start_window()
            return {"ok": True, "t": CLOCK()}
        if cmd == "stop":
            # The publisher keeps recording sends until "dump", so packets still in
            # flight when the subscribers close their windows find their send time.
            stats = [sub.peer.counter.stop_window() for sub in self.subscribers]
            reply = {"ok": True, "stats": stats, "t": CLOCK()}
            if self.publisher is not None:
                track = self.publisher.publisher.track
                reply["publisher"] = {"keyframe_requests": track.keyframe_requests,
                                      "keyframes_forced": track.keyframes_forced}
            return reply
        if cmd == "dump":
            return self.dump(msg)
        if cmd == "counters":
            return {"ok": True, "counters": await telemed.server_counters(self.http, msg["base"], msg["key"])}
        raise ValueError(f"unknown command {cmd!r}")

    async def publish(self, msg: dict) -> dict:
        publisher = Publisher(load_clip(), simulcast=bool(msg.get("simulcast")), audio=bool(msg.get("audio")))
        record = msg.get("record")  # Janus: the directory its recordings go to; ours: any true value
        if msg["server"] == "janus":
            self.publisher = janus.JanusPublisher(self.http, msg["base"], publisher, record)
        else:
            self.publisher = telemed.TelemedPublisher(self.http, msg["base"], publisher, msg["admin_key"],
                                                      bool(record))
        info = await asyncio.wait_for(self.publisher.start(), JOIN_TIMEOUT)
        publisher.track.recording = True
        return {"ok": True, "info": info}

    async def subscribe(self, msg: dict) -> dict:
        kind = janus.JanusSubscriber if msg["server"] == "janus" else telemed.TelemedSubscriber
        subs = [kind(self.http, msg["base"], msg["info"]) for _ in range(msg["count"])]
        self.subscribers.extend(subs)

        async def join(sub: Any) -> float:
            t0 = sub.peer.marks["begin"] = CLOCK()
            await asyncio.wait_for(sub.start(), JOIN_TIMEOUT)
            # Joined means a picture can be shown: signaling, ICE, DTLS and a first
            # complete keyframe (the same definition for both SFUs). A first RTP packet
            # is not enough: a delta frame before any keyframe cannot be decoded.
            counter = sub.peer.counter
            deadline = CLOCK() + FIRST_FRAME_TIMEOUT
            while counter.first_frame_at is None:
                if CLOCK() > deadline:
                    raise TimeoutError("no complete keyframe within %.0f s of signaling" % FIRST_FRAME_TIMEOUT)
                await asyncio.sleep(0.005)
            for name, t in (("first_rtp", counter.first_packet_at), ("first_keyframe", counter.first_keyframe_at),
                            ("first_frame", counter.first_frame_at)):
                sub.peer.marks[name] = t
            return counter.first_frame_at - t0

        results = await asyncio.gather(*(join(s) for s in subs), return_exceptions=True)
        joined = [r for r in results if isinstance(r, float)]
        failed = [f"{type(r).__name__}: {r}" for r in results if not isinstance(r, float)]
        return {"ok": True, "joined": joined, "failed": failed}

    def dump(self, msg: dict) -> dict:
        logs: dict[str, Any] = {"received": [sub.peer.counter.received for sub in self.subscribers],
                                "joins": [sub.peer.marks for sub in self.subscribers]}
        if self.publisher is not None:
            track = self.publisher.publisher.track
            track.recording = False
            logs["sent"] = {str(k): v for k, v in track.sent.items()}
        with open(msg["out"], "w") as f:
            json.dump(logs, f)
        return {"ok": True}

    async def close(self) -> None:
        closers = [s.close() for s in self.subscribers]
        if self.publisher is not None:
            closers.append(self.publisher.close())
        await asyncio.wait_for(asyncio.gather(*closers, return_exceptions=True), 15)
        if self.http is not None:
            await self.http.close()


async def main() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    worker = Worker()
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            msg = json.loads(line)
            if msg["cmd"] == "quit":
                break
            try:
                reply = await worker.handle(msg)
            except Exception as exc:  # reported to the orchestrator, which gives up cleanly
                reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            sys.stdout.write(json.dumps(reply) + "\n")
            sys.stdout.flush()
    finally:
        try:
            await worker.close()
        except Exception:
            pass


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())
