"""Join latency across nodes: joining through a node that does not host the room (it
answers `moved`, and the client joins again at the host) against joining the host directly;
then how long a room is unreachable after its node is killed (kill -9).

    ./telemed bench multinode [--joins 40] [--node-ttl 6] [--out FILE]

Processes: a Redis (`redis-server`, a fresh directory), two server nodes sharing it and one
data directory (`python -m signaling serve --room-store redis://...`), and this client.
A first peer keeps the room live on its node. Then, interleaved, a join straight to the
host and a join entering at the other node; each is timed from opening the WebSocket to
the `joined` reply, then leaves. Tokens are minted beforehand (no password hashing in the
timing). Last, the host is killed with SIGKILL and a client keeps joining through the other
node every 50 ms: the time from the kill to `joined` on the survivor is what a lost node costs
a newcomer (the lease lapses with the dead node's heartbeat, after at most --node-ttl).
Forwarding is untouched by multi-node mode: no cluster code runs per packet
(docs/multinode.md), so the forwarding benchmark's figures stand.

Before that, `--failovers` times (default 5) a call is cut by killing its host: a medic
(`telemed_client`, publishing a camera) and a doctor (subscribed to it), both entering at
the node that survives, resume their seats by themselves on it; the time from the kill to
the doctor decoding the medic's camera again is what a lost node costs a call in progress.
A third node (started again after each kill) is the host that dies.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from aiortc import VideoStreamTrack

from sfu import pin_host_addresses

from .local_server import free_port
from .readiness import answers_ok

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "clients" / "python"))
from telemed_client import Client  # noqa: E402  (the device client, as a package beside the server)

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
ADMIN_KEY = "bench-" + secrets.token_hex(8)
PASSWORD = "bench-password-1"
ROOM = "bench-multinode"


async def create_room(http: aiohttp.ClientSession, url: str, room: str) -> None:
    async with http.post(f"{url}/api/rooms", json={"name": room, "password": PASSWORD},
                         headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as r:
        if r.status != 201:
            raise RuntimeError(f"create room: {r.status} {await r.text()}")


async def mint(http: aiohttp.ClientSession, url: str, name: str, room: str = ROOM) -> str:
    async with http.post(f"{url}/api/rooms/{room}/token", json={"role": "participant", "name": name},
                         headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as r:
        body = await r.json()
        if r.status != 200:
            raise RuntimeError(f"token: {r.status} {body}")
        return body["token"]


async def join(http: aiohttp.ClientSession, url: str, token: str) -> tuple[float, int, str, aiohttp.ClientWebSocketResponse]:
    """(seconds to `joined`, redirects followed, the host's URL, the open socket)."""
    began = time.perf_counter()
    moves = 0
    while True:
        ws = await http.ws_connect(url.replace("http", "ws", 1) + "/ws")
        await ws.send_json({"type": "join", "token": token, "id": 1})
        reply = await ws.receive_json(timeout=20)
        if reply["type"] != "moved":
            break
        await ws.close()
        url, moves = reply["url"], moves + 1
    if reply["type"] != "joined":
        raise RuntimeError(f"join: {reply}")
    return time.perf_counter() - began, moves, url, ws


async def leave(ws: aiohttp.ClientWebSocketResponse) -> None:
    await ws.send_json({"type": "leave"})
    await ws.close()


def summary(seconds: list[float]) -> dict:
    ms = sorted(s * 1000 for s in seconds)
    return {"joins": len(ms), "median_ms": round(statistics.median(ms), 2),
            "p95_ms": round(ms[min(len(ms) - 1, int(0.95 * len(ms)))], 2),
            "mean_ms": round(statistics.fmean(ms), 2)}


async def failover(http: aiohttp.ClientSession, survivor: str, kill) -> float:
    """Seconds from killing the host to a join through ``survivor`` landing on a live node."""
    token = await mint(http, survivor, "after")
    killed = time.perf_counter()
    kill()
    while True:
        try:
            _, _, landed, ws = await join(http, survivor, token)
            break
        except (aiohttp.ClientError, RuntimeError):
            await asyncio.sleep(0.05)
    seconds = time.perf_counter() - killed
    assert landed == survivor
    await leave(ws)
    return seconds


async def call_failover(http: aiohttp.ClientSession, entry: str, host: str, kill) -> float:
    """Seconds from killing ``host`` to the doctor decoding the medic's camera again; both
    entered at ``entry`` and resume by themselves."""
    room = f"failover-{secrets.token_hex(4)}"
    await create_room(http, entry, room)
    tokens = [await mint(http, entry, name, room) for name in ("medic", "doctor")]
    medic = await Client.join(entry, tokens[0])
    doctor = await Client.join(entry, tokens[1])
    try:
        if medic.node_url != host:
            raise RuntimeError(f"the call went to {medic.node_url}, not {host}")
        camera = await medic.publish(VideoStreamTrack(), "camera")
        video = await doctor.subscribe(camera)
        await asyncio.wait_for(video.recv(), 20)
        resumed = doctor.next_resume()
        killed = time.perf_counter()
        kill()
        await asyncio.wait_for(resumed, 60)
        if not (medic.info["resumed"] and doctor.info["resumed"]):
            raise RuntimeError("a seat was not resumed but joined anew")
        await asyncio.wait_for(doctor.remote_tracks[camera].recv(), 60)
        return time.perf_counter() - killed
    finally:
        await medic.close()
        await doctor.close()


async def measure(urls: list[str], joins: int, kill_node) -> dict:
    async with aiohttp.ClientSession() as http:
        for url in urls:
            if not await answers_ok(http, f"{url}/healthz", 30):
                raise RuntimeError(f"{url} did not start")
        await create_room(http, urls[0], ROOM)
        _, _, host, anchor = await join(http, urls[0], await mint(http, urls[0], "anchor"))
        other = next(url for url in urls if url != host)
        times: dict[str, list[float]] = {"direct": [], "via_other_node": []}
        for i in range(joins):
            for case, entry in (("direct", host), ("via_other_node", other)):
                token = await mint(http, entry, f"p{i}")
                seconds, moves, landed, ws = await join(http, entry, token)
                assert landed == host and moves == (case != "direct"), (case, moves, landed)
                times[case].append(seconds)
                await leave(ws)
        await leave(anchor)
        lost_node_s = await failover(http, other, lambda: kill_node(host))
    result = {case: summary(values) for case, values in times.items()}
    result["rejoin_after_kill_s"] = round(lost_node_s, 2)
    result["redirect_cost_ms"] = round(result["via_other_node"]["median_ms"] - result["direct"]["median_ms"], 2)
    return result


async def failovers(entry: str, start_host, kill_host, runs: int) -> list[float]:
    """``runs`` calls cut by their host's death; a room kept live at ``entry`` makes
    placement choose the (fresh, emptier) host for each call."""
    seconds = []
    async with aiohttp.ClientSession() as http:
        await create_room(http, entry, ROOM + "-anchor")
        anchor = await Client.join(entry, await mint(http, entry, "a", ROOM + "-anchor"))
        try:
            for _ in range(runs):
                host = await start_host()
                seconds.append(await call_failover(http, entry, host, lambda host=host: kill_host(host)))
        finally:
            await anchor.close()
    return seconds


def run(joins: int, node_ttl: float, runs: int) -> dict:
    redis_binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    with tempfile.TemporaryDirectory(prefix="telemed-multinode-") as workdir:
        work = Path(workdir)
        redis_port = free_port()
        procs = [subprocess.Popen([redis_binary, "--port", str(redis_port), "--bind", "127.0.0.1",
                                   "--save", "", "--appendonly", "no", "--dir", workdir],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
        urls = []
        by_url: dict[str, subprocess.Popen] = {}

        def start(node: str) -> str:
            port = free_port()
            env = {**os.environ, "TELEMED_ADMIN_KEY": ADMIN_KEY, "TELEMED_LOG_LEVEL": "warning"}
            with (work / f"{node}.log").open("ab") as log:
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "signaling", "serve", "--host", "127.0.0.1", "--port", str(port),
                     "--ice-hosts", "127.0.0.1", "--data-dir", str(work / "data"), "--node-id", node,
                     "--node-ttl", str(node_ttl), "--media-port", str(free_port()),
                     "--room-store", f"redis://127.0.0.1:{redis_port}/0"],
                    cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT))
            url = f"http://127.0.0.1:{port}"
            by_url[url] = procs[-1]
            return url

        async def start_ready(node: str) -> str:
            url = start(node)
            await _ready(url)
            return url

        def kill(url: str) -> None:
            by_url[url].send_signal(signal.SIGKILL)
            by_url[url].wait()

        try:
            time.sleep(0.3)
            urls.append(start("bench-a"))
            asyncio.run(_ready(urls[-1]))
            # First the calls cut, between bench-a and a bench-c started for each.
            cut = asyncio.run(failovers(urls[0], lambda: start_ready("bench-c"), kill, runs)) if runs else []
            urls.append(start("bench-b"))
            asyncio.run(_ready(urls[-1]))
            result = asyncio.run(measure(urls, joins, kill))
            if cut:
                result["call_failover_s"] = {"runs": [round(x, 2) for x in cut], "median": round(statistics.median(cut), 2),
                                             "max": round(max(cut), 2)}
            return result
        finally:
            for proc in reversed(procs):
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


async def _ready(url: str) -> None:
    async with aiohttp.ClientSession() as http:
        if not await answers_ok(http, f"{url}/healthz", 30):
            raise RuntimeError(f"{url} did not start")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="telemed bench multinode", description=__doc__.split("\n\n")[0])
    p.add_argument("--joins", type=int, default=40, help="joins per case (default 40)")
    p.add_argument("--node-ttl", type=float, default=6.0, help="the nodes' --node-ttl (default 6)")
    p.add_argument("--failovers", type=int, default=5, help="calls cut by killing their host (default 5)")
    p.add_argument("--out", type=Path, default=RESULTS / "multinode.json")
    a = p.parse_args(argv)
    # The nodes offer loopback only; our clients must too (aioice skips loopback, and a
    # machine's other address may not reach it).
    pin_host_addresses(["127.0.0.1"])
    result = {"command": f"./telemed bench multinode --joins {a.joins} --node-ttl {a.node_ttl:g} "
                         f"--failovers {a.failovers}",
              "date": time.strftime("%Y-%m-%d"), "node_ttl_s": a.node_ttl, "load": round(os.getloadavg()[0], 1),
              **run(a.joins, a.node_ttl, a.failovers)}
    for case in ("direct", "via_other_node"):
        r = result[case]
        print(f"{case:>15}: median {r['median_ms']:.1f} ms, p95 {r['p95_ms']:.1f} ms ({r['joins']} joins)")
    print(f"redirect cost (median): {result['redirect_cost_ms']:.1f} ms")
    print(f"host killed: a newcomer is in again after {result['rejoin_after_kill_s']:.2f} s "
          f"(node TTL {a.node_ttl:g} s)")
    if "call_failover_s" in result:
        cut = result["call_failover_s"]
        print(f"host killed mid-call: media again after {', '.join(f'{x:.2f}' for x in cut['runs'])} s "
              f"(median {cut['median']:.2f} s)")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
