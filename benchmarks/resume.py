"""From a network change to media flowing again: resume (docs/resume.md) against a full
rejoin, in one run, in network namespaces it creates (needs root).

The server and a doctor run in this process, inside the server namespace; the ambulance
(benchmarks/resume_device.py) runs in the client namespace and publishes audio, which the
doctor receives and decodes. Each round moves the ambulance to a new address (its old
one and every connection on it are gone, the new one usable at once) and measures, on the
shared CLOCK_MONOTONIC:

- ``detect``: until the device saw the new route;
- ``media``: until the doctor decodes the ambulance's audio again (for a rejoin: from
  its new track, which the doctor first has to hear of and subscribe to).

    sudo .venv/bin/python -m benchmarks.resume [--rounds 5] [--out benchmarks/results/resume.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "clients" / "python"))
from telemed_client import Client  # noqa: E402

from .netns import SERVER_IP, NetnsPair  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
LOGS = Path(tempfile.gettempdir()) / "telemed-bench-resume"  # the devices' stderr
PASSWORD = "bench-resume-1"
MODES = ("resume", "rejoin")


class Doctor:
    """Subscribes to every audio track the ambulance publishes; notes each decoded frame."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.frames: list[float] = []  # arrival times, any of the ambulance's audio tracks
        self._tasks: list[asyncio.Task] = []
        self._subscribed: set[str] = set()
        self.events: list[str] = []  # what the doctor was told, in order
        client.on_event = self._on_event

    def _on_event(self, event: dict) -> None:
        self.events.append(event.get("type", ""))
        if event.get("type") == "track-published" and event["track"]["kind"] == "audio":
            self._tasks.append(asyncio.ensure_future(self._follow(event["track"]["id"])))

    async def _follow(self, track_id: str) -> None:
        if track_id in self._subscribed:
            return
        self._subscribed.add(track_id)
        track = await self.client.subscribe(track_id)
        while True:
            await track.recv()
            self.frames.append(time.monotonic())

    async def flowing(self, after: float, timeout: float = 60) -> float:
        """The first frame that arrived after ``after``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            later = [t for t in self.frames if t > after]
            if later:
                return later[0]
            await asyncio.sleep(0.01)
        raise TimeoutError("media did not come back")

    def back_after_cut(self, start: float, end: float) -> float:
        """Where the stream came back: the frame after the longest silence between
        ``start`` and ``end`` (audio is 50 frames/s, so the cut is that silence)."""
        frames = [t for t in self.frames if start - 0.1 < t <= end]
        return max(zip(frames, frames[1:]), key=lambda pair: pair[1] - pair[0])[1]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.client.close()


async def round_trip(ns: NetnsPair, running, mode: str, index: int) -> dict:
    room = f"resume-{mode}-{index}"
    await running.create_room(room, PASSWORD)
    doctor = Doctor(await Client.join(running.url, await running.token(room, PASSWORD, "host", "Dr"),
                                      auto_resume=False))
    token = await running.token(room, PASSWORD, "device", "Ambulance")
    log = (LOGS / f"device-{mode}-{index}.log").open("w")
    device = subprocess.Popen(
        ns.client_cmd([sys.executable, "-m", "benchmarks.resume_device",
                       f"http://{SERVER_IP}:{running.url.rsplit(':', 1)[1]}", token, mode]),
        stdout=subprocess.PIPE, stderr=log, text=True, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'clients' / 'python'}"})
    said: dict[str, dict] = {}  # the device's events by name (its two watchers race)

    def read() -> None:
        for line in device.stdout:
            event = json.loads(line)
            said[event["event"]] = event
    reader = asyncio.ensure_future(asyncio.to_thread(read))
    try:
        async def next_event(name: str) -> dict:
            deadline = time.monotonic() + 60
            while name not in said:
                if time.monotonic() > deadline or reader.done():
                    raise TimeoutError(f"the device did not say {name!r}")
                await asyncio.sleep(0.01)
            return said[name]
        ready = await next_event("ready")
        await doctor.flowing(time.monotonic() + 1.0)  # a second of steady audio first
        await asyncio.sleep(0.5)
        seen = len(doctor.events)
        changed_at = time.monotonic()
        ns.move_client(f"10.99.0.{20 + index}")  # the old address goes, the new one works
        changed = await next_event("changed")
        back = await next_event("back")
        await doctor.flowing(back["t"] + 0.2)
        await asyncio.sleep(2.0)  # audio well after it came back, so the cut lies between
        media = doctor.back_after_cut(changed_at, back["t"] + 2.0)
        return {"mode": mode, "detect_s": round(changed["t"] - changed_at, 3),
                "signaling_s": round(back["t"] - changed_at, 3), "media_s": round(media - changed_at, 3),
                "same_peer": back["peer_id"] == ready["peer_id"],
                # A rejoin is a second participant to everyone until the server gives up on
                # the first (its socket's heartbeat, tens of seconds).
                "doctor_saw": [e for e in doctor.events[seen:] if e.startswith("participant")]}
    finally:
        device.kill()
        device.wait(10)
        log.close()
        reader.cancel()
        await doctor.close()


def summary(rounds: list[dict]) -> dict:
    out = {}
    for mode in MODES:
        media = [r["media_s"] for r in rounds if r["mode"] == mode]
        detect = [r["detect_s"] for r in rounds if r["mode"] == mode]
        if media:
            out[mode] = {"media_median_s": round(statistics.median(media), 3), "media_max_s": max(media),
                         "detect_median_s": round(statistics.median(detect), 3),
                         "after_detect_median_s": round(statistics.median(
                             [m - d for m, d in zip(media, detect)]), 3), "rounds": len(media)}
    return out


async def run(rounds: int) -> dict:
    LOGS.mkdir(exist_ok=True)
    from tests.server import start_server  # the real server, as the tests run it

    results: list[dict] = []
    with tempfile.TemporaryDirectory() as data, NetnsPair(f"rb{os.getpid()}") as ns, ns.entered(ns.server):
        running, runner = await start_server(data, host="0.0.0.0", ice_hosts=["127.0.0.1", SERVER_IP])
        try:
            for index in range(rounds):
                for mode in MODES:  # interleaved, so both see the same machine load
                    result = await round_trip(ns, running, mode, index * len(MODES) + MODES.index(mode))
                    print(json.dumps(result), flush=True)
                    results.append(result)
                    # The next round starts from the ambulance's new address.
        finally:
            await runner.cleanup()
    return {"benchmark": "resume", "rounds": results, "summary": summary(results),
            "note": "seconds from the start of the address change to decoded audio at the "
                    "doctor; the device looks for a new route every 0.25 s"}


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.resume", description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--out", type=Path, default=RESULTS / "resume.json")
    args = p.parse_args()
    result = asyncio.run(run(args.rounds))
    print(f"{'':8}{'media back (median)':>22}{'max':>8}{'route seen':>12}{'after that':>12}")
    for mode, row in result["summary"].items():
        print(f"{mode:8}{row['media_median_s']:>20.2f} s{row['media_max_s']:>6.2f} s"
              f"{row['detect_median_s']:>10.2f} s{row['after_detect_median_s']:>10.2f} s")
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
