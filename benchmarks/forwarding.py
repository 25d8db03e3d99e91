"""Forwarding benchmark: one pre-encoded VP8 publisher, N counting subscribers,
our SFU and Janus VideoRoom side by side in the same run.

The orchestrator (this module) never touches the network: servers run in the
server namespace, client workers (benchmarks.worker) in the client namespace,
and it talks to workers over pipes. Per server and N it measures, over one
window: server CPU per delivered packet (the scheduler's runtime, from
benchmarks/cpu_meter.py), loss from sequence numbers, latency by payload
matching, and the time to join everyone.
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
from statistics import linear_regression, median
from dataclasses import dataclass
from pathlib import Path

from . import janus, telemed
from .cgroup import Cgroup
from .clip import load as load_clip
from .cpu_meter import CpuMeter, cpu_seconds
from .media import ClipTrack
from .netns import SERVER_IP, NetnsPair

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
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
    profile: str | None  # None, "python" or "native"
    keep_logs: bool
    repeat: int = 1
    profile_only: bool = False
    simulcast: bool = False  # the publisher sends three layers (benchmarks/peers.py)
    server_cpu: float | None = None  # CPUs the server may use (cgroup quota), None: no cap
    server_cpu_for: float | None = None  # seconds of the window the caps last (None: all of it)
    clients_cpu: float | None = None  # CPUs the subscriber workers may use together


def host_cpu() -> tuple[float, float]:
    """(busy, total) jiffies for the whole host."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


UDP_ERRORS = ("InErrors", "RcvbufErrors", "SndbufErrors")


def udp_errors(pid: int) -> dict[str, int]:
    """UDP drop counters of the network namespace `pid` lives in (/proc/PID/net/snmp):
    datagrams the kernel dropped because a socket's buffer was full, on either side."""
    with open(f"/proc/{pid}/net/snmp") as f:
        rows = [line.split() for line in f if line.startswith("Udp:")]
    values = dict(zip(rows[0][1:], rows[1][1:]))
    return {name: int(values.get(name, 0)) for name in UDP_ERRORS}


def udp_errors_between(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {name: after[name] - before[name] for name in UDP_ERRORS}


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

    def __init__(self, kind: str, ns: NetnsPair, tmp: Path, extra_env: dict[str, str] | None = None) -> None:
        self.kind = kind
        self.log = tmp / f"{kind}-server.log"
        env = {**os.environ, **(extra_env or {})}
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


class CpuCap:
    """A cgroup (v1 cpu controller) that caps processes, all their threads, at `cpus`
    together."""

    def __init__(self, pids: list[int], cpus: float) -> None:
        self.group = Cgroup("cpu", pids[0])
        self.group.write("cpu.cfs_period_us", "100000")
        self.group.write("cpu.cfs_quota_us", str(max(1000, int(cpus * 100000))))
        self.group.add(pids)

    def remove(self) -> None:
        self.group.remove()


def split(n: int, parts: int) -> list[int]:
    parts = max(1, min(parts, n))
    return [n // parts + (1 if i < n % parts else 0) for i in range(parts)]


def match_latencies(sent: dict[str, list[float]], received: list[list[list]],
                    horizon: float) -> tuple[list[float], int]:
    """Latency of each received payload from its latest send before arrival.

    The clip loops, so a payload is sent once per loop; a match older than
    `horizon` (half a loop) means its current send was never recorded.
    """
    by_key = {int(k): sorted(v) for k, v in sent.items()}
    latencies: list[float] = []
    unmatched = 0
    for log in received:
        for key, t in log:
            times = by_key.get(key)
            i = bisect.bisect_right(times, t) - 1 if times else -1
            if i < 0 or t - times[i] > horizon:
                unmatched += 1
            else:
                latencies.append((t - times[i]) * 1000)
    latencies.sort()
    return latencies, unmatched


async def run_case(kind: str, n: int, opts: Options, ns: NetnsPair, tmp: Path,
                   profile_to: Path | None = None) -> dict:
    # Python 3.12's perf trampolines name Python frames for `perf`: an env switch, no code.
    perf_env = {"PYTHONPERFSUPPORT": "1"} if profile_to is not None and opts.profile == "perf" else None
    server = Server(kind, ns, tmp, perf_env)
    meter = CpuMeter(server.pid)
    workers: list[WorkerProc] = []
    profiler: subprocess.Popen | None = None
    caps: list[CpuCap] = []
    try:
        pub = await WorkerProc.spawn(ns, f"{kind}-pub", tmp / f"{kind}-worker-pub.log")
        workers.append(pub)
        msg = {"cmd": "publish", "server": kind, "base": server.base,
               "admin_key": getattr(server, "admin_key", None), "simulcast": opts.simulcast}
        info = (await pub.call(msg, 60))["info"]
        server.check_alive()

        udp0 = {"server_ns": udp_errors(server.pid), "client_ns": udp_errors(pub.proc.pid)}
        cpu_join0 = meter.seconds()
        shares = split(n, opts.workers)
        subs = [await WorkerProc.spawn(ns, f"{kind}-sub{i}", tmp / f"{kind}-worker-sub{i}.log")
                for i in range(len(shares))]
        workers.extend(subs)
        await asyncio.gather(*(w.call({"cmd": "ping"}, 60) for w in subs))  # imports done
        replies = await asyncio.gather(*(
            w.call({"cmd": "subscribe", "server": kind, "base": server.base, "info": info, "count": c})
            for w, c in zip(subs, shares)
        ))
        failed = [f for r in replies for f in r["failed"]]
        per_sub_join = sorted(j for r in replies for j in r["joined"])
        server.check_alive()
        if failed:
            print(f"  {kind}: {len(failed)} of {n} subscribers failed to join: {failed[:3]}", file=sys.stderr)

        udp_joined = {"server_ns": udp_errors(server.pid), "client_ns": udp_errors(pub.proc.pid)}
        cpu_join1 = meter.seconds()
        await asyncio.sleep(opts.warmup)
        if profile_to is not None:
            profiler = start_profiler(server.pid, opts.duration, profile_to, opts.profile)
        if opts.server_cpu:  # from the window on: start-up and joins run uncapped
            caps.append(CpuCap([server.pid], opts.server_cpu))
        if opts.clients_cpu:
            caps.append(CpuCap([w.proc.pid for w in subs], opts.clients_cpu))
        cpu0, host0, ticks0 = meter.seconds(), host_cpu(), cpu_seconds(server.pid)
        udp_start = {"server_ns": udp_errors(server.pid), "client_ns": udp_errors(pub.proc.pid)}
        load_start = os.getloadavg()[0]
        # Publisher first, so every packet the subscribers count was sent in its window.
        starts = [(await workers[0].call({"cmd": "start"}))["t"]]
        starts += [r["t"] for r in await asyncio.gather(*(w.call({"cmd": "start"}) for w in subs))]
        if caps and opts.server_cpu_for is not None:
            # Starved, then free: the server drains what piled up, as after a host's peak.
            await asyncio.sleep(min(opts.server_cpu_for, opts.duration))
            while caps:
                caps.pop().remove()
            await asyncio.sleep(max(0.0, opts.duration - opts.server_cpu_for))
        else:
            await asyncio.sleep(opts.duration)
        stops = await asyncio.gather(*(w.call({"cmd": "stop"}) for w in workers))
        cpu1, host1, ticks1 = meter.seconds(), host_cpu(), cpu_seconds(server.pid)
        udp_end = {"server_ns": udp_errors(server.pid), "client_ns": udp_errors(pub.proc.pid)}
        counters = None
        if kind == "ours":
            counters = (await pub.call({"cmd": "counters", "base": server.base, "key": server.admin_key}))["counters"]
        load_end = os.getloadavg()[0]
        server.check_alive()
        await asyncio.gather(*(w.call({"cmd": "dump", "out": str(tmp / f"{kind}-{n}-{w.name}.json")})
                               for w in workers))
        window = stops[0]["t"] - starts[0]
    finally:
        await asyncio.gather(*(w.quit() for w in workers), return_exceptions=True)
        if profiler is not None:
            try:
                profiler.wait(opts.duration + 30)
            except subprocess.TimeoutExpired:
                profiler.kill()
        server.stop()
        meter.close()
        while caps:
            caps.pop().remove()

    sent: dict[str, list[float]] = json.loads((tmp / f"{kind}-{n}-{pub.name}.json").read_text())["sent"]
    received: list[list] = []
    joins: list[dict] = []
    for w in subs:
        log = json.loads((tmp / f"{kind}-{n}-{w.name}.json").read_text())
        received.extend(log["received"])
        joins.extend(log["joins"])
    latencies, unmatched = match_latencies(sent, received, horizon=load_clip().duration / 2)
    sub_stats = [s for r in stops[1:] for s in r["stats"]]
    delivered = sum(s["packets"] for s in sub_stats)
    expected = sum(s["expected"] for s in sub_stats)
    lost = sum(s["lost"] for s in sub_stats)
    window = stops[0]["t"] - starts[0]
    sent_in_window = sum(1 for times in sent.values() for t in times if starts[0] <= t < stops[0]["t"])
    user_s, sys_s = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
    cpu_s = user_s + sys_s
    return {
        "server": kind,
        "subscribers": n,
        "joined": len(per_sub_join),
        "join_failures": failed,
        "window_s": round(window, 3),
        "server_cpu_s": round(cpu_s, 3),
        "cpu_meter": meter.kind,  # benchmarks/cpu_meter.py
        "server_cpu_ticks_s": round(ticks1 - ticks0, 3),  # the same from /proc's tick samples
        "server_cpu_pct": round(100 * cpu_s / window, 1),
        "host_busy_pct": round(100 * (host1[0] - host0[0]) / max(1, host1[1] - host0[1]), 1),
        "load_average_1m": [round(load_start, 2), round(load_end, 2)],
        "server_cpu_cap": opts.server_cpu,
        "server_cpu_cap_s": opts.server_cpu_for,
        "clients_cpu_cap": opts.clients_cpu,
        # Kernel UDP drops per namespace (server's; publisher's and subscribers'), so a
        # loss can be placed: a full receive buffer shows as RcvbufErrors on that side.
        "udp_drops_join": {ns: udp_errors_between(udp0[ns], udp_joined[ns]) for ns in udp0},
        "udp_drops_window": {ns: udp_errors_between(udp_start[ns], udp_end[ns]) for ns in udp0},
        "publisher_keyframe_requests": stops[0].get("publisher"),
        "server_counters": counters,  # ours: /metrics at the end of the window
        "publisher_packets": sent_in_window,
        "layers_answered": info.get("layers_answered", 0),  # the rids the server accepted
        "delivered_packets": delivered,
        "delivered_per_s": round(delivered / window, 1),
        "delivery_pct": round(100 * delivered / max(1, sent_in_window * len(sub_stats)), 2),
        "cpu_us_per_packet": round(cpu_s * 1e6 / delivered, 2) if delivered else None,
        "user_us_per_packet": round(user_s * 1e6 / delivered, 2) if delivered else None,
        "system_us_per_packet": round(sys_s * 1e6 / delivered, 2) if delivered else None,
        "loss_pct": round(100 * lost / expected, 3) if expected else None,
        "latency_ms_p50": _r(percentile(latencies, 50)),
        "latency_ms_p95": _r(percentile(latencies, 95)),
        "latency_ms_max": _r(latencies[-1] if latencies else None),
        "latency_unmatched_pct": round(100 * unmatched / max(1, unmatched + len(latencies)), 2),
        # Joined: the first complete keyframe (a picture can be shown), for both servers.
        "join_all_s": span(joins, "first_frame"),
        "first_rtp_all_s": span(joins, "first_rtp"),
        "join_p50_s": _r(percentile(per_sub_join, 50), 3),
        "join_max_s": _r(per_sub_join[-1] if per_sub_join else None, 3),
        "join_milestones_p50_s": milestones(joins),
        "join_phases_p50_s": phases(joins, kind),
        # Server CPU from the first subscribe until all had a picture (forwarding included).
        "join_server_cpu_s": round(sum(cpu_join1) - sum(cpu_join0), 3),
    }


def span(joins: list[dict], milestone: str) -> float | None:
    """Seconds from the first subscriber's first request until every one reached `milestone`."""
    if not joins or any(milestone not in m for m in joins):
        return None
    return round(max(m[milestone] for m in joins) - min(m["begin"] for m in joins), 3)


def milestones(joins: list[dict]) -> dict[str, float]:
    """Median seconds from a subscriber's first request to each join milestone."""
    names: dict[str, list[float]] = {}
    for marks in joins:
        begin = marks.get("begin")
        for name, t in marks.items():
            if begin is not None and name != "begin":
                names.setdefault(name, []).append(t - begin)
    out = {name: round(percentile(sorted(v), 50), 3) for name, v in names.items()}
    return dict(sorted(out.items(), key=lambda kv: kv[1]))


# Where a join's time goes, in order. Signaling ends with our answer, or with Janus's
# reply to the subscriber's answer ("started"). ICE and DTLS are the subscriber's own
# transports; then the wait for the first RTP packet, and for a complete keyframe.
PHASES = (("signaling", {"ours": "answer", "janus": "started"}), ("ice", "ice"), ("dtls", "dtls"),
          ("first_rtp", "first_rtp"), ("first_frame", "first_frame"))


def phases(joins: list[dict], kind: str) -> dict[str, float]:
    """Median seconds each subscriber spent in each phase of its join. A phase ends at
    its milestone, or at the latest milestone before it if that came later (Janus may
    finish ICE before it replies "started"), so the phases of a join add up to it."""
    spent: dict[str, list[float]] = {}
    for marks in joins:
        reached = marks.get("begin")
        for phase, milestone in PHASES:
            name = milestone[kind] if isinstance(milestone, dict) else milestone
            if reached is None or name not in marks:
                break
            end = max(reached, marks[name])
            spent.setdefault(phase, []).append(end - reached)
            reached = end
    return {phase: round(percentile(sorted(v), 50), 3) for phase, v in spent.items()}


def _r(v: float | None, digits: int = 2) -> float | None:
    return None if v is None else round(v, digits)


def start_profiler(pid: int, duration: float, out: Path, mode: str) -> subprocess.Popen | None:
    from .profile import py_spy

    if mode == "perf":
        # cpu-clock samples only on-CPU time, user and kernel alike: the same time
        # that /proc/PID/stat counts. No frame pointers in CPython, hence dwarf.
        if shutil.which("perf") is None:
            print("  perf not found: apt-get install linux-perf (profiling skipped)", file=sys.stderr)
            return None
        return subprocess.Popen(
            ["perf", "record", "-e", "cpu-clock", "-F", "1000", "--call-graph", "dwarf,16384",
             "-p", str(pid), "-o", str(out), "--", "sleep", str(int(duration))],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
    exe = py_spy()
    if exe is None:
        print("  py-spy not found: .venv/bin/pip install py-spy (profiling skipped)", file=sys.stderr)
        return None
    # --native unwinds C frames too (uvloop, pylibsrtp) but must pause the process
    # per sample; plain mode never pauses it.
    flags = ["--native"] if mode == "native" else ["--nonblocking"]
    return subprocess.Popen(
        [exe, "record", "--pid", str(pid), "--duration", str(int(duration)), "--rate", "500",
         *flags, "--format", "raw", "--output", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


COLUMNS = (
    ("server", "server"), ("N", "subscribers"), ("CPU µs/pkt", "cpu_us_per_packet"),
    ("user µs", "user_us_per_packet"), ("sys µs", "system_us_per_packet"), ("CPU %", "server_cpu_pct"),
    ("pkts/s", "delivered_per_s"), ("loss %", "loss_pct"), ("p50 ms", "latency_ms_p50"),
    ("p95 ms", "latency_ms_p95"), ("join s", "join_all_s"), ("first RTP s", "first_rtp_all_s"),
)


def table(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(h for h, _ in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        cells = (r.get(k) for _, k in COLUMNS)
        lines.append("| " + " | ".join("–" if c is None else str(c) for c in cells) + " |")
    return "\n".join(lines)


def summarize_runs(rows: list[dict]) -> list[dict]:
    """Per server and N, the median of every numeric figure over the repeats."""
    out = []
    keys = sorted({(r["subscribers"], r["server"]) for r in rows}, key=lambda k: (k[0], SERVERS.index(k[1])))
    for n, kind in keys:
        runs = [r for r in rows if r["server"] == kind and r["subscribers"] == n and "error" not in r]
        row: dict = {"server": kind, "subscribers": n, "runs": len(runs)}
        for _, key in COLUMNS[2:]:
            values = sorted(r[key] for r in runs if r.get(key) is not None)
            row[key] = values[len(values) // 2] if len(values) % 2 else (
                round((values[len(values) // 2 - 1] + values[len(values) // 2]) / 2, 3) if values else None)
        row["cpu_us_per_packet_runs"] = [r["cpu_us_per_packet"] for r in runs]
        out.append(row)
    return out


CPU_TARGET = 0.25   # issue 12: CPU per delivered packet, ours over Janus
JOIN_TARGET = 1.0   # join-all, ours over Janus
LOSS_TARGET = 0.5   # %


def ratios(rows: list[dict]) -> dict[str, dict]:
    """Ours over Janus per N, from per-repeat pairs (run back to back, so drift cancels)."""
    out: dict[str, dict] = {}
    for n in sorted({r["subscribers"] for r in rows}):
        pairs = []
        for rep in sorted({r.get("repeat", 0) for r in rows}):
            ours = next((r for r in rows if r["server"] == "ours" and r["subscribers"] == n
                         and r.get("repeat", 0) == rep and r.get("cpu_us_per_packet")), None)
            them = next((r for r in rows if r["server"] == "janus" and r["subscribers"] == n
                         and r.get("repeat", 0) == rep and r.get("cpu_us_per_packet")), None)
            if ours and them:
                pairs.append((ours, them))
        if not pairs:
            continue
        cpu = [o["cpu_us_per_packet"] / t["cpu_us_per_packet"] for o, t in pairs]
        joins = [o["join_all_s"] / t["join_all_s"] for o, t in pairs if o.get("join_all_s") and t.get("join_all_s")]
        worst_loss = max((o["loss_pct"] for o, _ in pairs if o.get("loss_pct") is not None), default=None)
        out[str(n)] = {
            "cpu_per_packet_ours_over_janus": round(median(cpu), 3),
            "per_repeat": [round(v, 3) for v in cpu],
            "join_all_ours_over_janus": round(median(joins), 3) if joins else None,
            "join_per_repeat": [round(v, 3) for v in joins],
            "worst_loss_pct_ours": worst_loss,
            "cpu_target_met": bool(median(cpu) <= CPU_TARGET),
            "join_target_met": bool(joins and median(joins) <= JOIN_TARGET),
            "loss_target_met": worst_loss is not None and worst_loss < LOSS_TARGET,
        }
    return out


def cost_model(summary: list[dict]) -> dict[str, dict]:
    """Each server's CPU split into what one packet from the publisher costs (receive,
    whatever N) and what each copy delivered costs, fitted over the N of this run.

    CPU per delivered packet x N is the CPU per published packet, R + S x N: a least-squares
    line through the medians. At large N the ratio of the servers tends to the ratio of
    their S; at small N (a consult of three) their R decides.
    """
    out: dict[str, dict] = {}
    for kind in SERVERS:
        points = [(r["subscribers"], r["cpu_us_per_packet"] * r["subscribers"]) for r in summary
                  if r["server"] == kind and r.get("cpu_us_per_packet")]
        if len({n for n, _ in points}) < 2:
            continue
        slope, intercept = linear_regression([n for n, _ in points], [c for _, c in points])
        out[kind] = {"per_published_packet_us": round(intercept, 2),
                     "per_delivered_packet_us": round(slope, 2),
                     "from_n": sorted(n for n, _ in points)}
    if "ours" in out and "janus" in out and out["janus"]["per_delivered_packet_us"] > 0:
        out["large_n_ratio"] = round(out["ours"]["per_delivered_packet_us"]
                                     / out["janus"]["per_delivered_packet_us"], 3)
    return out


async def run(opts: Options) -> dict:
    if os.geteuid() != 0:
        raise SystemExit("the benchmark makes network namespaces: run it as root")
    clip = load_clip()  # encode before any timing starts
    rows: list[dict] = []
    profile: dict | None = None
    started = time.time()
    tmp = Path(tempfile.mkdtemp(prefix="telemed-bench-"))
    try:
        with NetnsPair() as ns:
            cases = [] if opts.profile_only else [
                (r, n, k) for r in range(opts.repeat) for n in opts.subscribers for k in opts.servers]
            for rep, n, kind in cases:
                print(f"{kind}: {n} subscribers, {opts.duration:.0f} s window"
                      f" (repeat {rep + 1}/{opts.repeat}) ...", file=sys.stderr)
                try:
                    row = await asyncio.wait_for(run_case(kind, n, opts, ns, tmp),
                                                 timeout=opts.duration + opts.warmup + 240)
                except Exception as exc:
                    print(f"  {kind} at N={n} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
                    row = {"server": kind, "subscribers": n, "error": f"{type(exc).__name__}: {exc}"}
                row["repeat"] = rep
                rows.append(row)
            if opts.profile:
                profile = await profile_ours(opts, ns, tmp)
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
        "publisher": {"client": "aiortc, the pre-encoded clip replayed (benchmarks/media.py ClipTrack)",
                      "on_keyframe_request": ClipTrack.ON_KEYFRAME_REQUEST,
                      "same_for_both_servers": True},
        "joined_means": "every subscriber has its first complete keyframe (all its packets, in order): "
                        "a picture can be shown; first_rtp_all_s is the first RTP packet of any kind",
        "settings": {"duration_s": opts.duration, "warmup_s": opts.warmup, "workers": opts.workers,
                     "repeat": opts.repeat, "simulcast_layers": 3 if opts.simulcast else 1,
                     "server_cpu_cap": opts.server_cpu, "server_cpu_cap_s": opts.server_cpu_for,
                     "clients_cpu_cap": opts.clients_cpu},
        "summary": summarize_runs(rows),
        "ratio": ratios(rows),
        "cost_model": cost_model(summarize_runs(rows)),
        "runs": rows,
    }
    if profile is not None:
        result["profile_ours"] = {k: v for k, v in profile.items() if k != "text"}
    if rows:
        opts.out.parent.mkdir(parents=True, exist_ok=True)
        opts.out.write_text(json.dumps(result, indent=2) + "\n")
    return result


async def profile_ours(opts: Options, ns: NetnsPair, tmp: Path) -> dict | None:
    """One more run of our server at the largest N, under the chosen profiler.

    Writes results/profile-ours-<mode>.txt (summary), .json and .folded (stacks)."""
    from .profile import fold_perf, summarize

    n = max(opts.subscribers)
    mode = opts.profile
    raw = tmp / ("ours-perf.data" if mode == "perf" else "ours-py-spy.txt")
    print(f"profiling ours at {n} subscribers ({mode}) ...", file=sys.stderr)
    try:
        row = await asyncio.wait_for(run_case("ours", n, opts, ns, tmp, profile_to=raw),
                                     timeout=opts.duration + opts.warmup + 240)
    except Exception as exc:
        print(f"  profiling failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return None
    if not raw.exists():
        return None
    if mode == "perf":
        folded = tmp / "ours-perf.folded"
        fold_perf(raw, folded)
        raw = folded
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / f"profile-ours-{mode}"
    shutil.copy(raw, stem.with_suffix(".folded"))
    profile = summarize(raw, REPO)
    if mode == "perf":
        profile["text"] = ("note: perf cannot unwind past Python's perf trampolines, so each stack "
                           "ends at the innermost Python frame;\nread the first list; py-spy "
                           "(--profile) gives the inclusive Python call tree.\n") + profile["text"]
    head = (f"profiler: {mode}; ours at {n} subscribers, {opts.duration:.0f} s; "
            f"{row['cpu_us_per_packet']} µs/packet under the profiler\n")
    profile["text"] = head + profile["text"]
    profile.update({"profiler": mode, "subscribers": n, "run_under_profiler": row})
    stem.with_suffix(".txt").write_text(profile["text"])
    stem.with_suffix(".json").write_text(json.dumps({k: v for k, v in profile.items() if k != "text"},
                                                    indent=2) + "\n")
    return profile
