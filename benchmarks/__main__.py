"""./telemed bench [--subscribers 10,30] [--duration 20] [--servers ours,janus] [--profile]
./telemed bench login [--rounds 10]   (see benchmarks/login.py)
./telemed bench multinode [--joins 40]   (see benchmarks/multinode.py)
./telemed bench layer-switch [--rounds 5]   (see benchmarks/layer_switch.py)"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from .forwarding import CPU_TARGET, JOIN_TARGET, LOSS_TARGET, RESULTS, SERVERS, Options, run, table


def main() -> None:
    if sys.argv[1:2] == ["login"]:
        from .login import main as login
        return login(sys.argv[2:])
    if sys.argv[1:2] == ["layer-switch"]:
        from .layer_switch import main as layer_switch
        return layer_switch(sys.argv[2:])
    if sys.argv[1:2] == ["multinode"]:
        from .multinode import main as multinode
        return multinode(sys.argv[2:])
    p = argparse.ArgumentParser(prog="telemed bench", description=(
        "Forwarding benchmark: one pre-encoded 720p30 VP8 publisher (~1.5 Mbit/s) and N "
        "subscribers that count RTP without decoding, against our SFU and Janus VideoRoom, "
        "inside network namespaces it creates (needs root)."))
    p.add_argument("--subscribers", default="10,30",
                   help="comma-separated subscriber counts (default 10,30)")
    p.add_argument("--duration", type=float, default=20.0, help="measurement window, seconds (default 20)")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds between join and window (default 3)")
    p.add_argument("--workers", type=int, default=3, help="subscriber worker processes (default 3)")
    p.add_argument("--repeat", type=int, default=1,
                   help="run every case this many times, interleaved; the table shows medians")
    p.add_argument("--servers", default=",".join(SERVERS), help="ours,janus (default both)")
    p.add_argument("--profile", nargs="?", const="python", choices=("python", "native", "perf"),
                   help="afterwards, run ours once more at the largest N under a profiler: "
                        "python = py-spy (default), native = py-spy with C frames (pauses the "
                        "server per sample), perf = Linux perf cpu-clock, kernel time included")
    p.add_argument("--profile-only", action="store_true",
                   help="only the profiling run (needs --profile); forwarding.json is left alone")
    p.add_argument("--simulcast", action="store_true",
                   help="the publisher sends three simulcast layers (rid q/h/f), each the whole clip")
    p.add_argument("--out", type=Path, default=None,
                   help="default results/forwarding.json (forwarding-simulcast.json with --simulcast)")
    p.add_argument("--keep-logs", action="store_true", help="keep server and worker logs")
    p.add_argument("--server-cpu", type=float, default=None, metavar="CPUS",
                   help="cap the server process at this many CPUs during the window (a cgroup CPU "
                        "quota, e.g. 0.05): a starved server, reproducibly, without loading the host")
    p.add_argument("--clients-cpu", type=float, default=None, metavar="CPUS",
                   help="cap the subscriber workers, together, at this many CPUs during the window")
    p.add_argument("--server-cpu-for", type=float, default=None, metavar="SECONDS",
                   help="lift the CPU caps after this many seconds of the window, so the server "
                        "drains its backlog at once (as after a peak of host load)")
    a = p.parse_args()
    counts = [int(x) for x in a.subscribers.split(",") if x.strip()]
    servers = tuple(s.strip() for s in a.servers.split(",") if s.strip())
    if not counts or any(c < 1 or c > 200 for c in counts):
        p.error("--subscribers: counts between 1 and 200")
    if not 1 <= a.duration <= 600:
        p.error("--duration: 1 to 600 seconds")
    if unknown := set(servers) - set(SERVERS):
        p.error(f"--servers: unknown {', '.join(sorted(unknown))}")
    out = a.out or RESULTS / ("forwarding-simulcast.json" if a.simulcast else "forwarding.json")
    opts = Options(subscribers=counts, duration=a.duration, warmup=a.warmup, workers=max(1, a.workers),
                   servers=servers, out=out, profile=a.profile, keep_logs=a.keep_logs,
                   repeat=max(1, min(a.repeat, 10)), profile_only=a.profile_only, simulcast=a.simulcast,
                   server_cpu=a.server_cpu, server_cpu_for=a.server_cpu_for, clients_cpu=a.clients_cpu)
    if a.profile_only and not a.profile:
        a.profile = opts.profile = "python"
    result = asyncio.run(run(opts))
    if result["summary"]:
        print(table(result["summary"]))
    def met(ok: bool) -> str:
        return "met" if ok else "not met"

    for n, r in result["ratio"].items():
        print(f"N={n}: CPU per packet ours/Janus = {r['cpu_per_packet_ours_over_janus']}"
              f" (≤ {CPU_TARGET}: {met(r['cpu_target_met'])}); join-all ours/Janus ="
              f" {r['join_all_ours_over_janus']} (≤ {JOIN_TARGET}: {met(r['join_target_met'])});"
              f" worst loss {r['worst_loss_pct_ours']} % (< {LOSS_TARGET}: {met(r['loss_target_met'])})")
    for kind, model in result["cost_model"].items():
        if isinstance(model, dict):
            print(f"{kind}: {model['per_published_packet_us']} µs per packet received from the publisher"
                  f" + {model['per_delivered_packet_us']} µs per packet delivered (fitted over N ="
                  f" {model['from_n']})")
    if "large_n_ratio" in result["cost_model"]:
        print(f"per delivered packet, ours/Janus = {result['cost_model']['large_n_ratio']}"
              " (what the CPU ratio tends to as N grows)")
    for row in result["runs"]:
        if "join_phases_p50_s" in row:
            print(f"{row['server']} N={row['subscribers']} repeat {row['repeat'] + 1}: join phases p50 s"
                  f" {row['join_phases_p50_s']}; UDP drops in window {row['udp_drops_window']}")
    if "profile_ours" in result:
        print((RESULTS / f"profile-ours-{opts.profile}.txt").read_text())
    if result["runs"]:
        print(f"wrote {opts.out}", file=sys.stderr)


main()
