"""/metrics through prometheus_client: counters that never go down (real aiortc peers
renegotiating), histograms of the slow steps, the process collectors, and per-room
gauges under a label cap."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from signaling.metrics import OTHER_ROOMS
from telemed_client import Client
from tests.clinical_peers import join as clinical_join, close as clinical_close, potassium
from tests.media import PatternTrack, ToneTrack
from tests.server import start_server

DOCS = Path(__file__).resolve().parents[1] / "docs"
KEY = "k" * 32
PASSWORD = "pw-123456"


@pytest.fixture
async def keyed(tmp_path):
    running, runner = await start_server(str(tmp_path / "data"), metrics_key=KEY, metrics_room_labels=2)
    yield running
    await runner.cleanup()


async def scrape(server) -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics, by (name, sorted labels), over HTTP as Prometheus reads it."""
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {KEY}"}) as r:
            assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            text = await r.text()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def counters(samples: dict) -> dict:
    return {key: value for key, value in samples.items() if key[0].endswith("_total")}


def assert_grew(before: dict, after: dict, step: str) -> None:
    shrunk = {key: (before[key], after.get(key)) for key in counters(before)
              if after.get(key, -1) < before[key]}
    assert not shrunk, f"counters went down at {step}: {shrunk}"


async def until_forwarded(server, beyond: float, timeout: float = 20) -> dict:
    async def poll() -> dict:
        while True:
            samples = await scrape(server)
            if samples[("telemed_packets_forwarded_total", ())] > beyond:
                return samples
            await asyncio.sleep(0.1)
    return await asyncio.wait_for(poll(), timeout)


async def test_counters_only_grow_across_renegotiations(keyed):
    await keyed.create_room("consult", PASSWORD)
    publisher = await Client.join(keyed.url, await keyed.token("consult", PASSWORD, name="Dr A"))
    viewer = await Client.join(keyed.url, await keyed.token("consult", PASSWORD, name="Dr B"))
    try:
        video = await publisher.publish(PatternTrack(), "camera")
        audio = await publisher.publish(ToneTrack(), "microphone")
        await viewer.subscribe(video)
        await viewer.subscribe(audio)
        steps = [("forwarding", await until_forwarded(keyed, 50))]

        await viewer.unsubscribe(video)  # closes a consumer that forwarded packets
        steps.append(("unsubscribe", await scrape(keyed)))
        await viewer.subscribe(video)
        steps.append(("subscribe again", await until_forwarded(keyed, steps[-1][1][
            ("telemed_packets_forwarded_total", ())] + 50)))
        await publisher.unpublish(video)  # closes the producer and, with it, the viewer's consumer
        steps.append(("unpublish", await scrape(keyed)))
        await viewer.unsubscribe(video)  # the viewer's connection lets the closed consumer go
        steps.append(("renegotiate", await scrape(keyed)))
        await viewer.close()
        steps.append(("leave", await scrape(keyed)))
        await publisher.close()
        steps.append(("last leave", await scrape(keyed)))
    finally:
        await asyncio.gather(viewer.close(), publisher.close(), return_exceptions=True)
    for (_, before), (step, after) in zip(steps, steps[1:]):
        assert_grew(before, after, step)
    last = steps[-1][1]
    assert last[("telemed_peers", ())] == 0 and last[("telemed_consumers", ())] == 0
    assert last[("telemed_joins_total", ())] == 2
    assert last[("telemed_join_seconds_count", ())] == 2
    assert last[("telemed_token_check_seconds_count", ())] >= 2
    assert last[("telemed_forwarding_batch_seconds_count", ())] > 0
    assert last[("telemed_bytes_forwarded_total", ())] > last[("telemed_packets_forwarded_total", ())]
    # The process and Python collectors.
    assert last[("process_cpu_seconds_total", ())] > 0 and ("process_resident_memory_bytes", ()) in last
    assert any(name == "python_info" for name, _ in last)


async def test_per_room_gauges_name_the_busiest_rooms_and_fold_the_rest(keyed):
    sockets, sessions = [], []
    try:
        for room, people in (("ward-a", 3), ("ward-b", 2), ("ward-c", 1), ("ward-d", 1)):
            await keyed.create_room(room, PASSWORD)
            for n in range(people):
                session = aiohttp.ClientSession()
                sessions.append(session)
                ws = await session.ws_connect(f"{keyed.url}/ws")
                sockets.append(ws)
                await ws.send_str(json.dumps({"type": "join", "token": await keyed.token(room, PASSWORD,
                                                                                          name=f"N{n}")}))
                assert json.loads((await ws.receive(timeout=10)).data)["type"] == "joined"
        samples = await scrape(keyed)
        per_room = {dict(labels)["room"]: value for (name, labels), value in samples.items()
                    if name == "telemed_room_peers"}
        assert per_room == {"ward-a": 3, "ward-b": 2, OTHER_ROOMS: 2}  # metrics_room_labels=2
        assert samples[("telemed_peers", ())] == 7 and samples[("telemed_rooms", ())] == 4
    finally:
        for ws in sockets:
            await ws.close()
        for session in sessions:
            await session.close()


async def test_clinical_intake_is_timed_per_kind(keyed):
    await keyed.create_room("labs", PASSWORD)
    sender = await clinical_join(keyed, "labs", "Dr A")
    try:
        before = await scrape(keyed)
        sender.send({"type": "lab-fhir", "resource": potassium(), "ref": "k1"})
        await sender.wait_for(lambda m: m["type"] == "lab")
        after = await scrape(keyed)
    finally:
        await clinical_close(sender)
    key = ("telemed_clinical_intake_seconds_count", (("kind", "lab"),))
    assert before.get(key, 0) == 0 and after[key] == 1
    assert after[("telemed_clinical_intake_seconds_sum", (("kind", "lab"),))] > 0


def family(name: str) -> str:
    for suffix in ("_bucket", "_count", "_sum", "_total", "_created"):
        name = name.removesuffix(suffix)
    return name


async def test_docs_and_dashboard_name_exactly_the_exported_metrics(keyed):
    samples = await scrape(keyed)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{keyed.url}/metrics", headers={"Authorization": f"Bearer {KEY}"}) as r:
            exported = {family(f.name) for f in text_string_to_metric_families(await r.text())}
    assert {family(name) for name, _ in samples} <= exported
    ours = {name for name in exported if name.startswith("telemed_")}
    documented = {family(name) for name in re.findall(r"`(telemed_[a-z_]+)", (DOCS / "metrics.md").read_text())}
    assert documented == ours
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text())
    queried = {family(name) for panel in dashboard["panels"] for target in panel.get("targets", [])
               for name in re.findall(r"\b((?:telemed|process)_[a-z_]+)", target["expr"])}
    assert queried <= exported, queried - exported
