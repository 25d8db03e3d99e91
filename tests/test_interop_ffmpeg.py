"""FFmpeg's own WHIP muxer (the one bundled with PyAV) publishes H264 + Opus, and a WHEP
viewer watches, for well past the point where a peer that answers no consent checks
used to be dropped."""

from __future__ import annotations

import asyncio
import fractions
import threading
import time

import aioice.ice
import av
import numpy as np
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from tests.test_forwarding import frames
from tests.test_whip_whep import http_offer

pytestmark = pytest.mark.skipif("whip" not in av.formats_available, reason="this FFmpeg has no WHIP muxer")


def ffmpeg_whip_publish(url: str, token: str, seconds: float, stop: threading.Event) -> None:
    """An OR encoder: 320x240 H264 (baseline, 1 s GOP, no B-frames) and Opus, in real time."""
    with av.open(url, "w", format="whip", options={"authorization": token}) as out:
        video = out.add_stream("libx264", rate=30, options={
            "profile": "baseline", "preset": "ultrafast", "tune": "zerolatency", "g": "30", "bf": "0"})
        video.width, video.height, video.pix_fmt = 320, 240, "yuv420p"
        audio = out.add_stream("libopus", rate=48000, layout="stereo")  # WHIP wants Opus 48k stereo
        start = time.monotonic()
        for n in range(int(seconds * 30)):
            if stop.is_set():
                break
            image = np.full((240, 320, 3), (n * 5) % 255, np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = n, fractions.Fraction(1, 30)
            out.mux(video.encode(frame))
            sound = av.AudioFrame.from_ndarray(np.zeros((1, 3200), np.int16), format="s16", layout="stereo")
            sound.sample_rate, sound.pts = 48000, n * 1600
            out.mux(audio.encode(sound))
            time.sleep(max(0.0, start + (n + 1) / 30 - time.monotonic()))


async def test_ffmpeg_whip_publisher_stays_up(server, monkeypatch):
    # Consent checks every ~0.5 s: six unanswered ones (the expiry) take ~6 s, not ~30 s,
    # so 15 s of publishing covers more consent windows than a minute at the real pace.
    monkeypatch.setattr(aioice.ice, "CONSENT_INTERVAL", 0.5)
    await server.create_room("or-ffmpeg", "pw-123456")
    token = await server.token("or-ffmpeg", "pw-123456", role="device", name="FFmpeg")
    stop = threading.Event()
    publishing = asyncio.ensure_future(asyncio.to_thread(
        ffmpeg_whip_publish, f"{server.url}/whip/or-ffmpeg", token, 15, stop))
    viewer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        room = None
        for _ in range(100):  # until FFmpeg's session has published both tracks
            room = server.core.live.rooms.get("or-ffmpeg")
            if room is not None and len(room.router.producers) == 2:
                break
            await asyncio.sleep(0.1)
        assert room is not None and len(room.router.producers) == 2, publishing.done() and publishing.exception()
        video = next(p for p in room.router.producers.values() if p.kind == "video")
        assert video.codec.mime_type == "video/H264"
        viewer.addTransceiver("video", direction="recvonly")
        viewer_token = await server.token("or-ffmpeg", "pw-123456", role="viewer", name="Trainee")
        status, _, answer = await http_offer(f"{server.url}/whep/or-ffmpeg", viewer_token, viewer)
        assert status == 201, answer
        await viewer.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        track = viewer.getTransceivers()[0].receiver.track
        assert (await frames(track, 10))[-1].width == 320
        until = time.monotonic() + 10  # FFmpeg publishes for 15 s; stop watching before it ends
        while time.monotonic() < until:
            await frames(track, 15)  # frames keep coming: the session was not dropped
        assert video.id in room.router.producers
        await publishing  # FFmpeg finished without an error
    finally:
        stop.set()
        await viewer.close()
        await asyncio.gather(publishing, return_exceptions=True)
