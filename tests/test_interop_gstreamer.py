"""Stock GStreamer (Debian's 1.22 `webrtcbin`, driven by clients/gstreamer/whip.py under
the system Python) publishes over WHIP and watches over WHEP: VP8, and H264 High profile
with Opus, with its own `a=setup:actpass` offers (the server is the DTLS client against
GStreamer's RSA certificate), its payloaders' default 1400-byte packets, and its NACK/RTX
over a lossy link, and ICE over TCP when no UDP gets out.

libnice offers no loopback candidates, so GStreamer runs in a network namespace this
module creates, behind a veth pair; the server listens on the host end too."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from sfu import Producer
from sfu.fanout import MAX_PAYLOAD
from tests.client_namespace import ClientNamespace
from tests.server import start_server
from tests.test_forwarding import frames
from tests.test_media_port import until
from tests.test_whip_whep import http_offer

ROOT = Path(__file__).resolve().parents[1]
DRIVER = ROOT / "clients" / "gstreamer" / "whip.py"
SYSTEM_PYTHON = "/usr/bin/python3"
# Small pictures keep the encoders and decoders cheap; noise, which no encoder can
# squeeze, fills every frame with full-size packets.
SOURCE = "videotestsrc is-live=true pattern=snow ! video/x-raw,width=320,height=240,framerate=30/1"
PASSWORD = "pw-123456"
METRICS_KEY = "m" * 32
FRAMES = 10
# A hospital firewall that lets no UDP out: ICE falls back to TCP (libnice's active
# candidates to the server's passive ones on its media port).
NO_UDP = """
table inet no_udp {
  chain out { type filter hook output priority 0; policy accept; oif lo accept; meta l4proto udp drop; }
}
"""
LOSSY_LINK = """
table inet lossy {
  chain out { type filter hook output priority 0; policy accept; oif lo accept; meta l4proto udp numgen random mod 100 < 5 drop; }
  chain in { type filter hook input priority 0; policy accept; iif lo accept; meta l4proto udp numgen random mod 100 < 5 drop; }
}
"""


# What the driver needs of the system Python and GStreamer, asked of them directly.
PROBE = """
import gi
for name in ("Gst", "GstSdp", "GstWebRTC"):
    gi.require_version(name, "1.0")
from gi.repository import Gst
Gst.init(None)
missing = [e for e in ("webrtcbin", "nicesrc", "vp8enc", "x264enc", "rtph264pay", "avdec_h264", "opusenc")
           if Gst.ElementFactory.find(e) is None]
assert not missing, f"no GStreamer element {missing}"
"""


def _gstreamer_missing() -> str:
    """Why the GStreamer side cannot run here ('' when it can)."""
    if os.geteuid() != 0 or not shutil.which("ip"):
        return "needs root and iproute2 for the network namespace"
    if not os.path.exists(SYSTEM_PYTHON):
        return f"needs {SYSTEM_PYTHON} with python3-gi (scripts/bootstrap.sh test installs it)"
    probe = subprocess.run([SYSTEM_PYTHON, "-c", PROBE], capture_output=True, text=True, timeout=60)
    if probe.returncode:
        return (f"needs python3-gi and GStreamer's webrtcbin, libnice, encoders and decoders "
                f"(scripts/bootstrap.sh test installs them): {probe.stderr.strip()[-300:]}")
    return ""


MISSING = _gstreamer_missing()
pytestmark = [pytest.mark.skipif(bool(MISSING), reason=MISSING), pytest.mark.asyncio(loop_scope="module")]


class GStreamer:
    """One run of the driver in the namespace; its JSON lines are followed."""

    def __init__(self, link: ClientNamespace, *args: str, token: str) -> None:
        self.process = subprocess.Popen(
            link.command([SYSTEM_PYTHON, str(DRIVER), *args]), env={**os.environ, "WHIP_TOKEN": token},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.events: list[dict] = []
        self.other: list[str] = []  # GStreamer's own warnings, for the failure message
        self._changed = asyncio.Event()
        loop = asyncio.get_running_loop()
        threading.Thread(target=self._read, args=(loop,), daemon=True).start()

    def _read(self, loop: asyncio.AbstractEventLoop) -> None:
        for line in self.process.stdout:
            try:
                self.events.append(json.loads(line))
            except ValueError:
                self.other.append(line.rstrip())
            self._wake(loop)
        self._wake(loop)

    def _wake(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            loop.call_soon_threadsafe(self._changed.set)
        except RuntimeError:
            pass  # the module's loop has ended; nobody waits any more

    def count(self, event: str) -> int:
        return sum(1 for e in self.events if e["event"] == event)

    async def said(self, event: str, times: int = 1, timeout: float = 30) -> dict:
        """The `times`-th `event`; fails with what the driver said if it ends or errs first."""
        async def wait() -> dict:
            while True:
                self._changed.clear()
                found = [e for e in self.events if e["event"] == event]
                if len(found) >= times:
                    return found[times - 1]
                if any(e["event"] in ("error", "ended") for e in self.events):
                    raise AssertionError(f"GStreamer ended before {event!r}: {self.events[-5:]} {self.other[-10:]}")
                await self._changed.wait()
        try:
            return await asyncio.wait_for(wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"no {event!r} from GStreamer in {timeout} s: {self.events[-5:]} "
                                 f"{self.other[-10:]}") from None

    async def __aenter__(self) -> "GStreamer":
        return self

    async def __aexit__(self, failure: type | None, *_: object) -> None:
        """SIGTERM: the driver DELETEs its session and ends, cleanly when all went well."""
        if self.process.poll() is None:
            self.process.terminate()
        code = await asyncio.to_thread(self.process.wait, 15)
        if failure is None:
            assert code == 0 and self.count("error") == 0, (self.events[-5:], self.other[-10:])


@pytest.fixture(scope="module")
def link():
    with ClientNamespace("gs") as made:
        # The kernel marks a new veth running up to a second after it is up (its link
        # events are rate-limited); libnice skips an interface that is not running, and
        # with no address at all it never finishes gathering.
        deadline = time.monotonic() + 10
        while not _veth_running(made.name):
            assert time.monotonic() < deadline, "the namespace's veth never came up"
            time.sleep(0.02)
        yield made


def _veth_running(namespace: str) -> bool:
    lines = subprocess.run(["ip", "-n", namespace, "-o", "link", "show"], capture_output=True, text=True,
                           timeout=10).stdout.splitlines()
    return any("state UP" in line for line in lines if "LOOPBACK" not in line)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gst_server(tmp_path_factory, link):
    """One server for the module, on loopback (aiortc peers) and the veth (GStreamer)."""
    running, runner = await start_server(str(tmp_path_factory.mktemp("gst") / "data"), also_on=link.host_ip,
                                         ice_hosts=["127.0.0.1", link.host_ip], metrics_key=METRICS_KEY)
    running.veth_url = running.url.replace("127.0.0.1", link.host_ip)
    yield running
    await runner.cleanup()


@asynccontextmanager
async def publishing(server, link: ClientNamespace, room: str, *args: str) -> AsyncIterator[Producer]:
    """GStreamer publishing into a new room, connected; yields its video producer."""
    await server.create_room(room, PASSWORD)
    token = await server.token(room, PASSWORD, role="device", name="GStreamer")
    async with GStreamer(link, "publish", *args, "--source", SOURCE, "--url", f"{server.veth_url}/whip/{room}",
                         token=token) as encoder:
        await encoder.said("connected")
        # webrtcbin's own offer leaves the DTLS role to the server, which takes the client's.
        offered = (await encoder.said("offer"))["sdp"]
        assert "a=setup:actpass" in offered
        answer = (await encoder.said("answer"))["sdp"]
        assert "a=setup:active" in answer
        if "profile-level-id=" in offered:  # the publisher's own profile and level, answered
            assert offered.split("profile-level-id=")[1][:6] in answer
        live = server.core.live.rooms[room]
        yield next(p for p in live.router.producers.values() if p.kind == "video")
    assert not live.router.producers, "the driver's DELETE did not end its session"


async def test_gstreamer_publishes_vp8_to_an_aiortc_and_a_gstreamer_viewer_over_ice_tcp(gst_server, link):
    viewer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    link.nft(NO_UDP)  # both GStreamers reach the server over TCP only; the aiortc viewer over UDP
    try:
        async with publishing(gst_server, link, "or-gst-vp8", "--codec", "vp8") as producer:
            assert producer.codec.mime_type == "video/VP8"
            viewer.addTransceiver("video", direction="recvonly")
            token = await gst_server.token("or-gst-vp8", PASSWORD, role="viewer", name="Trainee")
            status, _, answer = await http_offer(f"{gst_server.url}/whep/or-gst-vp8", token, viewer)
            assert status == 201, answer
            await viewer.setRemoteDescription(RTCSessionDescription(answer, "answer"))
            decoded = await frames(viewer.getTransceivers()[0].receiver.track, 10)
            assert (decoded[-1].width, decoded[-1].height) == (320, 240)

            token = await gst_server.token("or-gst-vp8", PASSWORD, role="viewer", name="GStreamer viewer")
            async with GStreamer(link, "view", "--codec", "vp8", "--url", f"{gst_server.veth_url}/whep/or-gst-vp8",
                                 token=token) as player:
                assert (await player.said("frame", FRAMES))["width"] == 320
    finally:
        link.nft("delete table inet no_udp")
        await viewer.close()


async def test_gstreamer_publishes_high_profile_h264_and_opus_in_1400_byte_packets(gst_server, link):
    # An operating-room encoder: H264 High profile (as hardware encoders send) and Opus,
    # bundled on one transport. aiortc itself knows only Baseline H264.
    async with publishing(gst_server, link, "or-gst-h264", "--codec", "h264", "--profile", "high",
                          "--audio") as producer:
        assert producer.codec.mime_type == "video/H264"
        assert producer.codec.parameters["profile-level-id"].startswith("64"), producer.codec.parameters
        assert {p.kind for p in gst_server.core.live.rooms["or-gst-h264"].router.producers.values()} == {"audio", "video"}
        # A viewer that decodes only Constrained Baseline (aiortc) is told so, never a dead 201.
        baseline_only = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        baseline_only.addTransceiver("video", direction="recvonly")
        token = await gst_server.token("or-gst-h264", PASSWORD, role="viewer", name="Trainee")
        status, _, body = await http_offer(f"{gst_server.url}/whep/or-gst-h264", token, baseline_only)
        await baseline_only.close()
        assert status == 406 and "codec-mismatch" in body, body
        # GStreamer's viewer offers Constrained Baseline, Main and High: it gets High.
        token = await gst_server.token("or-gst-h264", PASSWORD, role="viewer", name="GStreamer viewer")
        async with GStreamer(link, "view", "--codec", "h264", "--audio", "--url",
                             f"{gst_server.veth_url}/whep/or-gst-h264", token=token) as player:
            await player.said("connected")
            # 5% loss each way: GStreamer's RTX (an FID ssrc-group) repairs the uplink,
            # ours the downlink, and webrtcbin's jitter buffer asks with NACKs.
            link.nft(LOSSY_LINK)
            try:
                await until(lambda: producer.stats.retransmitted > 0
                            and sum(c.retransmitted for c in producer.consumers) > 0, 20, "retransmissions both ways")
                assert (await player.said("frame", FRAMES))["height"] == 240
                assert (await player.said("audio"))["rate"] == 48000
            finally:
                link.nft("delete table inet lossy")
        # rtph264pay's default 1400-byte packets (1388 bytes of payload) were forwarded whole.
        largest = max(len(p.payload) for p in map(producer.buffer.get, range(1 << 16)) if p is not None)
        assert 1336 < largest <= MAX_PAYLOAD, largest
        assert producer.oversize == 0
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{gst_server.url}/metrics",
                                   headers={"Authorization": f"Bearer {METRICS_KEY}"}) as response:
                metrics = await response.text()
        assert "telemed_rtp_oversize_total 0.0" in metrics.splitlines(), \
            [line for line in metrics.splitlines() if "oversize" in line]
