"""Recording cost, in CPU-seconds per recorded minute of one 720p30 VP8 camera plus an
Opus microphone.

Side by side, in one run, inside the benchmark's network namespaces (needs root):
- this server, the room set to ``record: "auto"``: the server process's CPU while the
  publisher sends, plus stopping (files closed, encrypted, playable at once);
- Janus VideoRoom with ``record: true``: its process's CPU, plus ``janus-pp-rec`` turning
  each .mjr file into a playable WebM (video) or Opus (audio) file (Debian's janus-tools).
Each server also runs once without recording, so the recording's own share shows, and
every case runs with each count of ``--subscribers`` viewing the camera (default none,
then 30): with 30, the recording's share per track is what recording adds to a server
that is forwarding. The publisher is the forwarding benchmark's pre-encoded clip and a
pre-encoded Opus tone (no encoding cost on the client side).

Then, alone and offline, the recorder's own path (frame assembly, PyAV live WebM muxing,
AES-GCM chunks) over the same clip plus Opus, as fast as it runs.

    .venv/bin/python -m benchmarks.recording [--seconds 60] [--servers ours,janus] [--repeat 1]
                                             [--subscribers 0,30]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fractions
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from statistics import median

import av
from aiortc.codecs.vpx import Vp8Encoder

from recorder.depacketizer import DEPACKETIZERS
from recorder.frame_assembler import FrameAssembler
from recorder.track_file import TrackFile
from sfu.keyframe import vp8_keyframe
from sfu.rtp_packet import RtpPacket
from vault import EncryptedReader, KeyRing

from .clip import load as load_clip
from .clip import opus_loop
from .cpu_meter import CpuMeter
from .forwarding import Server, WorkerProc
from .netns import NetnsPair

RESULTS = Path(__file__).resolve().parent / "results"


def video_packets(clip) -> list[list[bytes]]:
    payloader = Vp8Encoder()
    out = []
    for i, data in enumerate(clip.frames):
        packet = av.Packet(data)
        packet.pts, packet.time_base = i, fractions.Fraction(1, clip.fps)
        payloads, _ = payloader.pack(packet)
        out.append(payloads)
    return out


def recorder_path(directory: Path, ring: KeyRing, minutes: float, clip, video, audio) -> dict:
    keys = ring.new_data_key()
    vfile = TrackFile(directory / "video.webm.enc", *keys, "video/VP8")
    afile = TrackFile(directory / "audio.webm.enc", *keys, "audio/opus")
    assembler = FrameAssembler(DEPACKETIZERS["video/vp8"](), lambda: None)
    frames = int(minutes * 60 * clip.fps)
    seq = 0
    start_cpu, start_wall = time.process_time(), time.perf_counter()
    for i in range(frames):
        payloads = video[i % len(video)]
        timestamp = i * 3000
        for j, payload in enumerate(payloads):
            packet = RtpPacket(96, int(j == len(payloads) - 1), seq & 0xFFFF, timestamp & 0xFFFFFFFF, 1, payload)
            packet.keyframe = j == 0 and vp8_keyframe(payload)
            seq += 1
            for frame in assembler.push(packet, i / clip.fps):
                vfile.write(frame.data, i * 1000 // clip.fps, frame.keyframe)
        # audio: 20 ms packets up to this video frame's time
        for k in range(int(i * 50 / clip.fps), int((i + 1) * 50 / clip.fps)):
            afile.write(audio[k % len(audio)], k * 20, True)
        if i % clip.fps == clip.fps - 1:  # once a second of media, as the recorder does
            vfile.flush()
            afile.flush()
    vfile.close()
    afile.close()
    cpu, wall = time.process_time() - start_cpu, time.perf_counter() - start_wall
    return {"media_minutes": minutes, "cpu_seconds": round(cpu, 3), "wall_seconds": round(wall, 3),
            "cpu_seconds_per_recorded_minute": round(cpu / minutes, 3),
            "video_bytes": os.path.getsize(directory / "video.webm.enc"),
            "audio_bytes": os.path.getsize(directory / "audio.webm.enc"), "video_frames": vfile.frames}


def check_playable(directory: Path, ring: KeyRing) -> dict:
    counts = {}
    for name in ("video.webm.enc", "audio.webm.enc"):
        with EncryptedReader(directory / name, ring) as reader, av.open(reader) as container:
            counts[name] = sum(1 for p in container.demux(container.streams[0]) if p.size)
    return counts


async def server_case(kind: str, record: bool, subscribers: int, seconds: float, ns: NetnsPair,
                      tmp: Path) -> dict:
    """CPU of one server while one publisher sends a camera and a microphone for
    ``seconds`` to ``subscribers`` viewers of the camera, recording or not."""
    rec_dir = tmp / f"{kind}-rec"
    rec_dir.mkdir()
    server = Server(kind, ns, tmp)
    meter = CpuMeter(server.pid)
    workers: list[WorkerProc] = []
    try:
        pub = await WorkerProc.spawn(ns, f"{kind}-pub", tmp / f"{kind}-pub.log")
        workers.append(pub)
        reply = await pub.call({"cmd": "publish", "server": kind, "base": server.base, "audio": True,
                                "admin_key": getattr(server, "admin_key", None),
                                "record": str(rec_dir) if record else None}, 60)
        if subscribers:
            sub = await WorkerProc.spawn(ns, f"{kind}-sub", tmp / f"{kind}-sub.log")
            workers.append(sub)
            joined = await sub.call({"cmd": "subscribe", "server": kind, "base": server.base,
                                     "info": reply["info"], "count": subscribers}, 120)
            if joined["failed"]:
                raise RuntimeError(f"{kind}: {len(joined['failed'])} subscribers failed: {joined['failed'][:3]}")
        await asyncio.sleep(2.0)  # settle: ICE, DTLS, the first keyframe
        cpu0, t0 = sum(meter.seconds()), time.monotonic()
        await asyncio.sleep(seconds)
        cpu1, t1 = sum(meter.seconds()), time.monotonic()
        for worker in reversed(workers):  # everyone leaves: both servers close their recordings
            await worker.quit()
        await asyncio.sleep(3.0)
        cpu2 = sum(meter.seconds())
        server.check_alive()
    finally:
        for worker in workers:
            await worker.quit()
        server.stop()
        meter.close()
    return {"server": kind, "cpu_meter": meter.kind, "record": record, "subscribers": subscribers,
            "seconds": round(t1 - t0, 3), "server_cpu_s": round(cpu1 - cpu0, 3),
            "closing_cpu_s": round(cpu2 - cpu1, 3)}


def finish(case: dict, tmp: Path) -> None:
    """A recording case's post-processing (Janus's) and what its files decode to."""
    post, decoded = (janus_postprocess(tmp / "janus-rec") if case["server"] == "janus"
                     else ours_playable(tmp / "ours-data"))
    case.update(postprocess_cpu_s=round(post, 3), decoded=decoded)


def decodable(source) -> tuple[str, int, int]:
    """(kind, frames decoded, packets the decoder refused) of a file's one track."""
    frames = errors = 0
    with av.open(source) as container:
        stream = container.streams[0]
        for packet in container.demux(stream):
            try:
                frames += len(packet.decode())
            except av.FFmpegError:
                errors += 1
        return stream.type, frames, errors


def tally(files: list[tuple[str, int, int]]) -> dict:
    """Frames decoded per kind and the packets refused, over a recording's files."""
    out: dict = {"video_frames": 0, "audio_frames": 0, "undecodable_packets": 0}
    for kind, frames, errors in files:
        out[f"{kind}_frames"] += frames
        out["undecodable_packets"] += errors
    return out


def janus_postprocess(rec_dir: Path) -> tuple[float, dict]:
    """CPU of janus-pp-rec making each .mjr playable (video to WebM, audio to Opus), and
    what the results decode to."""
    cpu, files = 0.0, []
    for mjr in sorted(rec_dir.glob("*.mjr")):
        out = mjr.with_suffix(".opus" if "-audio-" in mjr.name else ".webm")  # videoroom-…-audio-1.mjr
        proc = subprocess.Popen(["janus-pp-rec", str(mjr), str(out)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        cpu += usage.ru_utime + usage.ru_stime
        if proc.returncode == 0 and out.exists():
            files.append(decodable(str(out)))
    return cpu, tally(files)


def ours_playable(data_dir: Path) -> tuple[float, dict]:
    """Nothing to post-process; what the encrypted files decode to, as they are."""
    ring = KeyRing.load(None, data_dir / "keys" / "master.key")
    files = []
    for path in (data_dir / "recordings").glob("*/*.webm.enc"):
        with EncryptedReader(path, ring) as reader:
            files.append(decodable(reader))
    return 0.0, tally(files)


async def compare(seconds: float, servers: list[str], repeat: int, subscribers: list[int]) -> list[dict]:
    """Every case `repeat` times, the servers at the same time, each in network namespaces
    of its own with its own publisher and viewers: a pair sees the same host. (One after
    the other, a server's figure moved up to 4x between rounds a few minutes apart.)
    Post-processing and decoding come after both, so neither runs during a window."""
    results = []
    with contextlib.ExitStack() as stack:
        nets = {kind: stack.enter_context(NetnsPair(f"{os.getpid()}{kind[0]}")) for kind in servers}
        for round_ in range(repeat):
            for n in subscribers:
                for record in (False, True):
                    with tempfile.TemporaryDirectory() as tmp:
                        cases = await asyncio.gather(*(server_case(kind, record, n, seconds, nets[kind], Path(tmp))
                                                       for kind in servers))
                        for case in cases:
                            if record:
                                finish(case, Path(tmp))
                            case["repeat"] = round_
                            print(json.dumps(case), flush=True)
                            results.append(case)
    return results


TRACKS = 2  # the camera and the microphone


def per_minute(cases: list[dict], kind: str, n: int, round_: int) -> tuple[float, float, dict]:
    """(end to end, recording's share) CPU-s per recorded minute of one server's round
    with `n` subscribers, and its recording case."""
    def case(record: bool) -> dict:
        return next(c for c in cases if c["server"] == kind and c["repeat"] == round_
                    and c["subscribers"] == n and c["record"] == record)
    plain, rec = case(False), case(True)
    end_to_end = (rec["server_cpu_s"] + rec["closing_cpu_s"] + rec["postprocess_cpu_s"]) / (rec["seconds"] / 60)
    without = (plain["server_cpu_s"] + plain["closing_cpu_s"]) / (plain["seconds"] / 60)
    return end_to_end, end_to_end - without, rec


def summary(cases: list[dict]) -> dict:
    rounds = sorted({c["repeat"] for c in cases})
    out: dict = {}
    for n in sorted({c["subscribers"] for c in cases}):
        runs = {kind: [per_minute(cases, kind, n, r) for r in rounds] for kind in sorted({c["server"] for c in cases})}
        part: dict = {}
        for kind, per_round in runs.items():
            share = median(s for _, s, _ in per_round)
            part[kind] = {
                "cpu_s_per_recorded_minute_end_to_end": round(median(e for e, _, _ in per_round), 3),
                "end_to_end_per_repeat": [round(e, 3) for e, _, _ in per_round],
                "recording_share_cpu_s_per_minute": round(share, 3),
                "recording_share_per_track_cpu_s_per_minute": round(share / TRACKS, 3),
                "decoded": [rec["decoded"] for _, _, rec in per_round],
            }
        if {"ours", "janus"} <= runs.keys():
            pairs = [ours[0] / janus[0] for ours, janus in zip(runs["ours"], runs["janus"])]
            part["end_to_end_ours_over_janus"] = {"median": round(median(pairs), 3),
                                                  "per_repeat": [round(p, 3) for p in pairs]}
        out[f"subscribers_{n}"] = part
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="benchmarks.recording")
    parser.add_argument("--seconds", type=float, default=60.0, help="recording length (default 60)")
    parser.add_argument("--servers", default="ours,janus")
    parser.add_argument("--repeat", type=int, default=1, help="every case this many times, the servers side by side")
    parser.add_argument("--subscribers", default="0,30",
                        help="viewers of the camera during each case, comma-separated (default 0,30)")
    parser.add_argument("--out", type=Path, default=RESULTS / "recording.json")
    args = parser.parse_args()
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    counts = [int(n) for n in args.subscribers.split(",") if n.strip()]
    cases = asyncio.run(compare(args.seconds, servers, args.repeat, counts))
    clip = load_clip()
    video, audio = video_packets(clip), opus_loop()
    ring = KeyRing(os.urandom(32))
    with tempfile.TemporaryDirectory() as tmp:
        offline = recorder_path(Path(tmp), ring, 2.0, clip, video, audio)
        offline["demuxed_packets"] = check_playable(Path(tmp), ring)
    offline["clip"] = f"1280x720p{clip.fps} VP8 {round(clip.bitrate / 1e6, 2)} Mbit/s + Opus 32 kbit/s"
    result = {"summary": summary(cases), "cases": cases, "recorder_path_offline": offline,
              "note": f"{args.repeat} round(s) of same-time pairs on a shared 2-core machine"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["summary"], indent=2))


if __name__ == "__main__":
    main()
