"""Going live: three aiortc VP8 cameras and a microphone become one composited LL-HLS
program that PyAV decodes, that follows the host's layout, and that only viewers open."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import aiohttp
import m3u8
import numpy as np
import pytest_asyncio

from streaming.hls_access import HlsAccess
from telemed_client import Client
from tests.hls_checks import centre, check_playlist, complete, decode, fetch, hinted, playlist_until
from tests.media import ColourTrack, ToneTrack
from tests.server import start_server

PW = "pw-123456"
RED, GREEN, BLUE = (0, 0, 255), (0, 255, 0), (255, 0, 0)  # BGR


@pytest_asyncio.fixture
async def server(tmp_path):
    running, runner = await start_server(str(tmp_path / "data"), live_size="640x360",
                                         live_x264_preset="ultrafast", live_video_kbps=800)
    yield running
    await runner.cleanup()


async def test_composited_program_follows_the_layout_and_is_refused_to_strangers(server):
    await server.create_room("or", PW)
    await server.create_room("other", PW)
    host = await Client.join(server.url, await server.token("or", PW, role="host", name="Prof"))
    cameras, ids = [], {}
    try:
        for colour, bgr in (("r", RED), ("g", GREEN), ("b", BLUE)):
            client = await Client.join(server.url, await server.token("or", PW, name=f"Cam {colour}"))
            ids[colour] = await client.publish(ColourTrack(bgr), "camera", label=colour)
            cameras.append(client)
        await cameras[0].publish(ToneTrack(), "microphone")
        await host.set_layout({"preset": "surgery", "main_track": ids["r"], "pip_tracks": [ids["g"]]})
        await host.wait_event("layout")

        host_token = await server.token("or", PW, role="host")
        viewer_token = await server.mint("or", "viewer", identity="trainee-1")
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{server.url}/api/rooms/or/live",
                                    headers={"Authorization": f"Bearer {viewer_token}"}) as r:
                assert r.status == 403
            async with session.post(f"{server.url}/api/rooms/or/live",
                                    headers={"Authorization": f"Bearer {host_token}"}) as r:
                assert r.status == 200, await r.text()
                assert (await r.json())["live"]["state"] == "started"
            notice = await host.wait_event("live", timeout=60)  # with the first part
            assert notice["state"] == "started" and notice["viewers"] == 0
            late = await Client.join(server.url, await server.token("or", PW, role="viewer"))
            assert late.info["live"]["state"] == "started"
            await late.close()

            async with session.post(f"{server.url}/api/rooms/or/live/link",
                                    headers={"Authorization": f"Bearer {viewer_token}"}) as r:
                link = await r.json()
            url = server.url + link["url"]
            base = url.split("index.m3u8")[0]
            query = url.split("?", 1)[1]

            playlist = await playlist_until(session, url, lambda p: len(complete(p)) >= 2)
            check_playlist(playlist)
            status, init = await fetch(session, base + playlist.segments[0].init_section.uri)
            assert status == 200
            segment = complete(playlist)[-1]
            status, data = await fetch(session, base + segment.uri)
            assert status == 200
            pictures, audio_frames = decode(init, data)
            assert len(pictures) >= 25 and audio_frames >= 40
            assert centre(pictures[-1]) == "r"
            h, w, _ = pictures[-1].shape  # the green PiP sits in the bottom-right corner
            assert "rgb"[int(np.argmax(pictures[-1][h - h // 8 - 10, w - w // 8 - 10]))] == "g"
            # The ladder: a multivariant playlist with the full-size and a half-size rendition.
            status, body = await fetch(session, server.url + link["master_url"])
            master = m3u8.loads(body.decode())
            assert status == 200 and [p.stream_info.resolution for p in master.playlists] == [(640, 360), (320, 180)]
            assert master.playlists[0].stream_info.bandwidth > master.playlists[1].stream_info.bandwidth
            low_url = base + master.playlists[1].uri
            low = await playlist_until(session, low_url, lambda p: len(complete(p)) >= 1)
            check_playlist(low)
            _, low_init = await fetch(session, base + low.segments[0].init_section.uri)
            low_pictures, _ = decode(low_init, (await fetch(session, base + complete(low)[-1].uri))[1])
            assert low_pictures[-1].shape[:2] == (180, 320) and centre(low_pictures[-1]) == "r"
            # Parts are the segment, cut in pieces.
            parts = [await fetch(session, base + p.uri) for p in segment.parts]
            assert b"".join(body for _, body in parts) == data

            # Blocking reload: asking for the hinted part returns once it exists.
            msn, part = hinted(playlist)
            status, body = await fetch(session, f"{url}&_HLS_msn={msn}&_HLS_part={part}")
            reloaded = m3u8.loads(body.decode())
            check_playlist(reloaded)
            assert any(p.uri.split("/")[-1].startswith(f"p{msn}.{part}.") for s in reloaded.segments for p in s.parts)
            assert reloaded.media_sequence >= playlist.media_sequence

            # The host pins the blue camera: the segment after next is blue in the centre.
            await host.set_layout({"preset": "surgery", "main_track": ids["b"]})
            await host.wait_event("layout", match=lambda e: e["layout"]["main_track"] == ids["b"])
            _, body = await fetch(session, url)
            switch = m3u8.loads(body.decode()).segments[-1]
            msn = int(switch.parts[0].uri.split("/p")[-1].split(".")[0]) + 2
            after = await playlist_until(session, url, lambda p: any(s.uri and f"/s{msn}." in s.uri for s in p.segments))
            check_playlist(after)
            uri = next(s.uri for s in after.segments if s.uri and f"/s{msn}." in s.uri)
            pictures, _ = decode(init, (await fetch(session, base + uri))[1])
            assert pictures and all(centre(p) == "b" for p in pictures)

            # Refused: no credential, another room's token or link, an expired or forged link.
            other_token = await server.token("other", PW, role="viewer")
            assert (await fetch(session, base + "index.m3u8"))[0] == 401
            assert (await fetch(session, base + "index.m3u8", {"Authorization": f"Bearer {other_token}"}))[0] == 403
            assert (await fetch(session, base + "index.m3u8", {"Authorization": f"Bearer {viewer_token}"}))[0] == 200
            assert (await fetch(session, f"{server.url}/hls/other/index.m3u8?{query}"))[0] == 403
            expired = HlsAccess("s" * 48, 60, clock=lambda: time.time() - 3600).query("or", "trainee-1")
            status, body = await fetch(session, f"{base}index.m3u8?{expired}")
            assert status == 403 and b"expired" in body
            assert (await fetch(session, f"{base}index.m3u8?{query[:-4]}beef"))[0] == 403
            assert (await fetch(session, base + segment.uri.replace(segment.uri.split("/")[0], "0badc0de")))[0] == 410
            stream = segment.uri.split("/")[0]
            assert (await fetch(session, f"{base}{stream}/s99999.m4s?{query}"))[0] == 404
            assert (await fetch(session, f"{base}{stream}/p99999.0.m4s?{query}"))[0] == 404
            assert (await fetch(session, f"{base}index.m3u8?{query}&_HLS_msn=x"))[0] == 400
            assert (await fetch(session, f"{base}index.m3u8?{query}&_HLS_msn=99999"))[0] == 400
            # The plain variant lists whole segments only.
            status, body = await fetch(session, f"{base}plain.m3u8?{query}")
            plain = m3u8.loads(body.decode())
            assert status == 200 and plain.segments and all(s.uri and not s.parts for s in plain.segments)
            assert plain.preload_hint is None and plain.server_control is None

            async with session.post(f"{server.url}/api/rooms/or/live/stop",
                                    headers={"Authorization": f"Bearer {host_token}"}) as r:
                assert r.status == 200 and (await r.json())["live"]["state"] == "stopped"
            await host.wait_event("live", match=lambda e: e["state"] == "stopped")
            _, body = await fetch(session, url)
            assert m3u8.loads(body.decode()).is_endlist
            async with session.delete(f"{server.url}/api/rooms/or/live",
                                      headers={"Authorization": f"Bearer {host_token}"}) as r:
                assert r.status == 409
            # Going live and stopping are on the audit trail, under the host's issued identity.
            audit = Path(server.core.settings.data_dir) / "audit.jsonl"
            records = [json.loads(line) for line in audit.read_text().splitlines()]
            lives = [(r["action"], r["object"], r["actor"]["role"]) for r in records if r["action"].startswith("live-")]
            assert lives == [("live-start", "live/or", "host"), ("live-stop", "live/or", "host")]
    finally:
        for client in [host, *cameras]:
            await client.close()


async def test_viewers_are_counted_and_a_flood_gets_429(tmp_path):
    running, runner = await start_server(str(tmp_path / "data"), live_size="320x180",
                                         live_x264_preset="ultrafast", live_requests_per_second=2.0)
    try:
        await running.create_room("lab", PW)
        host = await Client.join(running.url, await running.token("lab", PW, role="host"))
        headers = {"Authorization": f"Bearer {running.admin_key}"}
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{running.url}/api/rooms/lab/live", headers=headers) as r:
                assert r.status == 200
            await host.wait_event("live", timeout=60)  # the first part is cut
            viewer = await running.mint("lab", "viewer", identity="flooder")
            calm = await running.mint("lab", "viewer", identity="calm")
            statuses = [(await fetch(session, f"{running.url}/hls/lab/plain.m3u8",
                                     {"Authorization": f"Bearer {viewer}"}))[0] for _ in range(10)]
            assert 429 in statuses and statuses[0] == 200
            assert (await fetch(session, f"{running.url}/hls/lab/plain.m3u8",
                                {"Authorization": f"Bearer {calm}"}))[0] == 200
            notice = await host.wait_event("live", match=lambda e: e["viewers"] == 2)
            assert notice["state"] == "started"
            # The compositor process dies: the room hears that the stream stopped, nothing hangs.
            stream = running.core.streams.live("lab")
            os.kill(stream.process.pid, signal.SIGKILL)  # our own child
            notice = await host.wait_event("live", match=lambda e: e["state"] == "stopped")
            assert notice["reason"] == "failed" and running.core.streams.live("lab") is None
            assert (await fetch(session, f"{running.url}/hls/lab/plain.m3u8",
                                {"Authorization": f"Bearer {calm}"}))[0] == 200  # ended, with ENDLIST
        await host.close()
    finally:
        await runner.cleanup()
