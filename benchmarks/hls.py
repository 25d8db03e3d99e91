"""Live teaching benchmarks: the compositor's CPU, and LL-HLS delivery to many players.

    python -m benchmarks.hls compositor [--seconds 20] [--sizes 1280x720,1920x1080]
    python -m benchmarks.hls players [--players 500] [--workers 4] [--seconds 20]

compositor: one compositor process (as the server runs it) fed four 1280x720 VP8
cameras at 30 fps (one pre-encoded clip, four decoders), drawn as the surgery preset
(main + 3 PiP) into the program size, encoded 30 fps with libx264 (veryfast,
zerolatency) at full and half size (the ABR ladder). Reports the child's CPU (user+system) per wall second, in cores, and
whether it kept real time (parts cut / parts due).

players: our server (`python -m signaling serve`, its own process) with a WHIP H264
publisher in passthrough, and N simulated LL-HLS players in worker processes. Each
player does what hls.js does at the live edge: it requests the preload-hinted part
(held by the server until the part exists), then reloads the playlist for the next
hint (_HLS_msn/_HLS_part). A part's existence is taken as the moment the first player
had it (all players wait on it); the delay of every other player is measured from
there, on one monotonic clock. The players' own event loops (Python, on the same
cores) are part of that delay. Reports p50/p95/p99 and the server's CPU in cores, and
before the players, what going live adds to the server's CPU (passthrough).
Writes benchmarks/results/hls.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import aiohttp
import av
import numpy as np

from .cpu_meter import cpu_seconds
from .local_server import LocalServer, local_server

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] if ordered else float("nan")


# --- compositor -------------------------------------------------------------------

def vp8_clip(frames: int = 60, width: int = 1280, height: int = 720) -> list[bytes]:
    encoder = av.CodecContext.create("libvpx", "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
    encoder.time_base, encoder.framerate = Fraction(1, 30), Fraction(30)
    encoder.bit_rate, encoder.gop_size = 2_000_000, frames
    encoder.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    out = []
    for n in range(frames):
        image = np.zeros((height, width, 3), np.uint8)
        image[:, :, 1] = (n * 4) % 255
        image[:, (n * 20) % width:, 2] = 200
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts = n
        out += [bytes(p) for p in encoder.encode(frame)]
    return out


async def compositor_case(size: str, seconds: float, clip: list[bytes]) -> dict:
    from rooms import Layout
    from streaming.compositor_process import CompositorProcess
    from streaming.program import ProgramFormat
    from streaming.scene import Source, plan

    width, height = (int(v) for v in size.split("x"))
    program = ProgramFormat(width=width, height=height)
    process = CompositorProcess(program)
    await process.start()
    cameras = [f"cam{i}" for i in range(4)]
    scene = plan(Layout("surgery", main_track="cam0"), [Source(c, c) for c in cameras], [], width, height)
    process.send(("scene", scene.to_dict()))
    parts = 0

    async def read() -> None:
        nonlocal parts
        async for message in process.messages():
            parts += message[0] == "part" and message[1] == 0

    reader = asyncio.ensure_future(read())
    start = time.monotonic()
    n = 0
    warm = 3.0
    cpu0 = parts0 = t0 = None
    while True:
        now = time.monotonic() - start
        if cpu0 is None and now >= warm:
            cpu0, parts0, t0 = cpu_seconds(process.pid), parts, time.monotonic()
        if now >= warm + seconds:
            break
        for camera in cameras:
            process.send(("video", camera, "vp8", clip[n % len(clip)]))
        n += 1
        await asyncio.sleep(max(0.0, start + n / 30 - time.monotonic()))
    wall = time.monotonic() - t0
    cpu = cpu_seconds(process.pid) - cpu0
    cut = parts - parts0
    await process.stop()
    reader.cancel()
    due = wall * 30 / program.part_frames
    return {"output": size, "renditions": [f"{w}x{h}" for w, h, _ in program.renditions],
            "inputs": "4 x 1280x720 VP8 30 fps", "wall_s": round(wall, 2),
            "cpu_cores": round(cpu / wall, 3), "parts_cut": cut, "parts_due": round(due, 1),
            "realtime": round(cut / due, 3)}


def compositor(args: argparse.Namespace) -> dict:
    clip = vp8_clip()
    cases = [asyncio.run(compositor_case(size, args.seconds, clip)) for size in args.sizes.split(",")]
    for case in cases:
        print(f"compositor {case['inputs']} -> {case['output']}p30: {case['cpu_cores']} cores, "
              f"real time {case['realtime']}")
    return {"compositor": cases}


# --- players ----------------------------------------------------------------------

HINT = re.compile(r'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="([^"]+)"')


async def player(session: aiohttp.ClientSession, base: str, query: str, until: float,
                 delivered: list) -> None:
    """One LL-HLS player as hls.js plays at the live edge: it asks for the hinted part at
    once (the server holds the request until the part exists), then reloads the playlist
    for the hint after it."""
    async with session.get(f"{base}index.m3u8?{query}") as r:
        text = await r.text()
    while time.monotonic() < until:
        hint = HINT.search(text)
        if hint is None:
            await asyncio.sleep(0.1)
            async with session.get(f"{base}index.m3u8?{query}") as r:
                text = await r.text()
            continue
        uri = hint[1]
        msn, part = (int(x) for x in re.search(r"/p(\d+)\.(\d+)\.m4s", uri).groups())
        async with session.get(base + uri) as r:
            await r.read()
            if r.status == 200:
                delivered.append((f"{msn}.{part}", time.monotonic()))
        async with session.get(f"{base}index.m3u8?{query}&_HLS_msn={msn}&_HLS_part={part}") as r:
            text = await r.text()


def worker_main() -> None:
    base, query, count, seconds, out = sys.argv[2:7]
    delivered: list[tuple[str, float]] = []

    async def run() -> None:
        until = time.monotonic() + float(seconds)
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            await asyncio.gather(*(player(session, base, query, until, delivered)
                                   for _ in range(int(count))), return_exceptions=True)

    asyncio.run(run())
    Path(out).write_text(json.dumps({"delivered": delivered}))


async def publish_h264(url: str, token: str):
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
    from aiortc.mediastreams import MediaStreamTrack

    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = 1280, 720, "yuv420p"
    encoder.time_base, encoder.framerate = Fraction(1, 90000), Fraction(30)
    encoder.gop_size, encoder.max_b_frames, encoder.bit_rate = 30, 0, 2_000_000
    encoder.options = {"tune": "zerolatency", "preset": "ultrafast", "sc_threshold": "0"}
    encoder.profile = "Baseline"
    clip = []
    for n in range(60):
        image = np.zeros((720, 1280, 3), np.uint8)
        image[:, (n * 20) % 1280:, 1] = 180
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts, frame.time_base = n * 3000, encoder.time_base
        clip += [bytes(p) for p in encoder.encode(frame)]

    class Clip(MediaStreamTrack):
        kind = "video"

        def __init__(self) -> None:
            super().__init__()
            self.n, self.start = 0, None

        async def recv(self) -> av.Packet:
            self.start = self.start or time.monotonic()
            await asyncio.sleep(max(0.0, self.start + self.n / 30 - time.monotonic()))
            packet = av.Packet(clip[self.n % len(clip)])
            packet.pts, packet.time_base = self.n * 3000, Fraction(1, 90000)
            self.n += 1
            return packet

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    transceiver = pc.addTransceiver(Clip(), direction="sendonly")
    transceiver.setCodecPreferences([c for c in RTCRtpSender.getCapabilities("video").codecs
                                     if c.mimeType == "video/H264" and c.parameters.get("packetization-mode") == "1"])
    await pc.setLocalDescription(await pc.createOffer())
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=pc.localDescription.sdp, headers={
                "Authorization": f"Bearer {token}", "Content-Type": "application/sdp"}) as r:
            answer = await r.text()
            assert r.status == 201, answer
    await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    return pc


async def players_run(args: argparse.Namespace) -> dict:
    async with local_server("hls", live_requests_per_second=100000) as server:
        return await players_against(args, server)


async def players_against(args: argparse.Namespace, server: LocalServer) -> dict:
    url, headers = server.url, server.admin
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    workers: list[subprocess.Popen] = []
    pc = None
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{url}/api/rooms", json={"name": "bench", "password": "bench-pass-1"},
                                    headers=headers) as r:
                assert r.status == 201, await r.text()
            async with session.post(f"{url}/api/rooms/bench/token", json={"role": "device", "name": "OR"},
                                    headers=headers) as r:
                token = (await r.json())["token"]
            pc = await publish_h264(f"{url}/whip/bench", token)
            await asyncio.sleep(2)
            # What going live adds: the server's CPU with the publisher alone, then live
            # (passthrough, no players yet), over the same span.
            cpu0, t0 = cpu_seconds(server.pid), time.monotonic()
            await asyncio.sleep(args.seconds / 2)
            before = (cpu_seconds(server.pid) - cpu0) / (time.monotonic() - t0)
            async with session.post(f"{url}/api/rooms/bench/live", headers=headers) as r:
                live = await r.json()
            await asyncio.sleep(2)
            cpu0, t0 = cpu_seconds(server.pid), time.monotonic()
            await asyncio.sleep(args.seconds / 2)
            added = (cpu_seconds(server.pid) - cpu0) / (time.monotonic() - t0) - before
            async with session.post(f"{url}/api/rooms/bench/live/link", headers=headers) as r:
                link = (await r.json())["url"]
        query = link.split("?", 1)[1]
        base = f"{url}/hls/bench/"
        await asyncio.sleep(3)
        outs = []
        per = [args.players // args.workers + (i < args.players % args.workers) for i in range(args.workers)]
        for i, count in enumerate(per):
            out = Path(server.data_dir) / f"worker{i}.json"
            outs.append(out)
            workers.append(subprocess.Popen([sys.executable, "-m", "benchmarks.hls", "_worker", base, query,
                                             str(count), str(args.seconds + 3), str(out)], cwd=REPO, env=env))
        await asyncio.sleep(3)  # every player at the live edge
        cpu0, t0 = cpu_seconds(server.pid), time.monotonic()
        await asyncio.sleep(args.seconds)
        cpu, wall = cpu_seconds(server.pid) - cpu0, time.monotonic() - t0
        for w in workers:
            w.wait(timeout=60)
        delivered: list[tuple[str, float]] = []
        for out in outs:
            delivered += json.loads(out.read_text())["delivered"]
        first: dict[str, float] = {}  # a part exists when the first waiting player gets it
        for key, t in delivered:
            first[key] = min(first.get(key, t), t)
        delays = [(t - first[key]) * 1000 for key, t in delivered]
        return {"players": args.players, "mode": live["live"].get("mode"), "wall_s": round(wall, 2),
                "live_added_cpu_cores": round(added, 4), "publisher_only_cpu_cores": round(before, 4),
                "server_cpu_cores": round(cpu / wall, 3), "parts_delivered": len(delays),
                "part_delivery_ms": {"p50": round(percentile(delays, 50), 1), "p95": round(percentile(delays, 95), 1),
                                     "p99": round(percentile(delays, 99), 1),
                                     "mean": round(statistics.fmean(delays), 1) if delays else None}}
    finally:
        if pc is not None:
            await pc.close()
        for w in workers:
            if w.poll() is None:
                w.kill()


def players(args: argparse.Namespace) -> dict:
    result = asyncio.run(players_run(args))
    d = result["part_delivery_ms"]
    print(f"going live ({result['mode']}, 720p30 H264 ~2 Mbit/s) adds {result['live_added_cpu_cores']} cores "
          f"(publisher alone: {result['publisher_only_cpu_cores']})")
    print(f"{result['players']} LL-HLS players ({result['mode']}): server {result['server_cpu_cores']} cores, "
          f"part existence -> delivery p50 {d['p50']} ms, p95 {d['p95']} ms, p99 {d['p99']} ms "
          f"({result['parts_delivered']} parts delivered)")
    return {"players": result}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_worker":
        worker_main()
        return
    p = argparse.ArgumentParser(prog="python -m benchmarks.hls", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="case", required=True)
    c = sub.add_parser("compositor")
    c.add_argument("--seconds", type=float, default=20.0)
    c.add_argument("--sizes", default="1280x720,1920x1080")
    q = sub.add_parser("players")
    q.add_argument("--players", type=int, default=500)
    q.add_argument("--workers", type=int, default=4)
    q.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--out", type=Path, default=RESULTS / "hls.json")
    a = p.parse_args()
    result = compositor(a) if a.case == "compositor" else players(a)
    previous = json.loads(a.out.read_text()) if a.out.exists() else {}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({**previous, **result, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                 "cpus": os.cpu_count()}, indent=2))
    print(f"wrote {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
