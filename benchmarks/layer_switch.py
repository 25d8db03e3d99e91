"""From a bandwidth drop to the lower layer, and from its end to the full layer again.

A Chromium surgeon publishes the camera as three VP8 simulcast layers (with temporal
layers); a Chromium trainee at a desk watches from behind a veth whose downlink
`tc tbf` shapes (tests/client_namespace.py). The server runs in this process, so
the trainee's consumer is read directly. Each round, on CLOCK_MONOTONIC:

- the link goes from ``--high`` to ``--low`` kbit/s:
  - ``react``: until the consumer sends less than the full layer at its full frame
    rate (fewer temporal layers, or a lower layer wanted);
  - ``down``: until it sends a lower layer (switched on that layer's keyframe);
- after ``--hold`` seconds the link goes back to ``--high``:
  - ``up``: until it sends the full layer with every temporal layer again.

    sudo .venv/bin/python -m benchmarks.layer_switch [--rounds 5] [--out benchmarks/results/layer_switch.json]
    sudo ./telemed bench layer-switch [--rounds 5]

Needs root (the namespace), `ip`, `tc` and the test extra's Playwright Chromium.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "clients" / "python"))  # tests.server uses it

RESULTS = Path(__file__).resolve().parent / "results"
ROOM = "layer-switch"
PASSWORD = "layer-switch-pw"
ALL = 255  # sfu.fanout.ALL_TEMPORAL_LAYERS


async def until(condition, timeout: float) -> float | None:
    """Seconds until `condition()` holds, polled every 50 ms; None after `timeout`."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if condition():
            return time.monotonic() - began
        await asyncio.sleep(0.05)
    return None


async def run(rounds: int, high: int, low: int, hold: float, tmp: Path) -> dict:
    from sfu.simulcast_consumer import SimulcastConsumer
    from tests.browser.conftest import Person, chromium_in, room_url, wait_connected
    from tests.client_namespace import ClientNamespace
    from tests.server import start_server

    results: list[dict] = []
    with ClientNamespace("ls") as link:
        link.rate(high)
        server, runner = await start_server(str(tmp / "data"), host=link.host_ip, ice_hosts=[link.host_ip])
        try:
            async with chromium_in(link, server.url, tmp) as browser:
                await server.create_room(ROOM, PASSWORD)
                surgeon = Person(await browser.new_context(), "surgeon")
                trainee = Person(await browser.new_context(viewport={"width": 1440, "height": 900}), "trainee")
                host = room_url(server, ROOM, await server.token(ROOM, PASSWORD, "host", "Dr. Surgeon"))
                await wait_connected(await surgeon.page(host.replace("quality=sd", "quality=hd")), timeout=45)
                viewer = await trainee.page(room_url(
                    server, ROOM, await server.token(ROOM, PASSWORD, "viewer", "Trainee"), page="viewer.html"))
                await wait_connected(viewer, timeout=45)
                viewer_id = await viewer.evaluate("window.telemed.session.me.peer_id")

                def consumer() -> SimulcastConsumer | None:
                    peer = server.core.live.rooms[ROOM].peers.get(viewer_id)
                    connection = peer.connection if peer is not None else None
                    return next((c for c in (connection.consumers.values() if connection else [])
                                 if isinstance(c, SimulcastConsumer)), None)

                def full() -> bool:
                    c = consumer()
                    return c is not None and c.layer == 2 and c.wanted == 2 and c.target.c.tid_target == ALL

                if await until(full, 90) is None:
                    raise RuntimeError("the trainee never got the full layer")
                for index in range(rounds):
                    await asyncio.sleep(3)  # settled on the full layer
                    c = consumer()
                    load = os.getloadavg()[0]
                    link.rate(low)
                    react_task = asyncio.ensure_future(until(lambda: not full(), 30))
                    down = await until(lambda c=c: c.layer < 2, 30)
                    react = await react_task
                    await asyncio.sleep(max(0.0, hold - (down or 0)))
                    link.rate(high)
                    up = await until(full, 90)
                    results.append({"round": index, "react_s": react, "down_s": down, "up_s": up,
                                    "switches": c.switches, "load_average": load})
                    print(f"round {index}: react {react} s, down {down} s, up {up} s (load {load:.1f})",
                          file=sys.stderr)
        finally:
            await runner.cleanup()
    return {"benchmark": "layer_switch", "high_kbit": high, "low_kbit": low, "hold_s": hold,
            "rounds": results, "summary": summary(results)}


def summary(rounds: list[dict]) -> dict:
    out = {}
    for key in ("react_s", "down_s", "up_s"):
        values = sorted(r[key] for r in rounds if r[key] is not None)
        out[key] = {"median": round(statistics.median(values), 2) if values else None,
                    "min": round(values[0], 2) if values else None,
                    "max": round(values[-1], 2) if values else None,
                    "missed": sum(1 for r in rounds if r[key] is None)}
    out["load_average"] = round(statistics.mean(r["load_average"] for r in rounds), 1) if rounds else None
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="telemed bench layer-switch", description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--high", type=int, default=3000, help="kbit/s before and after (default 3000)")
    p.add_argument("--low", type=int, default=400, help="kbit/s during the drop (default 400)")
    p.add_argument("--hold", type=float, default=8.0, help="seconds the drop lasts (default 8)")
    p.add_argument("--out", type=Path, default=RESULTS / "layer_switch.json")
    a = p.parse_args(argv)
    if os.geteuid() != 0:
        p.error("needs root: it creates a network namespace")
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(run(max(1, a.rounds), a.high, a.low, a.hold, Path(tmp)))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["summary"], indent=2))
    print(f"wrote {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
