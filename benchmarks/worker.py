"""A client worker process: the publisher, or a share of the subscribers.

Runs inside the client network namespace and takes one JSON command per stdin
line, answering each with one JSON line on stdout:

  {"cmd": "ping"}   -> {"ok": true}                  (answered once imports are done)
  {"cmd": "publish", "server": "janus"|"ours", "base": url, "admin_key"?, "record"?}
      -> {"ok": true, "info": {...what subscribers need...}}
  {"cmd": "subscribe", "server", "base", "info", "count"}
      -> {"ok": true, "joined": [seconds per subscriber], "failed": [errors]}
  {"cmd": "start"}  -> {"ok": true, "t"}             (open the measurement window)
  {"cmd": "stop"}   -> {"ok": true, "t", "stats": [...]}   (close it)
  {"cmd": "dump", "out": path} -> {"ok": true}       (send/receive logs written to path)
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
FIRST_PACKET_TIMEOUT = 20.0


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
            return {"ok": True, "stats": stats, "t": CLOCK()}
        if cmd == "dump":
            return self.dump(msg)
        raise ValueError(f"unknown command {cmd!r}")

    async def publish(self, msg: dict) -> dict:
        publisher = Publisher(load_clip(), simulcast=bool(msg.get("simulcast")))
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
            # Joined means media arrives: signaling, ICE, DTLS and a first RTP packet.
            deadline = CLOCK() + FIRST_PACKET_TIMEOUT
            while sub.peer.counter.first_packet_at is None:
                if CLOCK() > deadline:
                    raise TimeoutError("no RTP within %.0f s of signaling" % FIRST_PACKET_TIMEOUT)
                await asyncio.sleep(0.005)
            sub.peer.marks["first_rtp"] = sub.peer.counter.first_packet_at
            return sub.peer.counter.first_packet_at - t0

        async def keyframe(sub: Any) -> None:
            # A decodable start needs a keyframe; bounded by the clip's keyframe interval.
            deadline = CLOCK() + FIRST_PACKET_TIMEOUT
            while sub.peer.counter.first_keyframe_at is None and CLOCK() < deadline:
                await asyncio.sleep(0.005)
            if sub.peer.counter.first_keyframe_at is not None:
                sub.peer.marks["first_keyframe"] = sub.peer.counter.first_keyframe_at

        results = await asyncio.gather(*(join(s) for s in subs), return_exceptions=True)
        await asyncio.gather(*(keyframe(s) for s in subs))
        keyframes = [s.peer.marks["first_keyframe"] - s.peer.marks["begin"]
                     for s in subs if "first_keyframe" in s.peer.marks]
        joined = [r for r in results if isinstance(r, float)]
        failed = [f"{type(r).__name__}: {r}" for r in results if not isinstance(r, float)]
        return {"ok": True, "joined": joined, "keyframes": keyframes, "failed": failed}

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
