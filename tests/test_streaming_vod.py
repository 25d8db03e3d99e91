"""A stopped stream is kept encrypted and plays as HLS VOD, with the chapters and trim
a host sets."""

from __future__ import annotations

import io
from pathlib import Path

import aiohttp
import av
import m3u8

from tests.disk_files import file_contents
from tests.hls_checks import complete, fetch, playlist_until
from tests.test_streaming_passthrough import PW, server, whip_h264  # noqa: F401 (fixture)


async def test_stopped_stream_plays_as_vod_with_chapters(server):  # noqa: F811
    await server.create_room("lesson", PW)
    publisher, _ = await whip_h264(server, "lesson")
    admin = {"Authorization": f"Bearer {server.admin_key}"}
    host = {"Authorization": f"Bearer {await server.token('lesson', PW, role='host')}"}
    viewer = {"Authorization": f"Bearer {await server.token('lesson', PW, role='viewer')}"}
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{server.url}/api/rooms/lesson/live", headers=admin) as r:
                assert r.status == 200
            async with session.post(f"{server.url}/api/rooms/lesson/live/link", headers=viewer) as r:
                url = server.url + (await r.json())["url"]
            await playlist_until(session, url, lambda p: len(complete(p)) >= 1)
            # A clinical notice while live (as the clinical session emits it) marks the timeline.
            server.core.live.rooms["lesson"].emit({"type": "clinical", "kind": "lab", "seq": 7, "t": 1.0,
                                                   "sender": {}, "body": {"secret": "Na 140"}})
            live = await playlist_until(session, url, lambda p: len(complete(p)) >= 3)
            async with session.get(f"{server.url}/api/rooms/lesson/vod", headers=viewer) as r:
                assert (await r.json())["streams"] == []  # still live: not offered yet
            async with session.delete(f"{server.url}/api/rooms/lesson/live", headers=host) as r:
                assert r.status == 200

            async with session.get(f"{server.url}/api/rooms/lesson/vod", headers=viewer) as r:
                streams = (await r.json())["streams"]
            assert len(streams) == 1 and streams[0]["duration"] >= 3
            assert [(c["kind"], c["seq"]) for c in streams[0]["clinical"]] == [("lab", 7)]
            assert 0 < streams[0]["clinical"][0]["at"] < streams[0]["duration"]
            kept = streams[0]
            vod_url = server.url + kept["url"]
            status, body = await fetch(session, vod_url)
            assert status == 200
            vod = m3u8.loads(body.decode())
            assert vod.is_endlist and vod.playlist_type == "vod" and len(vod.segments) >= 3
            assert 'CLASS="com.telemed.clinical"' in body.decode() and 'X-KIND="lab",X-SEQ=7' in body.decode()
            assert b"Na 140" not in body
            base = vod_url.split("index.m3u8")[0]
            _, init = await fetch(session, base + vod.segments[0].init_section.uri)
            media = init
            for segment in vod.segments:
                status, data = await fetch(session, base + segment.uri)
                assert status == 200
                media += data
            frames = sum(1 for _ in av.open(io.BytesIO(media)).decode(video=0))
            assert frames >= 0.9 * 30 * sum(s.duration for s in vod.segments)
            # The same first segment as went out live.
            first_live = complete(live)[0]
            msn = first_live.uri.split("/s")[-1].split(".")[0]
            kept_first = next(s for s in vod.segments if s.uri.startswith(f"s{msn}."))
            live_bytes = (await fetch(session, url.split("index.m3u8")[0] + first_live.uri))[1]
            assert (await fetch(session, base + kept_first.uri))[1] == live_bytes
            # Encrypted at rest: no MP4 box names in anything under the data directory.
            for raw in file_contents(Path(server.core.settings.data_dir, "streams")).values():
                assert b"moof" not in raw and b"ftyp" not in raw

            # A host adds chapters and trims the start; a viewer may not.
            edit = {"chapters": [{"at": 1.5, "title": "Incision"}, {"at": 0.2, "title": "Prep \"A\""}],
                    "trim": {"start": 1.0, "end": None}}
            edit_url = f"{server.url}/api/rooms/lesson/vod/{kept['stream']}"
            async with session.put(edit_url, json=edit, headers=viewer) as r:
                assert r.status == 403
            for bad in ({"chapters": [{"at": -1, "title": "x"}]}, {"chapters": [{"at": 1, "title": ""}]},
                        {"trim": {"start": 5000}}, {"chapters": "x"}):
                async with session.put(edit_url, json=bad, headers=host) as r:
                    assert r.status == 400 and "error" in await r.json()
            async with session.put(f"{server.url}/api/rooms/lesson/vod/abc123", json=edit, headers=host) as r:
                assert r.status == 404
            async with session.put(edit_url, json=edit, headers=host) as r:
                assert r.status == 200, await r.text()
                assert [c["title"] for c in (await r.json())["chapters"]] == ['Prep "A"', "Incision"]
            status, body = await fetch(session, vod_url)
            text = body.decode()
            trimmed = m3u8.loads(text)
            assert len(trimmed.segments) == len(vod.segments) - 1  # the first second is cut
            assert 'X-TITLE="Incision"' in text and "CLASS=\"com.telemed.chapter\"" in text
            assert (await fetch(session, vod_url.split("?")[0]))[0] == 401
            assert (await fetch(session, base + "s99999.m4s?" + vod_url.split("?")[1]))[0] == 404
            for raw in file_contents(Path(server.core.settings.data_dir, "streams")).values():
                assert b"Incision" not in raw
    finally:
        await publisher.close()
