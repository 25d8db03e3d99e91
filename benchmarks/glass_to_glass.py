"""Glass-to-glass latency of live teaching: from a camera frame being made to that frame
being shown by hls.js in Chromium, over LL-HLS and over the plain (CDN) variant.

    python -m benchmarks.glass_to_glass [--seconds 30] [--live-size 1280x720]

The publisher (the Python client, VP8 over WebRTC) draws its frame counter as a barcode:
16 black/white blocks across the top, and the same bits inverted in a second row, so a
misread frame is rejected rather than counted. It notes when each frame was made. The
server (its own process) composites the room into the program and serves LL-HLS. The
trainee page (watch.html, as a trainee gets it) plays it; a requestVideoFrameCallback
reads the barcode off every painted frame with its expected display time. Both sides
read the same wall clock (one machine). The plain variant is played by a second hls.js
instance with default (not low-latency) settings, as a CDN player would.
Writes benchmarks/results/glass_to_glass.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

import aiohttp
import av
import numpy as np
from aiortc import VideoStreamTrack

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "clients" / "python"))
from telemed_client import Client  # noqa: E402  (the device client, as a package beside the server)

from .local_server import local_server  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
CHROMIUM = os.environ.get("TELEMED_CHROMIUM", "/usr/bin/chromium")
BITS = 16
WIDTH, HEIGHT = 640, 360
ROW, INVERTED_ROW = 20, 60  # block centres, in publisher pixels

# Reads the two barcode rows off every painted frame: [counter, expected display time (epoch ms)].
READ_BARCODES = """async ({seconds, url}) => {
  let video = document.querySelector('#program');
  if (url) {
    const { default: Hls } = await import('/vendor/node_modules/hls.js/dist/hls.min.mjs');
    video = document.createElement('video');
    video.muted = true;
    document.body.append(video);
    const hls = new Hls({ enableWorker: false });
    hls.loadSource(url);
    hls.attachMedia(video);
    video.play().catch(() => {});
  }
  const canvas = document.createElement('canvas');
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  const read = (w, h, y) => {
    let n = 0;
    for (let i = 0; i < %(bits)d; i++) {
      const p = ctx.getImageData(Math.floor((i + 0.5) * w / %(bits)d), Math.floor(y * h / %(height)d), 1, 1).data;
      if (p[0] + p[1] + p[2] > 384) n |= 1 << (%(bits)d - 1 - i);
    }
    return n;
  };
  const seen = [];
  const end = Date.now() + seconds * 1000;
  return await new Promise(resolve => {
    const step = (now, meta) => {
      const w = video.videoWidth, h = video.videoHeight;
      if (w && h) {
        canvas.width = w; canvas.height = h;
        ctx.drawImage(video, 0, 0, w, h);
        const n = read(w, h, %(row)d), check = read(w, h, %(inverted)d);
        seen.push([n, (n ^ check) === %(mask)d, performance.timeOrigin + meta.expectedDisplayTime]);
      }
      if (Date.now() < end) video.requestVideoFrameCallback(step); else resolve(seen);
    };
    video.requestVideoFrameCallback(step);
  });
}""" % {"bits": BITS, "height": HEIGHT, "row": ROW, "inverted": INVERTED_ROW, "mask": (1 << BITS) - 1}


class BarcodeTrack(VideoStreamTrack):
    """A camera whose every frame shows its own number; ``made`` maps number to the wall
    time (ms) the frame was made."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self.made: dict[int, float] = {}
        self.block = WIDTH // BITS

    def _draw(self, n: int) -> np.ndarray:
        image = np.full((HEIGHT, WIDTH, 3), 90, np.uint8)
        for i in range(BITS):
            bit = (n >> (BITS - 1 - i)) & 1
            x = slice(i * self.block + 2, (i + 1) * self.block - 2)
            image[ROW - 18:ROW + 18, x] = 255 if bit else 0
            image[INVERTED_ROW - 18:INVERTED_ROW + 18, x] = 0 if bit else 255
        return image

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        n = self.count % (1 << BITS)
        self.count += 1
        self.made[n] = time.time() * 1000
        frame = av.VideoFrame.from_ndarray(self._draw(n), format="bgr24")
        frame.pts, frame.time_base = pts, time_base
        return frame


def latencies(track: BarcodeTrack, seen: list[list]) -> tuple[list[float], int]:
    """First display of each valid counter, minus when it was made; and how many reads
    the check row rejected."""
    first: dict[int, float] = {}
    rejected = 0
    for n, valid, shown in seen:
        if not valid:
            rejected += 1
        elif n in track.made and n not in first:
            first[n] = shown - track.made[n]
    return [v / 1000 for v in first.values()], rejected


def summary(values: list[float], rejected: int) -> dict:
    ordered = sorted(values)
    pick = (lambda p: round(ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))], 3)) if ordered \
        else (lambda p: None)
    return {"frames": len(values), "rejected_reads": rejected, "p50_s": pick(50), "p95_s": pick(95),
            "mean_s": round(statistics.fmean(values), 3) if values else None}


async def run(args: argparse.Namespace) -> dict:
    camera = None
    async with local_server("g2g", live_size=args.live_size) as server:
        url = server.url
        try:
            async with aiohttp.ClientSession() as http:
                async def token(role: str, name: str) -> str:
                    async with http.post(f"{url}/api/rooms/or/token", json={"role": role, "name": name},
                                         headers=server.admin) as r:
                        return (await r.json())["token"]

                async with http.post(f"{url}/api/rooms", json={"name": "or", "password": "bench-pass-1"},
                                     headers=server.admin) as r:
                    assert r.status == 201, await r.text()
                camera = await Client.join(url, await token("participant", "OR camera"))
                track = BarcodeTrack()
                await camera.publish(track, "camera", label="field")
                async with http.post(f"{url}/api/rooms/or/live", headers=server.admin) as r:
                    assert r.status == 200, await r.text()
                viewer = await token("viewer", "Trainee")
                async with http.post(f"{url}/api/rooms/or/live/link",
                                     headers={"Authorization": f"Bearer {viewer}"}) as r:
                    plain_url = (await r.json())["plain_url"]
            return {"live_size": args.live_size, "seconds": args.seconds, "load_average": os.getloadavg()[0],
                    **await measure(args, url, viewer, plain_url, track)}
        finally:
            if camera is not None:
                await camera.close()


async def measure(args: argparse.Namespace, url: str, viewer: str, plain_url: str, track: BarcodeTrack) -> dict:
    from playwright.async_api import async_playwright

    from tests.browser.conftest import CHROMIUM_ARGS

    results = {}
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for variant, link in (("ll-hls", None), ("plain", plain_url)):
                page = await (await browser.new_context()).new_page()
                await page.goto(f"{url}/watch.html?room=or#token={viewer}")
                try:
                    await page.wait_for_function(
                        "() => document.querySelector('#program').getVideoPlaybackQuality().totalVideoFrames > 30",
                        timeout=90000)
                except Exception:
                    print("the trainee page did not play:", await page.evaluate(
                        "() => [document.querySelector('#live-state').textContent,"
                        " document.querySelector('#note').textContent]"), file=sys.stderr)
                    raise
                await asyncio.sleep(args.settle)  # hls.js catches up with its target latency
                seen = await page.evaluate(READ_BARCODES, {"seconds": args.seconds, "url": link})
                results[variant] = summary(*latencies(track, seen))
                await page.context.close()
        finally:
            await browser.close()
    return results


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.glass_to_glass", description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=30.0, help="measured per variant")
    p.add_argument("--settle", type=float, default=10.0, help="seconds of play before measuring")
    p.add_argument("--live-size", default="1280x720")
    p.add_argument("--out", type=Path, default=RESULTS / "glass_to_glass.json")
    args = p.parse_args()
    result = asyncio.run(run(args))
    for variant in ("ll-hls", "plain"):
        r = result[variant]
        print(f"{variant:7s} glass-to-glass p50 {r['p50_s']} s, p95 {r['p95_s']} s "
              f"({r['frames']} frames read, {r['rejected_reads']} reads rejected)")
    print(f"(program {result['live_size']}, load average {result['load_average']:.1f})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
