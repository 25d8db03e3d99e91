"""Clinical data under load: while a 720p call runs in the room, how long a 10 MiB DICOM
takes to reach 5 viewers, and whether that transfer delays the live ECG or costs video.

    python -m benchmarks.clinical [--transfers 3] [--baseline 10] [--out FILE]

Processes: our server; this one (a pre-encoded 720p30 VP8 publisher, the uploader, 5
viewers that count video RTP without decoding, receive ECG and download each image);
and benchmarks.ecg_device (a device streaming 12 leads x 500 Hz, plus a quiet viewer).
ECG latency is device send -> viewer arrival on CLOCK_MONOTONIC, shared by all of them.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import subprocess
import sys
import time
from io import BytesIO
from pathlib import Path

import aiohttp
import numpy as np

from sfu.aiortc_hook import tap

from . import clip as clip_module
from .clinical_peers import Clinical, arrivals, join_clinical
from .cpu_meter import cpu_seconds
from .local_server import local_server
from .media import ClipTrack, RtpCounter
from .peers import vp8_payload_type
from .telemed import PASSWORD, ROOM, create_room

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
VIEWERS = 5
TARGET_P99_MS = 100.0


def ten_mib_dicom() -> bytes:
    """pydicom's CT_small grown to 20 frames of 512x512: 10 MiB of pixels."""
    from pydicom import dcmread
    from pydicom.data import get_testdata_file

    ds = dcmread(get_testdata_file("CT_small.dcm"))
    pixels = np.random.default_rng(1).integers(0, 2000, size=(20, 512, 512)).astype(np.int16)
    ds.set_pixel_data(pixels, "MONOCHROME2", 16)
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def udp_receive_drops() -> int:
    """Datagrams the kernel dropped for full socket buffers, host-wide: on loopback the
    only loss there is, and what SCTP and RTP then have to recover from."""
    header, values = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines()
                      if line.startswith("Udp:")][:2]
    return int(values[header.index("RcvbufErrors")])


class Viewer:
    """A trainee's seat: the video counted (not decoded), ECG received, images downloaded."""

    def __init__(self, peer: Clinical) -> None:
        self.peer = peer
        self.video = RtpCounter()

    @classmethod
    async def join(cls, url: str, n: int, track_id: str) -> Viewer:
        viewer = cls(await join_clinical(url, ROOM, PASSWORD, "viewer", f"Viewer {n}"))
        await viewer.peer.client.subscribe(track_id)
        transceiver = next(t for t in viewer.peer.client.pc.getTransceivers() if t.kind == "video")
        tap(transceiver.receiver.transport, on_received=viewer._count)
        viewer.video.payload_type = vp8_payload_type(viewer.peer.client.pc.remoteDescription.sdp)
        return viewer

    def _count(self, packet: bytes) -> bool:
        self.video.on_rtp(packet)
        return False  # counted, never decoded: decoding 5 x 720p would swamp 2 cores

    async def receive_image(self, sha256: str, start: int) -> float:
        """Wait for the notice, download through its link, check it; returns when done."""
        notice = await self.peer.wait_for(lambda m: m.get("type") == "dicom" and m.get("sha256") == sha256,
                                          timeout=120, start=start)
        data = await self.peer.fetch(notice["url"])
        if hashlib.sha256(data).hexdigest() != sha256:
            raise RuntimeError("downloaded image does not match its notice")
        return time.monotonic()


async def transfer(uploader: Clinical, viewers: list[Viewer], data: bytes, n: int,
                   rate: float | None) -> dict:
    sha256 = hashlib.sha256(data).hexdigest()
    starts = [len(v.peer.messages) for v in viewers]
    began = time.monotonic()
    receipt, *done = await asyncio.gather(
        uploader.send_dicom(data, f"ct-{n}.dcm", max_rate=rate),
        *(v.receive_image(sha256, s) for v, s in zip(viewers, starts, strict=True)))
    if receipt["sha256"] != sha256:
        raise RuntimeError("the server shared something else")
    return {"began": began, "ended": max(done),
            "delivered_s": round(max(done) - began, 3),
            "per_viewer_s": [round(t - began, 3) for t in done]}


def percentiles(latencies: list[float]) -> dict:
    if not latencies:
        return {"frames": 0}
    ms = np.array(latencies) * 1000
    return {"frames": len(ms), "p50_ms": round(float(np.percentile(ms, 50)), 1),
            "p99_ms": round(float(np.percentile(ms, 99)), 1), "max_ms": round(float(ms.max()), 1)}


def ecg_window(sent: dict[int, float], received: list[dict[int, float]],
               windows: list[tuple[float, float]]) -> dict:
    """Latency of the frames sent inside ``windows``, at every receiver, and frames lost."""
    seqs = [s for s, t in sent.items() if any(a <= t < b for a, b in windows)]
    latencies = [r[s] - sent[s] for r in received for s in seqs if s in r]
    lost = sum(s not in r for r in received for s in seqs)
    return {**percentiles(latencies), "receivers": len(received), "lost": lost}


def video_summary(stats: list[dict]) -> dict:
    """RtpCounter windows (every viewer, every round) added up."""
    expected = sum(s["expected"] for s in stats)
    lost = sum(s["lost"] for s in stats)
    return {"packets": sum(s["packets"] for s in stats), "expected": expected, "lost": lost,
            "loss_pct": round(100 * lost / expected, 3) if expected else None}


async def run(opts: argparse.Namespace) -> dict:
    data = ten_mib_dicom()
    clip = clip_module.load()
    async with local_server("clinical") as server:
        url = server.url
        device = None
        peers: list[Clinical] = []
        try:
            async with aiohttp.ClientSession() as http:
                await create_room(http, url, server.admin_key)
            publisher = await join_clinical(url, ROOM, PASSWORD, "participant", "Surgeon")
            peers.append(publisher)
            track_id = await publisher.client.publish(ClipTrack(clip), "camera", "720p")
            uploader = await join_clinical(url, ROOM, PASSWORD, "participant", "Radiologist")
            peers.append(uploader)
            viewers = [await Viewer.join(url, n, track_id) for n in range(VIEWERS)]
            peers.extend(v.peer for v in viewers)
            device = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.ecg_device", url, ROOM, PASSWORD],
                cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            await asyncio.to_thread(device.stdout.readline)  # "streaming"
            await asyncio.sleep(opts.warmup)

            # (phase, upload pacing in bytes/s); the baseline sends no image at all. Rounds
            # interleave the phases, so that load from elsewhere on the host hits them alike.
            plan = [("baseline", None), ("dicom", None)] + ([("dicom_paced", opts.paced)] if opts.paced else [])
            phases = {name: {"upload_rate": rate, "seconds": 0.0, "server_cpu_s": 0.0, "windows": [],
                             "transfers": [], "video": [], "udp_receive_drops": 0, "load_average": []}
                      for name, rate in plan}
            for _ in range(opts.rounds):
                for name, rate in plan:
                    phase = phases[name]
                    for v in viewers:
                        v.video.start_window()
                    cpu, drops, began = cpu_seconds(server.pid), udp_receive_drops(), time.monotonic()
                    if name == "baseline":
                        await asyncio.sleep(opts.baseline)
                        phase["windows"].append((began, time.monotonic()))
                    else:
                        transfers = [await transfer(uploader, viewers, data, n, rate) for n in range(opts.transfers)]
                        phase["windows"] += [(t.pop("began"), t.pop("ended")) for t in transfers]
                        phase["transfers"] += transfers
                    phase["seconds"] += time.monotonic() - began
                    phase["server_cpu_s"] += cpu_seconds(server.pid) - cpu
                    phase["video"] += [v.video.stop_window() for v in viewers]
                    phase["udp_receive_drops"] += udp_receive_drops() - drops
                    phase["load_average"].append(os.getloadavg()[0])

            device.stdin.write("stop\n")
            device.stdin.flush()
            report = json.loads(await asyncio.to_thread(device.stdout.readline))
        finally:
            for peer in peers:
                await peer.client.close()
            if device is not None:
                device.terminate()
                device.wait(timeout=10)

    sent = {int(k): v for k, v in report["sent"].items()}
    quiet = {int(k): v for k, v in report["quiet"].items()}
    viewer_arrivals = [arrivals(v.peer, report["stream_id"]) for v in viewers]
    result = {
        "config": {"video": f"{clip_module.WIDTH}x{clip_module.HEIGHT}p{clip_module.FPS} VP8 "
                            f"{clip_module.BITRATE // 1000} kbit/s", "viewers": VIEWERS,
                   "dicom_bytes": len(data), "ecg": "12 leads x 500 Hz, 40 ms frames",
                   "transfers": opts.transfers, "rounds": opts.rounds, "cores": os.cpu_count()},
        "phases": {},
        "target": {"ecg_p99_ms_below": TARGET_P99_MS},
    }
    for name, phase in phases.items():
        ecg = ecg_window(sent, viewer_arrivals, phase["windows"])
        result["phases"][name] = {
            "seconds": round(phase["seconds"], 2), "upload_rate": phase["upload_rate"],
            "server_cpu_pct": round(100 * phase["server_cpu_s"] / phase["seconds"], 1),
            "udp_receive_drops": phase["udp_receive_drops"], "load_average": max(phase["load_average"]),
            "video": video_summary(phase["video"]),
            "delivered_s": [t["delivered_s"] for t in phase["transfers"]],
            "per_viewer_s": [t["per_viewer_s"] for t in phase["transfers"]],
            "ecg_viewers": ecg,
            "ecg_quiet_viewer": ecg_window(sent, [quiet], phase["windows"]),
        }
        if phase["transfers"]:
            result["target"][name] = "p99_ms" in ecg and ecg["p99_ms"] < TARGET_P99_MS
    return result


def table(result: dict) -> str:
    lines = [f"During a 720p call: 10 MiB DICOM to {VIEWERS} viewers; 12-lead 500 Hz ECG latency "
             f"at those viewers (quiet: at a viewer doing nothing else)",
             f"{'phase':<12}{'delivered':>18}{'ECG p50':>9}{'p99':>8}{'max':>8}{'lost':>5}{'quiet p99':>10}"
             f"{'video loss':>11}{'server CPU':>11}{'UDP drops':>10}{'load':>6}"]
    for name, r in result["phases"].items():
        e, q, v = r["ecg_viewers"], r["ecg_quiet_viewer"], r["video"]
        delivered = " ".join(f"{s:.1f}" for s in r["delivered_s"]) + " s" if r["delivered_s"] else "-"
        lines.append(f"{name:<12}{delivered:>18}{e.get('p50_ms', '-'):>7}ms{e.get('p99_ms', '-'):>6}ms"
                     f"{e.get('max_ms', '-'):>6}ms{e['lost']:>5}{q.get('p99_ms', '-'):>8}ms"
                     f"{v['loss_pct']:>10}%{r['server_cpu_pct']:>10}%{r['udp_receive_drops']:>10}"
                     f"{r['load_average']:>6.1f}")
    for name, met in result["target"].items():
        if name != "ecg_p99_ms_below":
            lines.append(f"target ECG p99 < {TARGET_P99_MS:.0f} ms during {name}: {'met' if met else 'NOT met'}")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.clinical", description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=3, help="rounds of all phases (default 3)")
    p.add_argument("--transfers", type=int, default=2,
                   help="10 MiB images sent one after another per phase and round (default 2)")
    p.add_argument("--baseline", type=float, default=5.0, help="seconds without a transfer per round")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds after everyone joined")
    p.add_argument("--paced", type=float, default=4 * 2**20,
                   help="upload rate (bytes/s) of a second, paced round of transfers; 0: skip it")
    p.add_argument("--out", type=Path, default=RESULTS / "clinical.json")
    opts = p.parse_args()
    result = asyncio.run(run(opts))
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    opts.out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    print(f"wrote {opts.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
