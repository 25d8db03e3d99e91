"""SIGTERM during a recorded call: the server refuses new joins, tells its clients to
reconnect elsewhere, closes the recording whole, and exits within 10 s (as soon as its
clients have gone, within the grace period)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import aiohttp
from recorder.recording import Recording
from sfu import pin_host_addresses
from telemed_client import Client, ClientError, create_room, fetch_token
from tests.media import PatternTrack, ToneTrack
from tests.processes import serving
from tests.server import free_media_port, free_port
from tests.test_recording import demux_decode
from vault import EncryptedReader, KeyRing

ROOT = Path(__file__).resolve().parents[1]
ADMIN_KEY = "shutdown-admin-key"
PW = "pw-123456"


def _health(url: str) -> int:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=2) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


async def _recorded_kinds(url: str, room: str, rec_id: str) -> set[str]:
    """The kinds of the tracks that have written media so far (the served manifest)."""
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as session:
        async with session.get(f"{url}/api/rooms/{room}/recordings/{rec_id}") as answer:
            return {track["kind"] for track in (await answer.json())["tracks"]}


async def _until_recorded(url: str, room: str, rec_id: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while (kinds := await _recorded_kinds(url, room, rec_id)) != {"video", "audio"}:
        assert time.monotonic() < deadline, f"only {kinds} recorded after {timeout} s"
        await asyncio.sleep(0.2)


async def test_sigterm_during_a_recorded_call(tmp_path):
    # The server runs in its own process: this one's client must offer loopback too, as an
    # in-process server would have pinned it (aioice skips loopback; offline, it is all there is).
    pin_host_addresses(["127.0.0.1"])
    data = tmp_path / "data"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [sys.executable, "-m", "signaling", "serve", "--host", "127.0.0.1", "--port", str(port),
            "--ice-hosts", "127.0.0.1", "--data-dir", str(data), "--admin-key", ADMIN_KEY,
            "--shutdown-grace", "6", "--shutdown-timeout", "8", "--media-port", str(free_media_port())]
    with serving("telemed", args, tmp_path / "serve.log", lambda: _health(url) == 200, timeout=60,
                 cwd=str(ROOT), env={**os.environ, "PYTHONPATH": str(ROOT)}) as proc:
        await create_room(url, "ward", PW, ADMIN_KEY, {"record": "auto"})
        caller = await Client.join(url, (await fetch_token(url, "ward", PW, name="Dr A"))["token"])
        await caller.publish(PatternTrack(), "camera")
        await caller.publish(ToneTrack(), "microphone")
        started = await caller.wait_event("recording", timeout=20, match=lambda m: m["state"] == "started")
        directory = data / "recordings" / started["id"]
        await _until_recorded(url, "ward", started["id"])
        token = (await fetch_token(url, "ward", PW, name="Late"))["token"]

        proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        told = await caller.wait_event("reconnect", timeout=8)
        assert told["reason"] == "server-shutdown" and told["retry_after"] == 6
        stopped = await caller.wait_event("recording", timeout=8, match=lambda m: m["state"] == "stopped")
        assert stopped["id"] == started["id"]
        # Draining: a load balancer is told, and nobody new gets in.
        assert _health(url) == 503
        try:
            late = await Client.join(url, token)
        except ClientError as exc:
            assert exc.code == "server-draining"
        else:
            await late.close()
            raise AssertionError("a join was accepted while draining")

        # The caller goes, as told: the server need not wait out the grace period.
        await caller.close()
        code = await asyncio.to_thread(proc.wait, 10 - (time.monotonic() - sent))
        assert code == 0, (tmp_path / "serve.log").read_text()[-3000:]

    # The recording is closed whole: a final manifest, every track file readable to its end.
    ring = KeyRing.load(None, data / "keys" / "master.key")
    recording = Recording.load(directory, ring)
    assert recording.manifest["state"] == "stopped" and recording.manifest["reason"] == "server-shutdown"
    assert {t["kind"] for t in recording.manifest["tracks"]} == {"video", "audio"}
    for track in recording.manifest["tracks"]:
        with EncryptedReader(directory / track["file"], ring) as reader:
            packets, frames, _ = demux_decode(reader)
        assert packets and frames, track
    log = [json.loads(line) for line in (tmp_path / "serve.log").read_text().splitlines() if line.startswith("{")]
    assert [entry for entry in log if entry["msg"] == "draining" and entry["peers"] == 1]
    assert log[-1]["msg"] == "stopped"
