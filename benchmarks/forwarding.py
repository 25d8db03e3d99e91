"""Forwarding benchmark: one pre-encoded VP8 publisher, N counting subscribers,
our SFU and Janus VideoRoom side by side in the same run.

The orchestrator (this module) never touches the network: servers run in the
server namespace, client workers (benchmarks.worker) in the client namespace,
and it talks to workers over pipes. Per server and N it measures, over one
window: server CPU (utime+stime from /proc) per delivered packet, loss from
sequence numbers, latency by payload matching, and the time to join everyone.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from . import janus, telemed
from .clip import load as load_clip
from .netns import SERVER_IP, NetnsPair

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
CLK_TCK = os.sysconf("SC_CLK_TCK")
SERVERS = ("ours", "janus")
REPLY_TIMEOUT = 120.0


@dataclass
class Options:
    subscribers: list[int]
    duration: float
    warmup: float
    workers: int
    servers: tuple[str, ...]
    out: Path
    profile: bool
    keep_logs: bool


def proc_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is state (field 3); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def host_cpu() -> tuple[float, float]:
    """(busy, total) jiffies for the whole host."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def percentile(sorted_values: list[float], p: float) -> float | None:
    if not sorted_values:
        return None
    k = min(len(sorted_values) - 1, max(0, round(p / 100 * (len(sorted_values) - 1))))
    return sorted_values[k]


class WorkerProc:
    """One benchmarks.worker process in the client namespace, spoken to by JSON lines."""

    def __init__(self, proc: asyncio.subprocess.Process, name: str) -> None:
        self.proc = proc
        self.name = name

    @classmethod
    async def spawn(cls, ns: NetnsPair, name: str, log: Path) -> "WorkerProc":
        proc = await asyncio.create_subprocess_exec(
            *ns.client_cmd([sys.executable, "-m", "benchmarks.worker"]),
            cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=open(log, "ab"), limit=1 << 24,
        )
        return cls(proc, name)

    async def call(self, msg: dict, timeout: float = REPLY_TIMEOUT) -> dict:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write((json.dumps(msg) + "\n").encode())
        await self.proc.stdin.drain()
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"worker {self.name} exited (see its log)")
        reply = json.loads(line)
        if not reply.get("ok"):
            raise RuntimeError(f"worker {self.name}: {reply.get('error')}")
        return reply

    async def quit(self) -> None:
        try:
            if self.proc.stdin and not self.proc.stdin.is_closing():
                self.proc.stdin.write(b'{"cmd": "quit"}\n')
                await self.proc.stdin.drain()
            await asyncio.wait_for(self.proc.wait(), 20)
        except (asyncio.TimeoutError, ConnectionError, BrokenPipeError):
            pass
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


class Server:
    """One SFU process in the server namespace."""

    def __init__(self, kind: str, ns: NetnsPair, tmp: Path) -> None:
        self.kind = kind
        self.log = tmp / f"{kind}-server.log"
        env = dict(os.environ)
        if kind == "janus":
            conf = tmp / "janus-conf"
            janus.write_config(conf, ns.server_veth)
            argv = janus.server_argv(conf)
            self.base = f"http://{SERVER_IP}:{janus.PORT}/janus"
        else:
            self.admin_key = telemed.ADMIN_KEY
            argv = telemed.server_argv(REPO)
            env.update(telemed.server_env(SERVER_IP, self.admin_key))
            env["TELEMED_DATA_DIR"] = str(tmp / "ours-data")
            self.base = f"http://{SERVER_IP}:{telemed.PORT}"
        # `ip netns exec` execs the command in place, so this pid is the server's.
        self.proc = subprocess.Popen(ns.server_cmd(argv), cwd=REPO, env=env,
                                     stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            tail = self.log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{self.kind} server exited with {self.proc.returncode}:\n{tail}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def split(n: int, parts: int) -> list[int]:
    parts = max(1, min(parts, n))
    return [n // parts + (1 if i < n % parts else 0) for i in range(parts)]


def match_latencies(sent: dict[str, list[float]], received: list[list[list]]) -> tuple[list[float], int]:
    by_key = {int(k): sorted(v) for k, v in sent.items()}
    latencies: list[float] = []
    unmatched = 0
    for log in received:
        for key, t in log:
            times = by_key.get(key)
            i = bisect.bisect_right(times, t) - 1 if times else -1
            if i < 0:
                unmatched += 1
            else:
                latencies.append((t - times[i]) * 1000)
    latencies.sort()
    return latencies, unmatched


async def run_case(kind: str, n: int, opts: Options, ns: NetnsPair, tmp: Path,
                   profile_to: Path | None = None) -> dict:
    server = Server(kind, ns, tmp)
    workers: list[WorkerProc] = []
    profiler: subprocess.Popen | None = None
    try:
        pub = await WorkerProc.spawn(ns, f"{kind}-pub", tmp / f"{kind}-worker-pub.log")
        workers.append(pub)
        msg = {"cmd": "publish", "server": kind, "base": server.base,
               "admin_key": getattr(server, "admin_key", None)}
        info = (await pub.call(msg, 60))["info"]
        server.check_alive()

        shares = split(n, opts.workers)
        subs = [await WorkerProc.spawn(ns, f"{kind}-sub{i}", tmp / f"{kind}-worker-sub{i}.log")
                for i in range(len(shares))]
        workers.extend(subs)
        await asyncio.sleep(1.0)  # let the workers import aiortc before the clock starts
        t0 = time.monotonic()
        replies = await asyncio.gather(*(
            w.call({"cmd": "subscribe", "server": kind, "base": server.base, "info": info, "count": c})
            for w, c in zip(subs, shares)
        ))
        join_s = time.monotonic() - t0
        failed = [f for r in replies for f in r["failed"]]
        per_sub_join = sorted(j for r in replies for j in r["joined"])
        server.check_alive()
        if failed:
            print(f"  {kind}: {len(failed)} of {n} subscribers failed to join: {failed[:3]}", file=sys.stderr)

        await asyncio.sleep(opts.warmup)
        if profile_to is not None:
            profiler = start_profiler(server.pid, opts.duration, profile_to)
        cpu0, host0 = proc_cpu_seconds(server.pid), host_cpu()
        starts = [(await w.call({"cmd": "start"}))["t"] for w in workers]
        await asyncio.sleep(opts.duration)
        stops = [await w.call({"cmd": "stop", "out": str(tmp / f"{kind}-{n}-{w.name}.json")})
                 for w in workers]
        cpu1, host1 = proc_cpu_seconds(server.pid), host_cpu()
        server.check_alive()
        window = stops[0]["t"] - starts[0]
    finally:
        await asyncio.gather(*(w.quit() for w in workers), return_exceptions=True)
        if profiler is not None:
            try:
                profiler.wait(opts.duration + 30)
            except subprocess.TimeoutExpired:
                profiler.kill()
        server.stop()

    sent: dict[str, list[float]] = json.loads((tmp / f"{kind}-{n}-{pub.name}.json").read_text())["sent"]
    received: list[list] = []
    for w in subs:
        received.extend(json.loads((tmp / f"{kind}-{n}-{w.name}.json").read_text())["received"])
    latencies, unmatched = match_latencies(sent, received)
    sub_stats = [s for r in stops[1:] for s in r["stats"]]
    delivered = sum(s["packets"] for s in sub_stats)
    expected = sum(s["expected"] for s in sub_stats)
    lost = sum(s["lost"] for s in sub_stats)
    w0, w1 = starts[0], stops[0]["t"]
    sent_in_window = sum(1 for times in sent.values() for t in times if w0 <= t < w1)
    cpu_s = cpu1 - cpu0
    return {
        "server": kind,
        "subscribers": n,
        "joined": len(per_sub_join),
        "join_failures": failed,
        "window_s": round(window, 3),
        "server_cpu_s": round(cpu_s, 3),
        "server_cpu_pct": round(100 * cpu_s / window, 1),
        "host_busy_pct": round(100 * (host1[0] - host0[0]) / max(1, host1[1] - host0[1]), 1),
        "publisher_packets": sent_in_window,
        "delivered_packets": delivered,
        "delivered_per_s": round(delivered / window, 1),
        "delivery_pct": round(100 * delivered / max(1, sent_in_window * len(sub_stats)), 2),
        "cpu_us_per_packet": round(cpu_s * 1e6 / delivered, 2) if delivered else None,
        "loss_pct": round(100 * lost / expected, 3) if expected else None,
        "latency_ms_p50": _r(percentile(latencies, 50)),
        "latency_ms_p95": _r(percentile(latencies, 95)),
        "latency_ms_max": _r(latencies[-1] if latencies else None),
        "latency_unmatched_pct": round(100 * unmatched / max(1, unmatched + len(latencies)), 2),
        "join_all_s": round(join_s, 3),
        "join_p50_s": _r(percentile(per_sub_join, 50), 3),
        "join_max_s": _r(per_sub_join[-1] if per_sub_join else None, 3),
    }


def _r(v: float | None, digits: int = 2) -> float | None:
    return None if v is None else round(v, digits)


def start_profiler(pid: int, duration: float, out: Path) -> subprocess.Popen | None:
    from .profile import py_spy

    exe = py_spy()
    if exe is None:
        print("  py-spy not found: .venv/bin/pip install py-spy (profiling skipped)", file=sys.stderr)
        return None
    return subprocess.Popen(
        [exe, "record", "--pid", str(pid), "--duration", str(int(duration)), "--rate", "250",
         "--nonblocking", "--format", "raw", "--output", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def table(rows: list[dict]) -> str:
    head = ("server", "N", "CPU µs/pkt", "CPU %", "pkts/s", "loss %", "p50 ms", "p95 ms", "join s")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = (r["server"], r["subscribers"], r["cpu_us_per_packet"], r["server_cpu_pct"],
                 r["delivered_per_s"], r["loss_pct"], r["latency_ms_p50"], r["latency_ms_p95"],
                 r["join_all_s"])
        lines.append("| " + " | ".join("–" if c is None else str(c) for c in cells) + " |")
    return "\n".join(lines)


def ratios(rows: list[dict]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for n in sorted({r["subscribers"] for r in rows}):
        ours = next((r for r in rows if r["server"] == "ours" and r["subscribers"] == n), None)
        them = next((r for r in rows if r["server"] == "janus" and r["subscribers"] == n), None)
        if ours and them and ours["cpu_us_per_packet"] and them["cpu_us_per_packet"]:
            out[str(n)] = {
                "cpu_per_packet_ours_over_janus": round(ours["cpu_us_per_packet"] / them["cpu_us_per_packet"], 3),
                "target_met": bool(ours["cpu_us_per_packet"] <= them["cpu_us_per_packet"] / 2
                                   and ours["loss_pct"] is not None and ours["loss_pct"] < 0.5),
            }
    return out


async def run(opts: Options) -> dict:
    if os.geteuid() != 0:
        raise SystemExit("the benchmark makes network namespaces: run it as root")
    clip = load_clip()  # encode before any timing starts
    rows: list[dict] = []
    started = time.time()
    tmp = Path(tempfile.mkdtemp(prefix="telemed-bench-"))
    try:
        with NetnsPair() as ns:
            for n in opts.subscribers:
                for kind in opts.servers:
                    print(f"{kind}: {n} subscribers, {opts.duration:.0f} s window ...", file=sys.stderr)
                    try:
                        row = await asyncio.wait_for(
                            run_case(kind, n, opts, ns, tmp),
                            timeout=opts.duration + opts.warmup + 240,
                        )
                    except Exception as exc:
                        print(f"  {kind} at N={n} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
                        row = {"server": kind, "subscribers": n, "error": f"{type(exc).__name__}: {exc}",
                               "cpu_us_per_packet": None, "server_cpu_pct": None, "delivered_per_s": None,
                               "loss_pct": None, "latency_ms_p50": None, "latency_ms_p95": None,
                               "join_all_s": None}
                    rows.append(row)
            profile = None
            if opts.profile and "ours" in opts.servers:
                from .profile import summarize

                n = max(opts.subscribers)
                raw = tmp / "ours-py-spy.txt"
                print(f"profiling ours at {n} subscribers with py-spy ...", file=sys.stderr)
                try:
                    await asyncio.wait_for(run_case("ours", n, opts, ns, tmp, profile_to=raw),
                                           timeout=opts.duration + opts.warmup + 240)
                    if raw.exists():
                        keep = RESULTS / "profile-ours.txt"
                        shutil.copy(raw, RESULTS / "profile-ours.raw.txt")
                        profile = summarize(raw, REPO)
                        keep.write_text(profile["text"])
                except Exception as exc:
                    print(f"  profiling failed: {type(exc).__name__}: {exc}", file=sys.stderr)
    finally:
        if opts.keep_logs:
            print(f"logs kept in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    result = {
        "benchmark": "forwarding",
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "host": {"cpus": os.cpu_count(), "kernel": os.uname().release},
        "clip": {"codec": "VP8", "width": 1280, "height": 720, "fps": clip.fps,
                 "seconds": round(clip.duration, 2), "mbit_s": round(clip.bitrate / 1e6, 3),
                 "keyframes": sum(clip.keyframes)},
        "settings": {"duration_s": opts.duration, "warmup_s": opts.warmup, "workers": opts.workers},
        "results": rows,
        "ratio": ratios(rows),
    }
    if profile is not None:
        result["profile_ours"] = {"subscribers": max(opts.subscribers), "top_self": profile["top_self"],
                                  "top_total": profile["top_total"], "samples": profile["samples"]}
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    opts.out.write_text(json.dumps(result, indent=2) + "\n")
    return result
